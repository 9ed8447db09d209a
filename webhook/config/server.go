package config

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// SplitServer reads "host" or "host:port" (an IPv6 address in brackets); port is 0
// when absent.
func SplitServer(v string) (string, int, error) {
	host, port := v, 0
	if strings.Contains(v, ":") {
		h, p, err := net.SplitHostPort(v)
		if err != nil {
			return "", 0, fmt.Errorf("not host or host:port: %w", err)
		}
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != p {
			return "", 0, fmt.Errorf("port %q is not 1-65535", p)
		}
		host, port = h, n
	}
	if net.ParseIP(host) == nil && len(validation.IsDNS1123Subdomain(host)) > 0 {
		return "", 0, fmt.Errorf("%q is neither an IP address nor a DNS name", host)
	}
	return host, port, nil
}

func validServer(v string) bool {
	_, _, err := SplitServer(v)
	return err == nil
}

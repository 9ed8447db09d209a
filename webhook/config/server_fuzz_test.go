package config_test

import (
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/webhook/config"
)

// FuzzSplitServer: the verification server annotation is accepted only as a host (DNS
// name or IP) with an optional port 1-65535, and what is accepted reads back the same.
func FuzzSplitServer(f *testing.F) {
	for _, s := range []string{"db.example", "db.example:5433", "10.0.0.1", "[::1]:5432", "db:0", "db:65536", "a b", "db:", ":5432", "db:05432", "-x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		host, port, err := config.SplitServer(v)
		if err != nil {
			return
		}
		if host == "" || strings.ContainsAny(host, " /@?#") || port < 0 || port > 65535 {
			t.Fatalf("%q accepted as host %q port %d", v, host, port)
		}
		again := host
		if port != 0 {
			again = net.JoinHostPort(host, strconv.Itoa(port))
		}
		h2, p2, err := config.SplitServer(again)
		if err != nil || h2 != host || p2 != port {
			t.Fatalf("%q → %q %d → %q → %q %d %v", v, host, port, again, h2, p2, err)
		}
	})
}

func TestSplitServer(t *testing.T) {
	tests := map[string]struct {
		host string
		port int
		ok   bool
	}{
		"a host":              {"db.example", 0, true},
		"a host and port":     {"db.example", 5433, true},
		"an IPv6 and port":    {"::1", 5432, true},
		"port zero":           {"", 0, false},
		"a port too large":    {"", 0, false},
		"a space":             {"", 0, false},
		"an empty port":       {"", 0, false},
		"a leading-zero port": {"", 0, false},
	}
	inputs := map[string]string{"a host": "db.example", "a host and port": "db.example:5433", "an IPv6 and port": "[::1]:5432",
		"port zero": "db:0", "a port too large": "db:65536", "a space": "a b", "an empty port": "db:", "a leading-zero port": "db:05432"}
	for name, tc := range tests {
		host, port, err := config.SplitServer(inputs[name])
		if (err == nil) != tc.ok || (tc.ok && (host != tc.host || port != tc.port)) {
			t.Errorf("%s (%q): %q %d %v", name, inputs[name], host, port, err)
		}
	}
}

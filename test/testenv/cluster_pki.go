package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"path/filepath"
)

// clusterPKI is the test cluster's CA and the certificates signed by it, as PEM files
// in one directory: the apiserver's serving certificate, client certificates for the
// admin (system:masters), the kubelet (system:node:<node>) and the apiserver's calls to
// the kubelet, and the service-account signing key pair.
type clusterPKI struct {
	dir string
	ca  *testCA
}

func (p *clusterPKI) path(name string) string { return filepath.Join(p.dir, name) }

func newClusterPKI(dir string, serverIPs []net.IP, nodeName string) (*clusterPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating %s: %w", dir, err)
	}
	ca, err := newTestCA("smartbackup-test-cluster-ca")
	if err != nil {
		return nil, fmt.Errorf("making the cluster CA: %w", err)
	}
	p := &clusterPKI{dir: dir, ca: ca}
	if err := p.write("ca", ca.cert.Raw, ca.key); err != nil {
		return nil, err
	}
	if err := p.sign("apiserver", pkix.Name{CommonName: "kube-apiserver"}, x509.ExtKeyUsageServerAuth, serverIPs,
		[]string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"}); err != nil {
		return nil, err
	}
	clients := map[string]pkix.Name{
		"admin":                    {CommonName: "admin", Organization: []string{"system:masters"}},
		"kubelet":                  {CommonName: "system:node:" + nodeName, Organization: []string{"system:nodes"}},
		"apiserver-kubelet-client": {CommonName: "kube-apiserver-kubelet-client", Organization: []string{"system:masters"}},
	}
	for name, subject := range clients {
		if err := p.sign(name, subject, x509.ExtKeyUsageClientAuth, nil, nil); err != nil {
			return nil, err
		}
	}
	sa, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating the service-account key: %w", err)
	}
	privDER, err := x509.MarshalECPrivateKey(sa)
	if err != nil {
		return nil, err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&sa.PublicKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(p.path("sa.key"), "EC PRIVATE KEY", privDER); err != nil {
		return nil, err
	}
	return p, writePEM(p.path("sa.pub"), "PUBLIC KEY", pubDER)
}

func (p *clusterPKI) sign(name string, subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) error {
	der, key, err := p.ca.sign(subject, usage, ips, dns)
	if err != nil {
		return err
	}
	return p.write(name, der, key)
}

func (p *clusterPKI) write(name string, der []byte, key *ecdsa.PrivateKey) error {
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := writePEM(p.path(name+".crt"), "CERTIFICATE", der); err != nil {
		return err
	}
	return writePEM(p.path(name+".key"), "EC PRIVATE KEY", keyDER)
}

func writePEM(path, kind string, der []byte) error {
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der}), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// kubeconfig writes a kubeconfig for one of the client certificates.
func (p *clusterPKI) kubeconfig(name, server string) (string, error) {
	path := p.path(name + ".kubeconfig")
	body := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: smartbackup-test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: %s
  user: {client-certificate: %q, client-key: %q}
contexts:
- name: smartbackup-test
  context: {cluster: smartbackup-test, user: %s}
current-context: smartbackup-test
`, server, p.path("ca.crt"), name, p.path(name+".crt"), p.path(name+".key"), name)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}

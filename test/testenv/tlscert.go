package testenv

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testCA is a throwaway certificate authority.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(name string) (*testCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"smartbackup tests"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &testCA{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// issue signs a server certificate for 127.0.0.1 and localhost; it returns the
// certificate and key in PEM.
func (ca *testCA) issue() (certPEM, keyPEM []byte, err error) {
	der, key, err := ca.sign(pkix.Name{CommonName: "127.0.0.1"}, x509.ExtKeyUsageServerAuth, []net.IP{net.IPv4(127, 0, 0, 1)}, []string{"localhost"})
	if err != nil {
		return nil, nil, err
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), nil
}

// sign issues a certificate of a new key for subject, valid a week, for one extended
// usage (server or client) and the given addresses; it returns the DER and the key.
func (ca *testCA) sign(subject pkix.Name, usage x509.ExtKeyUsage, ips []net.IP, dns []string) ([]byte, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the key of %s: %w", subject.CommonName, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      subject,
		DNSNames:     dns,
		IPAddresses:  ips,
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the certificate of %s: %w", subject.CommonName, err)
	}
	return der, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	return n
}

// setUpTLS writes a CA (dir/ca.crt, returned), a server certificate and key it signed
// (dir/server.crt and dir/server.key, owned by the server's user: PostgreSQL refuses a
// key others can read), and puts the TLS-only rules first in data/pg_hba.conf.
func setUpTLS(dir, data string, uid, gid int) (string, error) {
	ca, err := newTestCA("smartbackup test CA")
	if err != nil {
		return "", fmt.Errorf("creating the test CA: %w", err)
	}
	certPEM, keyPEM, err := ca.issue()
	if err != nil {
		return "", fmt.Errorf("issuing the server certificate: %w", err)
	}
	caFile := filepath.Join(dir, "ca.crt")
	for _, f := range []struct {
		path string
		b    []byte
		mode os.FileMode
	}{
		{caFile, ca.pem, 0o644},
		{filepath.Join(dir, "server.crt"), certPEM, 0o644},
		{filepath.Join(dir, "server.key"), keyPEM, 0o600},
	} {
		if err := os.WriteFile(f.path, f.b, f.mode); err != nil {
			return "", err
		}
		if err := os.Chown(f.path, uid, gid); err != nil {
			return "", err
		}
	}
	hba := filepath.Join(data, "pg_hba.conf")
	old, err := os.ReadFile(hba)
	if err != nil {
		return "", err
	}
	// pg_hba.conf is read top down: these come before initdb's host lines.
	rules := strings.Join([]string{
		"# smartbackup tests: TCP connections only over TLS",
		"hostnossl all all 0.0.0.0/0 reject",
		"hostnossl all all 127.0.0.1/32 reject",
		"",
	}, "\n")
	if err := os.WriteFile(hba, append([]byte(rules), old...), 0o600); err != nil {
		return "", err
	}
	return caFile, nil
}

// OtherCA writes the PEM file of a fresh CA that signed nothing, for tests of a wrong
// DATABASE_SSLROOTCERT, and returns its path.
func OtherCA(tb testing.TB) string {
	tb.Helper()
	ca, err := newTestCA("unrelated test CA")
	if err != nil {
		tb.Fatalf("creating a CA: %v", err)
	}
	p := filepath.Join(tb.TempDir(), "other-ca.crt")
	if err := os.WriteFile(p, ca.pem, 0o644); err != nil {
		tb.Fatal(err)
	}
	return p
}

// Package certs is the webhook's self-managed TLS mode (SMARTBACKUP_TLS_MODE=self), for
// clusters without cert-manager. It keeps a CA and a serving certificate in a Secret so
// that every replica serves the same chain, writes the certificate into the cert
// directory the webhook server watches (it reloads changed files without a restart),
// and keeps the caBundle of the webhook's MutatingWebhookConfiguration equal to the CA.
// Each is renewed when a third of its lifetime remains. A new CA is published in the
// caBundle before it signs anything (Renew's two steps), and the previous one stays
// trusted until it expires, so no replica ever serves a certificate the apiserver does
// not trust, and replicas that have not yet picked up a new certificate keep working.
//
// With cert-manager (SMARTBACKUP_TLS_MODE=cert-manager) none of this runs: a
// Certificate writes the Secret mounted at the cert directory and cainjector fills the
// caBundle from the cert-manager.io/inject-ca-from annotation.
package certs

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"time"
)

// Bundle is the TLS material, PEM-encoded, as kept in the Secret.
type Bundle struct {
	CACert, CAKey []byte
	Cert, Key     []byte
	// NextCACert and NextCAKey are the CA that replaces CACert once the apiserver
	// trusts it: it is published in CABundle first and signs nothing before.
	NextCACert, NextCAKey []byte
	// CABundle is what clients trust: the CA, its successor while one waits, and the
	// previous CA while it is valid.
	CABundle []byte
}

// Keys of the Secret.
const (
	KeyCACert     = "ca.crt"
	KeyCAKey      = "ca.key"
	KeyCert       = "tls.crt"
	KeyKey        = "tls.key"
	KeyNextCACert = "ca-next.crt"
	KeyNextCAKey  = "ca-next.key"
	KeyCABundle   = "ca-bundle.crt"
)

// Policy is what Renew aims for.
type Policy struct {
	// SANs are the DNS names and IP addresses of the serving certificate.
	SANs         []string
	CAValidity   time.Duration
	CertValidity time.Duration
}

// ServiceSANs are the DNS names a Service is reached by from the apiserver.
func ServiceSANs(service, namespace string) []string {
	return []string{
		service,
		service + "." + namespace,
		service + "." + namespace + ".svc",
		service + "." + namespace + ".svc.cluster.local",
	}
}

// Renew returns a bundle valid at now under p: b itself (changed false) when nothing
// needs renewing, otherwise b with a new certificate, or the next step of a CA
// rollover. trusted is the caBundle the apiserver holds now (the webhook
// configuration's).
//
// A CA is replaced in two steps, so that no replica ever serves a certificate the
// apiserver cannot verify: when a third of its life remains, a successor is made and
// added to CABundle, signing nothing; once trusted holds the successor, it becomes the
// CA and signs a new certificate, and the old CA stays in CABundle until it expires.
// Only a missing, invalid or expired CA (the first start, or a webhook that was down
// for longer than the CA's last third) is replaced at once.
func Renew(b Bundle, p Policy, now time.Time, trusted []byte) (Bundle, bool, error) {
	out := b
	ca, _, caErr := parsePair(b.CACert, b.CAKey)
	switch {
	case caErr != nil || !ca.IsCA || now.Before(ca.NotBefore) || now.After(ca.NotAfter):
		var err error
		if out.CACert, out.CAKey, err = newCA(now, p.CAValidity); err != nil {
			return b, false, err
		}
		out.NextCACert, out.NextCAKey = nil, nil
	case renewDue(ca, now):
		next, _, nextErr := parsePair(b.NextCACert, b.NextCAKey)
		switch {
		case nextErr != nil || !next.IsCA || now.After(next.NotAfter):
			var err error
			if out.NextCACert, out.NextCAKey, err = newCA(now, p.CAValidity); err != nil {
				return b, false, err
			}
		case bundleHolds(trusted, out.NextCACert):
			out.CACert, out.CAKey = out.NextCACert, out.NextCAKey
			out.NextCACert, out.NextCAKey = nil, nil
		}
	}
	ca, caKey, err := parsePair(out.CACert, out.CAKey)
	if err != nil {
		return b, false, fmt.Errorf("parsing the new CA: %w", err)
	}
	if leafNeedsRenewal(out.Cert, out.Key, ca, p.SANs, now) {
		if out.Cert, out.Key, err = newLeaf(ca, caKey, p.SANs, now, p.CertValidity); err != nil {
			return b, false, err
		}
	}
	out.CABundle = caBundle(append(bytes.Clone(out.CACert), out.NextCACert...), b.CABundle, now)
	changed := !bytes.Equal(out.CACert, b.CACert) || !bytes.Equal(out.Cert, b.Cert) ||
		!bytes.Equal(out.NextCACert, b.NextCACert) || !bytes.Equal(out.CABundle, b.CABundle)
	if !changed {
		return b, false, nil
	}
	return out, true, nil
}

// bundleHolds reports whether the PEM bundle holds the certificate certPEM.
func bundleHolds(bundle, certPEM []byte) bool {
	want := pemBody(certPEM)
	if want == nil {
		return false
	}
	for rest := bundle; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return false
		}
		if bytes.Equal(blk.Bytes, want) {
			return true
		}
	}
}

// renewDue: a third of the lifetime or less remains, or the certificate is not yet or
// no longer valid.
func renewDue(c *x509.Certificate, now time.Time) bool {
	life := c.NotAfter.Sub(c.NotBefore)
	return now.Before(c.NotBefore) || now.After(c.NotAfter.Add(-life/3))
}

func leafNeedsRenewal(certPEM, keyPEM []byte, ca *x509.Certificate, sans []string, now time.Time) bool {
	leaf, _, err := parsePair(certPEM, keyPEM)
	if err != nil || renewDue(leaf, now) || leaf.CheckSignatureFrom(ca) != nil {
		return true
	}
	dns, ips := splitSANs(sans)
	return !slices.Equal(leaf.DNSNames, dns) || !slices.EqualFunc(leaf.IPAddresses, ips, net.IP.Equal)
}

// caBundle is the current CAs (the CA and its successor) followed by the CAs of the
// previous bundle that are still valid.
func caBundle(current, previous []byte, now time.Time) []byte {
	out := bytes.Clone(current)
	seen := map[string]bool{}
	for rest := current; ; {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			break
		}
		seen[string(blk.Bytes)] = true
	}
	for rest := previous; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil || !c.IsCA || now.After(c.NotAfter) || seen[string(blk.Bytes)] {
			continue
		}
		seen[string(blk.Bytes)] = true
		out = append(out, pem.EncodeToMemory(blk)...)
	}
	return out
}

func pemBody(b []byte) []byte {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil
	}
	return blk.Bytes
}

func parsePair(certPEM, keyPEM []byte) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, nil, err
	}
	key, ok := pair.PrivateKey.(*ecdsa.PrivateKey)
	if !ok {
		return nil, nil, errors.New("not an ECDSA key")
	}
	return pair.Leaf, key, nil
}

func splitSANs(sans []string) ([]string, []net.IP) {
	var dns []string
	var ips []net.IP
	for _, s := range sans {
		if ip := net.ParseIP(s); ip != nil {
			ips = append(ips, ip)
		} else {
			dns = append(dns, s)
		}
	}
	return dns, ips
}

func serial() (*big.Int, error) {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("generating a serial number: %w", err)
	}
	return n, nil
}

func newCA(now time.Time, validity time.Duration) ([]byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the CA key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          sn,
		Subject:               pkix.Name{CommonName: "smartbackup-webhook-ca"},
		NotBefore:             now.Add(-backdate(validity)),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the CA: %w", err)
	}
	return encode(der, key)
}

func newLeaf(ca *x509.Certificate, caKey *ecdsa.PrivateKey, sans []string, now time.Time, validity time.Duration) ([]byte, []byte, error) {
	if len(sans) == 0 {
		return nil, nil, errors.New("issuing the serving certificate: no SANs")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating the serving key: %w", err)
	}
	sn, err := serial()
	if err != nil {
		return nil, nil, err
	}
	dns, ips := splitSANs(sans)
	notAfter := now.Add(validity)
	if notAfter.After(ca.NotAfter) {
		notAfter = ca.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: sn,
		Subject:      pkix.Name{CommonName: sans[0]},
		NotBefore:    now.Add(-backdate(validity)),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     dns,
		IPAddresses:  ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("signing the serving certificate: %w", err)
	}
	return encode(der, key)
}

// backdate tolerates clock skew between the webhook and the apiserver: an hour, or a
// tenth of a short lifetime so renewal (at a third of the lifetime left) stays rare.
func backdate(validity time.Duration) time.Duration { return min(time.Hour, validity/10) }

func encode(der []byte, key *ecdsa.PrivateKey) ([]byte, []byte, error) {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding a key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), nil
}

package certs_test

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/smartbackup/smartbackup/webhook/certs"
)

var (
	t0     = time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	policy = certs.Policy{
		SANs:         append(certs.ServiceSANs("smartbackup-webhook", "smartbackup"), "127.0.0.1"),
		CAValidity:   300 * 24 * time.Hour,
		CertValidity: 30 * 24 * time.Hour,
	}
)

func mustRenew(t *testing.T, b certs.Bundle, p certs.Policy, now time.Time) (certs.Bundle, bool) {
	t.Helper()
	out, changed, err := certs.Renew(b, p, now, nil)
	if err != nil {
		t.Fatalf("Renew: %v", err)
	}
	return out, changed
}

// verify checks that b's certificate is trusted through b's CA bundle for every SAN at now.
func verify(t *testing.T, b certs.Bundle, sans []string, now time.Time) *x509.Certificate {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b.CABundle) {
		t.Fatal("CA bundle holds no certificate")
	}
	blk, _ := pem.Decode(b.Cert)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	for _, san := range sans {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: san, CurrentTime: now}); err != nil {
			t.Errorf("certificate not valid for %q at %s: %v", san, now, err)
		}
	}
	return leaf
}

func caCount(b []byte) int {
	n := 0
	for rest := b; ; n++ {
		var blk *pem.Block
		if blk, rest = pem.Decode(rest); blk == nil {
			return n
		}
	}
}

func TestRenew(t *testing.T) {
	first, changed := mustRenew(t, certs.Bundle{}, policy, t0)
	if !changed {
		t.Fatal("an empty bundle was not filled")
	}
	leaf1 := verify(t, first, policy.SANs, t0)

	cases := map[string]struct {
		from        certs.Bundle
		policy      certs.Policy
		at          time.Time
		changed     bool
		sameCA      bool
		sameLeaf    bool
		caInBundle  int
		verifyAtNow bool
	}{
		"a fresh bundle is kept as it is": {
			from: first, policy: policy, at: t0.Add(time.Hour), sameCA: true, sameLeaf: true, caInBundle: 1,
		},
		"a certificate with more than a third of its life left is kept": {
			from: first, policy: policy, at: t0.Add(19 * 24 * time.Hour), sameCA: true, sameLeaf: true, caInBundle: 1,
		},
		"a certificate in the last third of its life is renewed by the same CA": {
			from: first, policy: policy, at: t0.Add(21 * 24 * time.Hour), changed: true, sameCA: true, caInBundle: 1, verifyAtNow: true,
		},
		"an expired certificate is renewed": {
			from: first, policy: policy, at: t0.Add(40 * 24 * time.Hour), changed: true, sameCA: true, caInBundle: 1, verifyAtNow: true,
		},
		"new SANs get a new certificate": {
			from: first, policy: certs.Policy{SANs: []string{"other.svc"}, CAValidity: policy.CAValidity, CertValidity: policy.CertValidity},
			at: t0.Add(time.Hour), changed: true, sameCA: true, caInBundle: 1, verifyAtNow: true,
		},
		"a CA in the last third of its life gets a successor, published but signing nothing yet": {
			from: first, policy: policy, at: t0.Add(210 * 24 * time.Hour), changed: true, sameCA: true, caInBundle: 2, verifyAtNow: true,
		},
		"an expired CA is replaced and dropped from the bundle": {
			from: first, policy: policy, at: t0.Add(400 * 24 * time.Hour), changed: true, caInBundle: 1, verifyAtNow: true,
		},
		"garbage is replaced by a new bundle": {
			from:   certs.Bundle{CACert: []byte("x"), CAKey: []byte("y"), Cert: first.Cert, Key: first.Key, CABundle: []byte("z")},
			policy: policy, at: t0, changed: true, caInBundle: 1, verifyAtNow: true,
		},
		"a certificate whose key does not match is reissued": {
			from:   certs.Bundle{CACert: first.CACert, CAKey: first.CAKey, Cert: first.Cert, Key: first.CAKey, CABundle: first.CABundle},
			policy: policy, at: t0, changed: true, sameCA: true, caInBundle: 1, verifyAtNow: true,
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, changed := mustRenew(t, tc.from, tc.policy, tc.at)
			if changed != tc.changed {
				t.Fatalf("changed = %v, want %v", changed, tc.changed)
			}
			if bytes.Equal(got.CACert, first.CACert) != tc.sameCA {
				t.Errorf("same CA = %v, want %v", !tc.sameCA, tc.sameCA)
			}
			if bytes.Equal(got.Cert, first.Cert) != tc.sameLeaf {
				t.Errorf("same certificate = %v, want %v", !tc.sameLeaf, tc.sameLeaf)
			}
			if n := caCount(got.CABundle); n != tc.caInBundle {
				t.Errorf("CA bundle holds %d certificates, want %d", n, tc.caInBundle)
			}
			if tc.verifyAtNow {
				leaf := verify(t, got, tc.policy.SANs, tc.at)
				if leaf.SerialNumber.Cmp(leaf1.SerialNumber) == 0 {
					t.Error("renewed certificate kept the serial number")
				}
			}
			again, changed := mustRenew(t, got, tc.policy, tc.at)
			if changed || !bytes.Equal(again.Cert, got.Cert) {
				t.Error("a second Renew at the same time changed the bundle")
			}
		})
	}
}

// TestShortLifetimesDoNotRenewForever guards the clock-skew margin: a certificate of one
// minute must not be due for renewal the moment it is issued.
func TestShortLifetimesDoNotRenewForever(t *testing.T) {
	p := certs.Policy{SANs: []string{"w.svc"}, CAValidity: time.Hour, CertValidity: time.Minute}
	b, _ := mustRenew(t, certs.Bundle{}, p, t0)
	if _, changed := mustRenew(t, b, p, t0.Add(30*time.Second)); changed {
		t.Error("renewed after half of a one-minute lifetime")
	}
	if _, changed := mustRenew(t, b, p, t0.Add(50*time.Second)); !changed {
		t.Error("not renewed with a sixth of its lifetime left")
	}
}

// TestCARolloverPublishesBeforeSigning: the successor CA signs the serving certificate
// only once the apiserver's caBundle holds it; until then every certificate served is
// one the published bundle verifies, and the old CA stays trusted after the switch.
func TestCARolloverPublishesBeforeSigning(t *testing.T) {
	first, _ := mustRenew(t, certs.Bundle{}, policy, t0)
	at := t0.Add(205 * 24 * time.Hour)
	// Keep the leaf fresh so that only the CA is due.
	fresh, _ := mustRenew(t, first, policy, t0.Add(199*24*time.Hour))

	step1, changed, err := certs.Renew(fresh, policy, at, fresh.CABundle)
	if err != nil || !changed {
		t.Fatalf("a due CA made no successor: %v", err)
	}
	if len(step1.NextCACert) == 0 || !bytes.Equal(step1.CACert, fresh.CACert) || !bytes.Equal(step1.Cert, fresh.Cert) {
		t.Fatal("step 1 must add a successor and keep the CA and the certificate")
	}
	if caCount(step1.CABundle) != 2 {
		t.Errorf("step 1 bundle holds %d CAs, want the CA and its successor", caCount(step1.CABundle))
	}

	// The apiserver still holds the old bundle: nothing moves.
	waiting, changed, err := certs.Renew(step1, policy, at.Add(time.Minute), fresh.CABundle)
	if err != nil || changed || !bytes.Equal(waiting.Cert, fresh.Cert) {
		t.Fatalf("the successor signed before the apiserver trusted it (changed %v, %v)", changed, err)
	}

	// Published: the successor becomes the CA and signs a new certificate, which the
	// bundle the apiserver already holds verifies.
	step2, changed, err := certs.Renew(step1, policy, at.Add(time.Minute), step1.CABundle)
	if err != nil || !changed {
		t.Fatalf("the published successor was not promoted: %v", err)
	}
	if !bytes.Equal(step2.CACert, step1.NextCACert) || len(step2.NextCACert) != 0 || bytes.Equal(step2.Cert, fresh.Cert) {
		t.Fatal("step 2 must make the successor the CA and issue a certificate from it")
	}
	verify(t, certs.Bundle{Cert: step2.Cert, CABundle: step1.CABundle}, policy.SANs, at.Add(time.Minute))
	verify(t, certs.Bundle{Cert: fresh.Cert, CABundle: step2.CABundle}, policy.SANs, at.Add(time.Minute))
	if again, changed, _ := certs.Renew(step2, policy, at.Add(2*time.Minute), step2.CABundle); changed || !bytes.Equal(again.Cert, step2.Cert) {
		t.Error("a check after the rollover changed the bundle again")
	}
}

package certs_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/certs"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestManager runs the self-managed TLS mode against a real apiserver: two replicas
// share one Secret, the caBundle follows the CA, and a controller-runtime webhook server
// serves a renewed certificate without a restart.
func TestManager(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	ns := testenv.RandomName("certs-")
	if err := c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	mwcName := ns + "-webhook"
	if err := c.Create(ctx, admission.WebhookConfiguration(mwcName, ns, "smartbackup-webhook", nil)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: mwcName}})
	})

	var mu sync.Mutex
	clock := time.Now()
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	advance := func(d time.Duration) { mu.Lock(); defer mu.Unlock(); clock = clock.Add(d) }
	replica := func() *certs.Manager {
		return &certs.Manager{
			Client: c, Reader: c, Namespace: ns, SecretName: "smartbackup-webhook-tls", WebhookConfigName: mwcName,
			CertDir: t.TempDir(), Interval: time.Second, Now: now,
			Policy: certs.Policy{SANs: append(certs.ServiceSANs("smartbackup-webhook", ns), "127.0.0.1"),
				CAValidity: 300 * 24 * time.Hour, CertValidity: 30 * 24 * time.Hour},
		}
	}
	a, b := replica(), replica()

	t.Run("two replicas starting together end up with one certificate", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, m := range []*certs.Manager{a, b} {
			wg.Go(func() { errs[i] = m.Ensure(ctx) })
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatal(err)
		}
		sec := secret(t, c, ns)
		for _, m := range []*certs.Manager{a, b} {
			if got := readFile(t, m.CertDir, certs.KeyCert); !bytes.Equal(got, sec.Data[certs.KeyCert]) {
				t.Errorf("%s holds another certificate than the Secret", m.CertDir)
			}
		}
		if got := caBundle(t, c, mwcName); !bytes.Equal(got, sec.Data[certs.KeyCABundle]) {
			t.Error("caBundle differs from the Secret's CA bundle")
		}
	})

	t.Run("a check with nothing due writes nothing", func(t *testing.T) {
		before := secret(t, c, ns).ResourceVersion
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if after := secret(t, c, ns).ResourceVersion; after != before {
			t.Errorf("Secret rewritten (resourceVersion %s → %s)", before, after)
		}
	})

	t.Run("a caBundle reset by a redeploy is restored", func(t *testing.T) {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(ctx, client.ObjectKey{Name: mwcName}, &mwc); err != nil {
			t.Fatal(err)
		}
		mwc.Webhooks[0].ClientConfig.CABundle = nil
		if err := c.Update(ctx, &mwc); err != nil {
			t.Fatal(err)
		}
		if err := b.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if got := caBundle(t, c, mwcName); !bytes.Equal(got, secret(t, c, ns).Data[certs.KeyCABundle]) {
			t.Error("caBundle not restored")
		}
	})

	t.Run("a renewed certificate is served without a restart", func(t *testing.T) {
		addr := serve(t, a.CertDir)
		first := servedSerial(t, addr)
		advance(21 * 24 * time.Hour)
		caBefore := caBundle(t, c, mwcName)
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(20 * time.Second)
		for servedSerial(t, addr).Cmp(first) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the server still serves the old certificate after 20s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		if !bytes.Equal(caBundle(t, c, mwcName), caBefore) {
			t.Error("renewing the certificate alone changed the caBundle")
		}
		// The other replica picks the renewed certificate up at its next check.
		if err := b.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(readFile(t, a.CertDir, certs.KeyCert), readFile(t, b.CertDir, certs.KeyCert)) {
			t.Error("replicas serve different certificates after renewal")
		}
	})

	t.Run("a renewed CA is trusted next to the old one", func(t *testing.T) {
		advance(190 * 24 * time.Hour)
		if err := a.Ensure(ctx); err != nil {
			t.Fatal(err)
		}
		if n := caCount(caBundle(t, c, mwcName)); n != 2 {
			t.Errorf("caBundle holds %d CAs, want the new and the old", n)
		}
	})

	t.Run("a missing webhook configuration is reported and retried", func(t *testing.T) {
		m := replica()
		m.WebhookConfigName = "does-not-exist"
		if err := m.Ensure(ctx); !errors.Is(err, certs.ErrNoWebhookConfiguration) {
			t.Errorf("Ensure = %v, want ErrNoWebhookConfiguration", err)
		}
		if _, err := os.Stat(filepath.Join(m.CertDir, certs.KeyCert)); err != nil {
			t.Errorf("certificate not written before the caBundle step: %v", err)
		}
	})
}

func secret(t *testing.T, c client.Client, ns string) *corev1.Secret {
	t.Helper()
	var s corev1.Secret
	if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: "smartbackup-webhook-tls"}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

func caBundle(t *testing.T, c client.Client, name string) []byte {
	t.Helper()
	var mwc admissionregistrationv1.MutatingWebhookConfiguration
	if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &mwc); err != nil {
		t.Fatal(err)
	}
	return mwc.Webhooks[0].ClientConfig.CABundle
}

func readFile(t *testing.T, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve starts controller-runtime's webhook server (the one the webhook runs) on dir.
func serve(t *testing.T, dir string) string {
	t.Helper()
	port := testenv.FreePort(t)
	srv := webhook.NewServer(webhook.Options{Host: "127.0.0.1", Port: port, CertDir: dir})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Start(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			_ = conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook server not serving: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

package app_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/test/webhookproc"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/app"
	"github.com/smartbackup/smartbackup/webhook/certs"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

// creator creates dbaccess pods in ns without pause until stopped, counting outcomes.
type creator struct {
	ok, failed atomic.Int64
	mu         sync.Mutex
	first      error
	stop       chan struct{}
	wg         sync.WaitGroup
}

func startCreating(t *testing.T, c client.Client, ns, product string, workers int) *creator {
	cr := &creator{stop: make(chan struct{})}
	for range workers {
		cr.wg.Go(func() {
			for {
				select {
				case <-cr.stop:
					return
				default:
				}
				p := dbaccessPod(ns, product)
				err := c.Create(context.Background(), p)
				if err == nil && (len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != contract.InitContainerName) {
					err = fmt.Errorf("pod %s not injected", p.Name)
				}
				if err != nil {
					cr.failed.Add(1)
					cr.mu.Lock()
					if cr.first == nil {
						cr.first = err
					}
					cr.mu.Unlock()
					continue
				}
				cr.ok.Add(1)
			}
		})
	}
	t.Cleanup(cr.halt)
	return cr
}

func (cr *creator) halt() {
	select {
	case <-cr.stop:
	default:
		close(cr.stop)
	}
	cr.wg.Wait()
}

// waitCreated waits until n more creates succeeded (or any failed).
func (cr *creator) waitCreated(n int64) {
	for start := cr.ok.Load(); cr.ok.Load() < start+n && cr.failed.Load() == 0; {
		time.Sleep(20 * time.Millisecond)
	}
}

func writeFileAtomic(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func servedSerial(t *testing.T, addr string) *big.Int {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		return big.NewInt(-1)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func serialOf(t *testing.T, certPEM []byte) *big.Int {
	t.Helper()
	cert, err := x509.ParseCertificate(pemDER(t, certPEM))
	if err != nil {
		t.Fatal(err)
	}
	return cert.SerialNumber
}

// TestCertManagerRenewalKeepsAdmitting is cert-manager mode as the chart deploys it: the
// serving certificate is signed by a CA, and the caBundle is that CA. Renewing the
// serving certificate (a new key and certificate in the mounted Secret, as cert-manager
// writes it) while pods are created loses no admission and leaves the caBundle alone.
// The control case shows what the chart did before: a renewal that changes the CA (a
// self-signed leaf) refuses pods until the caBundle catches up.
func TestCertManagerRenewalKeepsAdmitting(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)
	dir := t.TempDir()
	port, health := testenv.FreePort(t), testenv.FreePort(t)
	policy := func(extra string) certs.Policy {
		return certs.Policy{SANs: []string{"127.0.0.1", extra}, CAValidity: 24 * time.Hour, CertValidity: 12 * time.Hour}
	}
	b, _, err := certs.Renew(certs.Bundle{}, policy("a.invalid"), time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFileAtomic(t, filepath.Join(dir, certs.KeyKey), b.Key)
	writeFileAtomic(t, filepath.Join(dir, certs.KeyCert), b.Cert)

	cfg := configtest.New(t, map[string]string{
		"TLS_MODE": config.TLSCertManager, "CERT_DIR": dir, "WEBHOOK_PORT": strconv.Itoa(port),
		"METRICS_ADDR": "0", "HEALTH_ADDR": fmt.Sprintf("127.0.0.1:%d", health), "SHUTDOWN_DELAY": "0s",
	})
	w, err := app.New(cfg, kube.Config, app.Options{SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
	mwcName := testenv.RandomName("smartbackup-cm-")
	registerWebhook(t, c, mwcName, testenv.RandomName("smartbackup-system-"), fmt.Sprintf("https://127.0.0.1:%d%s", port, admission.Path), b.CACert)
	ns := testenv.RandomName("renew-")
	createNamespace(t, c, ns, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "acme", ""))
	waitInjecting(t, c, ns, contract.ProductSistemico)
	addr := fmt.Sprintf("127.0.0.1:%d", port)

	caBundle := func(t *testing.T) *x509.CertPool {
		t.Helper()
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(t.Context(), client.ObjectKey{Name: mwcName}, &mwc); err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle) {
			t.Fatal("the caBundle holds no certificate")
		}
		return pool
	}
	// handshake dials the webhook as the apiserver does, trusting the configuration's
	// caBundle: a new connection after a renewal must verify.
	handshake := func(t *testing.T) error {
		t.Helper()
		conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: caBundle(t), ServerName: "127.0.0.1"})
		if err == nil {
			_ = conn.Close()
		}
		return err
	}
	renew := func(t *testing.T, next certs.Bundle) {
		t.Helper()
		writeFileAtomic(t, filepath.Join(dir, certs.KeyKey), next.Key)
		writeFileAtomic(t, filepath.Join(dir, certs.KeyCert), next.Cert)
		want := serialOf(t, next.Cert)
		deadline := time.Now().Add(30 * time.Second)
		for servedSerial(t, addr).Cmp(want) != 0 {
			if time.Now().After(deadline) {
				t.Fatal("the renewed certificate is not served after 30s")
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	t.Run("serving certificate renewals signed by the same CA lose no admission", func(t *testing.T) {
		cr := startCreating(t, c, ns, contract.ProductSistemico, 3)
		for i := range 4 {
			cr.waitCreated(15)
			next, changed, err := certs.Renew(b, policy(fmt.Sprintf("r%d.invalid", i)), time.Now(), nil)
			if err != nil || !changed || !bytes.Equal(next.CACert, b.CACert) {
				t.Fatalf("renewing: changed %v, %v", changed, err)
			}
			renew(t, next)
			if err := handshake(t); err != nil {
				t.Errorf("renewal %d: a new connection does not verify against the caBundle: %v", i+1, err)
			}
			b = next
		}
		cr.waitCreated(15)
		cr.halt()
		t.Logf("METRIC renewal mode=cert-manager renewals=4 creates=%d failed=%d", cr.ok.Load(), cr.failed.Load())
		if cr.failed.Load() > 0 {
			t.Errorf("%d creates failed across serving certificate renewals; first: %v", cr.failed.Load(), cr.first)
		}
	})

	t.Run("control: a renewal that changes the CA (a self-signed leaf, the chart before) is not trusted", func(t *testing.T) {
		other, _, err := certs.Renew(certs.Bundle{}, policy("other.invalid"), time.Now(), nil)
		if err != nil {
			t.Fatal(err)
		}
		renew(t, other)
		if err := handshake(t); err == nil {
			t.Fatal("a certificate of another CA verified against the caBundle")
		}
	})
}

// TestSelfManagedCARolloverKeepsAdmitting runs two webhook processes in self-managed TLS
// mode with lifetimes short enough that the CA is replaced during the test (CA 3 min,
// certificate 1 min, a check every 2 s), behind the Service stand-in, while pods are
// created without pause: the new CA is in the caBundle before any replica serves a
// certificate it signed, so no create fails.
func TestSelfManagedCARolloverKeepsAdmitting(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)
	env := map[string]string{
		config.Prefix + "_TLS_CA_VALIDITY": "3m", config.Prefix + "_TLS_CERT_VALIDITY": "1m",
		config.Prefix + "_TLS_CHECK_INTERVAL": "2s", config.Prefix + "_SHUTDOWN_DELAY": "0s",
		config.Prefix + "_TLS_SECRET_NAME": testenv.RandomName("rollover-tls-"),
	}
	for k, v := range configtest.Env() {
		env[config.Prefix+"_"+k] = v
	}
	svc := webhookproc.NewService(t)
	name := webhookproc.Register(t, kube, svc.URL())
	a := webhookproc.Launch(t, kube, env, name, testenv.FreePort(t))
	svc.Add(a)
	bw := webhookproc.Launch(t, kube, env, name, testenv.FreePort(t))
	svc.Add(bw)

	ns := testenv.RandomName("rollover-")
	createNamespace(t, c, ns, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "acme", ""))
	waitInjecting(t, c, ns, contract.ProductSistemico)
	secretCA := func() []byte {
		var s corev1.Secret
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: webhookproc.Namespace, Name: env[config.Prefix+"_TLS_SECRET_NAME"]}, &s); err != nil {
			t.Fatal(err)
		}
		return s.Data[certs.KeyCACert]
	}
	firstCA := secretCA()
	cr := startCreating(t, c, ns, contract.ProductSistemico, 2)
	deadline := time.Now().Add(4 * time.Minute)
	for bytes.Equal(secretCA(), firstCA) {
		if time.Now().After(deadline) {
			t.Fatal("the CA was not replaced within 4 minutes")
		}
		time.Sleep(time.Second)
	}
	// Both replicas come to serve a certificate of the new CA, and a new connection
	// verifies against the caBundle the apiserver holds at every moment.
	newCA, err := x509.ParseCertificate(pemDER(t, secretCA()))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []*webhookproc.Webhook{a, bw} {
		addr := fmt.Sprintf("127.0.0.1:%d", w.Port)
		eventually(t, 60*time.Second, func() error {
			var mwc admissionregistrationv1.MutatingWebhookConfiguration
			if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &mwc); err != nil {
				return err
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle)
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Errorf("replica on %s serves a certificate the caBundle does not verify: %v", addr, err)
				return nil
			}
			defer conn.Close()
			if err := conn.ConnectionState().PeerCertificates[0].CheckSignatureFrom(newCA); err != nil {
				return fmt.Errorf("replica on %s still serves the old CA's certificate", addr)
			}
			return nil
		})
	}
	cr.halt()
	t.Logf("METRIC renewal mode=self ca_rollovers=1 creates=%d failed=%d", cr.ok.Load(), cr.failed.Load())
	if cr.failed.Load() > 0 {
		t.Errorf("%d creates failed across a CA rollover; first: %v\nreplica a:\n%s", cr.failed.Load(), cr.first, a.Log())
	}
}

func pemDER(t *testing.T, b []byte) []byte {
	t.Helper()
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatal("not PEM")
	}
	return blk.Bytes
}

package app_test

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zapcore"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/app"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

// logs collects the in-process webhook's JSON log lines (and echoes them to stderr when
// SMARTBACKUP_TEST_LOGS=1), so tests can check what is and is not logged.
var logs syncBuffer

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestMain(m *testing.M) {
	flag.Parse()
	var w io.Writer = &logs
	if os.Getenv("SMARTBACKUP_TEST_LOGS") == "1" {
		w = io.MultiWriter(&logs, os.Stderr)
	}
	logf.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(false), zap.Level(zapcore.Level(-1)), zap.StacktraceLevel(zapcore.DPanicLevel)))
	testenv.Main(m)
}

func newClient(t testing.TB, kube *testenv.Kube) client.Client {
	t.Helper()
	c, err := client.New(kube.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// labels for namespaces: the admin-controlled metadata.
func nsLabels(product, environment, customer, source string) map[string]string {
	l := map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: product,
		contract.LabelEnvironment: environment, contract.LabelCustomer: customer,
	}
	if source != "" {
		l[contract.LabelRestoreSource] = source
	}
	return l
}

func createNamespace(t *testing.T, c client.Client, name string, labels map[string]string) *corev1.Namespace {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "postgres." + name + ".svc",
		contract.AnnotationDatabaseName:     "erp",
	}}}
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatalf("creating namespace %s: %v", name, err)
	}
	return ns
}

func dbaccessPod(ns, product string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "dbaccess-", Namespace: ns, Labels: map[string]string{
			contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: product,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "smarterp/dbaccess:7"}}},
	}
}

// registerWebhook creates the one MutatingWebhookConfiguration definition for a
// webhook living in namespace own, pointed at url instead of the in-cluster Service, and
// deletes it when the test ends.
func registerWebhook(t *testing.T, c client.Client, name, own, url string, caBundle []byte) {
	t.Helper()
	mwc := admission.WebhookConfiguration(name, own, "smartbackup-webhook", caBundle)
	mwc.Webhooks[0].ClientConfig.Service = nil
	mwc.Webhooks[0].ClientConfig.URL = &url
	if err := c.Create(t.Context(), mwc); err != nil {
		t.Fatalf("creating the webhook configuration: %v", err)
	}
	t.Cleanup(func() {
		_ = c.Delete(context.Background(), &admissionregistrationv1.MutatingWebhookConfiguration{ObjectMeta: metav1.ObjectMeta{Name: name}})
	})
}

// waitInjecting dry-runs dbaccess pod creates in ns until the apiserver routes them
// through the webhook (it picks up a new configuration within about a second).
func waitInjecting(t *testing.T, c client.Client, ns, product string) {
	t.Helper()
	eventually(t, 30*time.Second, func() error {
		p := dbaccessPod(ns, product)
		if err := c.Create(t.Context(), p, client.DryRunAll); err != nil {
			return err
		}
		if len(p.Spec.InitContainers) == 0 {
			return fmt.Errorf("pod not injected yet")
		}
		return nil
	})
}

func eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func waitHTTP(t testing.TB, url string) {
	t.Helper()
	eventually(t, 60*time.Second, func() error {
		resp, err := http.Get(url)
		if err != nil {
			return err
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: HTTP %d", url, resp.StatusCode)
		}
		return nil
	})
}

// latencies creates n dbaccess pods in ns, one after the other, and returns the
// sorted round-trip times of the creates.
func latencies(t *testing.T, c client.Client, ns, product string, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for range n {
		p := dbaccessPod(ns, product)
		start := time.Now()
		if err := c.Create(t.Context(), p); err != nil {
			t.Fatalf("creating pod %d: %v", len(out), err)
		}
		out = append(out, time.Since(start))
	}
	slices.Sort(out)
	return out
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	return sorted[int(q*float64(len(sorted)-1)+0.5)]
}

func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64) + "ms"
}

func mib(bytes float64) string { return strconv.FormatFloat(bytes/(1<<20), 'f', 1, 64) + "MiB" }

// procStatus reads a field (in kB) such as VmRSS from /proc/PID/status, in bytes.
func procStatus(t *testing.T, pid, field string) float64 {
	t.Helper()
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), field+":"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb * 1024
		}
	}
	t.Fatalf("no %s in /proc/%s/status", field, pid)
	return 0
}

// metric scrapes one unlabelled sample from a Prometheus text endpoint.
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	s := bufio.NewScanner(resp.Body)
	for s.Scan() {
		if v, ok := strings.CutPrefix(s.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	t.Fatalf("no metric %s at %s", name, url)
	return 0
}

// runWebhook runs the webhook in this process against restConfig until the test ends
// (cert-manager TLS mode, serving envtest's certificate; env on top of the test
// configuration) and returns once it is ready.
func runWebhook(t *testing.T, restConfig *rest.Config, env map[string]string) (*envtest.WebhookInstallOptions, *config.Config) {
	t.Helper()
	certs := &envtest.WebhookInstallOptions{LocalServingHost: "127.0.0.1"}
	if err := certs.PrepWithoutInstalling(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = certs.Cleanup() })
	healthPort := testenv.FreePort(t)
	overrides := map[string]string{
		"TLS_MODE":     config.TLSCertManager,
		"CERT_DIR":     certs.LocalServingCertDir,
		"WEBHOOK_PORT": strconv.Itoa(certs.LocalServingPort),
		"METRICS_ADDR": "0",
		"HEALTH_ADDR":  fmt.Sprintf("127.0.0.1:%d", healthPort),
	}
	maps.Copy(overrides, env)
	cfg := configtest.New(t, overrides)
	w, err := app.New(cfg, restConfig, app.Options{SkipNameValidation: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("webhook stopped with %v", err)
		}
	})
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
	return certs, cfg
}

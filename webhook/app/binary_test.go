package app_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/certs"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

// TestBinarySelfManagedTLS builds and runs the webhook binary (main.go, as the
// Deployment runs it) in self-managed TLS mode against the real apiserver: it issues its
// own CA and certificate, patches the caBundle of a configuration created without one,
// and only then can the apiserver call it. It also runs the reconciler as the elected
// leader, and its memory is measured from outside.
func TestBinarySelfManagedTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)
	bin := testenv.Build(t, "webhook")

	own := testenv.RandomName("smartbackup-system-")
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: own}}); err != nil {
		t.Fatal(err)
	}
	port, metricsPort, healthPort := testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)
	mwcName := testenv.RandomName("smartbackup-self-")
	registerWebhook(t, c, mwcName, own, fmt.Sprintf("https://127.0.0.1:%d%s", port, admission.Path), nil)

	env := os.Environ()
	for k, v := range configtest.Env() {
		env = append(env, config.Prefix+"_"+k+"="+v)
	}
	env = append(env,
		"KUBECONFIG="+kube.KubeConfigPath,
		"SMARTBACKUP_TLS_MODE="+config.TLSSelf,
		"SMARTBACKUP_NAMESPACE="+own,
		"SMARTBACKUP_WEBHOOK_CONFIG_NAME="+mwcName,
		"SMARTBACKUP_TLS_EXTRA_SANS=127.0.0.1",
		"SMARTBACKUP_CERT_DIR="+t.TempDir(),
		"SMARTBACKUP_WEBHOOK_PORT="+strconv.Itoa(port),
		fmt.Sprintf("SMARTBACKUP_METRICS_ADDR=127.0.0.1:%d", metricsPort),
		fmt.Sprintf("SMARTBACKUP_HEALTH_ADDR=127.0.0.1:%d", healthPort),
		"SMARTBACKUP_LEADER_ELECTION=true",
	)
	logPath := filepath.Join(t.TempDir(), "webhook.log")
	proc := start(t, bin, env, logPath)

	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/readyz", healthPort))
	waitHTTP(t, fmt.Sprintf("http://127.0.0.1:%d/healthz", healthPort))
	eventually(t, 30*time.Second, func() error {
		var mwc admissionregistrationv1.MutatingWebhookConfiguration
		if err := c.Get(t.Context(), client.ObjectKey{Name: mwcName}, &mwc); err != nil {
			return err
		}
		var sec corev1.Secret
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: own, Name: "smartbackup-webhook-tls"}, &sec); err != nil {
			return err
		}
		if got := mwc.Webhooks[0].ClientConfig.CABundle; len(got) == 0 || !bytes.Equal(got, sec.Data[certs.KeyCABundle]) {
			return fmt.Errorf("caBundle not patched yet")
		}
		return nil
	})

	ns := testenv.RandomName("self-")
	createNamespace(t, c, ns, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "acme", ""))
	waitInjecting(t, c, ns, contract.ProductSistemico)

	eventually(t, 30*time.Second, func() error {
		var cj batchv1.CronJob
		return c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: contract.BackupCronJobName}, &cj)
	})

	_ = latencies(t, c, ns, contract.ProductSistemico, 20)
	lat := latencies(t, c, ns, contract.ProductSistemico, 200)
	pid := strconv.Itoa(proc.Process.Pid)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	hook := `{webhook="` + admission.Path + `"}`
	handler := time.Duration(metric(t, metrics, "controller_runtime_webhook_latency_seconds_sum"+hook) /
		metric(t, metrics, "controller_runtime_webhook_latency_seconds_count"+hook) * float64(time.Second))
	t.Logf("METRIC admission mode=binary creates=200 p50=%s p99=%s webhook_handler_mean=%s webhook_rss=%s webhook_rss_peak=%s webhook_heap_inuse=%s webhook_goroutines=%.0f",
		ms(quantile(lat, .5)), ms(quantile(lat, .99)), ms(handler),
		mib(procStatus(t, pid, "VmRSS")), mib(procStatus(t, pid, "VmHWM")),
		mib(metric(t, metrics, "go_memstats_heap_inuse_bytes")), metric(t, metrics, "go_goroutines"))
	if n := metric(t, metrics, `smartbackup_webhook_admissions_total{action="inject",namespace="`+ns+`",reason="injected"}`); n < 200 {
		t.Errorf("the webhook counted %.0f injections, want at least 200", n)
	}

	// Every line the binary wrote is one JSON object.
	b, err := os.ReadFile(logPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	for i, l := range lines {
		if !json.Valid(l) {
			t.Fatalf("log line %d is not JSON: %s", i+1, l)
		}
	}
	if !bytes.Contains(b, []byte(`"msg":"pod injected"`)) {
		t.Errorf("no injection in the log (%d lines)", len(lines))
	}
}

// start runs the binary with its output in logPath, printed if the test fails; it is
// stopped with SIGTERM (and must exit 0) when the test ends.
func start(t *testing.T, bin string, env []string, logPath string) *exec.Cmd {
	t.Helper()
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = env, logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("webhook exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			t.Error("webhook did not stop within 30s of SIGTERM")
		}
		_ = logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("webhook log:\n%s", b)
		}
	})
	return cmd
}

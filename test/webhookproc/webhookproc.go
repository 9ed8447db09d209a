// Package webhookproc runs the webhook binary as its own process against a test
// control plane, as the Deployment runs it (self-managed TLS), and registers the
// chart's MutatingWebhookConfiguration pointed at it by URL (a test has no Service
// network). The end-to-end test and the admission benchmark share it.
package webhookproc

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
)

// Webhook is a running webhook process.
type Webhook struct {
	Cmd        *exec.Cmd
	ConfigName string
	Port       int
	LogPath    string
}

// Start builds (once) and starts the webhook with env (SMARTBACKUP_* beyond the TLS and
// address settings this sets), in the namespace "smartbackup", and waits until the
// apiserver trusts it.
func Start(t *testing.T, kube *testenv.Kube, env map[string]string) *Webhook {
	t.Helper()
	bin := testenv.Build(t, "webhook")
	cs := kubernetes.NewForConfigOrDie(kube.Config)
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "smartbackup"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	port, health := testenv.FreePort(t), testenv.FreePort(t)
	mwc := chartConfiguration(t, fmt.Sprintf("https://127.0.0.1:%d%s", port, admission.Path))
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the webhook: %v", err)
	}
	vars := append(os.Environ(),
		"KUBECONFIG="+kube.KubeConfigPath,
		"SMARTBACKUP_NAMESPACE=smartbackup",
		"SMARTBACKUP_TLS_MODE=self",
		"SMARTBACKUP_TLS_EXTRA_SANS=127.0.0.1",
		"SMARTBACKUP_WEBHOOK_CONFIG_NAME="+mwc.Name,
		"SMARTBACKUP_CERT_DIR="+t.TempDir(),
		"SMARTBACKUP_WEBHOOK_PORT="+strconv.Itoa(port),
		fmt.Sprintf("SMARTBACKUP_HEALTH_ADDR=127.0.0.1:%d", health),
	)
	for k, v := range env {
		vars = append(vars, k+"="+v)
	}
	logPath := filepath.Join(t.TempDir(), "webhook.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin)
	cmd.Env, cmd.Stdout, cmd.Stderr = vars, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_, _ = cmd.Process.Wait()
		_ = logf.Close()
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		cur, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, mwc.Name, metav1.GetOptions{})
		if err != nil || len(cur.Webhooks[0].ClientConfig.CABundle) == 0 {
			return false, nil
		}
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", health))
		if err != nil {
			return false, nil
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
	if err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("the webhook did not become ready: %v\n%s", err, b)
	}
	return &Webhook{Cmd: cmd, ConfigName: mwc.Name, Port: port, LogPath: logPath}
}

// chartConfiguration renders the chart's MutatingWebhookConfiguration (self-managed
// TLS) with its clientConfig pointed at url.
func chartConfiguration(t *testing.T, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "helm"), "template", "smartbackup", filepath.Join(testenv.RepoRoot(), "manifests/chart/smartbackup"),
		"--namespace", "smartbackup", "--set", "tls.mode=self", "--show-only", "templates/mutatingwebhook.yaml").Output()
	if err != nil {
		t.Fatalf("rendering the webhook configuration: %v", err)
	}
	var obj map[string]any
	if err := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(out), 4096).Decode(&obj); err != nil {
		t.Fatal(err)
	}
	hooks, _, _ := unstructured.NestedSlice(obj, "webhooks")
	hooks[0].(map[string]any)["clientConfig"] = map[string]any{"url": url}
	_ = unstructured.SetNestedSlice(obj, hooks, "webhooks")
	mwc := &admissionregistrationv1.MutatingWebhookConfiguration{}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, mwc); err != nil {
		t.Fatal(err)
	}
	return mwc
}

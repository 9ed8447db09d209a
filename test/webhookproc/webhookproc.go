// Package webhookproc runs the webhook binary as its own process against a test
// control plane, as the Deployment runs it (self-managed TLS), and registers the
// chart's MutatingWebhookConfiguration pointed at it by URL (a test has no Service
// network). Service stands in for the Service in front of several replicas, as
// kube-proxy does: new connections go only to replicas that report ready. The
// end-to-end test, the admission benchmark and the rollout test share it.
package webhookproc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
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

// Namespace is the webhook's own namespace in these tests (the chart's).
const Namespace = "smartbackup"

// Webhook is a running webhook process.
type Webhook struct {
	Cmd        *exec.Cmd
	ConfigName string
	Port       int
	HealthPort int
	LogPath    string

	done    chan struct{}
	waitErr error
}

// Start builds (once) and starts the webhook with env (SMARTBACKUP_* beyond the TLS and
// address settings this sets), in the namespace "smartbackup", registers the chart's
// configuration pointed straight at it, and waits until the apiserver trusts it.
func Start(t *testing.T, kube *testenv.Kube, env map[string]string) *Webhook {
	t.Helper()
	port := testenv.FreePort(t)
	name := Register(t, kube, fmt.Sprintf("https://127.0.0.1:%d%s", port, admission.Path))
	return Launch(t, kube, env, name, port)
}

// Register creates the chart's MutatingWebhookConfiguration (self-managed TLS) with its
// clientConfig pointed at url and returns its name; it is deleted when the test ends.
func Register(t *testing.T, kube *testenv.Kube, url string) string {
	t.Helper()
	cs := kubernetes.NewForConfigOrDie(kube.Config)
	mwc := chartConfiguration(t, url)
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(t.Context(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the webhook: %v", err)
	}
	t.Cleanup(func() {
		_ = cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), mwc.Name, metav1.DeleteOptions{})
	})
	return mwc.Name
}

// Launch starts one more webhook process serving on port, keeping the caBundle of the
// configuration configName, and waits until it is ready and the caBundle is set.
// Several processes share the TLS Secret, as the Deployment's replicas do. It is
// stopped with SIGTERM when the test ends, if it still runs.
func Launch(t *testing.T, kube *testenv.Kube, env map[string]string, configName string, port int) *Webhook {
	t.Helper()
	bin := testenv.Build(t, "webhook")
	cs := kubernetes.NewForConfigOrDie(kube.Config)
	ctx := t.Context()
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: Namespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	health := testenv.FreePort(t)
	vars := append(os.Environ(),
		"KUBECONFIG="+kube.KubeConfigPath,
		"SMARTBACKUP_NAMESPACE="+Namespace,
		"SMARTBACKUP_TLS_MODE=self",
		"SMARTBACKUP_TLS_EXTRA_SANS=127.0.0.1",
		"SMARTBACKUP_WEBHOOK_CONFIG_NAME="+configName,
		"SMARTBACKUP_CERT_DIR="+t.TempDir(),
		"SMARTBACKUP_WEBHOOK_PORT="+strconv.Itoa(port),
		fmt.Sprintf("SMARTBACKUP_HEALTH_ADDR=127.0.0.1:%d", health),
		// Several replicas run side by side in the rollout and renewal tests: the
		// default :8080 metrics listener would make every one after the first exit.
		// Callers that read metrics set their own port in env (it comes later and wins).
		"SMARTBACKUP_METRICS_ADDR=0",
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
	w := &Webhook{Cmd: cmd, ConfigName: configName, Port: port, HealthPort: health, LogPath: logPath, done: make(chan struct{})}
	go func() {
		w.waitErr = cmd.Wait()
		_ = logf.Close()
		close(w.done)
	}()
	t.Cleanup(func() { _ = w.Stop() })
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		cur, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, configName, metav1.GetOptions{})
		if err != nil || len(cur.Webhooks[0].ClientConfig.CABundle) == 0 {
			return false, nil
		}
		return w.Ready(), nil
	})
	if err != nil {
		b, _ := os.ReadFile(logPath)
		t.Fatalf("the webhook did not become ready: %v\n%s", err, b)
	}
	return w
}

// Ready reports whether the process answers its readiness probe.
func (w *Webhook) Ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", w.HealthPort))
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// Stop sends SIGTERM, as the kubelet does, and waits for the process to exit; it
// returns its exit error (nil for exit code 0). Stopping a stopped process returns the
// same result again.
func (w *Webhook) Stop() error {
	select {
	case <-w.done:
		return w.waitErr
	default:
	}
	_ = w.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-w.done:
	case <-time.After(time.Minute):
		_ = w.Cmd.Process.Kill()
		<-w.done
		return errors.New("the webhook did not stop within a minute of SIGTERM")
	}
	return w.waitErr
}

// Log is what the process wrote so far.
func (w *Webhook) Log() string {
	b, _ := os.ReadFile(w.LogPath)
	return string(b)
}

// Service is a TCP load balancer in front of webhook processes, standing in for the
// Service and kube-proxy: each new connection goes to a backend that was ready at the
// last probe (every ProbeInterval, like the endpoints controller following readiness
// probes), round robin; an established connection stays with its backend.
type Service struct {
	ln       net.Listener
	mu       sync.Mutex
	backends []*Webhook
	ready    []*Webhook
	next     int
}

// ProbeInterval is how often Service probes its backends' readiness.
const ProbeInterval = 250 * time.Millisecond

// NewService listens on a free loopback port until the test ends.
func NewService(t *testing.T) *Service {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Service{ln: ln}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() { s.forward(ctx, c) })
		}
	})
	wg.Go(func() {
		t := time.NewTicker(ProbeInterval)
		defer t.Stop()
		for {
			s.probe()
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	return s
}

// URL is the admission URL through the Service.
func (s *Service) URL() string { return fmt.Sprintf("https://%s%s", s.ln.Addr(), admission.Path) }

// Port is the Service's port.
func (s *Service) Port() int { return s.ln.Addr().(*net.TCPAddr).Port }

// Add makes w a backend; it receives connections from its first ready probe on.
func (s *Service) Add(w *Webhook) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.backends = append(s.backends, w)
}

func (s *Service) probe() {
	s.mu.Lock()
	backends := append([]*Webhook(nil), s.backends...)
	s.mu.Unlock()
	var ready []*Webhook
	for _, b := range backends {
		if b.Ready() {
			ready = append(ready, b)
		}
	}
	s.mu.Lock()
	s.ready = ready
	s.mu.Unlock()
}

func (s *Service) pick() *Webhook {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.ready) == 0 {
		return nil
	}
	s.next++
	return s.ready[s.next%len(s.ready)]
}

func (s *Service) forward(ctx context.Context, c net.Conn) {
	defer c.Close()
	b := s.pick()
	if b == nil {
		return // no endpoint: the connection is refused, as kube-proxy rejects it
	}
	up, err := (&net.Dialer{Timeout: time.Second}).DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", b.Port))
	if err != nil {
		return
	}
	defer up.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); _ = up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); _ = c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
	select {
	case <-done:
		<-done
	case <-ctx.Done():
	}
}

// chartConfiguration renders the chart's MutatingWebhookConfiguration (self-managed
// TLS) with its clientConfig pointed at url.
func chartConfiguration(t *testing.T, url string) *admissionregistrationv1.MutatingWebhookConfiguration {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "helm"), "template", "smartbackup", filepath.Join(testenv.RepoRoot(), "manifests/chart/smartbackup"),
		"--namespace", Namespace, "--set", "tls.mode=self", "--show-only", "templates/mutatingwebhook.yaml").Output()
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
	mwc.Name = testenv.RandomName("smartbackup-webhook-")
	return mwc
}

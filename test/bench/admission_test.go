//go:build bench

package bench

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/test/webhookproc"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/certs"
)

// admission measures pod creates through the real apiserver: into a namespace served
// by our webhook (a separate process, self-managed TLS, the chart's configuration)
// against one served by a no-op webhook on the same stack (allowed, no patch).
func (b *bench) admission() {
	t := b.t
	kube := testenv.StartKube(t)
	cfg := *kube.Config
	cfg.QPS, cfg.Burst = 100000, 100000 // measure the server, not client-go's limiter
	cs := kubernetes.NewForConfigOrDie(&cfg)
	metricsPort := testenv.FreePort(t)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	webhookproc.Start(t, kube, map[string]string{
		"SMARTBACKUP_INITRESTORE_IMAGE":     "smartbackup/initrestore:bench",
		"SMARTBACKUP_CRONBACKUP_IMAGE":      "smartbackup/cronbackup:bench",
		"SMARTBACKUP_STORAGE_URL_SISTEMICO": "gs://bench-bucket",
		"SMARTBACKUP_METRICS_ADDR":          fmt.Sprintf("127.0.0.1:%d", metricsPort),
	})
	startNoop(t, cs)

	ours := "bench-admission-ours"
	other := "bench-admission-noop"
	mkNS(t, cs, ours, map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "bench"})
	mkNS(t, cs, other, map[string]string{"smartbackup.io/bench-noop": "true"})

	hook := `{webhook="` + admission.Path + `"}`
	for _, conc := range []int{1, 10, 50, 200} {
		sum0, n0 := scrape(metrics, "controller_runtime_webhook_latency_seconds_sum"+hook), scrape(metrics, "controller_runtime_webhook_latency_seconds_count"+hook)
		o := creates(t, cs, ours, 200, conc)
		sum1, n1 := scrape(metrics, "controller_runtime_webhook_latency_seconds_sum"+hook), scrape(metrics, "controller_runtime_webhook_latency_seconds_count"+hook)
		n := creates(t, cs, other, 200, conc)
		name := fmt.Sprintf("admission, 200 pod creates at concurrency %d", conc)
		goal := ""
		if conc == 200 {
			goal = "p99 ≤ 10ms, 0 errors"
		}
		b.rep.metric(name+" p50", ms(o.p50), ms(n.p50), "ms", "")
		b.rep.metric(name+" p99", ms(o.p99), ms(n.p99), "ms", goal)
		b.rep.metric(name+" errors", float64(o.errors), float64(n.errors), "", goalIf(conc == 200, "0"))
		if n1 > n0 {
			b.rep.value(name+" time inside our webhook's handler (mean)", (sum1-sum0)/(n1-n0)*1000, "ms", "")
		}
	}
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

type latency struct {
	p50, p99 time.Duration
	errors   int
}

// creates makes n dbaccess pods with `conc` clients at once, then deletes them.
func creates(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, ns string, n, conc int) latency {
	ctx := context.Background()
	var mu sync.Mutex
	var lat []time.Duration
	errs := 0
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pod := &corev1.Pod{
					ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dbaccess-%d", i),
						Labels: map[string]string{contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: contract.ProductSistemico}},
					Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "erp/dbaccess:bench"}}},
				}
				start := time.Now()
				_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					errs++
				} else {
					lat = append(lat, d)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}, metav1.ListOptions{}); err != nil {
		t.Fatalf("deleting pods: %v", err)
	}
	for {
		l, _ := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if l == nil || len(l.Items) == 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(p*float64(len(lat))))]
	}
	return latency{p50: q(0.5), p99: q(0.99), errors: errs}
}

func mkNS(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, name string, labels map[string]string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "127.0.0.1", contract.AnnotationDatabaseName: "bench"}}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// startNoop serves an admission webhook that allows every pod unchanged, registered like
// ours (same rules, selectors, timeout) for namespaces labelled bench-noop.
func startNoop(t interface {
	Fatalf(string, ...any)
	Cleanup(func())
}, cs kubernetes.Interface) string {
	b, _, err := certs.Renew(certs.Bundle{}, certs.Policy{SANs: []string{"127.0.0.1"}, CAValidity: 24 * time.Hour, CertValidity: 12 * time.Hour}, time.Now(), nil)
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	pair, err := tls.X509KeyPair(b.Cert, b.Key)
	if err != nil {
		t.Fatalf("certificates: %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	srv := &http.Server{
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: []string{"http/1.1"}},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var review admissionv1.AdmissionReview
			if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
				http.Error(w, "bad review", http.StatusBadRequest)
				return
			}
			review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
			review.Request = nil
			_ = json.NewEncoder(w).Encode(&review)
		}),
	}
	go func() { _ = srv.ServeTLS(l, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	url := fmt.Sprintf("https://%s%s", l.Addr(), admission.Path)
	mwc := admission.WebhookConfiguration("bench-noop", "smartbackup", "unused", b.CABundle)
	mwc.Webhooks[0].Name = "noop.bench.smartbackup.io"
	mwc.Webhooks[0].ClientConfig = admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: b.CABundle}
	mwc.Webhooks[0].NamespaceSelector = &metav1.LabelSelector{MatchLabels: map[string]string{"smartbackup.io/bench-noop": "true"}}
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(context.Background(), mwc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("registering the no-op webhook: %v", err)
	}
	time.Sleep(2 * time.Second) // the apiserver picks configurations up asynchronously
	return url
}

// scrape reads one sample of a Prometheus text exposition (0 when absent).
func scrape(url, series string) float64 {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

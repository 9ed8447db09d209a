//go:build bench

package bench

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/test/webhookproc"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/certs"
)

// admission measures pod creates through the real apiserver: into a namespace served
// by our webhook (a separate process, self-managed TLS, the chart's configuration)
// against one served by a no-op webhook on the same stack (allowed, no patch). Two
// more namespaces bound what a webhook costs: one whose webhook adds an annotation
// (the least mutation), one whose webhook answers, with no work, a precomputed patch
// that makes the same pod ours does (the cost of the injected content alone).
func (b *bench) admission() {
	t := b.t
	kube := testenv.StartKube(t)
	cfg := *kube.Config
	cfg.QPS, cfg.Burst = 100000, 100000 // measure the server, not client-go's limiter
	cs := kubernetes.NewForConfigOrDie(&cfg)
	metricsPort := testenv.FreePort(t)
	metrics := fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort)
	pprofPort := testenv.FreePort(t)
	wh := webhookproc.Start(t, kube, map[string]string{
		"SMARTBACKUP_INITRESTORE_IMAGE":     "smartbackup/initrestore:bench",
		"SMARTBACKUP_CRONBACKUP_IMAGE":      "smartbackup/cronbackup:bench",
		"SMARTBACKUP_STORAGE_URL_SISTEMICO": "gs://bench-bucket",
		"SMARTBACKUP_METRICS_ADDR":          fmt.Sprintf("127.0.0.1:%d", metricsPort),
		"SMARTBACKUP_PPROF_ADDR":            fmt.Sprintf("127.0.0.1:%d", pprofPort),
	})
	canned := &cannedPatches{}
	startNoop(t, cs, canned)
	annotate := "bench-admission-annotate"
	precomputed := "bench-admission-canned"

	ours := "bench-admission-ours"
	other := "bench-admission-noop"
	mkNS(t, cs, ours, map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "bench"})
	mkNS(t, cs, other, map[string]string{"smartbackup.io/bench-noop": "true"})
	mkNS(t, cs, annotate, map[string]string{"smartbackup.io/bench-noop": "true"})
	mkNS(t, cs, precomputed, map[string]string{"smartbackup.io/bench-noop": "true"})

	procs := map[string]int{"webhook": wh.Cmd.Process.Pid, "kube-apiserver": childPid("kube-apiserver"), "etcd": childPid("etcd")}
	if dir := os.Getenv("SMARTBACKUP_BENCH_PROFILE"); dir != "" {
		profile(t, cs, ours, fmt.Sprintf("http://127.0.0.1:%d", pprofPort), filepath.Join(dir, "webhook.pprof"))
		profile(t, cs, ours, "", filepath.Join(dir, "apiserver-ours.pprof"))
		profile(t, cs, other, "", filepath.Join(dir, "apiserver-noop.pprof"))
	}
	hook := `{webhook="` + admission.Path + `"}`
	// Each level is measured in rounds; every round runs each variant once, in an order
	// that rotates from round to round, and each series starts on an idle stack (settle):
	// a series neither pays for the one before it (its deletes' watch events, its
	// garbage) nor always follows the same one. Latencies are pooled over the rounds. A
	// series has at least as many creates as clients, so that all of them are in flight.
	const rounds = 8
	for _, shape := range []podShape{minimalPod, deploymentPod} {
		patch := oursAsPatch(t, cs, wh, canned, ours, other, shape)
		canned.set(precomputed, patch)
		fmt.Printf("bench: admission, %s: our injection as a precomputed patch: %d bytes\n", shape.name, len(patch))
		for _, conc := range []int{1, 10, 50, 200} {
			perRound := max(100, conc)
			o, n, a, c := &series{ns: ours}, &series{ns: other}, &series{ns: annotate}, &series{ns: precomputed}
			all := []*series{o, n, a, c}
			sum0, n0 := scrape(metrics, "controller_runtime_webhook_latency_seconds_sum"+hook), scrape(metrics, "controller_runtime_webhook_latency_seconds_count"+hook)
			settled := settle(procs)
			for r := range rounds {
				for i := range all {
					v := all[(i+r)%len(all)]
					c0 := cpuOf(procs)
					v.add(creates(t, cs, v.ns, shape, perRound, conc))
					settled += settle(procs)
					v.cpu = addCPU(v.cpu, c0, cpuOf(procs))
				}
			}
			fmt.Printf("bench: admission, %s, concurrency %d: waited %s in all for an idle stack between series\n", shape.name, conc, settled.Round(time.Millisecond))
			sum1, n1 := scrape(metrics, "controller_runtime_webhook_latency_seconds_sum"+hook), scrape(metrics, "controller_runtime_webhook_latency_seconds_count"+hook)
			name := fmt.Sprintf("admission, %s, %d creates at concurrency %d", shape.name, perRound*rounds, conc)
			b.rep.metric(name+" p50", ms(o.quantile(0.5)), ms(n.quantile(0.5)), "ms", "")
			b.rep.metric(name+" p99", ms(o.quantile(0.99)), ms(n.quantile(0.99)), "ms", "≤ 1.20")
			b.rep.metric(name+" p99 of a round, median over the rounds", ms(o.burstP99()), ms(n.burstP99()), "ms", "")
			b.rep.metric(name+" p99, a webhook adding one annotation vs the no-op", ms(a.quantile(0.99)), ms(n.quantile(0.99)), "ms", "")
			b.rep.metric(name+" p99, a webhook answering our patch precomputed vs the no-op", ms(c.quantile(0.99)), ms(n.quantile(0.99)), "ms", "")
			b.rep.metric(name+" p99, ours vs a webhook answering our patch precomputed", ms(o.quantile(0.99)), ms(c.quantile(0.99)), "ms", "")
			b.rep.metric(name+" errors", float64(o.errors), float64(n.errors), "", goalIf(conc == 200, "0"))
			// cpu is the CPU of the named processes per create and delete of v's series.
			cpu := func(v *series, procs ...string) float64 {
				var sum int64
				for _, p := range procs {
					sum += v.cpu[p]
				}
				return float64(sum) / 1e6 / float64(perRound*rounds)
			}
			stack := []string{"webhook", "kube-apiserver", "etcd"}
			b.rep.metric(name+" CPU per create and delete (webhook+apiserver+etcd)", cpu(o, stack...), cpu(n, stack...), "ms", "")
			b.rep.metric(name+" CPU per create and delete, a webhook adding one annotation vs the no-op", cpu(a, stack...), cpu(n, stack...), "ms", "")
			b.rep.metric(name+" CPU per create and delete, a webhook answering our patch precomputed vs the no-op", cpu(c, stack...), cpu(n, stack...), "ms", "")
			for _, p := range stack {
				fmt.Printf("bench: %s: %s CPU per create and delete: ours=%.2fms noop=%.2fms precomputed=%.2fms\n", name, p, cpu(o, p), cpu(n, p), cpu(c, p))
			}
			if n1 > n0 {
				b.rep.value(name+" time inside our webhook's handler (mean)", (sum1-sum0)/(n1-n0)*1000, "ms", "")
			}
		}
	}
}

// series is one variant's creates at one level: its namespace, latencies and the CPU
// each process spent on them.
type series struct {
	latency
	ns  string
	cpu map[string]int64
}

// settle waits until the processes are idle together (at most one 10 ms clock tick of
// CPU in 200 ms, i.e. 5 % of a core), or 3 s have passed, and says how long it waited.
func settle(procs map[string]int) time.Duration {
	start := time.Now()
	for time.Since(start) < 3*time.Second {
		c0 := cpuOf(procs)
		time.Sleep(200 * time.Millisecond)
		c1 := cpuOf(procs)
		var used int64
		for k := range c1 {
			used += c1[k] - c0[k]
		}
		if used <= int64(10*time.Millisecond) {
			break
		}
	}
	return time.Since(start)
}

// addCPU adds the CPU each process used between two readings to acc.
func addCPU(acc, before, after map[string]int64) map[string]int64 {
	if acc == nil {
		acc = map[string]int64{}
	}
	for k, v := range after {
		acc[k] += v - before[k]
	}
	return acc
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// latency is the outcome of a series of creates.
type latency struct {
	lat    []time.Duration
	errors int
	bursts []time.Duration // each added round's p99
}

func (l *latency) add(o latency) {
	l.lat = append(l.lat, o.lat...)
	l.errors += o.errors
	l.bursts = append(l.bursts, o.quantile(0.99))
}

// burstP99 is the median over the series' rounds of each round's p99. The creates of a
// round at high concurrency are in flight together and wait on the same stalls, so a
// pooled p99 is that of the worst round; this is the typical round's.
func (l *latency) burstP99() time.Duration {
	if len(l.bursts) == 0 {
		return 0
	}
	s := slices.Clone(l.bursts)
	slices.Sort(s)
	return s[len(s)/2]
}

func (l *latency) quantile(p float64) time.Duration {
	if len(l.lat) == 0 {
		return 0
	}
	s := slices.Clone(l.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

// podShape is the pod a benchmark creates.
type podShape struct {
	name string
	pod  func(i int) *corev1.Pod
}

// minimalPod is a dbaccess pod with one container and nothing else: the injection is
// nearly all of what the apiserver stores.
var minimalPod = podShape{"minimal pod", func(i int) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dbaccess-%d", i),
			Labels: map[string]string{contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: contract.ProductSistemico}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "erp/dbaccess:bench"}}},
	}
}}

// deploymentPod is a dbaccess pod as its Deployment's ReplicaSet creates it: owner,
// template hash, the gateway's settings, ports, probes, resources, its configuration
// volume and a log-shipping sidecar (about 2.5 KB of JSON, as the customers' are).
var deploymentPod = podShape{"Deployment's pod", func(i int) *corev1.Pod {
	yes, uid := true, int64(1000)
	probe := func(delay int32) *corev1.Probe {
		return &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(7890)}},
			InitialDelaySeconds: delay, PeriodSeconds: 10, TimeoutSeconds: 3, FailureThreshold: 3}
	}
	res := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m"), corev1.ResourceMemory: resource.MustParse("512Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("dbaccess-7d9f5c6b8-%05d", i),
			Labels: map[string]string{contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: contract.ProductSistemico,
				"app.kubernetes.io/instance": "cliente", "app.kubernetes.io/version": "23.3.1.5", "pod-template-hash": "7d9f5c6b8"},
			Annotations: map[string]string{"kubectl.kubernetes.io/restartedAt": "2026-11-30T21:05:11Z", "prometheus.io/scrape": "true", "prometheus.io/port": "9100"},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "dbaccess-7d9f5c6b8",
				UID: "4b7c2a8e-1f0d-4c55-9a61-3f2d8e7b9c10", Controller: &yes, BlockOwnerDeletion: &yes}}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{
				Name: "dbaccess", Image: "erp/dbaccess:23.3.1.5",
				Ports: []corev1.ContainerPort{{Name: "dbaccess", ContainerPort: 7890}, {Name: "monitor", ContainerPort: 7891}},
				Env: []corev1.EnvVar{{Name: "DBACCESS_LICENSE_SERVER", Value: "license.erp.svc.cluster.local"}, {Name: "DBACCESS_LICENSE_PORT", Value: "5555"},
					{Name: "DBACCESS_INI", Value: "/opt/dbaccess/dbaccess.ini"}, {Name: "TZ", Value: "America/Sao_Paulo"},
					{Name: "DBACCESS_THREADS", Value: "64"}, {Name: "DBACCESS_LOG_LEVEL", Value: "info"}},
				Resources: res, LivenessProbe: probe(30), ReadinessProbe: probe(5),
				VolumeMounts:    []corev1.VolumeMount{{Name: "config", MountPath: "/opt/dbaccess/dbaccess.ini", SubPath: "dbaccess.ini"}, {Name: "logs", MountPath: "/opt/dbaccess/log"}},
				SecurityContext: &corev1.SecurityContext{RunAsUser: &uid, RunAsNonRoot: &yes, AllowPrivilegeEscalation: new(bool)},
			}, {
				Name: "log-shipper", Image: "erp/log-shipper:2.1", Args: []string{"--path=/opt/dbaccess/log/*.log", "--format=json"},
				Resources:    corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("20m"), corev1.ResourceMemory: resource.MustParse("32Mi")}},
				VolumeMounts: []corev1.VolumeMount{{Name: "logs", MountPath: "/opt/dbaccess/log", ReadOnly: true}},
			}},
			Volumes: []corev1.Volume{
				{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "dbaccess-config"}}}},
				{Name: "logs", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			},
			TerminationGracePeriodSeconds: new(int64(60)),
			NodeSelector:                  map[string]string{"erp.example.com/pool": "dbaccess"},
		},
	}
}}

// profile writes a CPU profile (6 s) to path while pods are created in ns: from the
// webhook's pprof listener at url, or from the apiserver when url is empty.
func profile(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, ns, url, path string) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		var body []byte
		var err error
		if url == "" {
			body, err = cs.CoreV1().RESTClient().Get().AbsPath("/debug/pprof/profile").Param("seconds", "6").DoRaw(context.Background())
		} else {
			var r *http.Response
			if r, err = http.Get(url + "/debug/pprof/profile?seconds=6"); err == nil {
				body, err = io.ReadAll(r.Body)
				_ = r.Body.Close()
			}
		}
		if err != nil {
			fmt.Printf("bench: profile of %s: %v\n", path, err)
			return
		}
		_ = os.WriteFile(path, body, 0o644)
	}()
	time.Sleep(200 * time.Millisecond)
	creates(t, cs, ns, deploymentPod, 800, 50)
	<-done
}

// childPid is the pid of this process's child running the named executable (0 when
// there is none).
func childPid(name string) int {
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if filepath.Base(exe) == name && ppid(pid) == os.Getpid() {
			return pid
		}
	}
	return 0
}

// statFields are the fields of /proc/PID/stat after the command's name.
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(b[i+1:]))
}

func ppid(pid int) int {
	f := statFields(pid)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// cpuOf is the user+system CPU each process has used so far, in nanoseconds (clock
// ticks of 10 ms).
func cpuOf(procs map[string]int) map[string]int64 {
	out := map[string]int64{}
	for name, pid := range procs {
		f := statFields(pid)
		if len(f) < 13 {
			continue
		}
		u, _ := strconv.ParseInt(f[11], 10, 64)
		s, _ := strconv.ParseInt(f[12], 10, 64)
		out[name] = (u + s) * int64(10*time.Millisecond)
	}
	return out
}

// creates makes n pods of the shape with `conc` clients at once, then deletes them.
func creates(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, ns string, shape podShape, n, conc int) latency {
	ctx := context.Background()
	var mu sync.Mutex
	var out latency
	next := make(chan int)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				pod := shape.pod(i)
				start := time.Now()
				_, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
				d := time.Since(start)
				mu.Lock()
				if err != nil {
					out.errors++
				} else {
					out.lat = append(out.lat, d)
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
	return out
}

func mkNS(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, name string, labels map[string]string) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "127.0.0.1", contract.AnnotationDatabaseName: "bench"}}}
	if _, err := cs.CoreV1().Namespaces().Create(context.Background(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", name, err)
	}
}

// cannedPatches are the patches the no-op webhook answers, by namespace.
type cannedPatches struct {
	mu sync.Mutex
	m  map[string][]byte
	// captureNS is the namespace whose next review body to keep in body.
	captureNS string
	body      []byte
}

func (c *cannedPatches) set(ns string, patch []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string][]byte{}
	}
	c.m[ns] = patch
}

// arm makes the webhook keep the body of the next review it gets for a pod in ns.
func (c *cannedPatches) arm(ns string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.captureNS, c.body = ns, nil
}

// captured is the body kept since arm (nil if none came).
func (c *cannedPatches) captured() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.body
}

func (c *cannedPatches) keep(ns string, body []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.captureNS != "" && c.captureNS == ns {
		c.body, c.captureNS = body, ""
	}
}

func (c *cannedPatches) get(ns string) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[ns]
}

// oursAsPatch is the patch our webhook answers for the shape's pod in ns, byte for
// byte: the no-op webhook records the AdmissionReview the apiserver sends it for a
// dry-run create in noop (the pod defaulted, with its managed fields), which is then
// posted to our webhook as if for ns. What any webhook injecting the same content
// answers, with none of the work of deciding it.
func oursAsPatch(t interface{ Fatalf(string, ...any) }, cs kubernetes.Interface, wh *webhookproc.Webhook, canned *cannedPatches,
	ns, noop string, shape podShape) []byte {
	ctx := context.Background()
	canned.arm(noop)
	if _, err := cs.CoreV1().Pods(noop).Create(ctx, shape.pod(0), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Fatalf("dry run of a create in %s: %v", noop, err)
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(canned.captured(), &review); err != nil || review.Request == nil {
		t.Fatalf("the review the apiserver sent: %v", err)
	}
	var obj map[string]any
	if err := json.Unmarshal(review.Request.Object.Raw, &obj); err != nil {
		t.Fatalf("the pod the apiserver sent: %v", err)
	}
	if meta, ok := obj["metadata"].(map[string]any); ok && meta["namespace"] != nil {
		meta["namespace"] = ns
	}
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatalf("encoding the pod: %v", err)
	}
	review.Request.Namespace, review.Request.Object.Raw = ns, raw
	body, err := json.Marshal(&review)
	if err != nil {
		t.Fatalf("encoding the review: %v", err)
	}
	mwc, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, wh.ConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("our webhook's configuration: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(mwc.Webhooks[0].ClientConfig.CABundle) {
		t.Fatalf("our webhook's caBundle holds no certificate")
	}
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := client.Post(fmt.Sprintf("https://127.0.0.1:%d%s", wh.Port, admission.Path), "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatalf("asking our webhook: %v", err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil || !out.Response.Allowed || len(out.Response.Patch) == 0 {
		t.Fatalf("our webhook's answer (HTTP %d): %v %+v", resp.StatusCode, err, out.Response)
	}
	return out.Response.Patch
}

// startNoop serves an admission webhook that allows every pod unchanged (in
// bench-admission-annotate, with one annotation added; in a namespace canned holds
// a patch for, with that patch), registered like ours (same rules, selectors,
// timeout) for namespaces labelled bench-noop. It keeps the body of a review for the
// namespace canned is armed for.
func startNoop(t interface {
	Fatalf(string, ...any)
	Cleanup(func())
}, cs kubernetes.Interface, canned *cannedPatches) string {
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
			body, err := io.ReadAll(r.Body)
			var review admissionv1.AdmissionReview
			if err == nil {
				err = json.Unmarshal(body, &review)
			}
			if err != nil || review.Request == nil {
				http.Error(w, "bad review", http.StatusBadRequest)
				return
			}
			canned.keep(review.Request.Namespace, body)
			review.Response = &admissionv1.AdmissionResponse{UID: review.Request.UID, Allowed: true}
			if review.Request.Namespace == "bench-admission-annotate" {
				// The least a mutating webhook can do: one annotation. The apiserver then
				// applies a patch and runs its admission plugins a second time.
				var pod corev1.Pod
				_ = json.Unmarshal(review.Request.Object.Raw, &pod)
				patch := `[{"op":"add","path":"/metadata/annotations","value":{"bench.smartbackup.io/seen":"true"}}]`
				if pod.Annotations != nil {
					patch = `[{"op":"add","path":"/metadata/annotations/bench.smartbackup.io~1seen","value":"true"}]`
				}
				pt := admissionv1.PatchTypeJSONPatch
				review.Response.Patch, review.Response.PatchType = []byte(patch), &pt
			}
			if patch := canned.get(review.Request.Namespace); patch != nil {
				pt := admissionv1.PatchTypeJSONPatch
				review.Response.Patch, review.Response.PatchType = patch, &pt
			}
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

// Package e2e runs the user's whole story on a real single-node cluster
// (testenv.StartCluster): etcd, kube-apiserver, kube-controller-manager and
// kube-scheduler, a kubelet with containerd, runc, a CNI bridge and kube-proxy. The chart
// is installed with helm, so the webhook runs in a pod from its image; dbaccess, the
// init container and the backup Jobs run from theirs. PostgreSQL 12 and the GCS emulator
// run on this machine and are reached over the pod network.
//
// `make demo` runs the same story with its narration on the terminal.
package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/outcomes"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// story narrates: in a test, as log lines; with SMARTBACKUP_DEMO=1 (make demo), also on
// the terminal.
type story struct {
	t     *testing.T
	demo  bool
	start time.Time
	n     int
}

func (s *story) step(format string, args ...any) {
	s.n++
	line := fmt.Sprintf("%2d. "+format, append([]any{s.n}, args...)...)
	s.t.Log(line)
	if s.demo {
		fmt.Printf("DEMO \nDEMO %s  [%s]\n", line, time.Since(s.start).Round(time.Second))
	}
}

func (s *story) evidence(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	s.t.Log("    " + line)
	if s.demo {
		fmt.Printf("DEMO       %s\n", line)
	}
}

// world is the running system.
type world struct {
	t       *testing.T
	s       *story
	cs      kubernetes.Interface
	cluster *testenv.Cluster
	pg      *testenv.Postgres
	// pgHost and pgPort are where pods reach PostgreSQL (over the pod network).
	pgHost string
	pgPort int
	prod   *fixture.Source
	bucket string
	store  storage.Store
	// pluginBin is kubectl-smartbackup, built here.
	pluginBin string
	// product labels the namespaces (Sistêmico unless set); chartValues is a values
	// file for helm install, beside the settings installChart always makes.
	product     string
	chartValues string
}

const (
	prodNS  = "cliente-prod"
	hmlNS   = "cliente-hml"
	otherNS = "outro-cliente-hml"
	hmlDB   = "cliente_erp_hml"
	hmlUser = "cliente_erp_hml"
	hmlPass = "senha-hml-ção"
	// chartNS is where the chart is installed (the operations page's namespace).
	chartNS = "smartbackup"
)

// TestUserStory: install the chart, label a namespace, deploy dbaccess normally, delete
// the pod to trigger a restore.
func TestUserStory(t *testing.T) {
	s := &story{t: t, demo: os.Getenv("SMARTBACKUP_DEMO") == "1", start: time.Now()}
	w := setUp(t, s)

	s.step("The chart is installed with helm (self-managed TLS, images %s…, pull policy Never)", testenv.ImageWebhook)
	w.installChart()

	s.step("Production namespace %s is labelled for smartbackup (Sistêmico, production; Pod Security restricted)", prodNS)
	w.namespace(prodNS, "production", "cliente", "", "cliente_erp", w.prod.User, w.prod.Password)
	cj := w.waitCronJob(prodNS)
	s.evidence("CronJob %s/%s appeared: schedule %q, time zone %s, concurrency %s", prodNS, cj.Name, cj.Spec.Schedule, deref(cj.Spec.TimeZone), cj.Spec.ConcurrencyPolicy)

	s.step("Homologation namespace %s is labelled with %s as its restore source", hmlNS, prodNS)
	w.namespace(hmlNS, "homologation", "cliente", prodNS, hmlDB, hmlUser, hmlPass)
	if exists := w.databaseExists(hmlDB); exists {
		t.Fatalf("%s exists before any restore", hmlDB)
	}
	s.evidence("database %s does not exist yet", hmlDB)

	s.step("dbaccess is deployed unmodified (manifests/examples/dbaccess.yaml) before production has any backup")
	w.applyExampleDeployment(hmlNS)
	failing := w.waitInitRestarted(hmlNS)
	init := failing.Spec.InitContainers[0]
	s.evidence("pod %s came back injected: init container %s (image %s), annotation %s=%s",
		failing.Name, init.Name, init.Image, contract.AnnotationInjected, failing.Annotations[contract.AnnotationInjected])
	if init.Name != contract.InitContainerName {
		t.Fatalf("first init container is %q", init.Name)
	}
	for _, e := range init.Env {
		if contains(contract.Secrets, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Fatalf("secret %s is not a secretKeyRef", e.Name)
		}
	}
	st := initStatus(failing)
	s.evidence("the init container exited %d (no backup yet); the kubelet restarted it %d time(s)",
		st.LastTerminationState.Terminated.ExitCode, st.RestartCount)
	if code := st.LastTerminationState.Terminated.ExitCode; code != 8 {
		t.Fatalf("the init container exited %d, want 8 (no backup); log:\n%s", code,
			w.cluster.Logs(t.Context(), hmlNS, failing.Name, contract.InitContainerName, true))
	}

	s.step("The 21:00 backup runs: kubectl create job --from=cronjob/%s, and the Job controller runs it", cj.Name)
	job := w.runBackup(prodNS, cj)
	m := w.latestManifest(prodNS)
	s.evidence("Job %s succeeded in a pod of image %s; %s written: %d bytes, sha256 %s…, %d archive entries",
		job, testenv.ImageCronBackup, layout.LatestKey(prodNS), m.Size, m.SHA256[:16], m.ArchiveEntries)

	s.step("The kubelet restarts the failed init container: it restores production's data into homologation")
	pod := w.waitPodRunning(hmlNS, "")
	if pod.UID != failing.UID {
		t.Fatalf("pod %s replaced %s; the kubelet should have restarted the init container in place", pod.Name, failing.Name)
	}
	log := w.initLog(pod)
	requireLog(t, log, `"outcome":"restored"`)
	sum := w.summary(hmlDB)
	if !equalSummary(sum, w.prod.Summary) {
		t.Fatalf("homologation has %s, production %s", sum, w.prod.Summary)
	}
	rec := w.record(hmlDB)
	s.evidence("pod %s, restart %d of its init container: %s", pod.Name, initStatus(pod).RestartCount, sum)
	s.evidence("restore record: %s", rec)

	s.step("The outcomes are in Kubernetes: the termination message, Events on the pod, the webhook's metrics")
	msg := initStatus(pod).State.Terminated.Message
	got, err := contract.ParseSummary(msg)
	if err != nil || got.Outcome != "restored" || got.Object != m.Object || got.SHA256 != m.SHA256 {
		t.Fatalf("termination message %q (%v), want the restore of %s", msg, err, m.Object)
	}
	s.evidence("termination message (kubectl describe pod): %s", strings.TrimSpace(msg))
	for _, reason := range []string{outcomes.EventRestoreFailed, outcomes.EventRestored} {
		ev := w.waitEvent(hmlNS, reason)
		s.evidence("Event %s on %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note)
	}
	ev := w.waitEvent(prodNS, outcomes.EventBackedUp)
	s.evidence("Event %s on %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note)
	for _, series := range []string{
		`smartbackup_restores_total{namespace="` + hmlNS + `",outcome="failed"}`,
		`smartbackup_restores_total{namespace="` + hmlNS + `",outcome="restored"}`,
		`smartbackup_backups_total{namespace="` + prodNS + `",outcome="succeeded"}`,
	} {
		s.evidence("%s %s", series, w.metric(series))
	}
	sizeSeries := `smartbackup_backup_size_bytes{namespace="` + prodNS + `"}`
	if v, err := strconv.ParseFloat(w.metric(sizeSeries), 64); err != nil || int64(v) != m.Size {
		t.Fatalf("%s = %v (%v), want the object's %d bytes", sizeSeries, v, err, m.Size)
	}
	s.evidence("%s %d (the object's size)", sizeSeries, m.Size)

	s.step("dbaccess booted on the restored database")
	boot := w.waitLog(pod, "dbaccess", "dbaccess ready")
	s.evidence("%s", boot)

	s.step("The pod is deleted: the new pod finds the database and takes the fast path")
	w.deletePods(hmlNS)
	pod2 := w.waitPodRunning(hmlNS, pod.Name)
	requireLog(t, w.initLog(pod2), `"outcome":"exists"`)
	s.evidence("pod %s: %s", pod2.Name, grepLog(w.initLog(pod2), "initrestore complete"))

	s.step("The database is dropped and the pod deleted (the page's forced restore): it is restored again")
	w.dropDatabase(hmlDB)
	w.deletePods(hmlNS)
	pod3 := w.waitPodRunning(hmlNS, pod2.Name)
	requireLog(t, w.initLog(pod3), `"outcome":"restored"`)
	if sum := w.summary(hmlDB); !equalSummary(sum, w.prod.Summary) {
		t.Fatalf("after the second restore: %s", sum)
	}
	s.evidence("pod %s restored %s again from %s", pod3.Name, hmlDB, prodNS)

	s.step("Homologation's own backup runs now (kubectl smartbackup backup --wait); then someone changes homologation's data")
	w.waitCronJob(hmlNS)
	out := w.plugin("backup", hmlNS, "--wait")
	if !strings.Contains(out, "backup "+contract.BackupCronJobName+"-manual-") || !strings.Contains(out, ": succeeded") {
		t.Fatalf("kubectl smartbackup backup --wait:\n%s", out)
	}
	w.pg.Exec(t, hmlDB, "UPDATE clientes SET nome = 'Alterado depois do backup' WHERE id = 1")
	s.evidence("%s", strings.ReplaceAll(strings.TrimSpace(out), "\n", " | "))
	s.evidence("cliente 1 renamed in %s", hmlDB)

	s.step("A forced restore from homologation's own latest, requested with kubectl smartbackup restore --own --apply")
	out = w.plugin("restore", hmlNS, "--own", "--apply", "--id", "chamado-4711")
	s.evidence("%s", grepLog(out, "kubectl annotate"))
	s.evidence("%s", grepLog(out, "# applied"))
	pod4 := w.waitPodRunning(hmlNS, pod3.Name)
	requireLog(t, w.initLog(pod4), `"outcome":"restored"`)
	nome := w.queryString(hmlDB, "SELECT nome FROM clientes WHERE id = 1")
	if nome == "Alterado depois do backup" {
		t.Fatal("the forced restore did not bring back homologation's own backup")
	}
	rec = w.record(hmlDB)
	if !strings.Contains(rec, `"requestId":"chamado-4711"`) || !strings.Contains(rec, `"sourceNamespace":"cliente-hml"`) {
		t.Fatalf("record after the forced restore: %s", rec)
	}
	s.evidence("cliente 1 is %q again; record: %s", nome, rec)

	s.step("The request is applied once: the next pod takes the fast path")
	w.deletePods(hmlNS)
	pod5 := w.waitPodRunning(hmlNS, pod4.Name)
	requireLog(t, w.initLog(pod5), `"outcome":"exists"`)
	s.evidence("pod %s: %s", pod5.Name, grepLog(w.initLog(pod5), "initrestore complete"))

	s.step("A namespace of another customer pointing at %s is denied", prodNS)
	w.namespace(otherNS, "homologation", "outro", prodNS, "outro_hml", "outro_hml", "x")
	w.applyExampleDeployment(otherNS)
	ev = w.waitEvent(otherNS, admission.EventRestoreSourceDenied)
	s.evidence("Event %s on %s/%s: %s", ev.Reason, ev.Regarding.Kind, ev.Regarding.Name, ev.Note)
	if pods, _ := w.cs.CoreV1().Pods(otherNS).List(t.Context(), metav1.ListOptions{}); len(pods.Items) != 0 {
		t.Fatalf("%d pods exist in %s", len(pods.Items), otherNS)
	}
	if w.databaseExists("outro_hml") {
		t.Fatal("the other customer's database was created")
	}
	s.evidence("no pod and no database in %s", otherNS)

	s.step("The weekly verification of production's latest backup, now: kubectl smartbackup verify --wait")
	prodLatest := w.latestManifest(prodNS)
	out = w.plugin("verify", prodNS, "--wait")
	if !strings.Contains(out, "verification of "+prodLatest.Object+": passed") {
		t.Fatalf("kubectl smartbackup verify --wait:\n%s", out)
	}
	s.evidence("%s", strings.ReplaceAll(strings.TrimSpace(out), "\n", " | "))

	s.step("The operators' view: kubectl smartbackup status -A and history %s", hmlNS)
	status := w.plugin("status", "-A")
	if line := grepLog(status, prodNS+" "); !strings.Contains(line, "passed ") {
		t.Fatalf("status -A does not show %s's passed verification:\n%s", prodNS, status)
	}
	for _, ns := range []string{prodNS, hmlNS} {
		m := w.latestManifest(ns)
		line := grepLog(status, ns+" ")
		if !strings.Contains(line, m.SHA256[:16]) || !strings.Contains(line, m.StartedAt.UTC().Format("2006-01-02 15:04")) {
			t.Fatalf("status -A does not show %s's latest backup %s:\n%s", ns, m.Object, status)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(status), "\n") {
		s.evidence("%s", line)
	}
	hist := w.plugin("history", hmlNS)
	if !strings.Contains(hist, contract.EventRestored) || !strings.Contains(hist, "yes") {
		t.Fatalf("history %s lacks a restorable backup or a restore Event:\n%s", hmlNS, hist)
	}
	for _, line := range strings.Split(strings.TrimSpace(hist), "\n") {
		s.evidence("%s", line)
	}
	s.step("Done in %s", time.Since(s.start).Round(time.Second))
}

func setUp(t *testing.T, s *story) *world {
	s.step("Starting a real single-node cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, containerd, kube-proxy, CNI bridge); PostgreSQL 12 and the GCS emulator on this machine")
	w := &world{t: t, s: s}
	w.pluginBin = testenv.Build(t, "kubectl-smartbackup")
	w.cluster = testenv.StartCluster(t)
	w.cs = w.cluster.Client
	node, err := w.cs.CoreV1().Nodes().Get(t.Context(), w.cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	info := node.Status.NodeInfo
	s.evidence("node %s Ready: kubelet %s, runtime %s, kernel %s, pod network %s (this machine is %s there)",
		node.Name, info.KubeletVersion, info.ContainerRuntimeVersion, info.KernelVersion, testenv.PodCIDR, w.cluster.Gateway)
	s.evidence("images built here by hack/images.sh from the Dockerfiles and imported into containerd: %s, %s, %s, %s",
		testenv.ImageWebhook, testenv.ImageInitRestore, testenv.ImageCronBackup, testenv.ImageDBAccess)
	w.pg = testenv.StartPostgres(t, 12)
	w.pgHost, w.pgPort = w.cluster.Forward(t, fmt.Sprintf("127.0.0.1:%d", w.pg.Port))
	gcs := w.cluster.StartGCS(t)
	w.bucket = gcs.NewBucket(t)
	st, err := storage.Open(t.Context(), w.bucket)
	if err != nil {
		t.Fatal(err)
	}
	w.store = st
	s.evidence("PostgreSQL 12 at %s:%d and the GCS emulator at %s, as pods see them", w.pgHost, w.pgPort, gcs.Endpoint)
	w.prod = fixture.NewSource(t, 12, "cliente_erp", fixture.Small)
	s.evidence("production database cliente_erp: %s", w.prod.Summary)
	return w
}

// installChart installs the chart as the README says, with the images built here, and
// waits until the webhook serves and the apiserver trusts it.
func (w *world) installChart() {
	t := w.t
	image := func(ref string) (string, string) {
		i := strings.LastIndex(ref, ":")
		return ref[:i], ref[i+1:]
	}
	args := []string{"install", "smartbackup", filepath.Join(testenv.RepoRoot(), "manifests/chart/smartbackup"),
		"--kubeconfig", w.cluster.KubeConfigPath, "--namespace", chartNS, "--create-namespace", "--wait", "--timeout", "3m",
		"--set", "tls.mode=self", "--set", "images.pullPolicy=Never",
		"--set", "monitoring.serviceMonitor=false", "--set", "monitoring.prometheusRule=false"}
	if w.bucket != "" {
		args = append(args, "--set", "storage.sistemico="+w.bucket)
	}
	if w.chartValues != "" {
		args = append(args, "-f", w.chartValues)
	}
	for key, ref := range map[string]string{"webhook": testenv.ImageWebhook, "initrestore": testenv.ImageInitRestore, "cronbackup": testenv.ImageCronBackup} {
		repo, tag := image(ref)
		args = append(args, "--set", "images."+key+".repository="+repo, "--set", "images."+key+".tag="+tag)
	}
	cmd := exec.Command(testenv.Tool(t, "helm"), args...)
	if out, err := cmd.CombinedOutput(); err != nil {
		w.dumpPods(chartNS)
		t.Fatalf("helm install: %v\n%s", err, out)
	}
	var hooks *admissionregistrationv1.MutatingWebhookConfiguration
	w.eventually("the webhook's caBundle", func() bool {
		l, err := w.cs.AdmissionregistrationV1().MutatingWebhookConfigurations().List(t.Context(), metav1.ListOptions{})
		if err != nil || len(l.Items) != 1 {
			return false
		}
		hooks = &l.Items[0]
		return len(hooks.Webhooks) > 0 && len(hooks.Webhooks[0].ClientConfig.CABundle) > 0
	})
	pods, err := w.cs.CoreV1().Pods(chartNS).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pods.Items {
		w.s.evidence("pod %s/%s %s on %s at %s, image %s", p.Namespace, p.Name, p.Status.Phase, p.Spec.NodeName, p.Status.PodIP, p.Spec.Containers[0].Image)
	}
	svc := hooks.Webhooks[0].ClientConfig.Service
	w.s.evidence("%s calls Service %s/%s; the webhook made its own CA and patched the caBundle (%d bytes)",
		hooks.Name, svc.Namespace, svc.Name, len(hooks.Webhooks[0].ClientConfig.CABundle))
}

// namespace creates a labelled and annotated namespace and its database Secret.
func (w *world) namespace(name, env, customer, source, db, user, password string) {
	t := w.t
	product := w.product
	if product == "" {
		product = contract.ProductSistemico
	}
	labels := map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: product,
		contract.LabelEnvironment: env, contract.LabelCustomer: customer,
		"pod-security.kubernetes.io/enforce": "restricted"}
	if source != "" {
		labels[contract.LabelRestoreSource] = source
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint:   w.pgHost,
		contract.AnnotationDatabasePort:       strconv.Itoa(w.pgPort),
		contract.AnnotationDatabaseName:       db,
		contract.AnnotationDatabaseCodepage:   "WIN1252",
		contract.AnnotationDatabaseExtensions: "pg_trgm,unaccent",
	}}}
	if _, err := w.cs.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: contract.DefaultDatabaseSecret}, StringData: map[string]string{
		contract.EnvDatabaseUser: user, contract.EnvDatabasePassword: password,
		contract.EnvDatabaseAdminUser: w.pg.User, contract.EnvDatabaseAdminPassword: w.pg.Password,
	}}
	if _, err := w.cs.CoreV1().Secrets(name).Create(t.Context(), sec, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (w *world) waitCronJob(ns string) *batchv1.CronJob {
	var cj *batchv1.CronJob
	w.eventually("the backup CronJob in "+ns, func() bool {
		c, err := w.cs.BatchV1().CronJobs(ns).Get(w.t.Context(), contract.BackupCronJobName, metav1.GetOptions{})
		cj = c
		return err == nil
	})
	return cj
}

// runBackup starts a Job from the CronJob as an operator does (kubectl create job
// --from=cronjob/...), and waits for the Job controller's pod to succeed.
func (w *world) runBackup(ns string, cj *batchv1.CronJob) string {
	t := w.t
	name := testenv.RandomName(cj.Name + "-manual-")
	w.cluster.Kubectl(t, "--namespace", ns, "create", "job", name, "--from=cronjob/"+cj.Name)
	w.eventually("backup job "+name, func() bool {
		j, err := w.cs.BatchV1().Jobs(ns).Get(t.Context(), name, metav1.GetOptions{})
		if err == nil && j.Status.Failed > 0 {
			w.dumpPods(ns)
			t.Fatalf("backup job %s failed", name)
		}
		return err == nil && j.Status.Succeeded == 1
	})
	return name
}

func (w *world) latestManifest(ns string) layout.Manifest {
	rc, _, err := w.store.Open(w.t.Context(), layout.LatestManifestKey(ns))
	if err != nil {
		w.t.Fatal(err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	m, err := layout.ParseManifest(b)
	if err != nil {
		w.t.Fatal(err)
	}
	if _, err := w.store.Stat(w.t.Context(), layout.LatestKey(ns)); err != nil {
		w.t.Fatal(err)
	}
	return m
}

// applyExampleDeployment creates the example's Deployment as written, with one change:
// its dbaccess image becomes the stand-in built here (testenv.ImageDBAccess) (and its
// product label w.product, when set).
func (w *world) applyExampleDeployment(ns string) {
	t := w.t
	b, err := os.ReadFile(filepath.Join(testenv.RepoRoot(), "manifests/examples/dbaccess.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	for {
		var obj map[string]any
		if err := dec.Decode(&obj); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if obj["kind"] != "Deployment" {
			continue // the example Secret holds placeholders; each test namespace has a real one
		}
		var d appsv1.Deployment
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &d); err != nil {
			t.Fatal(err)
		}
		for i := range d.Spec.Template.Spec.Containers {
			if c := &d.Spec.Template.Spec.Containers[i]; c.Name == "dbaccess" {
				c.Image = testenv.ImageDBAccess
			}
		}
		if w.product != "" { // the same Deployment, for the other product
			d.Spec.Template.Labels[contract.LabelProduct] = w.product
		}
		if _, err := w.cs.AppsV1().Deployments(ns).Create(t.Context(), &d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// waitPodRunning waits for a running dbaccess pod other than `not`.
func (w *world) waitPodRunning(ns, not string) *corev1.Pod {
	var found *corev1.Pod
	w.eventually("a running dbaccess pod in "+ns, func() bool {
		l, err := w.cs.CoreV1().Pods(ns).List(w.t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=dbaccess"})
		if err != nil {
			return false
		}
		for i := range l.Items {
			p := &l.Items[i]
			if p.Name != not && p.DeletionTimestamp == nil && p.Status.Phase == corev1.PodRunning {
				found = p
				return true
			}
		}
		return false
	})
	return found
}

// waitInitRestarted waits for a dbaccess pod whose restore init container failed and
// was restarted by the kubelet.
func (w *world) waitInitRestarted(ns string) *corev1.Pod {
	var found *corev1.Pod
	w.eventually("a restarted init container in "+ns, func() bool {
		l, err := w.cs.CoreV1().Pods(ns).List(w.t.Context(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=dbaccess"})
		if err != nil {
			return false
		}
		for i := range l.Items {
			if st := initStatus(&l.Items[i]); st != nil && st.RestartCount > 0 && st.LastTerminationState.Terminated != nil {
				found = &l.Items[i]
				return true
			}
		}
		return false
	})
	return found
}

func initStatus(p *corev1.Pod) *corev1.ContainerStatus {
	for i := range p.Status.InitContainerStatuses {
		if p.Status.InitContainerStatuses[i].Name == contract.InitContainerName {
			return &p.Status.InitContainerStatuses[i]
		}
	}
	return nil
}

func (w *world) deletePods(ns string) {
	if err := w.cs.CoreV1().Pods(ns).DeleteCollection(w.t.Context(), metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=dbaccess"}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) initLog(p *corev1.Pod) string {
	return w.cluster.Logs(w.t.Context(), p.Namespace, p.Name, contract.InitContainerName, false)
}

func (w *world) waitLog(p *corev1.Pod, container, want string) string {
	var line string
	w.eventually(want+" in "+p.Name, func() bool {
		line = grepLog(w.cluster.Logs(w.t.Context(), p.Namespace, p.Name, container, false), want)
		return line != ""
	})
	return line
}

// plugin runs `kubectl smartbackup ARGS` against the cluster.
func (w *world) plugin(args ...string) string {
	cmd := exec.Command(w.pluginBin, append(args, "--kubeconfig", w.cluster.KubeConfigPath)...)
	cmd.Env = append(os.Environ(), "KUBECONFIG=")
	out, err := cmd.CombinedOutput()
	if err != nil {
		w.t.Fatalf("kubectl smartbackup %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (w *world) waitEvent(ns, reason string) *eventsv1.Event {
	var ev *eventsv1.Event
	w.eventually("an Event "+reason+" in "+ns, func() bool {
		l, err := w.cs.EventsV1().Events(ns).List(w.t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for i := range l.Items {
			if l.Items[i].Reason == reason {
				ev = &l.Items[i]
				return true
			}
		}
		return false
	})
	return ev
}

func (w *world) databaseExists(db string) bool {
	var ok bool
	if err := w.pg.Connect(w.t, "postgres").QueryRow(w.t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", db).Scan(&ok); err != nil {
		w.t.Fatal(err)
	}
	return ok
}

func (w *world) dropDatabase(db string) {
	w.pg.Exec(w.t, "postgres", "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '"+db+"'", "DROP DATABASE "+db)
}

func (w *world) summary(db string) fixture.Summary {
	sum, err := fixture.Summarize(w.t.Context(), w.pg.Connect(w.t, db))
	if err != nil {
		w.t.Fatal(err)
	}
	return sum
}

func (w *world) queryString(db, q string) string {
	var s string
	if err := w.pg.Connect(w.t, db).QueryRow(w.t.Context(), q).Scan(&s); err != nil {
		w.t.Fatal(err)
	}
	return s
}

func (w *world) record(db string) string {
	return w.queryString("postgres", "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = '"+db+"'")
}

func (w *world) eventually(what string, cond func() bool) {
	w.t.Helper()
	// Generous: on a loaded machine a pod's first start can take minutes.
	err := wait.PollUntilContextTimeout(w.t.Context(), 200*time.Millisecond, 6*time.Minute, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		w.dumpPods("")
		w.t.Fatalf("waiting for %s: %v", what, err)
	}
}

// dumpPods logs every pod's status and containers' output, for a failure's diagnosis.
func (w *world) dumpPods(ns string) {
	l, err := w.cs.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return
	}
	for _, p := range l.Items {
		w.t.Logf("pod %s/%s phase %s: %+v", p.Namespace, p.Name, p.Status.Phase, p.Status.ContainerStatuses)
		for _, c := range append(append([]corev1.Container{}, p.Spec.InitContainers...), p.Spec.Containers...) {
			w.t.Logf("  %s: %s", c.Name, lastLines(w.cluster.Logs(context.Background(), p.Namespace, p.Name, c.Name, false), 15))
		}
	}
}

func requireLog(t *testing.T, log, want string) {
	t.Helper()
	if !strings.Contains(log, want) {
		t.Fatalf("log lacks %s:\n%s", want, lastLines(log, 20))
	}
}

func grepLog(log, want string) string {
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func equalSummary(a, b fixture.Summary) bool { return a.String() == b.String() }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func deref[T any](p *T) (v T) {
	if p != nil {
		v = *p
	}
	return v
}

// metric waits until one of the webhook's pods (the leader) exports series with a
// positive value, scraped over the pod network as Prometheus would, and returns it.
func (w *world) metric(series string) string {
	var value string
	w.eventually(series, func() bool {
		pods, err := w.cs.CoreV1().Pods(chartNS).List(w.t.Context(), metav1.ListOptions{})
		if err != nil {
			return false
		}
		for _, p := range pods.Items {
			if p.Status.PodIP == "" {
				continue
			}
			resp, err := http.Get("http://" + p.Status.PodIP + ":8080/metrics")
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, series+" "); ok && v != "0" {
					value = v
					return true
				}
			}
		}
		return false
	})
	return value
}

package cli_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/kubectl-smartbackup/cli"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// world is a real kube-apiserver (no controller-manager, no kubelet: the test plays
// the Job controller and the kubelet where a command waits on them) and a bucket of
// the GCS emulator, with namespaces, CronJobs made by the webhook's own builders, and
// backups, manifests and verification results written in the store's layout.
type world struct {
	t          *testing.T
	cs         kubernetes.Interface
	kubeconfig string
	cfg        *config.Config
	url        string
	store      storage.Store
	// prod, hml: an enabled customer; gone: a namespace that left (its CronJob
	// suspended); other: never opted in.
	prod, hml, gone, other string
	at                     time.Time
}

func newWorld(t *testing.T) *world {
	kube := testenv.StartKube(t)
	cs, err := kubernetes.NewForConfig(kube.Config)
	if err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, cs: cs, kubeconfig: kube.KubeConfigPath, url: testenv.StartGCS(t).NewBucket(t),
		at: time.Now().UTC().Truncate(time.Second).Add(-30 * time.Hour)}
	w.cfg = configtest.New(t, map[string]string{"STORAGE_URL_SISTEMICO": w.url})
	if w.store, err = storage.Open(t.Context(), w.url); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.store.Close() })
	id := testenv.RandomName("")
	w.prod, w.hml, w.gone, w.other = "acme-prd-"+id, "acme-hml-"+id, "legado-prd-"+id, "outro-"+id
	w.namespace(w.prod, map[string]string{contract.LabelEnvironment: contract.EnvironmentProduction})
	w.namespace(w.hml, map[string]string{contract.LabelEnvironment: "homologation", contract.LabelRestoreSource: w.prod})
	w.namespace(w.gone, map[string]string{contract.LabelEnvironment: contract.EnvironmentProduction})
	w.namespace(w.other, nil)
	for _, ns := range []string{w.prod, w.hml, w.gone} {
		w.cronJobs(ns)
	}
	// The namespace left: the reconciler suspends its CronJob and takes the label off.
	w.suspend(w.gone)
	w.relabel(w.gone, map[string]string{contract.LabelEnabled: "false"})
	return w
}

func (w *world) namespace(name string, labels map[string]string) {
	l := map[string]string{}
	if labels != nil {
		l[contract.LabelEnabled], l[contract.LabelProduct], l[contract.LabelCustomer] = "true", contract.ProductSistemico, "acme"
	}
	for k, v := range labels {
		l[k] = v
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "postgres.example.internal", contract.AnnotationDatabaseName: strings.ReplaceAll(name, "-", "_"),
	}}}
	if _, err := w.cs.CoreV1().Namespaces().Create(w.t.Context(), ns, metav1.CreateOptions{}); err != nil {
		w.t.Fatal(err)
	}
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := w.cs.CoreV1().ServiceAccounts(name).Create(w.t.Context(), sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		w.t.Fatal(err)
	}
}

func (w *world) relabel(name string, labels map[string]string) {
	ns, err := w.cs.CoreV1().Namespaces().Get(w.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	for k, v := range labels {
		ns.Labels[k] = v
	}
	if _, err := w.cs.CoreV1().Namespaces().Update(w.t.Context(), ns, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// cronJobs creates the backup and verification CronJobs the webhook builds for ns.
func (w *world) cronJobs(name string) {
	t := w.t
	n, err := w.cs.CoreV1().Namespaces().Get(t.Context(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := inject.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}
	s, d := inject.ParseBackup(in, w.cfg)
	if d != nil {
		t.Fatal(d)
	}
	p, err := cronjobs.PlanFor(in, w.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p.Schedule = p.Window.Schedule(cronjobs.NewSpread(p.Window).Place(name))
	for _, cj := range []*batchv1.CronJob{cronjobs.Backup(s, p, w.cfg), cronjobs.Verify(s, "", w.cfg)} {
		if _, err := w.cs.BatchV1().CronJobs(name).Create(t.Context(), cj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func (w *world) suspend(ns string) {
	cj := w.cronJob(ns, contract.BackupCronJobName)
	cj.Spec.Suspend = new(true)
	if _, err := w.cs.BatchV1().CronJobs(ns).Update(w.t.Context(), cj, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) cronJob(ns, name string) *batchv1.CronJob {
	cj, err := w.cs.BatchV1().CronJobs(ns).Get(w.t.Context(), name, metav1.GetOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	return cj
}

// cronJobRan records runs in the CronJob's status, as the CronJob controller does.
func (w *world) cronJobRan(ns string, lastSchedule, lastSuccess time.Time) {
	cj := w.cronJob(ns, contract.BackupCronJobName)
	cj.Status.LastScheduleTime = &metav1.Time{Time: lastSchedule}
	if !lastSuccess.IsZero() {
		cj.Status.LastSuccessfulTime = &metav1.Time{Time: lastSuccess}
	}
	if _, err := w.cs.BatchV1().CronJobs(ns).UpdateStatus(w.t.Context(), cj, metav1.UpdateOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

func (w *world) put(key string, body []byte) {
	if _, err := w.store.Put(w.t.Context(), key, bytes.NewReader(body), storage.PutOptions{}); err != nil {
		w.t.Fatal(err)
	}
}

// backup writes a dated backup of ns started at t, with its manifest (complete) and,
// when latest, the latest copy and manifest; it returns the manifest.
func (w *world) backup(ns string, t time.Time, body string, latest, complete bool) layout.Manifest {
	key := layout.BackupKey(ns, t)
	m := layout.Manifest{Version: 1, Namespace: ns, Object: key, Size: int64(len(body)), SHA256: fmt.Sprintf("%x", sha256.Sum256([]byte(body))),
		Database: "erp", StartedAt: t, FinishedAt: t.Add(time.Minute)}
	mb, _ := m.Marshal()
	w.put(key, []byte(body))
	if complete {
		w.put(layout.ManifestKey(key), mb)
	}
	if latest {
		w.put(layout.LatestKey(ns), []byte(body))
		w.put(layout.LatestManifestKey(ns), mb)
	}
	return m
}

func (w *world) verification(m layout.Manifest, verdict string, finished time.Time) {
	v := layout.Verification{Version: layout.VerificationVersion, Verdict: verdict, Namespace: m.Namespace, Object: m.Object,
		SHA256: m.SHA256, BackupTime: m.StartedAt, StartedAt: finished.Add(-time.Minute), FinishedAt: finished}
	if verdict == layout.VerdictFailed {
		v.Failures = []string{"table public.clientes: 3 rows restored, 4 recorded"}
	}
	b, _ := json.Marshal(v)
	w.put(layout.VerifyKey(m.Object), b)
}

// run is `kubectl smartbackup ARGS --kubeconfig …`.
func (w *world) run(args ...string) (string, string, int) {
	return w.runCtx(w.t.Context(), args...)
}

func (w *world) runCtx(ctx context.Context, args ...string) (string, string, int) {
	var out, errOut bytes.Buffer
	args = append(args, "--kubeconfig", w.kubeconfig)
	code := cli.Main(ctx, args, &out, &errOut)
	return out.String(), errOut.String(), code
}

func (w *world) mustRun(args ...string) string {
	out, errOut, code := w.run(args...)
	if code != 0 {
		w.t.Fatalf("kubectl smartbackup %q: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, out, errOut)
	}
	return out
}

func jsonLines[T any](t *testing.T, out string) []T {
	var rows []T
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r T
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("%v in %q", err, sc.Text())
		}
		rows = append(rows, r)
	}
	return rows
}

func TestStatusAndHistory(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	// Production: three nights, the newest latest, the middle one verified; its
	// CronJob's last run succeeded.
	var prodLatest layout.Manifest
	for i := 2; i >= 0; i-- {
		m := w.backup(w.prod, w.at.Add(-time.Duration(i)*24*time.Hour), strings.Repeat("x", 1000+i), i == 0, true)
		if i == 1 {
			w.verification(m, layout.VerdictPassed, m.StartedAt.Add(3*time.Hour))
		}
		if i == 0 {
			prodLatest = m
		}
	}
	w.cronJobRan(w.prod, w.at, w.at.Add(5*time.Minute))
	// Homologation: one complete backup, then one whose manifest never came (killed
	// before its manifest); its latest verification failed; its last run failed.
	hm := w.backup(w.hml, w.at.Add(-24*time.Hour), "hml dump", true, true)
	w.verification(hm, layout.VerdictFailed, hm.StartedAt.Add(2*time.Hour))
	w.backup(w.hml, w.at, "half a dump", false, false)
	w.cronJobRan(w.hml, w.at, w.at.Add(-24*time.Hour))

	t.Run("status -A lists the enabled namespaces and the one that left", func(t *testing.T) {
		rows := jsonLines[cli.Status](t, w.mustRun("status", "-A", "-o", "json"))
		byNS := map[string]cli.Status{}
		for _, r := range rows {
			byNS[r.Namespace] = r
		}
		if _, ok := byNS[w.other]; ok {
			t.Errorf("status -A lists %s, which never opted in", w.other)
		}
		p, ok := byNS[w.prod]
		switch {
		case !ok || p.Backups == nil:
			t.Fatalf("no backups for %s in %+v", w.prod, rows)
		case p.Backups.Latest != prodLatest.Object || !p.Backups.Time.Equal(prodLatest.StartedAt) || p.Backups.SHA256 != prodLatest.SHA256 || p.Backups.Size != 1000:
			t.Errorf("%s latest = %+v, want %s", w.prod, p.Backups, prodLatest.Object)
		case p.Backups.Backups != 3:
			t.Errorf("%s backups = %d, want 3", w.prod, p.Backups.Backups)
		case p.Backups.Verification == nil || p.Backups.Verification.Verdict != layout.VerdictPassed:
			t.Errorf("%s verification = %+v", w.prod, p.Backups.Verification)
		case p.CronJob != cli.CronJobOK || p.Schedule == "" || p.TimeZone != w.cfg.TimeZone || len(p.Problems) != 0:
			t.Errorf("%s = %+v", w.prod, p)
		}
		h := byNS[w.hml]
		if h.CronJob != cli.CronJobFailed || h.Backups == nil || h.Backups.Backups != 2 || h.Backups.Latest != hm.Object ||
			h.Backups.Verification == nil || h.Backups.Verification.Verdict != layout.VerdictFailed {
			t.Errorf("%s = %+v %+v", w.hml, h, h.Backups)
		}
		g, ok := byNS[w.gone]
		if !ok || g.CronJob != cli.CronJobSuspended || g.Enabled || !strings.Contains(strings.Join(g.Problems, ";"), "not enabled") {
			t.Errorf("%s = %+v", w.gone, g)
		}
	})

	t.Run("status as a table", func(t *testing.T) {
		out := w.mustRun("status", w.prod, w.hml, w.other)
		for _, want := range []string{
			"NAMESPACE", "LATEST BACKUP (UTC)", w.prod, prodLatest.SHA256[:16], w.at.Format("2006-01-02 15:04"), "1000 B", "1d6h",
			"passed " + w.at.Add(-24*time.Hour+3*time.Hour).Format("2006-01-02"), "failed ", "not enabled (label smartbackup.io/enabled=true)",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("status table lacks %q:\n%s", want, out)
			}
		}
		t.Logf("kubectl smartbackup status %s %s %s:\n%s", w.prod, w.hml, w.other, out)
	})

	t.Run("history lists every backup newest first, and the Jobs and Events", func(t *testing.T) {
		job := cli.JobFromCronJob(w.cronJob(w.hml, contract.BackupCronJobName))
		job, err := w.cs.BatchV1().Jobs(w.hml).Create(ctx, job, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.finishJob(ctx, job, false, contract.Summary{Kind: contract.SummaryBackup, Outcome: contract.OutcomeFailed, Seconds: 12, ExitCode: 8,
			Reason: contract.ExitMeaning(contract.SummaryBackup, 8)}); err != nil {
			t.Fatal(err)
		}
		ev := &eventsv1.Event{ObjectMeta: metav1.ObjectMeta{GenerateName: "dbaccess-", Namespace: w.hml},
			EventTime: metav1.NowMicro(), ReportingController: "smartbackup.io/webhook", ReportingInstance: "test", Action: "Restore",
			Reason: contract.EventRestored, Type: corev1.EventTypeNormal, Note: "restored " + hm.Object,
			Regarding: corev1.ObjectReference{Kind: "Pod", Namespace: w.hml, Name: "dbaccess-abc"}}
		if _, err := w.cs.EventsV1().Events(w.hml).Create(ctx, ev, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		out := w.mustRun("history", w.hml, "-o", "json")
		var h cli.History
		if err := json.Unmarshal([]byte(out), &h); err != nil {
			t.Fatal(err)
		}
		if len(h.Backups) != 2 || h.Backups[0].Complete || !h.Backups[1].Complete || h.Backups[1].SHA256 != hm.SHA256 ||
			h.Backups[1].Verification == nil || h.Backups[1].Verification.Verdict != layout.VerdictFailed {
			t.Errorf("history backups = %+v", h.Backups)
		}
		if len(h.Jobs) != 1 || h.Jobs[0].Name != job.Name || h.Jobs[0].Outcome != contract.OutcomeFailed || h.Jobs[0].Summary == nil || h.Jobs[0].Summary.ExitCode != 8 {
			t.Errorf("history jobs = %+v", h.Jobs)
		}
		if len(h.Events) != 1 || h.Events[0].Reason != contract.EventRestored || h.Events[0].Pod != "dbaccess-abc" {
			t.Errorf("history events = %+v", h.Events)
		}
		table := w.mustRun("history", w.hml)
		for _, want := range []string{"no manifest: restores skip it", hm.SHA256[:16], "failed " + hm.StartedAt.Add(2*time.Hour).Format("2006-01-02"),
			job.Name, "exit 8", contract.EventRestored} {
			if !strings.Contains(table, want) {
				t.Errorf("history table lacks %q:\n%s", want, table)
			}
		}
		t.Logf("kubectl smartbackup history %s:\n%s", w.hml, table)
	})

	t.Run("a store of a cluster volume is said to be out of reach", func(t *testing.T) {
		rows := jsonLines[cli.Status](t, w.mustRun("status", w.prod, "-o", "json", "--store", "file:///nonexistent/backup"))
		if len(rows) != 1 || rows[0].Backups != nil || !strings.Contains(strings.Join(rows[0].Problems, ";"), "pass --store with a path where it is mounted") {
			t.Errorf("status with an unreachable volume = %+v", rows)
		}
	})

	t.Run("status never opens a dump", func(t *testing.T) {
		// Replace every dump with bytes that are not gzip: status and history read
		// only listings, manifests and verification results, so nothing changes.
		objs, err := w.store.List(ctx, w.prod+"/")
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			if strings.HasSuffix(o.Key, layout.DumpSuffix) {
				w.put(o.Key, bytes.Repeat([]byte{0}, int(o.Size)))
			}
		}
		if out := w.mustRun("status", w.prod); strings.Contains(out, "problem") {
			t.Errorf("status:\n%s", out)
		}
	})
}

// finishJob plays the Job controller and the kubelet: a pod of the Job that
// terminated with the summary as its termination message, and the Job's final status.
func (w *world) finishJob(ctx context.Context, job *batchv1.Job, succeeded bool, sum contract.Summary) error {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-pod", Namespace: job.Namespace, Labels: map[string]string{"batch.kubernetes.io/job-name": job.Name}},
		Spec:       corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "backup", Image: "smartbackup/cronbackup:test"}}},
	}
	pod, err := w.cs.CoreV1().Pods(job.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	now := metav1.Now()
	code := int32(sum.ExitCode)
	pod.Status.Phase = corev1.PodFailed
	if succeeded {
		pod.Status.Phase = corev1.PodSucceeded
	}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "backup", Image: "smartbackup/cronbackup:test",
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: sum.Line(), StartedAt: now, FinishedAt: now}}}}
	if _, err := w.cs.CoreV1().Pods(job.Namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{}); err != nil {
		return err
	}
	j, err := w.cs.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	start := metav1.NewTime(now.Add(-time.Duration(sum.Seconds) * time.Second))
	j.Status.StartTime = &start
	if succeeded {
		j.Status.Succeeded = 1
		j.Status.CompletionTime = &now
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobSuccessCriteriaMet, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: batchv1.JobComplete, Status: corev1.ConditionTrue, LastTransitionTime: now}}
	} else {
		j.Status.Failed = 1
		j.Status.Conditions = []batchv1.JobCondition{
			{Type: batchv1.JobFailureTarget, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: batchv1.JobReasonBackoffLimitExceeded},
			{Type: batchv1.JobFailed, Status: corev1.ConditionTrue, LastTransitionTime: now, Reason: batchv1.JobReasonBackoffLimitExceeded}}
	}
	_, err = w.cs.BatchV1().Jobs(job.Namespace).UpdateStatus(ctx, j, metav1.UpdateOptions{})
	return err
}

// jobNames are the Jobs of ns now.
func (w *world) jobNames(ns string) map[string]bool {
	l, err := w.cs.BatchV1().Jobs(ns).List(w.t.Context(), metav1.ListOptions{})
	if err != nil {
		w.t.Fatal(err)
	}
	names := map[string]bool{}
	for _, j := range l.Items {
		names[j.Name] = true
	}
	return names
}

// finishNewJob waits for a Job of ns made from the CronJob name that is not in known,
// then runs finish on it (in a goroutine beside the command that waits for it).
func (w *world) finishNewJob(ctx context.Context, ns, name string, known map[string]bool, finish func(*batchv1.Job) error) <-chan error {
	done := make(chan error, 1)
	go func() {
		for {
			l, err := w.cs.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
			if err == nil {
				for i := range l.Items {
					if j := &l.Items[i]; strings.HasPrefix(j.Name, name+"-manual-") && !known[j.Name] {
						done <- finish(j)
						return
					}
				}
			}
			select {
			case <-ctx.Done():
				done <- fmt.Errorf("no new Job from %s/%s appeared: %w", ns, name, ctx.Err())
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return done
}

func TestVerifyAndBackupJobs(t *testing.T) {
	w := newWorld(t)
	m := w.backup(w.prod, w.at, "prod dump", true, true)

	t.Run("verify starts a Job from the verify CronJob", func(t *testing.T) {
		out := w.mustRun("verify", w.prod)
		cj := w.cronJob(w.prod, contract.VerifyCronJobName)
		l, err := w.cs.BatchV1().Jobs(w.prod).List(t.Context(), metav1.ListOptions{})
		if err != nil || len(l.Items) != 1 {
			t.Fatalf("jobs = %v, %v", l, err)
		}
		j := l.Items[0]
		owner := metav1.GetControllerOf(&j)
		switch {
		case !strings.Contains(out, "job.batch/"+j.Name+" created"):
			t.Errorf("output: %s", out)
		case owner == nil || owner.UID != cj.UID || owner.Kind != "CronJob":
			t.Errorf("owner = %+v, want CronJob %s", owner, cj.UID)
		case j.Annotations[cli.AnnotationInstantiate] != "manual":
			t.Errorf("annotations = %v", j.Annotations)
		case j.Spec.Template.Spec.Containers[0].Image != cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Image ||
			fmt.Sprint(j.Spec.Template.Spec.Containers[0].Args) != fmt.Sprint(cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Args):
			t.Errorf("the Job's pod is not the CronJob's: %+v", j.Spec.Template.Spec.Containers[0])
		}
	})

	t.Run("verify --wait reports the verdict the store got", func(t *testing.T) {
		for _, tc := range []struct {
			verdict string
			code    int
		}{{layout.VerdictPassed, 0}, {layout.VerdictFailed, 1}} {
			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
			done := w.finishNewJob(ctx, w.prod, contract.VerifyCronJobName, w.jobNames(w.prod), func(j *batchv1.Job) error {
				w.verification(m, tc.verdict, time.Now().Add(time.Second))
				return w.finishJob(ctx, j, tc.verdict == layout.VerdictPassed, contract.Summary{})
			})
			out, errOut, code := w.runCtx(ctx, "verify", w.prod, "--wait")
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			cancel()
			if code != tc.code || !strings.Contains(out, "verification of "+m.Object+": "+tc.verdict) {
				t.Errorf("verify --wait (%s): exit %d\n%s\n%s", tc.verdict, code, out, errOut)
			}
		}
	})

	t.Run("backup --wait prints the backup's summary and fails with its Job", func(t *testing.T) {
		sum := contract.Summary{Kind: contract.SummaryBackup, Outcome: contract.OutcomeFailed, Seconds: 7, ExitCode: 8,
			Reason: contract.ExitMeaning(contract.SummaryBackup, 8)}
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		done := w.finishNewJob(ctx, w.prod, contract.BackupCronJobName, w.jobNames(w.prod), func(j *batchv1.Job) error {
			return w.finishJob(ctx, j, false, sum)
		})
		out, errOut, code := w.runCtx(ctx, "backup", w.prod, "--wait")
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if code != cli.ExitFailed || !strings.Contains(out, "failed in 7s, exit 8 ("+sum.Reason+")") || !strings.Contains(errOut, "failed: kubectl logs") {
			t.Errorf("backup --wait: exit %d\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("a suspended CronJob or none is refused", func(t *testing.T) {
		if _, errOut, code := w.run("backup", w.gone); code != cli.ExitFailed || !strings.Contains(errOut, "is suspended") {
			t.Errorf("backup of %s: exit %d %s", w.gone, code, errOut)
		}
		if _, errOut, code := w.run("verify", w.other); code != cli.ExitFailed || !strings.Contains(errOut, "has no CronJob smartbackup-verify") {
			t.Errorf("verify of %s: exit %d %s", w.other, code, errOut)
		}
	})
}

func TestRestore(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	pods := func(ns string) []string {
		l, err := w.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				names = append(names, p.Name)
			}
		}
		return names
	}
	mkPod := func(ns, name string, injected bool) {
		p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{contract.LabelAppName: "erp"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "erp/dbaccess:test"}}}}
		if injected {
			p.Annotations = map[string]string{contract.AnnotationInjected: "v1-abc"}
		}
		if _, err := w.cs.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	mkPod(w.hml, "dbaccess-1", true)
	mkPod(w.hml, "other-app", false)
	annotations := func(ns string) map[string]string {
		n, err := w.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return n.Annotations
	}

	out := w.mustRun("restore", w.hml, "--id", "chamado-1")
	if a := annotations(w.hml); a[contract.AnnotationRestoreRequest] != "" || len(pods(w.hml)) != 2 {
		t.Fatalf("the dry run changed something: annotations %v, pods %v", a, pods(w.hml))
	}
	if !strings.Contains(out, "from the latest backup of "+w.prod) || !strings.Contains(out, "# dry run") {
		t.Errorf("dry run:\n%s", out)
	}

	out = w.mustRun("restore", w.hml, "--apply", "--id", "chamado-2")
	a := annotations(w.hml)
	if a[contract.AnnotationRestoreRequest] != "chamado-2" || a[contract.AnnotationRestoreRequestSource] != contract.RequestSourceProduction {
		t.Errorf("annotations after --apply: %v", a)
	}
	if got := pods(w.hml); len(got) != 1 || got[0] != "other-app" {
		t.Errorf("pods after --apply: %v (only the injected one goes)", got)
	}
	if !strings.Contains(out, "# deleted pod dbaccess-1") {
		t.Errorf("apply:\n%s", out)
	}

	out = w.mustRun("restore", w.hml, "--own", "--apply")
	if a := annotations(w.hml); a[contract.AnnotationRestoreRequestSource] != contract.RequestSourceOwn || !strings.HasPrefix(a[contract.AnnotationRestoreRequest], "manual-") {
		t.Errorf("annotations after --own: %v", a)
	}
	if !strings.Contains(out, "no injected pod runs now") {
		t.Errorf("apply --own:\n%s", out)
	}

	if _, errOut, code := w.run("restore", w.other, "--apply"); code != cli.ExitFailed || !strings.Contains(errOut, "is not enabled") {
		t.Errorf("restore of %s: exit %d %s", w.other, code, errOut)
	}
	if a := annotations(w.other); a[contract.AnnotationRestoreRequest] != "" {
		t.Errorf("a refused restore annotated %s: %v", w.other, a)
	}
	if _, errOut, code := w.run("restore", w.hml, "--source", w.gone); code != cli.ExitUsage || !strings.Contains(errOut, `unknown flag "--source"`) {
		t.Errorf("restore --source: exit %d %s", code, errOut)
	}
}

// TestOperatorRole: the chart's operator ClusterRole is all the plugin needs. An
// identity bound to it and nothing else (impersonated through its kubeconfig) runs every
// command; the same identity unbound is refused, so the test is not passing on the
// admin's rights.
func TestOperatorRole(t *testing.T) {
	w := newWorld(t)
	ctx := t.Context()
	w.backup(w.prod, w.at, "prod dump", true, true)
	out, err := exec.CommandContext(ctx, testenv.Tool(t, "helm"), "template", "smartbackup", filepath.Join(testenv.RepoRoot(), "manifests/chart/smartbackup"),
		"--set", "storage.sistemico=gs://b", "--show-only", "templates/operator-rbac.yaml").Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal(out, &role); err != nil || len(role.Rules) == 0 {
		t.Fatalf("the chart's operator role: %v\n%s", err, out)
	}
	role.Name = testenv.RandomName("smartbackup-operator-")
	if _, err := w.cs.RbacV1().ClusterRoles().Create(ctx, &role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	user := testenv.RandomName("sre-")
	kc := w.impersonating(user)
	as := func(args ...string) (string, string, int) {
		var o, e bytes.Buffer
		code := cli.Main(ctx, append(args, "--kubeconfig", kc), &o, &e)
		return o.String(), e.String(), code
	}
	if _, errOut, code := as("status", "-A"); code != cli.ExitFailed || !strings.Contains(errOut, "forbidden") {
		t.Fatalf("unbound %s: status -A exit %d %s; want forbidden (is the impersonation on?)", user, code, errOut)
	}
	binding := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}
	if _, err := w.cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	mkPod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "dbaccess-1", Namespace: w.hml, Annotations: map[string]string{contract.AnnotationInjected: "v1"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "erp/dbaccess:test"}}}}
	if _, err := w.cs.CoreV1().Pods(w.hml).Create(ctx, mkPod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"status", "-A"}, {"status", w.prod, "-o", "json"}, {"history", w.prod}, {"verify", w.prod}, {"backup", w.prod},
		{"restore", w.hml}, {"restore", w.hml, "--apply", "--id", "chamado-rbac"},
	} {
		// RBAC reaches the authorizer's cache a moment after the binding.
		var out, errOut string
		code := -1
		for i := 0; i < 50 && code != 0; i++ {
			if out, errOut, code = as(args...); code != 0 {
				time.Sleep(100 * time.Millisecond)
			}
		}
		if code != 0 || strings.Contains(out, "forbidden") {
			t.Errorf("as %s with the operator role: %q exit %d\n%s\n%s", user, args, code, out, errOut)
		}
	}
}

// impersonating is a copy of the admin kubeconfig that acts as user (and only as user:
// impersonation drops the admin's groups).
func (w *world) impersonating(user string) string {
	cfg, err := clientcmd.LoadFromFile(w.kubeconfig)
	if err != nil {
		w.t.Fatal(err)
	}
	for _, a := range cfg.AuthInfos {
		a.Impersonate = user
	}
	path := filepath.Join(w.t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		w.t.Fatal(err)
	}
	return path
}

package cronjobs_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// startReconciler runs the CronJob reconciler in a manager of its own, cached as the
// webhook's is (app.New), against the real apiserver; stop ends it and waits.
func startReconciler(t *testing.T, kube *testenv.Kube, cfg *config.Config) (stop func()) {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	mgr, err := ctrl.NewManager(kube.Config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             ctrlconfig.Controller{SkipNameValidation: new(true)},
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&batchv1.CronJob{}: {Label: labels.SelectorFromSet(labels.Set{contract.LabelManagedBy: contract.ManagedBy})},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	r := &cronjobs.Reconciler{Client: mgr.GetClient(), Config: cfg, Recorder: mgr.GetEventRecorder("smartbackup-webhook")}
	if err := r.SetupWithManager(mgr); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("manager stopped with %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func eventually(t *testing.T, timeout time.Duration, f func() error) {
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
		time.Sleep(200 * time.Millisecond)
	}
}

func enabledNamespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico, contract.LabelEnvironment: contract.EnvironmentProduction},
		Annotations: map[string]string{
			contract.AnnotationDatabaseEndpoint: "db.shared-1.internal", contract.AnnotationDatabaseName: "erp",
		},
	}}
}

// reconciles is controller-runtime's count of the reconciler's finished reconciles.
func reconciles(t *testing.T) float64 {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var n float64
	for _, f := range fams {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == "smartbackup-cronjobs" {
					n += m.GetCounter().GetValue()
				}
			}
		}
	}
	return n
}

// cronJobState is the state label of the namespace's smartbackup_backup_cronjob_state
// series ("" without one; several are an error).
func cronJobState(t *testing.T, ns string) string {
	t.Helper()
	fams, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var found []string
	for _, f := range fams {
		if f.GetName() != "smartbackup_backup_cronjob_state" {
			continue
		}
		for _, m := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["namespace"] == ns && m.GetGauge().GetValue() == 1 {
				found = append(found, l["state"])
			}
		}
	}
	if len(found) > 1 {
		t.Fatalf("namespace %s has several states: %v", ns, found)
	}
	return strings.Join(found, "")
}

func backupCronJobs(t *testing.T, c client.Client) map[string]batchv1.CronJob {
	t.Helper()
	var list batchv1.CronJobList
	if err := c.List(t.Context(), &list, client.MatchingLabels{contract.LabelManagedBy: contract.ManagedBy}); err != nil {
		t.Fatal(err)
	}
	out := map[string]batchv1.CronJob{}
	for _, cj := range list.Items {
		if cj.Name == contract.BackupCronJobName {
			out[cj.Namespace] = cj
		}
	}
	return out
}

// TestFleetSpreadOnTheAPIServer: 500 enabled namespaces get their starts spread over
// the 21:00-23:00 window, no minute with more than ⌈500/120⌉+2 = 7 (the bound;
// the Spread guarantees ⌈N/W⌉+1); a restarted reconciler keeps every schedule and
// rewrites no CronJob.
func TestFleetSpreadOnTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	const namespaces = 500
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := configtest.New(t, map[string]string{"BACKUP_WINDOW": "21:00-23:00"})
	w, _ := config.ParseWindow(cfg.BackupWindow)
	stop := startReconciler(t, kube, cfg)

	prefix := testenv.RandomName("fleet-")
	var wg sync.WaitGroup
	errs := make(chan error, namespaces)
	for worker := range 10 {
		wg.Go(func() {
			for i := worker; i < namespaces; i += 10 {
				if err := c.Create(context.Background(), enabledNamespace(fmt.Sprintf("%s-%03d", prefix, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	var first map[string]batchv1.CronJob
	eventually(t, 5*time.Minute, func() error {
		first = backupCronJobs(t, c)
		if len(first) < namespaces {
			return fmt.Errorf("%d of %d CronJobs", len(first), namespaces)
		}
		return nil
	})

	loads := make([]int, w.Minutes)
	for ns, cj := range first {
		off, ok := w.Offset(cj.Spec.Schedule)
		if !ok {
			t.Fatalf("%s: schedule %q is not a daily start in %s", ns, cj.Spec.Schedule, w)
		}
		if cj.Annotations[contract.AnnotationScheduleSource] != contract.ScheduleSourceWindow || cj.Annotations[contract.AnnotationBackupWindow] != w.String() {
			t.Errorf("%s: annotations %v do not say the start was chosen in %s", ns, cj.Annotations, w)
		}
		if cj.Spec.Suspend == nil || *cj.Spec.Suspend {
			t.Errorf("%s: suspend is %v, want false", ns, cj.Spec.Suspend)
		}
		loads[off]++
	}
	bound := (namespaces+w.Minutes-1)/w.Minutes + 2
	t.Logf("METRIC spread namespaces=%d window=%s busiest_minute=%d bound=%d empty_minutes=%d histogram(starts per minute from 21:00)=%s",
		namespaces, w, slices.Max(loads), bound, strings.Count(histogram(loads), "0"), histogram(loads))
	if m := slices.Max(loads); m > bound {
		t.Errorf("busiest minute has %d starts, want at most %d", m, bound)
	}

	// Restart: a new reconciler seeds its window from the CronJobs and reconciles every
	// namespace (the informer's initial list) without changing any.
	stop()
	before := reconciles(t)
	startReconciler(t, kube, cfg)
	var all corev1.NamespaceList
	if err := c.List(t.Context(), &all); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Minute, func() error {
		if n := reconciles(t) - before; n < float64(len(all.Items)) {
			return fmt.Errorf("%.0f of %d namespaces reconciled since the restart", n, len(all.Items))
		}
		return nil
	})
	after := backupCronJobs(t, c)
	if !slices.Equal(slices.Sorted(maps.Keys(first)), slices.Sorted(maps.Keys(after))) {
		t.Fatalf("the restart changed the set of CronJobs: %d before, %d after", len(first), len(after))
	}
	for ns, cj := range first {
		if got := after[ns]; got.Spec.Schedule != cj.Spec.Schedule || got.ResourceVersion != cj.ResourceVersion {
			t.Errorf("%s: schedule %q (resourceVersion %s) before the restart, %q (%s) after", ns,
				cj.Spec.Schedule, cj.ResourceVersion, got.Spec.Schedule, got.ResourceVersion)
		}
	}
}

// TestNothingStopsSilently: a namespace that stops being enabled keeps its CronJob,
// suspended, with an Event and a metric; enabled again it resumes at the same start;
// only the opt-out annotation deletes it. Retention and slot annotations reach the
// CronJob's env, an invalid one is reported.
func TestNothingStopsSilently(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := configtest.New(t, nil)
	startReconciler(t, kube, cfg)

	name := testenv.RandomName("leaving-")
	ns := enabledNamespace(name)
	ns.Annotations[contract.AnnotationBackupKeepWeekly] = "8"
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	update := func(change func(*corev1.Namespace)) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			if err := c.Get(t.Context(), client.ObjectKey{Name: name}, ns); err != nil {
				return err
			}
			change(ns)
			return c.Update(t.Context(), ns)
		})
	}
	get := func() (*batchv1.CronJob, error) {
		var cj batchv1.CronJob
		err := c.Get(t.Context(), client.ObjectKey{Namespace: name, Name: contract.BackupCronJobName}, &cj)
		return &cj, err
	}
	waitFor := func(step string, ok func(*batchv1.CronJob, error) error, state string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			if err := ok(get()); err != nil {
				return fmt.Errorf("%s: %w", step, err)
			}
			if got := cronJobState(t, name); got != state {
				return fmt.Errorf("%s: metric state %q, want %q", step, got, state)
			}
			return nil
		})
	}
	suspended := func(want bool) func(*batchv1.CronJob, error) error {
		return func(cj *batchv1.CronJob, err error) error {
			if err != nil {
				return err
			}
			if got := cj.Spec.Suspend != nil && *cj.Spec.Suspend; got != want {
				return fmt.Errorf("suspend = %v, want %v", got, want)
			}
			return nil
		}
	}

	waitFor("enabled", suspended(false), cronjobs.StateScheduled)
	cj, _ := get()
	schedule := cj.Spec.Schedule
	env := map[string]string{}
	for _, e := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	for k, v := range map[string]string{
		contract.EnvBackupKeepDaily: "7", contract.EnvBackupKeepWeekly: "8", contract.EnvBackupKeepMonthly: "3",
		contract.EnvBackupMaxConcurrentPerServer: "4", contract.EnvBackupSlotWaitTimeout: "2h0m0s",
	} {
		if env[k] != v {
			t.Errorf("CronJob env %s = %q, want %q", k, env[k], v)
		}
	}

	// A typo in the label is not "true": suspended, not deleted.
	update(func(n *corev1.Namespace) { n.Labels[contract.LabelEnabled] = "True" })
	waitFor("label typo", suspended(true), cronjobs.StateSuspended)
	waitEvent(t, c, name, corev1.EventTypeWarning, cronjobs.EventBackupSuspended, contract.AnnotationBackupOptOut)

	update(func(n *corev1.Namespace) { n.Labels[contract.LabelEnabled] = "true" })
	waitFor("enabled again", suspended(false), cronjobs.StateScheduled)
	if cj, _ := get(); cj.Spec.Schedule != schedule {
		t.Errorf("resumed at %q, was %q", cj.Spec.Schedule, schedule)
	}

	update(func(n *corev1.Namespace) { n.Annotations[contract.AnnotationBackupKeepDaily] = "0" })
	waitFor("invalid retention", suspended(false), cronjobs.StateInvalid)
	waitEvent(t, c, name, corev1.EventTypeWarning, cronjobs.EventBackupNotScheduled, contract.AnnotationBackupKeepDaily)

	update(func(n *corev1.Namespace) {
		delete(n.Annotations, contract.AnnotationBackupKeepDaily)
		delete(n.Labels, contract.LabelEnabled)
		n.Annotations[contract.AnnotationBackupOptOut] = "true"
	})
	waitFor("opted out", func(_ *batchv1.CronJob, err error) error {
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("CronJob still there (%v)", err)
		}
		return nil
	}, "")
	waitEvent(t, c, name, corev1.EventTypeNormal, cronjobs.EventBackupRemoved, "deleted")
}

func waitEvent(t *testing.T, c client.Client, ns, eventType, reason, note string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		var evs eventsv1.EventList
		if err := c.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == "Namespace" && e.Regarding.Name == ns && e.Reason == reason &&
				e.Type == eventType && strings.Contains(e.Note, note) {
				return nil
			}
		}
		return fmt.Errorf("no %s Event on namespace %s among %d", reason, ns, len(evs.Items))
	})
}

// TestSchedulesAsTheAPIServerSeesThem: a schedule annotation the webhook accepts is one
// the apiserver accepts, and one it refuses is refused here too (before, "99 99 * * *"
// passed the webhook's check and then failed every server-side apply, with no Event).
func TestSchedulesAsTheAPIServerSeesThem(t *testing.T) {
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.RandomName("schedules-")
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	for _, sched := range []string{"0 21 * * *", "15 22 * * 1-5", "*/20 21-22 * * MON-FRI", "0 0 29 2 *", "0 21 * * 7",
		"99 99 * * *", "0 25 * * *", "60 21 * * *", "0 21 32 * *", "0 21 * 13 *", "0 21 * * 8", "*/0 * * * *", "5-1 * * * *", "0 21 * * FOO"} {
		cj := &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns}, Spec: batchv1.CronJobSpec{
			Schedule: sched,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever, Containers: []corev1.Container{{Name: "c", Image: "busybox"}}}}}},
		}}
		apiErr := c.Create(t.Context(), cj, client.DryRunAll)
		if ours := config.ValidSchedule(sched); ours != (apiErr == nil) {
			t.Errorf("%q: ValidSchedule %v, the apiserver: %v", sched, ours, apiErr)
		}
	}
}

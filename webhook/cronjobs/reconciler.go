package cronjobs

import (
	"context"
	"fmt"
	"sync"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// FieldOwner is the server-side apply field manager of the CronJobs.
const FieldOwner = "smartbackup-webhook"

// Events recorded on a namespace.
const (
	// EventBackupNotScheduled: the namespace's settings are invalid.
	EventBackupNotScheduled = "SmartbackupBackupNotScheduled"
	// EventBackupSuspended: the namespace is no longer enabled; its CronJob is kept,
	// suspended.
	EventBackupSuspended = "SmartbackupBackupSuspended"
	// EventBackupRemoved: the opt-out annotation deleted the CronJob.
	EventBackupRemoved = "SmartbackupBackupRemoved"
)

// Reconciler keeps the CronJobs. Its requests are namespace names: a namespace's change,
// or a change to a CronJob the webhook manages (a hand edit is reverted, a deletion
// undone).
type Reconciler struct {
	// Client reads through the manager's cache (namespaces, and CronJobs labelled
	// app.kubernetes.io/managed-by=smartbackup) and writes to the apiserver.
	Client   client.Client
	Config   *config.Config
	Recorder events.EventRecorder

	mu     sync.Mutex
	spread *Spread // seeded from the CronJobs at first use
}

// SetupWithManager registers the reconciler with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	// A change to an object the webhook made brings its namespace back: a hand edit is
	// reverted, a deletion undone.
	owner := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[contract.LabelManagedBy] != contract.ManagedBy {
			return nil
		}
		ns := o.GetNamespace()
		if v := l[LabelVolumeNamespace]; v != "" { // PersistentVolumes, provisioning Jobs
			ns = v
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: ns}}}
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("smartbackup-cronjobs").
		For(&corev1.Namespace{}).
		Watches(&batchv1.CronJob{}, owner)
	if r.Config.Volume().Kind != "" { // file:// storage: the backup volumes
		b = b.Watches(&batchv1.Job{}, owner).
			Watches(&corev1.PersistentVolume{}, owner).
			Watches(&corev1.PersistentVolumeClaim{}, owner)
	}
	return b.Complete(r)
}

// Reconcile brings the CronJobs of one namespace to what its labels ask for. Nothing
// stops silently: a namespace that stops being enabled keeps its CronJob, suspended,
// with an Event and a metric; only the namespace's deletion or the explicit opt-out
// annotation deletes it.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: req.Name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.Name)
		}
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ns.Name == r.Config.SyncNamespace {
		if err := r.reconcileSync(ctx); err != nil {
			return reconcile.Result{}, err
		}
	}
	n := inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
	switch {
	case ns.DeletionTimestamp != nil:
		r.forget(ns.Name)
		if _, err := r.delete(ctx, ns.Name, contract.BackupCronJobName); err != nil {
			return reconcile.Result{}, err
		}
		if _, err := r.delete(ctx, ns.Name, contract.VerifyCronJobName); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, r.deleteVolumes(ctx, ns.Name)
	case ns.Annotations[contract.AnnotationBackupOptOut] == "true":
		r.forget(ns.Name)
		if _, err := r.delete(ctx, ns.Name, contract.VerifyCronJobName); err != nil {
			return reconcile.Result{}, err
		}
		deleted, err := r.delete(ctx, ns.Name, contract.BackupCronJobName)
		if deleted {
			r.event(ns.Name, corev1.EventTypeNormal, EventBackupRemoved, "Delete",
				"annotation %s=true: the backup CronJob and its Jobs are deleted; existing backups are kept", contract.AnnotationBackupOptOut)
		}
		return reconcile.Result{}, err
	case !n.Enabled():
		// Nothing to verify while backups are suspended: the verify CronJob goes.
		if _, err := r.delete(ctx, ns.Name, contract.VerifyCronJobName); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, r.suspend(ctx, ns.Name, ns.Labels[contract.LabelEnabled])
	}

	s, denial := inject.ParseBackup(n, r.Config)
	plan, err := PlanFor(n, r.Config)
	verifyServer, verr := VerifyServer(n, r.Config)
	if err == nil {
		err = verr
	}
	if denial != nil {
		err = denial
	}
	if err == nil {
		// The CronJob does not wait for the volumes: a volume that cannot be made yet
		// is retried, and the state says failed until it is there.
		wait, volErr := r.reconcileVolumes(ctx, r.volumeSettings(ctx, n, s))
		if err := r.place(ctx, ns.Name, &plan); err != nil {
			setState(ns.Name, StateFailed)
			return reconcile.Result{}, err
		}
		if err := r.apply(ctx, Backup(s, plan, r.Config)); err != nil {
			setState(ns.Name, StateFailed)
			return reconcile.Result{}, err
		}
		if err := r.reconcileVerify(ctx, s, verifyServer); err != nil {
			return reconcile.Result{}, err
		}
		if volErr != nil {
			setState(ns.Name, StateFailed)
			return reconcile.Result{}, volErr
		}
		setState(ns.Name, StateScheduled)
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	// An invalid setting is the administrator's to fix: keep the last good CronJob, say
	// why in an Event, and wait for the namespace to change (no requeue).
	setState(ns.Name, StateInvalid)
	log.Info("backup not scheduled: invalid namespace settings", "error", err.Error())
	r.event(ns.Name, corev1.EventTypeWarning, EventBackupNotScheduled, "Schedule", "%s", err.Error())
	return reconcile.Result{}, nil
}

func (r *Reconciler) event(ns, eventType, reason, action, format string, args ...any) {
	if r.Recorder != nil {
		r.Recorder.Eventf(namespaceRef(ns), nil, eventType, reason, action, format, args...)
	}
}

// place sets a window plan's schedule from the Spread; other plans give up the
// namespace's place in the window.
func (r *Reconciler) place(ctx context.Context, ns string, p *Plan) error {
	sp, err := r.spreadFor(ctx, p.Window)
	if err != nil {
		return err
	}
	if p.Source != contract.ScheduleSourceWindow {
		sp.Release(ns)
		return nil
	}
	p.Schedule = p.Window.Schedule(sp.Place(ns))
	return nil
}

// spreadFor returns the Spread, seeded at first use with the start of every backup
// CronJob that was placed in the current window, so that each keeps its start across
// webhook restarts.
func (r *Reconciler) spreadFor(ctx context.Context, w config.Window) (*Spread, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spread != nil {
		return r.spread, nil
	}
	if w.Minutes == 0 {
		w, _ = config.ParseWindow(r.Config.BackupWindow) // validated in Config
	}
	var list batchv1.CronJobList
	if err := r.Client.List(ctx, &list, client.MatchingLabels{contract.LabelManagedBy: contract.ManagedBy, LabelComponent: ComponentBackup}); err != nil {
		return nil, fmt.Errorf("listing the backup CronJobs: %w", err)
	}
	sp := NewSpread(w)
	kept := 0
	for _, cj := range list.Items {
		if cj.Name != contract.BackupCronJobName || cj.Annotations[contract.AnnotationScheduleSource] != contract.ScheduleSourceWindow ||
			cj.Annotations[contract.AnnotationBackupWindow] != w.String() {
			continue
		}
		if off, ok := w.Offset(cj.Spec.Schedule); ok {
			sp.Keep(cj.Namespace, off)
			kept++
		}
	}
	logf.FromContext(ctx).Info("backup window loaded", "window", w.String(), "minutes", w.Minutes, "startsKept", kept)
	r.spread = sp
	return sp, nil
}

// forget drops a namespace that has, or will have, no CronJob: its start and metrics.
func (r *Reconciler) forget(ns string) {
	r.mu.Lock()
	sp := r.spread
	r.mu.Unlock()
	if sp != nil {
		sp.Release(ns)
	}
	setState(ns, "")
}

// suspend keeps the CronJob of a namespace that is no longer enabled, suspended: its
// Jobs stop being created, its history and metrics stay, and the missing backups stay
// visible (alerts) until an administrator opts the namespace out explicitly.
func (r *Reconciler) suspend(ctx context.Context, ns, enabled string) error {
	var cj batchv1.CronJob
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: contract.BackupCronJobName}, &cj); err != nil {
		if apierrors.IsNotFound(err) {
			setState(ns, "") // never enabled, or opted out: nothing to report
		}
		return client.IgnoreNotFound(err)
	}
	if cj.Labels[contract.LabelManagedBy] != contract.ManagedBy {
		setState(ns, "")
		return nil
	}
	setState(ns, StateSuspended)
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return nil
	}
	patch := client.MergeFromWithOptions(cj.DeepCopy(), client.MergeFromWithOptimisticLock{})
	cj.Spec.Suspend = new(true)
	if err := r.Client.Patch(ctx, &cj, patch, client.FieldOwner(FieldOwner)); err != nil {
		return fmt.Errorf("suspending CronJob %q: %w", ns+"/"+cj.Name, err)
	}
	logf.FromContext(ctx).Info("CronJob suspended: namespace no longer enabled", "cronjob", cj.Name, "namespace", ns)
	r.event(ns, corev1.EventTypeWarning, EventBackupSuspended, "Suspend",
		"label %s=%q is not \"true\": backups are suspended (the CronJob is kept); set it to \"true\" to resume, or annotation %s=true to delete the CronJob",
		contract.LabelEnabled, enabled, contract.AnnotationBackupOptOut)
	return nil
}

func (r *Reconciler) reconcileSync(ctx context.Context) error {
	cj := Sync(r.Config)
	if cj == nil {
		_, err := r.delete(ctx, r.Config.SyncNamespace, contract.SyncCronJobName)
		return err
	}
	return r.apply(ctx, cj)
}

// apply server-side applies cj: fields the webhook owns are set (a hand edit is
// overwritten), fields others own are left alone, and an unchanged CronJob is not
// rewritten.
func (r *Reconciler) apply(ctx context.Context, cj *batchv1.CronJob) error {
	if err := r.applyObject(ctx, cj, "CronJob", cj.Namespace+"/"+cj.Name); err != nil {
		return err
	}
	logf.FromContext(ctx).V(1).Info("CronJob applied", "cronjob", cj.Name, "schedule", cj.Spec.Schedule)
	return nil
}

// applyObject server-side applies one object the webhook builds.
func (r *Reconciler) applyObject(ctx context.Context, o runtime.Object, kind, name string) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(o)
	if err != nil {
		return fmt.Errorf("converting %s %q: %w", kind, name, err)
	}
	obj := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(obj.Object, "status")
	unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "spec", "jobTemplate", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "spec", "jobTemplate", "spec", "template", "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying %s %q: %w", kind, name, err)
	}
	return nil
}

// delete removes a CronJob the webhook manages, and its Jobs; a CronJob of the same
// name without the managed-by label is someone else's and is left alone. It reports
// whether it deleted one.
func (r *Reconciler) delete(ctx context.Context, namespace, name string) (bool, error) {
	var cj batchv1.CronJob
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cj); err != nil {
		return false, client.IgnoreNotFound(err)
	}
	if cj.Labels[contract.LabelManagedBy] != contract.ManagedBy {
		return false, nil
	}
	err := r.Client.Delete(ctx, &cj, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &cj.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return false, fmt.Errorf("deleting CronJob %q: %w", namespace+"/"+name, err)
	}
	logf.FromContext(ctx).Info("CronJob deleted", "cronjob", name, "namespace", namespace)
	return err == nil, nil
}

// namespaceRef is a Namespace as an Event's subject, stored in that namespace (see
// admission.EventTarget).
func namespaceRef(name string) runtime.Object {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: name},
	}
}

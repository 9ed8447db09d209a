package cronjobs

import (
	"context"
	"fmt"

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

// EventBackupNotScheduled is recorded on a namespace whose settings are invalid.
const EventBackupNotScheduled = "SmartbackupBackupNotScheduled"

// Reconciler keeps the CronJobs. Its requests are namespace names: a namespace's change,
// or a change to a CronJob the webhook manages (a hand edit is reverted, a deletion
// undone).
type Reconciler struct {
	// Client reads through the manager's cache (namespaces, and CronJobs labelled
	// app.kubernetes.io/managed-by=smartbackup) and writes to the apiserver.
	Client   client.Client
	Config   *config.Config
	Recorder events.EventRecorder
}

// SetupWithManager registers the reconciler with mgr.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("smartbackup-cronjobs").
		For(&corev1.Namespace{}).
		Watches(&batchv1.CronJob{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if o.GetLabels()[contract.LabelManagedBy] != contract.ManagedBy {
				return nil
			}
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.GetNamespace()}}}
		})).
		Complete(r)
}

// Reconcile brings the CronJobs of one namespace to what its labels ask for.
func (r *Reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	log := logf.FromContext(ctx)
	var ns corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: req.Name}, &ns); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if ns.Name == r.Config.SyncNamespace {
		if err := r.reconcileSync(ctx); err != nil {
			return reconcile.Result{}, err
		}
	}
	n := inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
	if !n.Enabled() || ns.DeletionTimestamp != nil {
		return reconcile.Result{}, r.delete(ctx, ns.Name, contract.BackupCronJobName)
	}

	s, denial := inject.ParseBackup(n, r.Config)
	schedule, err := Schedule(n, r.Config)
	switch {
	case denial != nil:
		err = denial
	case err == nil:
		return reconcile.Result{}, r.apply(ctx, Backup(s, schedule, r.Config))
	}
	// An invalid setting is the administrator's to fix: keep the last good CronJob, say
	// why in an Event, and wait for the namespace to change (no requeue).
	log.Info("backup not scheduled: invalid namespace settings", "error", err.Error())
	if r.Recorder != nil {
		r.Recorder.Eventf(namespaceRef(ns.Name), nil, corev1.EventTypeWarning, EventBackupNotScheduled, "Schedule", "%s", err.Error())
	}
	return reconcile.Result{}, nil
}

func (r *Reconciler) reconcileSync(ctx context.Context) error {
	cj := Sync(r.Config)
	if cj == nil {
		return r.delete(ctx, r.Config.SyncNamespace, contract.SyncCronJobName)
	}
	return r.apply(ctx, cj)
}

// apply server-side applies cj: fields the webhook owns are set (a hand edit is
// overwritten), fields others own are left alone, and an unchanged CronJob is not
// rewritten.
func (r *Reconciler) apply(ctx context.Context, cj *batchv1.CronJob) error {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(cj)
	if err != nil {
		return fmt.Errorf("converting CronJob %q: %w", cj.Namespace+"/"+cj.Name, err)
	}
	obj := &unstructured.Unstructured{Object: u}
	unstructured.RemoveNestedField(obj.Object, "status")
	unstructured.RemoveNestedField(obj.Object, "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "spec", "jobTemplate", "metadata", "creationTimestamp")
	unstructured.RemoveNestedField(obj.Object, "spec", "jobTemplate", "spec", "template", "metadata", "creationTimestamp")
	if err := r.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(obj), client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
		return fmt.Errorf("applying CronJob %q: %w", cj.Namespace+"/"+cj.Name, err)
	}
	logf.FromContext(ctx).V(1).Info("CronJob applied", "cronjob", cj.Name, "schedule", cj.Spec.Schedule)
	return nil
}

// delete removes a CronJob the webhook manages, and its Jobs; a CronJob of the same
// name without the managed-by label is someone else's and is left alone.
func (r *Reconciler) delete(ctx context.Context, namespace, name string) error {
	var cj batchv1.CronJob
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cj); err != nil {
		return client.IgnoreNotFound(err)
	}
	if cj.Labels[contract.LabelManagedBy] != contract.ManagedBy {
		return nil
	}
	err := r.Client.Delete(ctx, &cj, client.PropagationPolicy(metav1.DeletePropagationBackground),
		client.Preconditions{UID: &cj.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting CronJob %q: %w", namespace+"/"+name, err)
	}
	logf.FromContext(ctx).Info("CronJob deleted", "cronjob", name, "namespace", namespace)
	return nil
}

// namespaceRef is a Namespace as an Event's subject, stored in that namespace (see
// admission.EventTarget).
func namespaceRef(name string) runtime.Object {
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: name},
	}
}

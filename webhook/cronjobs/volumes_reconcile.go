package cronjobs

import (
	"context"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// Events about a namespace's backup volumes.
const (
	// EventVolumeProvisioned: the namespace's directory and marker were made.
	EventVolumeProvisioned = "SmartbackupVolumeProvisioned"
	// EventVolumeNotProvisioned: the provisioning Job failed; it is retried.
	EventVolumeNotProvisioned = "SmartbackupVolumeNotProvisioned"
)

// How soon a namespace whose directory is being provisioned is looked at again.
const (
	provisionPoll  = 3 * time.Second
	provisionRetry = time.Minute
)

// volumeSettings are the backup settings s plus the restore source, only when the
// admission would accept it (the LGPD rule of inject.CheckSource: same customer,
// production, enabled): no namespace ever holds a claim of another customer's
// directory, even one whose pods are all denied.
func (r *Reconciler) volumeSettings(ctx context.Context, n inject.Namespace, s inject.Settings) inject.Settings {
	full, d := inject.ParseNamespace(n, r.Config)
	if d != nil || full.RestoreSource == "" || full.RestoreSource == full.Namespace || s.StoragePath == "" {
		return s
	}
	var src corev1.Namespace
	if err := r.Client.Get(ctx, client.ObjectKey{Name: full.RestoreSource}, &src); err != nil {
		return s // not found (or unreadable): no source volume until it is there
	}
	dec := inject.CheckSource(inject.Decision{Action: inject.Inject, Settings: full},
		&inject.Namespace{Name: src.Name, Labels: src.Labels, Annotations: src.Annotations})
	if dec.Action == inject.Inject {
		s.RestoreSource = full.RestoreSource
	}
	return s
}

// reconcileVolumes keeps the namespace's backup volumes (Claims) and provisions its
// own directory once. It returns how soon to look again while provisioning runs.
func (r *Reconciler) reconcileVolumes(ctx context.Context, s inject.Settings) (time.Duration, error) {
	want := Claims(s, r.Config)
	if len(want) == 0 {
		return 0, nil
	}
	var wait time.Duration
	hasSource := false
	for _, c := range want {
		hasSource = hasSource || c.PVC.Name == contract.ClaimSource
		// A volume's source is immutable: one that points elsewhere (the restore source
		// changed) is replaced, claim first.
		var have corev1.PersistentVolume
		err := r.Client.Get(ctx, client.ObjectKey{Name: c.PV.Name}, &have)
		if err == nil && !apiequality.Semantic.DeepEqual(have.Spec.PersistentVolumeSource, c.PV.Spec.PersistentVolumeSource) {
			if err := r.deleteClaim(ctx, c.PV.Name, s.Namespace, c.PVC.Name); err != nil {
				return 0, err
			}
			wait = provisionPoll
			continue
		}
		if err != nil && !apierrors.IsNotFound(err) {
			return 0, fmt.Errorf("reading PersistentVolume %q: %w", c.PV.Name, err)
		}
		if err := r.applyObject(ctx, c.PV, "PersistentVolume", c.PV.Name); err != nil {
			return 0, err
		}
		if err := r.applyObject(ctx, c.PVC, "PersistentVolumeClaim", s.Namespace+"/"+c.PVC.Name); err != nil {
			return 0, err
		}
	}
	if !hasSource {
		if err := r.deleteClaim(ctx, PVName(s.Namespace, true), s.Namespace, contract.ClaimSource); err != nil {
			return 0, err
		}
	}
	w, err := r.provision(ctx, s)
	if w > wait {
		wait = w
	}
	return wait, err
}

// provision runs the namespace's provisioning Job until it succeeds, then records it
// on the namespace's own PersistentVolume.
func (r *Reconciler) provision(ctx context.Context, s inject.Settings) (time.Duration, error) {
	var pv corev1.PersistentVolume
	if err := r.Client.Get(ctx, client.ObjectKey{Name: PVName(s.Namespace, false)}, &pv); err != nil {
		if apierrors.IsNotFound(err) { // just applied; the cache has not seen it yet
			return provisionPoll, nil
		}
		return 0, fmt.Errorf("reading PersistentVolume %q: %w", PVName(s.Namespace, false), err)
	}
	if pv.Annotations[contract.AnnotationProvisioned] == "true" {
		return 0, nil
	}
	want := ProvisionJob(s.Namespace, s.StoragePath, r.Config)
	var job batchv1.Job
	err := r.Client.Get(ctx, client.ObjectKeyFromObject(want), &job)
	switch {
	case apierrors.IsNotFound(err):
		if err := r.Client.Create(ctx, want); err != nil && !apierrors.IsAlreadyExists(err) {
			return 0, fmt.Errorf("creating Job %q: %w", want.Namespace+"/"+want.Name, err)
		}
		logf.FromContext(ctx).Info("provisioning the namespace's directory", "job", want.Name)
		return provisionPoll, nil
	case err != nil:
		return 0, fmt.Errorf("reading Job %q: %w", want.Namespace+"/"+want.Name, err)
	case job.Labels[LabelVolumeNamespace] != s.Namespace:
		return 0, fmt.Errorf("job %q exists and does not provision namespace %q", want.Namespace+"/"+want.Name, s.Namespace)
	case job.Status.Succeeded > 0:
		patch := client.MergeFrom(pv.DeepCopy())
		if pv.Annotations == nil {
			pv.Annotations = map[string]string{}
		}
		pv.Annotations[contract.AnnotationProvisioned] = "true"
		if err := r.Client.Patch(ctx, &pv, patch, client.FieldOwner(FieldOwner)); err != nil {
			return 0, fmt.Errorf("recording the provisioning on PersistentVolume %q: %w", pv.Name, err)
		}
		r.event(s.Namespace, corev1.EventTypeNormal, EventVolumeProvisioned, "Provision",
			"directory %s of the backup volume made and marked for this namespace", s.Namespace)
		return 0, r.deleteJob(ctx, &job)
	case finished(&job):
		r.event(s.Namespace, corev1.EventTypeWarning, EventVolumeNotProvisioned, "Provision",
			"Job %s/%s could not make this namespace's directory of the backup volume (see its pod's log); retried in %s",
			job.Namespace, job.Name, provisionRetry)
		return provisionRetry, r.deleteJob(ctx, &job)
	}
	return provisionPoll, nil
}

func finished(j *batchv1.Job) bool {
	for _, c := range j.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

func (r *Reconciler) deleteJob(ctx context.Context, j *batchv1.Job) error {
	err := r.Client.Delete(ctx, j, client.PropagationPolicy(metav1.DeletePropagationBackground), client.Preconditions{UID: &j.UID})
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("deleting Job %q: %w", j.Namespace+"/"+j.Name, err)
	}
	return nil
}

// deleteClaim removes one of a namespace's volumes the webhook made: the claim, then
// the PersistentVolume (Retain: the directory and its backups stay).
func (r *Reconciler) deleteClaim(ctx context.Context, pvName, ns, claim string) error {
	var pvc corev1.PersistentVolumeClaim
	err := r.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: claim}, &pvc)
	if err == nil && pvc.Labels[contract.LabelManagedBy] == contract.ManagedBy {
		if err := r.Client.Delete(ctx, &pvc, client.Preconditions{UID: &pvc.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting PersistentVolumeClaim %q: %w", ns+"/"+claim, err)
		}
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading PersistentVolumeClaim %q: %w", ns+"/"+claim, err)
	}
	var pv corev1.PersistentVolume
	err = r.Client.Get(ctx, client.ObjectKey{Name: pvName}, &pv)
	if err == nil && pv.Labels[contract.LabelManagedBy] == contract.ManagedBy && pv.Labels[LabelVolumeNamespace] == ns {
		if err := r.Client.Delete(ctx, &pv, client.Preconditions{UID: &pv.UID}); err != nil && !apierrors.IsNotFound(err) {
			return fmt.Errorf("deleting PersistentVolume %q: %w", pvName, err)
		}
		logf.FromContext(ctx).Info("backup volume removed; its directory is kept", "persistentVolume", pvName)
	} else if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading PersistentVolume %q: %w", pvName, err)
	}
	return nil
}

// deleteVolumes removes a deleted namespace's PersistentVolumes (its claims go with it).
func (r *Reconciler) deleteVolumes(ctx context.Context, ns string) error {
	for _, source := range []bool{false, true} {
		claim := contract.ClaimOwn
		if source {
			claim = contract.ClaimSource
		}
		if err := r.deleteClaim(ctx, PVName(ns, source), ns, claim); err != nil {
			return err
		}
	}
	return nil
}

// Package admission is the webhook's HTTP side: a controller-runtime typed defaulter for
// Pods that runs inject's pipeline (look up namespaces, decide, check the restore
// source, apply), records an Event when it denies a pod, and counts every outcome; and
// the one definition of the MutatingWebhookConfiguration that routes dbaccess pods to it.
//
// The handler decodes the pod, runs Default on it and answers with Diff of the pod's
// JSON before and after, anchored to the object as submitted: no patch operation is
// built by hand, and a returned error is a denial.
package admission

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	ctrladmission "sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// Event reasons recorded when a pod is denied.
const (
	// EventInjectionDenied: the namespace's settings are invalid.
	EventInjectionDenied = "SmartbackupInjectionDenied"
	// EventRestoreSourceDenied: the namespace may not restore from its source.
	EventRestoreSourceDenied = "SmartbackupRestoreSourceDenied"
)

var admissions = prometheus.NewCounterVec(prometheus.CounterOpts{
	Name: "smartbackup_webhook_admissions_total",
	Help: "Pod admission requests by outcome (skip, inject, deny, error), reason and the pod's namespace.",
}, []string{"action", "reason", "namespace"})

func init() { metrics.Registry.MustRegister(admissions) }

// Defaulter injects dbaccess pods. It reads namespaces from the manager's watch cache
// (the CronJob reconciler watches them anyway), so an admission costs no API call: a
// live read per request doubled the apiserver's work under a burst of pod creates
// and took 4 ms alone (345 ms at 200 concurrent creates on 2 cores). A namespace the
// cache does not have yet (created a moment ago) is read live. The cache trails a
// label change by the watch's delay (milliseconds); the labels are still only the
// administrator's.
type Defaulter struct {
	Config *config.Config
	// Cache gets namespaces first (the manager's cached client); nil reads live only.
	Cache client.Reader
	// Reader gets namespaces the cache does not have (the manager's API reader).
	Reader client.Reader
	// Recorder records an Event when a pod is denied; nil records none.
	Recorder events.EventRecorder
}

var _ ctrladmission.Defaulter[*corev1.Pod] = (*Defaulter)(nil)

// NewWebhook is the admission webhook serving d at Path.
func NewWebhook(scheme *runtime.Scheme, d *Defaulter) *ctrladmission.Webhook {
	return &ctrladmission.Webhook{Handler: &handler{defaulter: d, decoder: ctrladmission.NewDecoder(scheme)}}
}

// handler is controller-runtime's defaulter handler (WithDefaulter) with Diff in place
// of its general JSON diff: decode, default, marshal, diff, anchor, encode. The pod is
// marshalled before and after Default by the same types, so a field the apiserver
// knows and our types do not is neither removed nor rewritten.
type handler struct {
	defaulter *Defaulter
	decoder   ctrladmission.Decoder
}

func (h *handler) Handle(ctx context.Context, req ctrladmission.Request) ctrladmission.Response {
	if req.Operation == admissionv1.Delete {
		return ctrladmission.Allowed("")
	}
	ctx = ctrladmission.NewContextWithRequest(ctx, req)
	var pod corev1.Pod
	if err := h.decoder.Decode(req, &pod); err != nil {
		return ctrladmission.Errored(http.StatusBadRequest, err)
	}
	before, err := json.Marshal(&pod)
	if err != nil {
		return ctrladmission.Errored(http.StatusInternalServerError, err)
	}
	if err := h.defaulter.Default(ctx, &pod); err != nil {
		var st apierrors.APIStatus
		if errors.As(err, &st) {
			status := st.Status()
			return ctrladmission.Response{AdmissionResponse: admissionv1.AdmissionResponse{Allowed: false, Result: &status}}
		}
		return ctrladmission.Denied(err.Error())
	}
	after, err := json.Marshal(&pod)
	if err != nil {
		return ctrladmission.Errored(http.StatusInternalServerError, err)
	}
	if bytes.Equal(before, after) {
		return ctrladmission.Allowed("")
	}
	p, err := patch(req.Object.Raw, before, after)
	if err != nil {
		return ctrladmission.Errored(http.StatusInternalServerError, err)
	}
	resp := ctrladmission.Allowed("")
	if p != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = p, &pt
	}
	return resp
}

// Default implements admission.Defaulter: it mutates pod in place, or returns the
// denial as an error.
func (d *Defaulter) Default(ctx context.Context, pod *corev1.Pod) error {
	log := logf.FromContext(ctx)
	req, err := ctrladmission.RequestFromContext(ctx)
	if err != nil {
		return apierrors.NewBadRequest("smartbackup: no admission request in context")
	}
	nsName := req.Namespace
	if nsName == "" {
		nsName = pod.Namespace
	}
	if req.Operation != admissionv1.Create {
		admissions.WithLabelValues(inject.Skip.String(), string(inject.ReasonNotCreate), nsName).Inc()
		log.V(1).Info("pod passed through", "reason", inject.ReasonNotCreate, "operation", req.Operation)
		return nil
	}

	ns, err := d.lookup(ctx, nsName)
	if err == nil && ns == nil {
		err = fmt.Errorf("namespace %q of the pod does not exist", nsName)
	}
	if err != nil {
		admissions.WithLabelValues("error", "namespace_lookup", nsName).Inc()
		log.Error(err, "looking up the pod's namespace failed")
		return apierrors.NewInternalError(fmt.Errorf("smartbackup: looking up namespace %q: %w", nsName, err))
	}

	dec, err := inject.Run(ctx, pod, *ns, d.lookup, d.Config)
	if err != nil {
		admissions.WithLabelValues("error", "namespace_lookup", nsName).Inc()
		log.Error(err, "looking up the restore source failed")
		return apierrors.NewInternalError(fmt.Errorf("smartbackup: %w", err))
	}
	admissions.WithLabelValues(dec.Action.String(), string(dec.Reason), nsName).Inc()

	switch dec.Action {
	case inject.Skip:
		log.V(1).Info("pod passed through", "reason", dec.Reason)
		return nil
	case inject.Deny:
		log.Info("pod denied", "reason", dec.Reason, "message", dec.Message)
		if req.DryRun == nil || !*req.DryRun {
			d.recordDenial(pod, nsName, dec)
		}
		return fmt.Errorf("smartbackup: %s (%s)", dec.Message, dec.Reason)
	}
	s := dec.Settings
	log.Info("pod injected", "reason", dec.Reason, "product", s.Product, "environment", s.Environment,
		"restoreSource", s.RestoreSource, "storage", s.StorageURL, "secret", s.SecretName,
		"restoreRequest", s.RequestID, "status", pod.Annotations[contract.AnnotationInjected])
	return nil
}

// lookup is inject.Lookup over the cache, then the API reader: nil when the namespace
// does not exist.
func (d *Defaulter) lookup(ctx context.Context, name string) (*inject.Namespace, error) {
	var ns corev1.Namespace
	if d.Cache != nil {
		err := d.Cache.Get(ctx, client.ObjectKey{Name: name}, &ns)
		if err == nil {
			return &inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, nil
		}
		if !apierrors.IsNotFound(err) {
			logf.FromContext(ctx).V(1).Info("namespace cache unavailable; reading it live", "namespace", name, "error", err.Error())
		}
	}
	if err := d.Reader.Get(ctx, client.ObjectKey{Name: name}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("getting namespace %q: %w", name, err)
	}
	return &inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}, nil
}

// recordDenial records a Warning Event on the pod's controller (a StatefulSet's or a
// ReplicaSet's pods are denied over and over; `kubectl describe` of the owner shows why)
// or, for a bare pod, on its namespace. The pod itself does not exist to carry it.
func (d *Defaulter) recordDenial(pod *corev1.Pod, namespace string, dec inject.Decision) {
	if d.Recorder == nil {
		return
	}
	reason := EventInjectionDenied
	switch dec.Reason {
	case inject.ReasonSourceNotFound, inject.ReasonSourceNotEnabled, inject.ReasonSourceNotProduction,
		inject.ReasonSourceOtherCustomer, inject.ReasonSourceOtherProduct, inject.ReasonProductionForeignSource,
		inject.ReasonMissingRestoreSource, inject.ReasonInvalidRestoreSource:
		reason = EventRestoreSourceDenied
	}
	d.Recorder.Eventf(EventTarget(pod, namespace), nil, corev1.EventTypeWarning, reason, "Inject", "%s", dec.Message)
}

// EventTarget is what a denial's Event is about: the pod's controller, else its
// namespace. A Namespace is cluster-scoped, but its reference is given the namespace
// itself as namespace so the Event is stored there, where `kubectl get events -n NS`
// shows it, instead of in default.
func EventTarget(pod *corev1.Pod, namespace string) runtime.Object {
	if owner := metav1.GetControllerOf(pod); owner != nil {
		return &metav1.PartialObjectMetadata{
			TypeMeta:   metav1.TypeMeta{APIVersion: owner.APIVersion, Kind: owner.Kind},
			ObjectMeta: metav1.ObjectMeta{Name: owner.Name, Namespace: namespace, UID: owner.UID},
		}
	}
	return &metav1.PartialObjectMetadata{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: namespace, Namespace: namespace},
	}
}

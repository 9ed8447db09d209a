// Package outcomes makes the outcome of every restore and backup visible in
// Kubernetes: the leader watches the pods the webhook cares about (dbaccess pods and
// backup Jobs' pods, selected by the product label, in enabled namespaces) and turns
// each termination of the restore init container or the backup container into an
// Event on the pod and metrics, from the one-line summary the container wrote as its
// termination message (contract.Summary: no data).
package outcomes

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/smartbackup/smartbackup/internal/contract"
)

// Events recorded on the pods (their reasons are part of the contract: the operator
// tools read them).
const (
	EventRestored      = contract.EventRestored
	EventRestoreFailed = contract.EventRestoreFailed
	EventBackedUp      = contract.EventBackedUp
	EventBackupFailed  = contract.EventBackupFailed
)

// The backup CronJob's container (cronjobs.Backup) and its pods' component label.
const (
	backupContainer = "backup"
	labelComponent  = "app.kubernetes.io/component"
	componentBackup = "backup"
)

var (
	restores = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartbackup_restores_total",
		Help: "Terminations of the restore init container, by namespace and outcome (restored, exists, created-empty, failed, unreported).",
	}, []string{"namespace", "outcome"})
	restoreSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "smartbackup_restore_duration_seconds",
		Help:    "Duration of the restore init container's runs, by namespace.",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400},
	}, []string{"namespace"})
	backups = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "smartbackup_backups_total",
		Help: "Terminations of the backup container, by namespace and outcome (succeeded, failed, unreported).",
	}, []string{"namespace", "outcome"})
	backupBytes = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "smartbackup_backup_size_bytes",
		Help: "Size of the object of the namespace's last successful backup (from its Job's summary).",
	}, []string{"namespace"})
	backupSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "smartbackup_backup_duration_seconds",
		Help:    "Duration of the backup container's runs, by namespace.",
		Buckets: []float64{1, 5, 15, 60, 300, 900, 1800, 3600, 7200, 14400},
	}, []string{"namespace"})
)

func init() {
	metrics.Registry.MustRegister(restores, restoreSeconds, backups, backupSeconds, backupBytes)
}

// Watcher reports terminations. It runs on the leader only.
type Watcher struct {
	// Client reads through the manager's cache: pods with the product label, and
	// namespaces.
	Client   client.Client
	Recorder events.EventRecorder
	// Since: terminations that finished earlier were reported by an earlier leader
	// (or happened before this one started) and are not reported again.
	Since time.Time

	mu   sync.Mutex
	seen map[termination]bool
}

// termination identifies one run of one container of one pod.
type termination struct {
	pod       types.UID
	container string
	attempt   int32
}

// Predicate selects the pods the webhook cares about (by the product label) once
// their restore or backup container has terminated at least once: every other event
// of such a pod (its creation, scheduling, readiness, deletion before it ran) has
// nothing to report, and reconciling it cost a copy of the pod and of its namespace.
func Predicate() predicate.Predicate {
	return predicate.NewPredicateFuncs(func(o client.Object) bool {
		p := o.GetLabels()[contract.LabelProduct]
		if p != contract.ProductSmartERP && p != contract.ProductSistemico {
			return false
		}
		pod, ok := o.(*corev1.Pod)
		if !ok {
			return false
		}
		_, statuses, name := watched(pod)
		for _, st := range statuses {
			if st.Name == name && (st.State.Terminated != nil || st.LastTerminationState.Terminated != nil) {
				return true
			}
		}
		return false
	})
}

// watched is what a pod's outcomes are: the kind of run, the statuses of the
// containers it runs in and the container's name (a backup Job's pod: the backup
// container; any other pod: the restore init container).
func watched(pod *corev1.Pod) (kind string, statuses []corev1.ContainerStatus, name string) {
	if pod.Labels[labelComponent] == componentBackup && pod.Labels[contract.LabelManagedBy] == contract.ManagedBy {
		return contract.SummaryBackup, pod.Status.ContainerStatuses, backupContainer
	}
	return contract.SummaryRestore, pod.Status.InitContainerStatuses, contract.InitContainerName
}

// SetupWithManager registers the watcher.
func (w *Watcher) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("smartbackup-outcomes").
		For(&corev1.Pod{}, builder.WithPredicates(Predicate())).
		Complete(w)
}

// Reconcile reports the terminations of one pod not reported yet.
func (w *Watcher) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	var pod corev1.Pod
	if err := w.Client.Get(ctx, req.NamespacedName, &pod); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	var ns corev1.Namespace
	if err := w.Client.Get(ctx, client.ObjectKey{Name: pod.Namespace}, &ns); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, fmt.Errorf("reading namespace %q: %w", pod.Namespace, err)
	}
	if ns.Labels[contract.LabelEnabled] != "true" {
		return reconcile.Result{}, nil
	}
	kind, statuses, name := watched(&pod)
	for _, st := range statuses {
		if st.Name != name {
			continue
		}
		// The last run, when the kubelet restarted the container, then the current one.
		if t := st.LastTerminationState.Terminated; t != nil && st.RestartCount > 0 {
			w.report(&pod, kind, st.RestartCount-1, t)
		}
		if t := st.State.Terminated; t != nil {
			w.report(&pod, kind, st.RestartCount, t)
		}
	}
	return reconcile.Result{}, nil
}

func (w *Watcher) report(pod *corev1.Pod, kind string, attempt int32, t *corev1.ContainerStateTerminated) {
	k := termination{pod.UID, kind, attempt}
	w.mu.Lock()
	if w.seen == nil {
		w.seen = map[termination]bool{}
	}
	done := w.seen[k]
	w.seen[k] = true
	w.mu.Unlock()
	if done || t.FinishedAt.Time.Before(w.Since) {
		return
	}
	s, err := contract.ParseSummary(t.Message)
	if err != nil || s.Kind != kind || int32(s.ExitCode) != t.ExitCode {
		// Killed before it wrote one (OOMKilled, evicted), or not our program's.
		s = contract.Summary{Kind: kind, Outcome: "unreported", ExitCode: int(t.ExitCode),
			Seconds: t.FinishedAt.Sub(t.StartedAt.Time).Seconds(), Reason: contract.ExitMeaning(kind, int(t.ExitCode))}
	}
	ok := s.Outcome != contract.OutcomeFailed && s.Outcome != "unreported"
	var note string
	switch {
	case ok && s.Object != "":
		note = fmt.Sprintf("%s %s: %s (sha256 %s) in %.1fs", kind, s.Outcome, s.Object, short(s.SHA256), s.Seconds)
	case ok:
		note = fmt.Sprintf("%s %s in %.1fs", kind, s.Outcome, s.Seconds)
	default:
		note = fmt.Sprintf("%s %s: exit %d (%s; %s), attempt %d, after %.1fs; the container's log says more",
			kind, s.Outcome, t.ExitCode, s.Reason, t.Reason, attempt+1, s.Seconds)
	}
	reason, eventType := EventRestored, corev1.EventTypeNormal
	switch {
	case kind == contract.SummaryRestore && !ok:
		reason, eventType = EventRestoreFailed, corev1.EventTypeWarning
	case kind == contract.SummaryBackup && ok:
		reason = EventBackedUp
	case kind == contract.SummaryBackup:
		reason, eventType = EventBackupFailed, corev1.EventTypeWarning
	}
	if w.Recorder != nil {
		w.Recorder.Eventf(pod, nil, eventType, reason, strings.ToUpper(kind[:1])+kind[1:], "%s", note)
	}
	if kind == contract.SummaryRestore {
		restores.WithLabelValues(pod.Namespace, s.Outcome).Inc()
		restoreSeconds.WithLabelValues(pod.Namespace).Observe(s.Seconds)
	} else {
		backups.WithLabelValues(pod.Namespace, s.Outcome).Inc()
		backupSeconds.WithLabelValues(pod.Namespace).Observe(s.Seconds)
		if ok && s.Bytes > 0 {
			backupBytes.WithLabelValues(pod.Namespace).Set(float64(s.Bytes))
		}
	}
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12] + "…"
	}
	return sha
}

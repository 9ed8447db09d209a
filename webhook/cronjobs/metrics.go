package cronjobs

import (
	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// States of a namespace's backup CronJob (the state label of smartbackup_backup_cronjob_state).
const (
	// StateScheduled: enabled, the CronJob is as the namespace asks.
	StateScheduled = "scheduled"
	// StateSuspended: no longer enabled, the CronJob is kept, suspended.
	StateSuspended = "suspended"
	// StateInvalid: enabled, but its settings are invalid: the last good CronJob (if
	// any) is kept and an Event says why.
	StateInvalid = "invalid"
	// StateFailed: enabled, the CronJob could not be written (retried).
	StateFailed = "failed"
)

var states = []string{StateScheduled, StateSuspended, StateInvalid, StateFailed}

// cronJobState is 1 for the current state of each namespace's backup CronJob. A
// namespace that is not enabled and has no CronJob has no series. Only the leader
// (which runs the reconciler) exports it.
var cronJobState = prometheus.NewGaugeVec(prometheus.GaugeOpts{
	Name: "smartbackup_backup_cronjob_state",
	Help: "1 for the state of a namespace's backup CronJob: scheduled, suspended (namespace no longer enabled), invalid (enabled, invalid settings) or failed (enabled, CronJob not written).",
}, []string{"namespace", "state"})

func init() { metrics.Registry.MustRegister(cronJobState) }

// setState makes state the namespace's one series; "" removes them all.
func setState(ns, state string) {
	for _, s := range states {
		if s == state {
			cronJobState.WithLabelValues(ns, s).Set(1)
		} else {
			cronJobState.DeleteLabelValues(ns, s)
		}
	}
}

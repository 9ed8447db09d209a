package cronjobs

import (
	"fmt"
	"strconv"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// Plan is what a namespace's backup CronJob runs with beyond its database settings:
// when it starts and how many backups it keeps.
type Plan struct {
	// Schedule is the CronJob's schedule; empty until the reconciler places a
	// ScheduleSourceWindow plan in the window.
	Schedule string
	// Source is contract.ScheduleSourceWindow, …Namespace or …Operator.
	Source string
	// Window is the backup window a ScheduleSourceWindow start is chosen in.
	Window config.Window
	// KeepDaily, KeepWeekly and KeepMonthly are the retention.
	KeepDaily, KeepWeekly, KeepMonthly int
	// MaxConcurrentPerServer is the number of dump slots per database server, 0 for
	// no limit.
	MaxConcurrentPerServer int
}

// PlanFor reads a namespace's schedule, retention and slot annotations over the
// operator's defaults. A malformed annotation is an error naming it.
func PlanFor(ns inject.Namespace, cfg *config.Config) (Plan, error) {
	p := Plan{
		KeepDaily: cfg.BackupKeepDaily, KeepWeekly: cfg.BackupKeepWeekly, KeepMonthly: cfg.BackupKeepMonthly,
		MaxConcurrentPerServer: cfg.BackupMaxConcurrentPerServer,
	}
	var err error
	if p.Schedule, err = Schedule(ns, cfg); err != nil {
		return Plan{}, err
	}
	switch _, annotated := ns.Annotations[contract.AnnotationBackupSchedule]; {
	case annotated:
		p.Source = contract.ScheduleSourceNamespace
	case p.Schedule != "":
		p.Source = contract.ScheduleSourceOperator
	default:
		p.Source = contract.ScheduleSourceWindow
		p.Window, _ = config.ParseWindow(cfg.BackupWindow) // validated in Config
	}
	for _, a := range []struct {
		key      string
		min, max int
		dst      *int
	}{
		{contract.AnnotationBackupKeepDaily, 1, config.MaxKeep, &p.KeepDaily},
		{contract.AnnotationBackupKeepWeekly, 0, config.MaxKeep, &p.KeepWeekly},
		{contract.AnnotationBackupKeepMonthly, 0, config.MaxKeep, &p.KeepMonthly},
		{contract.AnnotationBackupMaxConcurrentPerServer, 0, config.MaxSlots, &p.MaxConcurrentPerServer},
	} {
		v, ok := ns.Annotations[a.key]
		if !ok {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < a.min || n > a.max || strconv.Itoa(n) != v {
			return Plan{}, fmt.Errorf("namespace %q: annotation %s=%q is not a number from %d to %d", ns.Name, a.key, v, a.min, a.max)
		}
		*a.dst = n
	}
	return p, nil
}

// Schedule is the namespace's explicit backup schedule: its smartbackup.io/backup-schedule
// annotation, else the operator's BACKUP_SCHEDULE, else "" (a start in the backup
// window). A malformed annotation is an error.
func Schedule(ns inject.Namespace, cfg *config.Config) (string, error) {
	v, ok := ns.Annotations[contract.AnnotationBackupSchedule]
	if !ok {
		return cfg.BackupSchedule, nil
	}
	if !config.ValidSchedule(v) {
		return "", fmt.Errorf("namespace %q: annotation %s=%q is not a five-field cron expression", ns.Name, contract.AnnotationBackupSchedule, v)
	}
	return v, nil
}

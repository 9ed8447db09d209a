package contract

// Fleet operations: how hundreds of namespaces share the backup window and the
// database servers, and how a namespace leaves.

// Namespace annotations of fleet operations (admin-controlled like the others).
const (
	// AnnotationBackupKeepDaily, AnnotationBackupKeepWeekly and
	// AnnotationBackupKeepMonthly override the operator's retention for one namespace
	// (BACKUP_KEEP_DAILY, BACKUP_KEEP_WEEKLY, BACKUP_KEEP_MONTHLY).
	AnnotationBackupKeepDaily   = "smartbackup.io/backup-keep-daily"
	AnnotationBackupKeepWeekly  = "smartbackup.io/backup-keep-weekly"
	AnnotationBackupKeepMonthly = "smartbackup.io/backup-keep-monthly"
	// AnnotationBackupMaxConcurrentPerServer overrides the operator's
	// BACKUP_MAX_CONCURRENT_PER_SERVER for one namespace's backups.
	AnnotationBackupMaxConcurrentPerServer = "smartbackup.io/backup-max-concurrent-per-server"
	// AnnotationBackupOptOut, set to "true", deletes the namespace's backup CronJob (and
	// its Jobs). Without it a namespace that stops being enabled keeps its CronJob,
	// suspended, so that its missing backups stay visible.
	AnnotationBackupOptOut = "smartbackup.io/backup-opt-out"
)

// Annotations the webhook writes on the backup CronJob, saying where its schedule
// comes from.
const (
	// AnnotationScheduleSource is window (a start chosen in BACKUP_WINDOW), namespace
	// (the namespace's backup-schedule annotation) or operator (BACKUP_SCHEDULE).
	AnnotationScheduleSource = "smartbackup.io/schedule-source"
	// AnnotationBackupWindow is the window a start was chosen in.
	AnnotationBackupWindow = "smartbackup.io/backup-window"
)

// Values of AnnotationScheduleSource.
const (
	ScheduleSourceWindow    = "window"
	ScheduleSourceNamespace = "namespace"
	ScheduleSourceOperator  = "operator"
)

package contract

// Namespace labels. Only cluster administrators may set labels on a namespace (tenants
// usually may edit their own pods but not their namespace), so everything that decides
// where a namespace's backups go and whose backup it restores is read from here and from
// the operator's configuration, never from a pod.
const (
	// LabelEnabled opts a namespace in when its value is "true": its dbaccess pods get
	// the restore init container and it gets the nightly backup CronJob.
	LabelEnabled = "smartbackup.io/enabled"
	// LabelProduct is smarterp or sistemico. On a namespace it chooses the storage URL
	// (from the operator's configuration); on a pod it only selects the pod, and must
	// agree with the namespace's.
	LabelProduct = "smartbackup.io/product"
	// LabelEnvironment is production, homologation or internal-dev.
	LabelEnvironment = "smartbackup.io/environment"
	// LabelCustomer is the customer id. A homologation or internal-dev namespace may
	// restore only from a production namespace with the same customer.
	LabelCustomer = "smartbackup.io/customer"
	// LabelRestoreSource is the name of the production namespace whose latest backup a
	// homologation or internal-dev namespace restores. A production namespace restores
	// from itself and needs no value (or its own name).
	LabelRestoreSource = "smartbackup.io/restore-source"
)

// Namespace annotations, admin-controlled like the labels above.
const (
	// AnnotationDatabaseEndpoint is the PostgreSQL host (DATABASE_ENDPOINT). Required.
	AnnotationDatabaseEndpoint = "smartbackup.io/database-endpoint"
	// AnnotationDatabasePort is the PostgreSQL port (DATABASE_PORT, default 5432).
	AnnotationDatabasePort = "smartbackup.io/database-port"
	// AnnotationDatabaseName is the database dbaccess uses (DATABASE_NAME): an
	// identifier of at most 40 characters. Required: the restore creates exactly this
	// database and the backup dumps it.
	AnnotationDatabaseName = "smartbackup.io/database-name"
	// AnnotationDatabaseCodepage is the encoding (DATABASE_CODEPAGE; default from the
	// operator's configuration, WIN1252).
	AnnotationDatabaseCodepage = "smartbackup.io/database-codepage"
	// AnnotationDatabaseLocale is the LC_COLLATE/LC_CTYPE of a restored database
	// (DATABASE_LOCALE, optional).
	AnnotationDatabaseLocale = "smartbackup.io/database-locale"
	// AnnotationDatabaseExtensions is a comma list of extensions to create
	// (DATABASE_EXTENSIONS, optional).
	AnnotationDatabaseExtensions = "smartbackup.io/database-extensions"
	// AnnotationDatabaseSecret names the Secret in the namespace holding the keys
	// DATABASE_USER, DATABASE_PASSWORD, DATABASE_ADMIN_USER and DATABASE_ADMIN_PASSWORD
	// (default smartbackup-database). Pods reference it; its values never pass through
	// the webhook.
	AnnotationDatabaseSecret = "smartbackup.io/database-secret"
	// AnnotationRestoreOnMissingBackup is fail or empty (RESTORE_ON_MISSING_BACKUP;
	// default from the operator's configuration).
	AnnotationRestoreOnMissingBackup = "smartbackup.io/restore-on-missing-backup"
	// AnnotationRestoreRequest is a force-restore request id (RESTORE_REQUEST_ID): the
	// next dbaccess pod restores once more when it differs from the id recorded in the
	// database. It is a namespace annotation, not a pod one, because a forced restore
	// drops the database and may copy production data in: an administrator's act.
	AnnotationRestoreRequest = "smartbackup.io/restore-request"
	// AnnotationRestoreRequestSource is production (default) or own
	// (RESTORE_REQUEST_SOURCE): which latest backup a forced restore uses.
	AnnotationRestoreRequestSource = "smartbackup.io/restore-request-source"
	// AnnotationMaskingConfigMap names the ConfigMap in the namespace whose key
	// masking.sql is run on a restored database before it is swapped in
	// (RESTORE_MASKING_SQL). Internal-dev namespaces always get it (default
	// smartbackup-masking; the pod does not start without it); other environments only
	// when this annotation is set. Restrict who may edit that ConfigMap.
	AnnotationMaskingConfigMap = "smartbackup.io/masking-configmap"
	// AnnotationDatabaseSSLMode is libpq's sslmode for the restore and the backup
	// (DATABASE_SSLMODE: disable, allow, prefer, require, verify-ca, verify-full;
	// default prefer).
	AnnotationDatabaseSSLMode = "smartbackup.io/database-sslmode"
	// AnnotationDatabaseCAConfigMap names the ConfigMap in the namespace whose key
	// ca.crt (DatabaseCAKey) holds the CAs that sign the server's certificate: mounted
	// read-only into the restore init container and the backup CronJob, with
	// DATABASE_SSLROOTCERT pointing at it. Required by verify-ca and verify-full.
	AnnotationDatabaseCAConfigMap = "smartbackup.io/database-ca-configmap"
	// AnnotationRestoreCPU and AnnotationRestoreMemory set the restore init
	// container's CPU and memory, request and limit alike (a Guaranteed dbaccess pod
	// stays Guaranteed), instead of RESTORE_CPU / RESTORE_MEMORY.
	AnnotationRestoreCPU    = "smartbackup.io/restore-cpu"
	AnnotationRestoreMemory = "smartbackup.io/restore-memory"
	// AnnotationDatabaseCASecret is AnnotationDatabaseCAConfigMap's alternative: a
	// Secret with the key ca.crt. At most one of the two.
	AnnotationDatabaseCASecret = "smartbackup.io/database-ca-secret"
	// AnnotationBackupSchedule overrides the nightly CronJob's schedule for one
	// namespace (a five-field cron expression in the CronJob's time zone).
	AnnotationBackupSchedule = "smartbackup.io/backup-schedule"
)

// Pod annotations written by the webhook.
const (
	// AnnotationInjected marks an injected pod with the injector's version and a hash
	// of what it injected, so that a second pass changes nothing.
	AnnotationInjected = "smartbackup.io/injected"
)

// Products and the standard labels the webhook reads or writes.
const (
	ProductSmartERP  = "smarterp"
	ProductSistemico = "sistemico"

	// LabelAppName is the standard name label; dbaccess pods carry
	// app.kubernetes.io/name=dbaccess (the default selector, configurable).
	LabelAppName = "app.kubernetes.io/name"
	// LabelManagedBy marks the objects the webhook owns (ManagedBy).
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedBy is LabelManagedBy's value on the CronJobs the webhook creates.
	ManagedBy = "smartbackup"
	// DBAccessName is the default value of LabelAppName on dbaccess pods.
	DBAccessName = "dbaccess"
)

// Names of what the webhook injects or creates.
const (
	// InitContainerName is the injected restore init container.
	InitContainerName = "smartbackup-restore"
	// BackupCronJobName is the nightly backup CronJob in each enabled namespace.
	BackupCronJobName = "smartbackup-backup"
	// SyncCronJobName is the 06:00 volume copy CronJob in the operator's namespace.
	SyncCronJobName = "smartbackup-sync"
	// ClaimOwn and ClaimSource are, in each enabled namespace of a file:// product, the
	// PersistentVolumeClaims of its own directory of the backup volume (read-write, for
	// its backup CronJob) and of its restore source's (read-only); the reconciler makes
	// them, each pre-bound to a PersistentVolume rooted at that directory alone.
	ClaimOwn    = "smartbackup-backups-own"
	ClaimSource = "smartbackup-backups-source"
	// AnnotationProvisioned on a namespace's own PersistentVolume: its directory and
	// marker were made (cronbackup provision).
	AnnotationProvisioned = "smartbackup.io/provisioned"
	// DefaultDatabaseSecret is the Secret read when AnnotationDatabaseSecret is absent.
	DefaultDatabaseSecret = "smartbackup-database"
	// ScratchDir is where the init container spools the archive (RESTORE_SCRATCH_DIR).
	ScratchDir = "/scratch"
	// DefaultMaskingConfigMap is the ConfigMap read when AnnotationMaskingConfigMap is
	// absent from an internal-dev namespace.
	DefaultMaskingConfigMap = "smartbackup-masking"
	// MaskingKey is the ConfigMap key holding the masking SQL.
	MaskingKey = "masking.sql"
	// MaskingDir is where the masking ConfigMap is mounted in the init container.
	MaskingDir = "/etc/smartbackup/masking"
	// DatabaseCAKey is the ConfigMap or Secret key holding the database server's CA.
	DatabaseCAKey = "ca.crt"
	// DatabaseCADir is where that ConfigMap or Secret is mounted (DATABASE_SSLROOTCERT
	// is DatabaseCADir/DatabaseCAKey).
	DatabaseCADir = "/etc/smartbackup/database-ca"
)

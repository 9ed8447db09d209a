// Package contract is the one list of environment variables, labels and annotations
// that the binaries agree on: the webhook injects exactly these names, initrestore and
// cronbackup read exactly these names (their config structs are checked against this
// list by tests), and the operators set exactly these labels.
package contract

// Database connection, read by initrestore and cronbackup. Names follow the operations
// page (DATABASE_ENDPOINT, DATABASE_PORT, DATABASE_CODEPAGE).
const (
	EnvDatabaseEndpoint = "DATABASE_ENDPOINT"
	EnvDatabasePort     = "DATABASE_PORT"
	EnvDatabaseName     = "DATABASE_NAME"
	// EnvDatabaseUser and EnvDatabasePassword are the application role (dbaccess's).
	EnvDatabaseUser     = "DATABASE_USER"
	EnvDatabasePassword = "DATABASE_PASSWORD"
	// EnvDatabaseAdminUser and EnvDatabaseAdminPassword are a role that may create
	// roles and databases (initrestore only).
	EnvDatabaseAdminUser     = "DATABASE_ADMIN_USER"
	EnvDatabaseAdminPassword = "DATABASE_ADMIN_PASSWORD"
	// EnvDatabaseCodepage is the database encoding, e.g. WIN1252.
	EnvDatabaseCodepage = "DATABASE_CODEPAGE"
	// EnvDatabaseLocale is the LC_COLLATE/LC_CTYPE of a created database (default C,
	// which every encoding accepts).
	EnvDatabaseLocale = "DATABASE_LOCALE"
	// EnvDatabaseExtensions is a comma list of extensions to create.
	EnvDatabaseExtensions = "DATABASE_EXTENSIONS"
	// EnvDatabaseWaitTimeout bounds the wait for the server (a Go duration).
	EnvDatabaseWaitTimeout = "DATABASE_WAIT_TIMEOUT"
	// EnvDatabaseSSLMode is libpq's sslmode (SSLModes; default prefer), applied alike
	// to the binaries' own connections and to pg_dump, pg_restore and psql.
	EnvDatabaseSSLMode = "DATABASE_SSLMODE"
	// EnvDatabaseSSLRootCert is a PEM file of the CAs that sign the server's
	// certificate (a mounted ConfigMap or Secret key); required by verify-ca and
	// verify-full, and when set every TLS connection verifies the chain, as libpq does.
	EnvDatabaseSSLRootCert = "DATABASE_SSLROOTCERT"
)

// Backup location and identity, read by both binaries.
const (
	// EnvBackupStorageURL is gs://…, s3://… or file:///… (see internal/storage).
	EnvBackupStorageURL = "BACKUP_STORAGE_URL"
	// EnvNamespace is the pod's namespace (downward API): the backup's key prefix.
	EnvNamespace = "NAMESPACE"
	// EnvPodName is the pod's name (downward API), for the audit line.
	EnvPodName = "POD_NAME"
	// EnvEnvironment is production, homologation or internal-dev.
	EnvEnvironment = "ENVIRONMENT"
)

// Restore, read by initrestore.
const (
	// EnvRestoreSourceNamespace is whose database_latest.dump.gz to restore (the
	// production namespace).
	EnvRestoreSourceNamespace = "RESTORE_SOURCE_NAMESPACE"
	// EnvRestoreOnMissingBackup is "fail" or "empty" (create an empty database).
	EnvRestoreOnMissingBackup = "RESTORE_ON_MISSING_BACKUP"
	// EnvRestoreRequestID forces one restore when it differs from the id recorded in
	// the database.
	EnvRestoreRequestID = "RESTORE_REQUEST_ID"
	// EnvRestoreRequestSource is "production" (default) or "own": which latest backup a
	// forced restore uses.
	EnvRestoreRequestSource = "RESTORE_REQUEST_SOURCE"
	// EnvRestoreScratchDir, when set, is where the archive is spooled so pg_restore can
	// run in parallel.
	EnvRestoreScratchDir = "RESTORE_SCRATCH_DIR"
	// EnvRestoreScratchMax is the size limit of the scratch volume (e.g. 20Gi): an
	// archive that would not fit is streamed instead of spooled, since exceeding an
	// emptyDir's sizeLimit gets the pod evicted rather than a "disk full" error.
	EnvRestoreScratchMax = "RESTORE_SCRATCH_MAX"
	// EnvRestoreJobs is pg_restore -j when spooled (default: twice the CPUs available).
	EnvRestoreJobs = "RESTORE_JOBS"
	// EnvRestoreMaskingSQL is a SQL file run in the restored database before it is
	// swapped in; mandatory in internal-dev environments.
	EnvRestoreMaskingSQL = "RESTORE_MASKING_SQL"
)

// Backup, read by cronbackup.
const (
	EnvBackupKeepDaily   = "BACKUP_KEEP_DAILY"
	EnvBackupKeepWeekly  = "BACKUP_KEEP_WEEKLY"
	EnvBackupKeepMonthly = "BACKUP_KEEP_MONTHLY"
	// EnvDumpCompression is pg_dump's -Z level inside the archive.
	EnvDumpCompression = "DUMP_COMPRESSION"
	// EnvGzipLevel is the level of the outer gzip layer.
	EnvGzipLevel = "GZIP_LEVEL"
	// EnvSyncTargetURL is where `cronbackup sync` copies to.
	EnvSyncTargetURL = "SYNC_TARGET_URL"
	// EnvSyncSourceURL is where `cronbackup sync` copies from.
	EnvSyncSourceURL = "SYNC_SOURCE_URL"
	// EnvSyncKeepDaily, when positive, prunes the sync target.
	EnvSyncKeepDaily = "SYNC_KEEP_DAILY"
	// EnvSyncKeepWeekly and EnvSyncKeepMonthly also keep, when EnvSyncKeepDaily prunes,
	// the newest backup of that many ISO weeks and months on the target.
	EnvSyncKeepWeekly  = "SYNC_KEEP_WEEKLY"
	EnvSyncKeepMonthly = "SYNC_KEEP_MONTHLY"
	// EnvBackupTimezone decides which day, week and month a backup belongs to.
	EnvBackupTimezone = "BACKUP_TIMEZONE"
	// EnvGzipThreads compress the outer gzip layer in parallel.
	EnvGzipThreads = "GZIP_THREADS"
	// EnvBackupMaxConcurrentPerServer is how many backups may dump from one database
	// server at once (advisory-lock slots on its maintenance database); 0: no limit.
	EnvBackupMaxConcurrentPerServer = "BACKUP_MAX_CONCURRENT_PER_SERVER"
	// EnvBackupSlotWaitTimeout bounds the wait for a slot (a Go duration).
	EnvBackupSlotWaitTimeout = "BACKUP_SLOT_WAIT_TIMEOUT"
	// EnvBackupSlotDatabase is the maintenance database the slots are taken on.
	EnvBackupSlotDatabase = "BACKUP_SLOT_DATABASE"
)

// Verification, read by `cronbackup verify`.
const (
	// EnvVerifyDatabaseEndpoint and EnvVerifyDatabasePort are the verification server
	// (default: DATABASE_ENDPOINT and DATABASE_PORT, the namespace's own server). The
	// namespace's DATABASE_ADMIN_USER connects there.
	EnvVerifyDatabaseEndpoint = "VERIFY_DATABASE_ENDPOINT"
	EnvVerifyDatabasePort     = "VERIFY_DATABASE_PORT"
	// EnvVerifyMaintenanceDatabase is the database the admin connects to, to create
	// and drop the scratch database (default postgres).
	EnvVerifyMaintenanceDatabase = "VERIFY_MAINTENANCE_DATABASE"
)

// Tuning shared by both binaries.
const (
	// EnvClientRoot holds <major>/bin/pg_dump, pg_restore and psql per installed major.
	EnvClientRoot = "PG_CLIENT_ROOT"
	// EnvProgressInterval is how often long transfers log progress.
	EnvProgressInterval = "PROGRESS_INTERVAL"
	// EnvLogVerbosity enables V(n) log lines.
	EnvLogVerbosity = "LOG_VERBOSITY"
)

// Environments a namespace can be.
const (
	EnvironmentProduction   = "production"
	EnvironmentHomologation = "homologation"
	EnvironmentInternalDev  = "internal-dev"
)

// Policies for a missing backup.
const (
	OnMissingFail  = "fail"
	OnMissingEmpty = "empty"
)

// Sources of a forced restore.
const (
	RequestSourceProduction = "production"
	RequestSourceOwn        = "own"
)

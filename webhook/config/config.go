// Package config is the webhook's operator configuration: environment variables with
// the prefix SMARTBACKUP_, read with envconfig and validated once at start. Everything
// here is set by the cluster's operators in the webhook's Deployment; nothing comes from
// tenants.
package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/robfig/cron/v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/smartbackup/smartbackup/internal/contract"
)

// Prefix is the envconfig prefix of every variable: SMARTBACKUP_INITRESTORE_IMAGE, …
const Prefix = "SMARTBACKUP"

// TLS modes.
const (
	// TLSCertManager: cert-manager writes the serving certificate into CertDir (a
	// mounted Secret) and injects the caBundle; the webhook only reloads the files.
	TLSCertManager = "cert-manager"
	// TLSSelf: the webhook keeps a CA and a serving certificate in a Secret, writes them
	// into CertDir and patches the caBundle of its MutatingWebhookConfiguration.
	TLSSelf = "self"
)

// Config is the operator configuration. Each field's variable is SMARTBACKUP_ plus the
// envconfig name (envconfig also accepts the bare name when the prefixed one is unset).
type Config struct {
	// InitRestoreImage is the image of the injected restore init container.
	InitRestoreImage string `envconfig:"INITRESTORE_IMAGE" required:"true"`
	// CronBackupImage is the image of the backup and sync CronJobs.
	CronBackupImage string `envconfig:"CRONBACKUP_IMAGE" required:"true"`
	// ImagePullPolicy of both images.
	ImagePullPolicy corev1.PullPolicy `envconfig:"IMAGE_PULL_POLICY" default:"IfNotPresent"`

	// StorageURLSmartERP is where SmartERP namespaces' backups go and are restored
	// from (gs://, s3:// or file:///; the operations page keeps them on a cluster
	// volume). Empty: SmartERP namespaces are refused.
	StorageURLSmartERP string `envconfig:"STORAGE_URL_SMARTERP"`
	// StorageURLSistemico is the same for Sistêmico (a GCS bucket on the page).
	StorageURLSistemico string `envconfig:"STORAGE_URL_SISTEMICO"`
	// VolumeClaim is the PersistentVolumeClaim of the whole backup volume of a file://
	// storage URL, in SyncNamespace only: the 06:00 sync and the provisioning Jobs
	// mount it. Tenant namespaces never hold it (see VolumeSource).
	VolumeClaim string `envconfig:"VOLUME_CLAIM" default:"smartbackup-backups"`
	// VolumeSource is where that volume's directories live (ParseVolume): the
	// reconciler gives each namespace PersistentVolumes rooted at its own directory
	// and, read-only, its restore source's. Required with a file:// storage URL.
	VolumeSource string `envconfig:"VOLUME_SOURCE"`
	volume       Volume

	// DBAccessLabel is the label selector of dbaccess pods. The
	// MutatingWebhookConfiguration's objectSelector must select the same pods.
	DBAccessLabel string `envconfig:"DBACCESS_LABEL" default:"app.kubernetes.io/name=dbaccess"`
	// DBAccessContainer names the container that receives the backup env; empty or
	// absent from the pod: the pod's first container.
	DBAccessContainer string `envconfig:"DBACCESS_CONTAINER"`

	// DefaultCodepage is DATABASE_CODEPAGE when a namespace does not set one.
	DefaultCodepage string `envconfig:"DEFAULT_CODEPAGE" default:"WIN1252"`
	// DefaultDatabasePort is DATABASE_PORT when a namespace does not set one.
	DefaultDatabasePort int `envconfig:"DEFAULT_DATABASE_PORT" default:"5432"`
	// RestoreOnMissingBackup is RESTORE_ON_MISSING_BACKUP (fail or empty) when a
	// namespace does not set one.
	RestoreOnMissingBackup string `envconfig:"RESTORE_ON_MISSING_BACKUP" default:"fail"`

	// RestoreCPURequest … RestoreMemoryLimit are the init container's resources.
	// Requests equal limits by default, so that a Guaranteed dbaccess pod stays
	// Guaranteed (every container, init containers too, must have them equal);
	// namespaces override both with smartbackup.io/restore-cpu and -memory.
	RestoreCPURequest    Quantity `envconfig:"RESTORE_CPU_REQUEST" default:"500m"`
	RestoreMemoryRequest Quantity `envconfig:"RESTORE_MEMORY_REQUEST" default:"512Mi"`
	RestoreCPULimit      Quantity `envconfig:"RESTORE_CPU_LIMIT" default:"500m"`
	RestoreMemoryLimit   Quantity `envconfig:"RESTORE_MEMORY_LIMIT" default:"512Mi"`
	// ScratchSize is the size limit of the restore's scratch emptyDir (/scratch),
	// where the archive is spooled for a parallel pg_restore.
	ScratchSize Quantity `envconfig:"SCRATCH_SIZE" default:"20Gi"`
	// TmpSize is the size limit of the small /tmp emptyDir (the root filesystem is
	// read-only).
	TmpSize Quantity `envconfig:"TMP_SIZE" default:"64Mi"`
	// RunAsUser and RunAsGroup are the uid and gid of the injected container and the
	// CronJob pods (non-root; the images' nonroot user).
	RunAsUser  int64 `envconfig:"RUN_AS_USER" default:"65532"`
	RunAsGroup int64 `envconfig:"RUN_AS_GROUP" default:"65532"`

	// BackupWindow is when the nightly backups start (the page: every day from 21:00):
	// "HH:MM-HH:MM" in TimeZone, the end excluded and possibly past midnight. Each
	// namespace gets a start minute in it from a hash of its name (see package
	// cronjobs), so hundreds of namespaces do not start in the same second.
	BackupWindow string `envconfig:"BACKUP_WINDOW" default:"21:00-23:00"`
	// BackupSchedule, when set, is every namespace's schedule instead of a start in
	// BackupWindow (e.g. the page's "0 21 * * *": all at once).
	BackupSchedule string `envconfig:"BACKUP_SCHEDULE"`
	// BackupKeepDaily, BackupKeepWeekly and BackupKeepMonthly are the backups' retention
	// (the newest backup of each of that many days, ISO weeks and months); a namespace
	// annotation overrides each.
	BackupKeepDaily   int `envconfig:"BACKUP_KEEP_DAILY" default:"7"`
	BackupKeepWeekly  int `envconfig:"BACKUP_KEEP_WEEKLY" default:"4"`
	BackupKeepMonthly int `envconfig:"BACKUP_KEEP_MONTHLY" default:"3"`
	// BackupMaxConcurrentPerServer is how many backups may dump from one database
	// server at once, across namespaces (advisory-lock slots on the server); 0: no
	// limit. A namespace annotation overrides it.
	BackupMaxConcurrentPerServer int `envconfig:"BACKUP_MAX_CONCURRENT_PER_SERVER" default:"4"`
	// BackupSlotWait bounds a backup's wait for a slot (BACKUP_SLOT_WAIT_TIMEOUT).
	BackupSlotWait time.Duration `envconfig:"BACKUP_SLOT_WAIT_TIMEOUT" default:"2h"`
	// TimeZone is the CronJobs' timeZone.
	TimeZone string `envconfig:"TIME_ZONE" default:"America/Sao_Paulo"`
	// SuccessfulJobsHistory and FailedJobsHistory are the CronJobs' history limits.
	SuccessfulJobsHistory int32 `envconfig:"SUCCESSFUL_JOBS_HISTORY" default:"3"`
	FailedJobsHistory     int32 `envconfig:"FAILED_JOBS_HISTORY" default:"3"`
	// StartingDeadline is how late a missed run may still start.
	StartingDeadline time.Duration `envconfig:"STARTING_DEADLINE" default:"1h"`
	// ActiveDeadline bounds one backup or sync Job.
	ActiveDeadline time.Duration `envconfig:"ACTIVE_DEADLINE" default:"6h"`
	// BackoffLimit is the Job's retry count.
	BackoffLimit int32 `envconfig:"BACKOFF_LIMIT" default:"2"`
	// BackupServiceAccount is the CronJob pods' service account (its cloud identity
	// needs write access to the namespace's prefix); empty: the namespace's default.
	BackupServiceAccount string `envconfig:"BACKUP_SERVICE_ACCOUNT"`
	// BackupCPURequest … BackupMemoryLimit are the CronJob container's resources.
	BackupCPURequest    Quantity `envconfig:"BACKUP_CPU_REQUEST" default:"250m"`
	BackupMemoryRequest Quantity `envconfig:"BACKUP_MEMORY_REQUEST" default:"256Mi"`
	BackupCPULimit      Quantity `envconfig:"BACKUP_CPU_LIMIT" default:"2"`
	BackupMemoryLimit   Quantity `envconfig:"BACKUP_MEMORY_LIMIT" default:"1Gi"`

	// VerifyEnabled keeps the weekly verification CronJob (smartbackup-verify,
	// `cronbackup verify`) in every enabled namespace; false deletes them.
	VerifyEnabled bool `envconfig:"VERIFY_ENABLED" default:"true"`
	// VerifyWindow and VerifyWeekday (0 Sunday … 6 Saturday, the day the window
	// starts) are when verifications start, each namespace at a minute of the window
	// a hash of its name gives; the default is after Saturday's backup window.
	VerifyWindow  string `envconfig:"VERIFY_WINDOW" default:"01:00-05:00"`
	VerifyWeekday int    `envconfig:"VERIFY_WEEKDAY" default:"0"`
	// VerifyServer, when set (host or host:port), is where every namespace without a
	// smartbackup.io/verify-endpoint annotation verifies; empty: its own server.
	VerifyServer string `envconfig:"VERIFY_SERVER"`
	// SyncTargetURL, when set, creates the 06:00 sync CronJob that copies the SmartERP
	// volume (StorageURLSmartERP, which must then be file://) to this URL (Rubrik).
	SyncTargetURL string `envconfig:"SYNC_TARGET_URL"`
	// SyncTargetClaim is the PersistentVolumeClaim (in SyncNamespace) mounted at the
	// target's path when SyncTargetURL is file:// (a Rubrik managed volume over NFS).
	SyncTargetClaim string `envconfig:"SYNC_TARGET_CLAIM"`
	// SyncKeepDaily, when positive, prunes the target beyond that many days
	// (SYNC_KEEP_DAILY); zero never deletes on the target.
	SyncKeepDaily int `envconfig:"SYNC_KEEP_DAILY" default:"0"`
	// SyncKeepWeekly and SyncKeepMonthly keep, with SyncKeepDaily, the newest backup of
	// that many ISO weeks and months on the target (only when SyncKeepDaily prunes).
	SyncKeepWeekly  int `envconfig:"SYNC_KEEP_WEEKLY" default:"0"`
	SyncKeepMonthly int `envconfig:"SYNC_KEEP_MONTHLY" default:"0"`
	// SyncSchedule is the sync CronJob's schedule.
	SyncSchedule string `envconfig:"SYNC_SCHEDULE" default:"0 6 * * *"`
	// SyncNamespace holds the sync CronJob (the page's job runs in smartbackup).
	SyncNamespace string `envconfig:"SYNC_NAMESPACE" default:"smartbackup"`

	// Namespace is the webhook's own namespace (downward API). Required with
	// TLSMode self and leader election.
	Namespace string `envconfig:"NAMESPACE"`
	// ServiceName is the webhook's Service; the self-managed certificate is issued
	// for its DNS names.
	ServiceName string `envconfig:"SERVICE_NAME" default:"smartbackup-webhook"`
	// WebhookConfigName is the MutatingWebhookConfiguration whose caBundle the
	// self-managed mode patches.
	WebhookConfigName string `envconfig:"WEBHOOK_CONFIG_NAME" default:"smartbackup-webhook"`
	// TLSMode is cert-manager or self.
	TLSMode string `envconfig:"TLS_MODE" default:"cert-manager"`
	// CertDir holds tls.crt and tls.key; both modes reload them when they change.
	CertDir string `envconfig:"CERT_DIR" default:"/var/run/smartbackup/tls"`
	// TLSSecretName is the Secret where the self-managed mode keeps its CA and
	// certificate, so that every replica serves the same chain.
	TLSSecretName string `envconfig:"TLS_SECRET_NAME" default:"smartbackup-webhook-tls"`
	// TLSExtraSANs are more DNS names or IP addresses for the self-managed certificate.
	TLSExtraSANs []string `envconfig:"TLS_EXTRA_SANS"`
	// CAValidity and CertValidity are the self-managed CA's and certificate's
	// lifetimes; each is renewed when a third of its lifetime remains.
	CAValidity   time.Duration `envconfig:"TLS_CA_VALIDITY" default:"87600h"`
	CertValidity time.Duration `envconfig:"TLS_CERT_VALIDITY" default:"8760h"`
	// TLSCheckInterval is how often the self-managed mode checks the Secret, the files
	// and the caBundle.
	TLSCheckInterval time.Duration `envconfig:"TLS_CHECK_INTERVAL" default:"5m"`

	// WebhookPort is the HTTPS port of the admission endpoint.
	WebhookPort int `envconfig:"WEBHOOK_PORT" default:"9443"`
	// ShutdownDelay is how long the webhook keeps serving after SIGTERM, not ready and
	// closing each connection after its response, before it stops (gracefully,
	// finishing the requests in flight): the time the Service needs to stop sending it
	// new connections.
	ShutdownDelay time.Duration `envconfig:"SHUTDOWN_DELAY" default:"5s"`
	// MetricsAddr serves /metrics ("0" disables).
	MetricsAddr string `envconfig:"METRICS_ADDR" default:":8080"`
	// HealthAddr serves /healthz and /readyz.
	HealthAddr string `envconfig:"HEALTH_ADDR" default:":8081"`
	// PprofAddr serves Go's /debug/pprof (empty, the default, disables it): for
	// profiling a replica through a port-forward, never exposed by the chart.
	PprofAddr string `envconfig:"PPROF_ADDR"`
	// LeaderElection makes one replica run the CronJob reconciler; every replica serves
	// admission requests.
	LeaderElection bool `envconfig:"LEADER_ELECTION" default:"true"`
	// LogVerbosity > 0 logs V(n) lines; 1 logs why each pod was skipped.
	LogVerbosity int `envconfig:"LOG_VERBOSITY" default:"0"`

	// dbaccess is DBAccessLabel parsed by Validate.
	dbaccess labels.Selector
}

// Quantity is a resource.Quantity envconfig can decode ("250m", "20Gi").
type Quantity struct{ resource.Quantity }

// Decode implements envconfig.Decoder.
func (q *Quantity) Decode(s string) error {
	v, err := resource.ParseQuantity(s)
	if err != nil {
		return fmt.Errorf("parsing quantity %q: %w", s, err)
	}
	q.Quantity = v
	return nil
}

// Load reads the environment and validates it.
func Load() (*Config, error) {
	var c Config
	if err := envconfig.Process(Prefix, &c); err != nil {
		return nil, fmt.Errorf("reading %s_* configuration: %w", Prefix, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// cronRE accepts five space-separated cron fields; the parser the apiserver's CronJob
// validation uses then checks their ranges (so "99 99 * * *" is refused here, with an
// Event, instead of failing every server-side apply).
var cronRE = regexp.MustCompile(`^[0-9*/,\-A-Za-z?]+( [0-9*/,\-A-Za-z?]+){4}$`)

// ValidSchedule reports whether s looks like a five-field cron expression.
func ValidSchedule(s string) bool {
	if len(s) > 100 || !cronRE.MatchString(s) {
		return false
	}
	_, err := cron.ParseStandard(s)
	return err == nil
}

// Validate checks the configuration and prepares the parsed selector. Every problem
// is reported, each naming its variable.
func (c *Config) Validate() error {
	var errs []error
	bad := func(name, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s_%s: %s", Prefix, name, fmt.Sprintf(format, args...)))
	}
	if c.InitRestoreImage == "" {
		bad("INITRESTORE_IMAGE", "must name the initrestore image")
	}
	if c.CronBackupImage == "" {
		bad("CRONBACKUP_IMAGE", "must name the cronbackup image")
	}
	sel, err := labels.Parse(c.DBAccessLabel)
	if err != nil || sel.Empty() {
		bad("DBACCESS_LABEL", "must be a non-empty label selector such as app.kubernetes.io/name=dbaccess")
	} else {
		c.dbaccess = sel
	}
	if c.StorageURLSmartERP == "" && c.StorageURLSistemico == "" {
		bad("STORAGE_URL_SMARTERP", "or %s_STORAGE_URL_SISTEMICO must be set", Prefix)
	}
	for _, u := range []struct{ name, url string }{
		{"STORAGE_URL_SMARTERP", c.StorageURLSmartERP},
		{"STORAGE_URL_SISTEMICO", c.StorageURLSistemico},
		{"SYNC_TARGET_URL", c.SyncTargetURL},
	} {
		if u.url == "" {
			continue
		}
		if _, err := StoragePath(u.url); err != nil {
			bad(u.name, "%v", err)
		}
	}
	if c.SyncTargetURL != "" {
		if p, _ := StoragePath(c.StorageURLSmartERP); p == "" {
			bad("SYNC_TARGET_URL", "needs %s_STORAGE_URL_SMARTERP to be a file:/// URL (the volume it copies)", Prefix)
		}
		if errs := validation.IsDNS1123Label(c.SyncNamespace); len(errs) > 0 {
			bad("SYNC_NAMESPACE", "%s", strings.Join(errs, "; "))
		}
		target, _ := StoragePath(c.SyncTargetURL)
		switch {
		case target != "" && len(validation.IsDNS1123Subdomain(c.SyncTargetClaim)) > 0:
			bad("SYNC_TARGET_CLAIM", "must name the target volume's PersistentVolumeClaim when SYNC_TARGET_URL is file://")
		case target != "" && target == mustPath(c.StorageURLSmartERP):
			bad("SYNC_TARGET_URL", "must differ from %s_STORAGE_URL_SMARTERP", Prefix)
		}
		if c.SyncKeepDaily < 0 {
			bad("SYNC_KEEP_DAILY", "must not be negative")
		}
	}
	if errs := validation.IsDNS1123Subdomain(c.VolumeClaim); len(errs) > 0 {
		bad("VOLUME_CLAIM", "%s", strings.Join(errs, "; "))
	}
	if p, _ := StoragePath(c.StorageURLSmartERP); p != "" || mustPath(c.StorageURLSistemico) != "" {
		v, err := ParseVolume(c.VolumeSource)
		switch {
		case c.VolumeSource == "":
			bad("VOLUME_SOURCE", "must say where the file:// volume's directories live (nfs://SERVER/PATH or hostpath:///PATH?read_only_root=/PATH): each namespace gets volumes of its own directory, never the whole volume")
		case err != nil:
			bad("VOLUME_SOURCE", "%v", err)
		default:
			c.volume = v
		}
	}
	if c.DBAccessContainer != "" {
		if errs := validation.IsDNS1123Label(c.DBAccessContainer); len(errs) > 0 {
			bad("DBACCESS_CONTAINER", "%s", strings.Join(errs, "; "))
		}
	}
	switch c.ImagePullPolicy {
	case corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		bad("IMAGE_PULL_POLICY", "must be Always, IfNotPresent or Never")
	}
	if !contract.ValidCodepage(c.DefaultCodepage) {
		bad("DEFAULT_CODEPAGE", "must be a PostgreSQL encoding name such as WIN1252")
	}
	if c.DefaultDatabasePort < 1 || c.DefaultDatabasePort > 65535 {
		bad("DEFAULT_DATABASE_PORT", "must be 1-65535")
	}
	if c.RestoreOnMissingBackup != contract.OnMissingFail && c.RestoreOnMissingBackup != contract.OnMissingEmpty {
		bad("RESTORE_ON_MISSING_BACKUP", "must be %s or %s", contract.OnMissingFail, contract.OnMissingEmpty)
	}
	for _, q := range []struct {
		name string
		q    Quantity
	}{
		{"RESTORE_CPU_REQUEST", c.RestoreCPURequest}, {"RESTORE_MEMORY_REQUEST", c.RestoreMemoryRequest},
		{"RESTORE_CPU_LIMIT", c.RestoreCPULimit}, {"RESTORE_MEMORY_LIMIT", c.RestoreMemoryLimit},
		{"SCRATCH_SIZE", c.ScratchSize}, {"TMP_SIZE", c.TmpSize},
		{"BACKUP_CPU_REQUEST", c.BackupCPURequest}, {"BACKUP_MEMORY_REQUEST", c.BackupMemoryRequest},
		{"BACKUP_CPU_LIMIT", c.BackupCPULimit}, {"BACKUP_MEMORY_LIMIT", c.BackupMemoryLimit},
	} {
		if q.q.Sign() <= 0 {
			bad(q.name, "must be a positive quantity")
		}
	}
	if c.RestoreCPURequest.Cmp(c.RestoreCPULimit.Quantity) > 0 || c.RestoreMemoryRequest.Cmp(c.RestoreMemoryLimit.Quantity) > 0 {
		bad("RESTORE_CPU_REQUEST", "and RESTORE_MEMORY_REQUEST must not exceed their limits")
	}
	if c.BackupCPURequest.Cmp(c.BackupCPULimit.Quantity) > 0 || c.BackupMemoryRequest.Cmp(c.BackupMemoryLimit.Quantity) > 0 {
		bad("BACKUP_CPU_REQUEST", "and BACKUP_MEMORY_REQUEST must not exceed their limits")
	}
	if c.RunAsUser <= 0 || c.RunAsGroup <= 0 {
		bad("RUN_AS_USER", "and RUN_AS_GROUP must be non-root ids (> 0)")
	}
	if c.BackupSchedule != "" && !ValidSchedule(c.BackupSchedule) {
		bad("BACKUP_SCHEDULE", "must be empty (use BACKUP_WINDOW) or a five-field cron expression")
	}
	if _, err := ParseWindow(c.BackupWindow); err != nil {
		bad("BACKUP_WINDOW", "%v", err)
	}
	if c.BackupKeepDaily < 1 || c.BackupKeepWeekly < 0 || c.BackupKeepMonthly < 0 ||
		max(c.BackupKeepDaily, c.BackupKeepWeekly, c.BackupKeepMonthly) > MaxKeep {
		bad("BACKUP_KEEP_DAILY", "must be 1-%d, BACKUP_KEEP_WEEKLY and BACKUP_KEEP_MONTHLY 0-%d", MaxKeep, MaxKeep)
	}
	if c.SyncKeepWeekly < 0 || c.SyncKeepMonthly < 0 {
		bad("SYNC_KEEP_WEEKLY", "and SYNC_KEEP_MONTHLY must not be negative")
	}
	if c.BackupMaxConcurrentPerServer < 0 || c.BackupMaxConcurrentPerServer > MaxSlots {
		bad("BACKUP_MAX_CONCURRENT_PER_SERVER", "must be 0 (no limit) to %d", MaxSlots)
	}
	if c.BackupSlotWait < time.Second {
		bad("BACKUP_SLOT_WAIT_TIMEOUT", "must be at least 1s")
	}
	if _, err := ParseWindow(c.VerifyWindow); err != nil {
		bad("VERIFY_WINDOW", "%v", err)
	}
	if c.VerifyWeekday < 0 || c.VerifyWeekday > 6 {
		bad("VERIFY_WEEKDAY", "must be 0 (Sunday) to 6 (Saturday)")
	}
	if c.VerifyServer != "" && !validServer(c.VerifyServer) {
		bad("VERIFY_SERVER", "must be empty (each namespace's own server), host or host:port")
	}
	if !ValidSchedule(c.SyncSchedule) {
		bad("SYNC_SCHEDULE", "must be a five-field cron expression")
	}
	if _, err := time.LoadLocation(c.TimeZone); err != nil || c.TimeZone == "" || c.TimeZone == "Local" {
		bad("TIME_ZONE", "must be an IANA time zone such as America/Sao_Paulo")
	}
	if c.SuccessfulJobsHistory < 0 || c.FailedJobsHistory < 0 || c.BackoffLimit < 0 {
		bad("SUCCESSFUL_JOBS_HISTORY", "FAILED_JOBS_HISTORY and BACKOFF_LIMIT must not be negative")
	}
	if c.StartingDeadline < 10*time.Second || c.ActiveDeadline < time.Second {
		bad("STARTING_DEADLINE", "must be at least 10s and ACTIVE_DEADLINE positive")
	}
	if c.BackupServiceAccount != "" {
		if errs := validation.IsDNS1123Subdomain(c.BackupServiceAccount); len(errs) > 0 {
			bad("BACKUP_SERVICE_ACCOUNT", "%s", strings.Join(errs, "; "))
		}
	}
	switch c.TLSMode {
	case TLSCertManager:
	case TLSSelf:
		if c.Namespace == "" {
			bad("NAMESPACE", "is required with TLS_MODE=self (set it from the downward API)")
		}
		if c.CertValidity < time.Minute || c.CAValidity < c.CertValidity {
			bad("TLS_CERT_VALIDITY", "must be at least 1m and not exceed TLS_CA_VALIDITY")
		}
		if c.TLSCheckInterval < time.Second || c.TLSCheckInterval > c.CertValidity/3 {
			bad("TLS_CHECK_INTERVAL", "must be at least 1s and at most a third of TLS_CERT_VALIDITY")
		}
		for _, s := range c.TLSExtraSANs {
			if net.ParseIP(s) == nil && len(validation.IsDNS1123Subdomain(s)) > 0 {
				bad("TLS_EXTRA_SANS", "%q is neither an IP address nor a DNS name", s)
			}
		}
	default:
		bad("TLS_MODE", "must be %s or %s", TLSCertManager, TLSSelf)
	}
	if c.LeaderElection && c.Namespace == "" {
		bad("NAMESPACE", "is required with LEADER_ELECTION=true (set it from the downward API)")
	}
	if c.CertDir == "" || !path.IsAbs(c.CertDir) {
		bad("CERT_DIR", "must be an absolute directory")
	}
	if c.WebhookPort < 1 || c.WebhookPort > 65535 {
		bad("WEBHOOK_PORT", "must be 1-65535")
	}
	if c.ShutdownDelay < 0 || c.ShutdownDelay > 5*time.Minute {
		bad("SHUTDOWN_DELAY", "must be between 0s and 5m")
	}
	return errors.Join(errs...)
}

// DBAccessSelector is DBAccessLabel parsed by Validate (parsed again, without caching,
// for a Config that was never validated; a malformed one selects nothing).
func (c *Config) DBAccessSelector() labels.Selector {
	if c.dbaccess != nil {
		return c.dbaccess
	}
	sel, err := labels.Parse(c.DBAccessLabel)
	if err != nil {
		return labels.Nothing()
	}
	return sel
}

// StorageURL is the configured URL of a product, "" when the product is unknown or not
// configured.
func (c *Config) StorageURL(product string) string {
	switch product {
	case contract.ProductSmartERP:
		return c.StorageURLSmartERP
	case contract.ProductSistemico:
		return c.StorageURLSistemico
	}
	return ""
}

// Volume is the parsed VolumeSource (zero when no storage URL is file://).
func (c *Config) Volume() Volume { return c.volume }

// KnownProduct reports whether p is a product the webhook knows.
func KnownProduct(p string) bool {
	return p == contract.ProductSmartERP || p == contract.ProductSistemico
}

func mustPath(raw string) string {
	p, _ := StoragePath(raw)
	return p
}

// StoragePath checks the shape of a storage URL (the binaries validate it fully with
// internal/storage, which the webhook does not link to stay small) and returns the
// directory of a file:/// URL, "" for a bucket.
func StoragePath(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", errors.New("not a URL")
	}
	if u.User != nil {
		return "", errors.New("credentials in the URL are not accepted")
	}
	switch u.Scheme {
	case "gs", "s3":
		if u.Host == "" {
			return "", fmt.Errorf("%s URL needs a bucket", u.Scheme)
		}
		return "", nil
	case "file":
		if (u.Host != "" && u.Host != "localhost") || !path.IsAbs(u.Path) || path.Clean(u.Path) != u.Path || u.Path == "/" {
			return "", errors.New("file URL needs a clean absolute directory other than /, as file:///backup")
		}
		return u.Path, nil
	}
	return "", fmt.Errorf("scheme %q is not gs, s3 or file", u.Scheme)
}

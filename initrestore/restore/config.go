package restore

import (
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Config is initrestore's environment; the names are internal/contract's, which the
// webhook injects.
type Config struct {
	// Endpoint and Port locate the PostgreSQL server.
	Endpoint string `envconfig:"DATABASE_ENDPOINT" required:"true"`
	Port     int    `envconfig:"DATABASE_PORT" default:"5432"`
	// Database is the database dbaccess needs.
	Database string `envconfig:"DATABASE_NAME" required:"true"`
	// User and Password are the application role to ensure; its password always comes
	// from here, never from a dump.
	User     string `envconfig:"DATABASE_USER" required:"true"`
	Password string `envconfig:"DATABASE_PASSWORD" required:"true"`
	// AdminUser and AdminPassword may create roles and databases.
	AdminUser     string `envconfig:"DATABASE_ADMIN_USER" required:"true"`
	AdminPassword string `envconfig:"DATABASE_ADMIN_PASSWORD" required:"true"`
	// Codepage is the encoding of a created database, e.g. WIN1252.
	Codepage string `envconfig:"DATABASE_CODEPAGE" required:"true"`
	// Locale is LC_COLLATE and LC_CTYPE of a created database; C suits every encoding.
	Locale string `envconfig:"DATABASE_LOCALE" default:"C"`
	// Extensions are created in a new database before the restore.
	Extensions []string `envconfig:"DATABASE_EXTENSIONS"`
	// WaitTimeout bounds the wait for the server to accept connections.
	WaitTimeout time.Duration `envconfig:"DATABASE_WAIT_TIMEOUT" default:"5m"`
	// SSLMode is libpq's sslmode for every connection, initrestore's own and
	// pg_restore's (see internal/pg's TLS policy).
	SSLMode string `envconfig:"DATABASE_SSLMODE" default:"prefer"`
	// SSLRootCert is a PEM file of the CAs that sign the server's certificate.
	SSLRootCert string `envconfig:"DATABASE_SSLROOTCERT"`

	// StorageURL is the backup store.
	StorageURL string `envconfig:"BACKUP_STORAGE_URL" required:"true"`
	// Namespace and PodName identify this pod (downward API).
	Namespace string `envconfig:"NAMESPACE" required:"true"`
	PodName   string `envconfig:"POD_NAME"`
	// Environment is production, homologation or internal-dev.
	Environment string `envconfig:"ENVIRONMENT" default:"production"`
	// SourceNamespace is whose latest backup to restore (production's).
	SourceNamespace string `envconfig:"RESTORE_SOURCE_NAMESPACE"`
	// OnMissingBackup is "fail" or "empty".
	OnMissingBackup string `envconfig:"RESTORE_ON_MISSING_BACKUP" default:"fail"`
	// RequestID forces one restore when it differs from the id recorded in the database.
	RequestID string `envconfig:"RESTORE_REQUEST_ID"`
	// RequestSource is "production" or "own" (this namespace's own latest).
	RequestSource string `envconfig:"RESTORE_REQUEST_SOURCE" default:"production"`
	// ScratchDir, when set, spools the archive so pg_restore runs with Jobs workers.
	ScratchDir string `envconfig:"RESTORE_SCRATCH_DIR"`
	// ScratchMax is the scratch volume's size limit (a Kubernetes quantity such as
	// 20Gi); archives that would not fit are streamed.
	ScratchMax Size `envconfig:"RESTORE_SCRATCH_MAX"`
	// Jobs is pg_restore -j for a spooled archive (default: twice the CPUs available;
	// see PlanSpooled). ANALYZE uses as many connections, up to the CPUs.
	Jobs int `envconfig:"RESTORE_JOBS"`
	// MaskingSQL is a SQL file run in the restored database before the swap.
	MaskingSQL string `envconfig:"RESTORE_MASKING_SQL"`
	// ClientRoot holds <major>/bin/pg_restore per installed client major.
	ClientRoot string `envconfig:"PG_CLIENT_ROOT" default:"/usr/lib/postgresql"`
	// ProgressInterval is how often the download logs progress.
	ProgressInterval time.Duration `envconfig:"PROGRESS_INTERVAL" default:"10s"`
}

var (
	identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,62}$`)
)

// LoadConfig reads and validates the environment; errors name the variable.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.SourceNamespace == "" {
		c.SourceNamespace = c.Namespace
	}
	if c.Jobs <= 0 {
		c.Jobs = 2 * runtime.GOMAXPROCS(0)
	}
	var exts []string
	for _, e := range c.Extensions {
		if e = strings.TrimSpace(e); e != "" {
			exts = append(exts, e)
		}
	}
	c.Extensions = exts
	bad := func(msg string) error { return fmt.Errorf("invalid configuration: %s", msg) }
	switch {
	case c.Port < 1 || c.Port > 65535:
		return bad("DATABASE_PORT must be 1-65535")
	case !identRE.MatchString(c.Database) || strings.Contains(c.Database, tempSuffix) || strings.Contains(c.Database, previousInfix):
		return bad("DATABASE_NAME must be a plain identifier of at most 40 characters")
	case len(c.Database) > 40:
		return bad("DATABASE_NAME must be a plain identifier of at most 40 characters")
	case !identRE.MatchString(c.User):
		return bad("DATABASE_USER must be a plain identifier")
	case !identRE.MatchString(c.AdminUser):
		return bad("DATABASE_ADMIN_USER must be a plain identifier")
	case c.User == c.AdminUser:
		return bad("DATABASE_USER and DATABASE_ADMIN_USER must differ")
	case !contract.ValidCodepage(c.Codepage):
		return bad("DATABASE_CODEPAGE must be a PostgreSQL encoding name such as WIN1252")
	case !contract.ValidLocale(c.Locale):
		return bad("DATABASE_LOCALE must be a locale name such as C or pt_BR.CP1252")
	case layout.ValidNamespace(c.Namespace) != nil:
		return bad("NAMESPACE must be a Kubernetes namespace name")
	case layout.ValidNamespace(c.SourceNamespace) != nil:
		return bad("RESTORE_SOURCE_NAMESPACE must be a Kubernetes namespace name")
	case c.OnMissingBackup != contract.OnMissingFail && c.OnMissingBackup != contract.OnMissingEmpty:
		return bad("RESTORE_ON_MISSING_BACKUP must be fail or empty")
	case c.RequestSource != contract.RequestSourceProduction && c.RequestSource != contract.RequestSourceOwn:
		return bad("RESTORE_REQUEST_SOURCE must be production or own")
	case len(c.RequestID) > 128 || strings.ContainsAny(c.RequestID, "\x00\n"):
		return bad("RESTORE_REQUEST_ID must be at most 128 characters on one line")
	case c.Environment != contract.EnvironmentProduction && c.Environment != contract.EnvironmentHomologation && c.Environment != contract.EnvironmentInternalDev:
		return bad("ENVIRONMENT must be production, homologation or internal-dev")
	case c.Environment == contract.EnvironmentInternalDev && c.MaskingSQL == "":
		return bad("RESTORE_MASKING_SQL is mandatory when ENVIRONMENT is internal-dev (LGPD: no unmasked customer data in development)")
	case c.WaitTimeout <= 0 || c.ProgressInterval <= 0:
		return bad("DATABASE_WAIT_TIMEOUT and PROGRESS_INTERVAL must be positive")
	}
	for _, e := range c.Extensions {
		if !identRE.MatchString(e) {
			return bad(fmt.Sprintf("DATABASE_EXTENSIONS: %q is not an extension name", e))
		}
	}
	if _, err := storage.ParseURL(c.StorageURL); err != nil {
		return fmt.Errorf("invalid configuration: BACKUP_STORAGE_URL: %w", err)
	}
	if err := pg.CheckTLS(c.SSLMode, c.SSLRootCert); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	if c.MaskingSQL != "" {
		if _, err := readMasking(c.MaskingSQL); err != nil {
			return fmt.Errorf("invalid configuration: %w", err)
		}
	}
	if c.ScratchDir != "" {
		if fi, err := os.Stat(c.ScratchDir); err != nil || !fi.IsDir() {
			return fmt.Errorf("invalid configuration: RESTORE_SCRATCH_DIR %q is not a directory", c.ScratchDir)
		}
	}
	return nil
}

func (c Config) admin(db string) pg.Conn {
	return pg.Conn{Host: c.Endpoint, Port: c.Port, User: c.AdminUser, Password: c.AdminPassword, Database: db, AppName: "smartbackup-initrestore",
		SSLMode: c.SSLMode, SSLRootCert: c.SSLRootCert, Params: pg.Guarded}
}

// Size is a byte count read from a Kubernetes-style quantity: 1048576, 512Mi, 20Gi, 1T.
type Size int64

// Decode implements envconfig.Decoder.
func (s *Size) Decode(v string) error {
	n, err := parseSize(v)
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

var sizeRE = regexp.MustCompile(`^([0-9]+)(Ki|Mi|Gi|Ti|k|M|G|T)?$`)

func parseSize(v string) (int64, error) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(v))
	if m == nil {
		return 0, fmt.Errorf("%q is not a size such as 20Gi or 500M", v)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, err
	}
	mult := map[string]int64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "Ki": 1 << 10, "Mi": 1 << 20, "Gi": 1 << 30, "Ti": 1 << 40}[m[2]]
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("%q is too large", v)
	}
	return n * mult, nil
}

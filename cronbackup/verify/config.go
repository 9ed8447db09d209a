package verify

import (
	"fmt"
	"regexp"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Config is cronbackup verify's environment (names from internal/contract; a test
// checks them against that list).
type Config struct {
	// Endpoint and Port are the namespace's own database server, the verification
	// server unless VerifyEndpoint names another.
	Endpoint string `envconfig:"DATABASE_ENDPOINT" required:"true"`
	Port     int    `envconfig:"DATABASE_PORT" default:"5432"`
	// VerifyEndpoint and VerifyPort are the verification server.
	VerifyEndpoint string `envconfig:"VERIFY_DATABASE_ENDPOINT"`
	VerifyPort     int    `envconfig:"VERIFY_DATABASE_PORT"`
	// AdminUser and AdminPassword create, restore into, count and drop the scratch
	// database; no other role ever connects to it.
	AdminUser     string `envconfig:"DATABASE_ADMIN_USER" required:"true"`
	AdminPassword string `envconfig:"DATABASE_ADMIN_PASSWORD" required:"true"`
	// MaintenanceDatabase is where the admin connects to create and drop the scratch
	// database.
	MaintenanceDatabase string `envconfig:"VERIFY_MAINTENANCE_DATABASE" default:"postgres"`
	// StorageURL is where the backups are (gs://, s3:// or file:///).
	StorageURL string `envconfig:"BACKUP_STORAGE_URL" required:"true"`
	// Namespace is whose latest backup is verified (downward API).
	Namespace string `envconfig:"NAMESPACE" required:"true"`
	// WaitTimeout bounds the wait for the verification server.
	WaitTimeout time.Duration `envconfig:"DATABASE_WAIT_TIMEOUT" default:"2m"`
	// SSLMode and SSLRootCert are libpq's, as for the backup.
	SSLMode     string `envconfig:"DATABASE_SSLMODE" default:"prefer"`
	SSLRootCert string `envconfig:"DATABASE_SSLROOTCERT"`
	// ClientRoot holds <major>/bin/pg_restore for each installed client major.
	ClientRoot string `envconfig:"PG_CLIENT_ROOT" default:"/usr/lib/postgresql"`
	// ProgressInterval is how often the download logs progress.
	ProgressInterval time.Duration `envconfig:"PROGRESS_INTERVAL" default:"10s"`
}

// identRE is a role or database name the scratch database may be named after.
var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_$-]{0,54}$`)

// LoadConfig reads and validates the environment; the error names the variable.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.VerifyEndpoint == "" {
		c.VerifyEndpoint = c.Endpoint
		if c.VerifyPort == 0 {
			c.VerifyPort = c.Port
		}
	}
	if c.VerifyPort == 0 {
		c.VerifyPort = 5432
	}
	checks := []struct {
		bad bool
		msg string
	}{
		{c.Port < 1 || c.Port > 65535, "DATABASE_PORT must be 1-65535"},
		{c.VerifyPort < 1 || c.VerifyPort > 65535, "VERIFY_DATABASE_PORT must be 1-65535"},
		{!identRE.MatchString(c.AdminUser), "DATABASE_ADMIN_USER must be a plain role name"},
		{c.AdminPassword == "", "DATABASE_ADMIN_PASSWORD must not be empty"},
		{!identRE.MatchString(c.MaintenanceDatabase), "VERIFY_MAINTENANCE_DATABASE must be a plain database name"},
		{layout.ValidNamespace(c.Namespace) != nil, "NAMESPACE must be a Kubernetes namespace name"},
		{c.WaitTimeout <= 0, "DATABASE_WAIT_TIMEOUT must be positive"},
		{c.ProgressInterval <= 0, "PROGRESS_INTERVAL must be positive"},
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("invalid configuration: %s", ch.msg)
		}
	}
	if _, err := storage.ParseURL(c.StorageURL); err != nil {
		return fmt.Errorf("invalid configuration: BACKUP_STORAGE_URL: %w", err)
	}
	if err := pg.CheckTLS(c.SSLMode, c.SSLRootCert); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// admin is the admin's connection to db on the verification server.
func (c Config) admin(db string) pg.Conn {
	return pg.Conn{Host: c.VerifyEndpoint, Port: c.VerifyPort, User: c.AdminUser, Password: c.AdminPassword, Database: db,
		AppName: "smartbackup-verify", SSLMode: c.SSLMode, SSLRootCert: c.SSLRootCert, Params: pg.Guarded}
}

package backup

import (
	"fmt"
	"runtime"
	"strconv"
	"time"

	"github.com/kelseyhightower/envconfig"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Config is cronbackup backup's environment. The names are the operations page's and
// internal/contract's; a test checks them against that list.
type Config struct {
	// Endpoint is the PostgreSQL host.
	Endpoint string `envconfig:"DATABASE_ENDPOINT" required:"true"`
	// Port is the PostgreSQL port.
	Port int `envconfig:"DATABASE_PORT" default:"5432"`
	// User and Password are the role the dump runs as.
	User     string `envconfig:"DATABASE_USER" required:"true"`
	Password string `envconfig:"DATABASE_PASSWORD" required:"true"`
	// Database is the database to dump; the page's URL uses the user name.
	Database string `envconfig:"DATABASE_NAME"`
	// Codepage is pg_dump's --encoding, e.g. WIN1252.
	Codepage string `envconfig:"DATABASE_CODEPAGE" required:"true"`
	// StorageURL is where backups go (gs://, s3:// or file:///).
	StorageURL string `envconfig:"BACKUP_STORAGE_URL" required:"true"`
	// Namespace is the pod's namespace (downward API): the key prefix of its backups.
	Namespace string `envconfig:"NAMESPACE" required:"true"`
	// KeepDaily, KeepWeekly and KeepMonthly are the retention (see Retain).
	KeepDaily   int `envconfig:"BACKUP_KEEP_DAILY" default:"7"`
	KeepWeekly  int `envconfig:"BACKUP_KEEP_WEEKLY" default:"4"`
	KeepMonthly int `envconfig:"BACKUP_KEEP_MONTHLY" default:"3"`
	// Timezone decides which day, week and month a backup belongs to.
	Timezone string `envconfig:"BACKUP_TIMEZONE" default:"America/Sao_Paulo"`
	// DumpCompression is pg_dump's -Z inside the archive. The page uses 6, which leaves
	// the whole compression to pg_dump's one thread; 0 moves it to the gzip layer,
	// which compresses on every core (see the README's benchmark).
	DumpCompression int `envconfig:"DUMP_COMPRESSION" default:"0"`
	// GzipLevel is the outer gzip layer's level: 1-9, 0 to store, -2 for Huffman
	// coding only; "auto" is gzipx.DefaultLevel over an uncompressed archive (libdeflate's 5 in
	// the images' build, the standard library's 6 without cgo) and
	// Huffman coding only over a compressed one (deflating deflated data again gains
	// nothing).
	GzipLevel GzipLevel `envconfig:"GZIP_LEVEL" default:"auto"`
	// GzipThreads compress the outer layer in parallel (default: the CPUs available).
	GzipThreads int `envconfig:"GZIP_THREADS"`
	// MaxConcurrentPerServer is how many backups may dump from one database server at
	// once, across namespaces: advisory-lock slots on SlotDatabase; 0: no limit.
	MaxConcurrentPerServer int `envconfig:"BACKUP_MAX_CONCURRENT_PER_SERVER" default:"4"`
	// SlotWaitTimeout bounds the wait for a slot (then ExitSlotWait).
	SlotWaitTimeout time.Duration `envconfig:"BACKUP_SLOT_WAIT_TIMEOUT" default:"2h"`
	// SlotDatabase is the server's maintenance database the slots are taken on.
	SlotDatabase string `envconfig:"BACKUP_SLOT_DATABASE" default:"postgres"`
	// WaitTimeout bounds the wait for the database.
	WaitTimeout time.Duration `envconfig:"DATABASE_WAIT_TIMEOUT" default:"2m"`
	// SSLMode is libpq's sslmode for every connection, cronbackup's own and pg_dump's
	// (see internal/pg's TLS policy).
	SSLMode string `envconfig:"DATABASE_SSLMODE" default:"prefer"`
	// SSLRootCert is a PEM file of the CAs that sign the server's certificate.
	SSLRootCert string `envconfig:"DATABASE_SSLROOTCERT"`
	// ClientRoot holds <major>/bin/pg_dump for each installed client major.
	ClientRoot string `envconfig:"PG_CLIENT_ROOT" default:"/usr/lib/postgresql"`
	// ProgressInterval is how often progress is logged.
	ProgressInterval time.Duration `envconfig:"PROGRESS_INTERVAL" default:"10s"`
}

// LoadConfig reads and validates the environment; the error names the variable.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	return c, c.validate()
}

func (c *Config) validate() error {
	if c.Database == "" {
		c.Database = c.User
	}
	if c.GzipLevel == gzipAuto {
		c.GzipLevel = gzipx.DefaultLevel
		if c.DumpCompression > 0 {
			c.GzipLevel = gzipx.HuffmanOnly
		}
	}
	if c.GzipThreads <= 0 {
		c.GzipThreads = runtime.GOMAXPROCS(0)
	}
	checks := []struct {
		bad bool
		msg string
	}{
		{c.Port < 1 || c.Port > 65535, "DATABASE_PORT must be 1-65535"},
		{!contract.ValidCodepage(c.Codepage), "DATABASE_CODEPAGE must be a PostgreSQL encoding name such as WIN1252"},
		{layout.ValidNamespace(c.Namespace) != nil, "NAMESPACE must be a Kubernetes namespace name"},
		{c.KeepDaily < 1, "BACKUP_KEEP_DAILY must be at least 1"},
		{c.KeepWeekly < 0 || c.KeepMonthly < 0, "BACKUP_KEEP_WEEKLY and BACKUP_KEEP_MONTHLY must not be negative"},
		{c.DumpCompression < 0 || c.DumpCompression > 9, "DUMP_COMPRESSION must be 0-9"},
		{c.GzipLevel < -2 || c.GzipLevel > 9 || c.GzipLevel == -1, "GZIP_LEVEL must be auto, 0-9, or -2 for Huffman coding only"},
		{c.WaitTimeout <= 0, "DATABASE_WAIT_TIMEOUT must be positive"},
		{c.MaxConcurrentPerServer < 0 || c.MaxConcurrentPerServer > 256, "BACKUP_MAX_CONCURRENT_PER_SERVER must be 0 (no limit) to 256"},
		{c.SlotWaitTimeout <= 0, "BACKUP_SLOT_WAIT_TIMEOUT must be positive"},
		{c.SlotDatabase == "", "BACKUP_SLOT_DATABASE must name a database"},
		{c.ProgressInterval <= 0, "PROGRESS_INTERVAL must be positive"},
	}
	for _, ch := range checks {
		if ch.bad {
			return fmt.Errorf("invalid configuration: %s", ch.msg)
		}
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return fmt.Errorf("invalid configuration: BACKUP_TIMEZONE: %w", err)
	}
	if _, err := storage.ParseURL(c.StorageURL); err != nil {
		return fmt.Errorf("invalid configuration: BACKUP_STORAGE_URL: %w", err)
	}
	if err := pg.CheckTLS(c.SSLMode, c.SSLRootCert); err != nil {
		return fmt.Errorf("invalid configuration: %w", err)
	}
	return nil
}

// conn is the dump's connection.
func (c Config) conn() pg.Conn {
	return pg.Conn{Host: c.Endpoint, Port: c.Port, User: c.User, Password: c.Password, Database: c.Database, AppName: "smartbackup-cronbackup",
		SSLMode: c.SSLMode, SSLRootCert: c.SSLRootCert}
}

// GzipLevel is GZIP_LEVEL: a number, or auto.
type GzipLevel int

const gzipAuto GzipLevel = -100

// Decode implements envconfig.Decoder.
func (l *GzipLevel) Decode(v string) error {
	if v == "auto" {
		*l = gzipAuto
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return fmt.Errorf("%q is neither auto nor a number", v)
	}
	*l = GzipLevel(n)
	return nil
}

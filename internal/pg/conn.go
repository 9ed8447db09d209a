// Package pg holds the PostgreSQL helpers initrestore and cronbackup share: connecting
// without ever building a DSN that could be logged, waiting for a server, choosing the
// client binaries for a server's major version, running them with their output in the
// structured log, and reading the header of a custom-format archive. It imports no
// Kubernetes client.
package pg

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Conn describes a connection without a connection string, so no code path can log a
// password by printing a DSN.
type Conn struct {
	Host     string
	Port     int
	User     string
	Password string
	Database string
	// AppName shows in pg_stat_activity.
	AppName string
	// SSLMode is libpq's sslmode (see tls.go); empty is prefer.
	SSLMode string
	// SSLRootCert is a PEM file of the CAs that sign the server's certificate.
	SSLRootCert string
	// Params are settings the session starts with (Connect only, not the clients'
	// environment).
	Params map[string]string
}

// Guarded are the Params of an administrator's session in a database that holds
// production's objects: functions resolve in pg_catalog only (production's functions
// in public, of a closer argument type, would otherwise replace the built-ins the
// administrator's queries call, with its rights), and a query that row-level security
// would narrow fails instead of running a policy's expression.
var Guarded = map[string]string{"search_path": "pg_catalog", "row_security": "off"}

// String is safe to log: it has no password.
func (c Conn) String() string {
	return fmt.Sprintf("%s@%s/%s", c.User, net.JoinHostPort(c.Host, strconv.Itoa(c.Port)), c.Database)
}

// Config is the pgx configuration of c.
func (c Conn) Config() (*pgx.ConnConfig, error) {
	cfg, err := pgx.ParseConfig("")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = c.Host, uint16(c.Port)
	cfg.User, cfg.Password, cfg.Database = c.User, c.Password, c.Database
	cfg.ConnectTimeout = 10 * time.Second
	attempts, err := c.tlsAttempts()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTLS, err)
	}
	cfg.TLSConfig = attempts[0]
	cfg.Fallbacks = nil
	for _, t := range attempts[1:] {
		cfg.Fallbacks = append(cfg.Fallbacks, &pgconn.FallbackConfig{Host: c.Host, Port: uint16(c.Port), TLSConfig: t})
	}
	cfg.RuntimeParams = map[string]string{"application_name": c.AppName}
	for k, v := range c.Params {
		cfg.RuntimeParams[k] = v
	}
	return cfg, nil
}

// Connect opens a connection.
func (c Conn) Connect(ctx context.Context) (*pgx.Conn, error) {
	cfg, err := c.Config()
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", c, redact(err))
	}
	return conn, nil
}

// ErrAuth reports that the server refused the credentials: retrying will not help.
var ErrAuth = errors.New("authentication failed")

// redact keeps pgx's error chain (so errors.As still finds a *pgconn.PgError) and
// classifies failures retrying cannot fix (ErrAuth, ErrHBA, ErrTLS; see classify).
// pgx's messages carry host and user, never the password.
func redact(err error) error { return classify(err) }

// WaitConnect connects, retrying with capped exponential backoff and jitter until
// timeout. An authentication, pg_hba.conf or TLS error ends the wait at once.
func WaitConnect(ctx context.Context, log logr.Logger, c Conn, timeout time.Duration) (*pgx.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	delay := 200 * time.Millisecond
	for attempt := 1; ; attempt++ {
		conn, err := c.Connect(ctx)
		if err == nil {
			return conn, nil
		}
		if errors.Is(err, ErrAuth) || errors.Is(err, ErrHBA) || errors.Is(err, ErrTLS) {
			return nil, err
		}
		log.Info("database not reachable yet", "attempt", attempt, "retryIn", delay.String(), "error", err.Error())
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting %s for the database: %w", timeout, err)
		case <-time.After(delay + time.Duration(rand.Int64N(int64(delay)/4+1))):
		}
		delay = min(delay*2, 5*time.Second)
	}
}

// ServerMajor is the server's major version (12 for 12.22, 15 for 15.4).
func ServerMajor(ctx context.Context, conn *pgx.Conn) (int, string, error) {
	var num int
	var version string
	err := conn.QueryRow(ctx, "SELECT current_setting('server_version_num')::int, current_setting('server_version')").Scan(&num, &version)
	if err != nil {
		return 0, "", fmt.Errorf("reading the server version: %w", err)
	}
	return num / 10000, version, nil
}

// Quote quotes an identifier.
func Quote(name string) string { return pgx.Identifier{name}.Sanitize() }

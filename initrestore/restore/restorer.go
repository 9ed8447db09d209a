package restore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// The restorer is a login role of one run, made for the code of production's database
// to run as. pg_restore evaluates production's functions (a CHECK constraint or a
// generated column at each row, a trigger the masking's UPDATEs fire), and a function
// runs with the rights of the session that calls it. In a session the administrator
// logged in to, SET ROLE is no boundary: the function can RESET ROLE, and did (a
// production trigger made the application role a superuser during the masking, and,
// with it, a reader of every other customer's database on the server). The restorer
// logs in itself, may only connect to the temporary database, and is a member of the
// application role without inheriting its rights, so pg_restore and the masking act
// as the application role (SET ROLE) and cannot reach higher. Its password is random,
// lives in this process only, and the role is dropped before the swap; a killed run's
// restorer is dropped by the next run, as its temporary database is.

// restorerName is the restorer's name for the database: the same in every run, so
// the next run finds a killed run's, and distinct per database on the server.
func restorerName(database string) string {
	sum := sha256.Sum256([]byte(database))
	return "smartbackup_restorer_" + hex.EncodeToString(sum[:8])
}

// createRestorer creates the restorer, allowed to connect to the temporary database
// only.
func (r *run) createRestorer(ctx context.Context, temp string) error {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("making the restorer's password: %w", err)
	}
	password := base64.RawURLEncoding.EncodeToString(secret)
	verifier, err := scramVerifier(password)
	if err != nil {
		return err
	}
	name := restorerName(r.cfg.Database)
	if err := utility(ctx, r.admin, "CREATE ROLE %I LOGIN NOINHERIT PASSWORD %L IN ROLE %I", name, verifier, r.cfg.User); err != nil {
		return fmt.Errorf("creating the restorer %q: %w", name, err)
	}
	if err := utility(ctx, r.admin, "GRANT CONNECT ON DATABASE %I TO %I", temp, name); err != nil {
		return fmt.Errorf("letting the restorer %q connect to %q: %w", name, temp, err)
	}
	r.restorerPassword = password
	r.log.Info("restorer created", "role", name, "actsAs", r.cfg.User, "until", "the swap")
	return nil
}

// dropRestorer drops the restorer, if there is one, ending its sessions first. The
// temporary database it could connect to is dropped or about to be swapped in.
func (r *run) dropRestorer(ctx context.Context) error {
	name := restorerName(r.cfg.Database)
	var exists bool
	if err := r.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&exists); err != nil {
		return fmt.Errorf("looking up the restorer %q: %w", name, pg.RedactServerError(err))
	}
	if !exists {
		return nil
	}
	if _, err := r.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
		return fmt.Errorf("ending the restorer's sessions: %w", pg.RedactServerError(err))
	}
	temp := r.cfg.Database + tempSuffix
	var tempExists bool
	if err := r.admin.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", temp).Scan(&tempExists); err != nil {
		return fmt.Errorf("looking up %q: %w", temp, pg.RedactServerError(err))
	}
	if tempExists {
		if err := utility(ctx, r.admin, "REVOKE CONNECT ON DATABASE %I FROM %I", temp, name); err != nil {
			return fmt.Errorf("closing %q to the restorer: %w", temp, err)
		}
	}
	if err := utility(ctx, r.admin, "DROP ROLE %I", name); err != nil {
		return fmt.Errorf("dropping the restorer %q (did the masking SQL create objects after RESET ROLE?): %w", name, err)
	}
	r.restorerPassword = ""
	r.log.Info("restorer dropped", "role", name)
	return nil
}

// asRestorer is a connection to the temporary database logged in as the restorer,
// acting as the application role.
func (r *run) asRestorer(ctx context.Context) (*pgx.Conn, error) {
	conn, err := r.restorerConn().Connect(ctx)
	if err != nil {
		return nil, exitcode.Wrap(ExitDatabase, err)
	}
	// No parallel workers: they would need CONNECT for the application role
	// (RestoreSessionOptions).
	set := "SET ROLE " + pg.Quote(r.cfg.User) + "; SET max_parallel_workers_per_gather = 0"
	if r.serverMajor() >= 11 {
		set += "; SET max_parallel_maintenance_workers = 0"
	}
	if _, err := conn.Exec(ctx, set); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, exitcode.Wrap(ExitRestore, fmt.Errorf("acting as the application role: %w", pg.RedactServerError(err)))
	}
	return conn, nil
}

// restorerConn is how the restorer connects to the temporary database.
func (r *run) restorerConn() pg.Conn {
	c := r.cfg.admin(r.cfg.Database + tempSuffix)
	c.User, c.Password = restorerName(r.cfg.Database), r.restorerPassword
	return c
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// utility runs a statement built by the server's format() (see pg.Utility).
func utility(ctx context.Context, conn *pgx.Conn, template string, args ...string) error {
	return pg.Utility(ctx, conn, template, args...)
}

// prepare: the application role, then a fresh temporary database that only the
// administrator may open, with leftovers of interrupted runs dropped first.
func (r *run) prepare(ctx context.Context, st State) error {
	if err := r.ensureRole(ctx); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if err := r.dropStalePrevious(ctx); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if r.cfg.RequestID != "" {
		if err := r.ensureAppliedTable(ctx); err != nil {
			return exitcode.Wrap(ExitRestore, err)
		}
	}
	temp := r.cfg.Database + tempSuffix
	if st.TempExists {
		r.log.Info("dropping the temporary database of an interrupted run", "temporary", temp)
	}
	if err := r.dropDatabase(ctx, temp); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if err := r.dropRestorer(ctx); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if err := r.createTemp(ctx, temp); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	r.log.Info("temporary database created", "temporary", temp, "encoding", r.cfg.Codepage, "locale", r.cfg.Locale,
		"owner", r.cfg.AdminUser, "until", "the swap")
	return nil
}

// createTemp creates the temporary database owned by the administrator, with CONNECT
// revoked from PUBLIC: until the swap hands it over, nobody but the administrator
// (and the restorer, see restorer.go, which pg_restore and the masking log in as) can
// open it, so a killed run leaves nothing unmasked the
// application role can read. The application role may create schemas in it, and
// objects in public (PostgreSQL 15 gives public to the database's owner).
func (r *run) createTemp(ctx context.Context, temp string) error {
	if err := utility(ctx, r.admin, "CREATE DATABASE %I ENCODING %L TEMPLATE template0 LC_COLLATE %L LC_CTYPE %L",
		temp, r.cfg.Codepage, r.cfg.Locale, r.cfg.Locale); err != nil {
		return fmt.Errorf("creating %q in %s: %w", temp, r.cfg.Codepage, err)
	}
	if err := utility(ctx, r.admin, "REVOKE ALL ON DATABASE %I FROM PUBLIC", temp); err != nil {
		return fmt.Errorf("closing %q to other roles: %w", temp, err)
	}
	if err := utility(ctx, r.admin, "GRANT CREATE ON DATABASE %I TO %I", temp, r.cfg.User); err != nil {
		return fmt.Errorf("letting %q create schemas in %q: %w", r.cfg.User, temp, err)
	}
	conn, err := r.cfg.admin(temp).Connect(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var may bool
	if err := conn.QueryRow(ctx, "SELECT has_schema_privilege($1, 'public', 'CREATE')", r.cfg.User).Scan(&may); err != nil {
		return fmt.Errorf("checking %q's rights on schema public: %w", r.cfg.User, err)
	}
	if !may {
		if err := utility(ctx, conn, "GRANT CREATE ON SCHEMA public TO %I", r.cfg.User); err != nil {
			return fmt.Errorf("letting %q create objects in schema public: %w", r.cfg.User, err)
		}
	}
	return nil
}

// createExtensions creates DATABASE_EXTENSIONS in the temporary database as the
// administrator, each in the schema the archive creates it in (schemas maps an
// extension to it), that schema first created for the application role when it is
// not there yet. It returns the schemas it created, whose archive entries must not be
// restored again.
func (r *run) createExtensions(ctx context.Context, schemas map[string]string) (map[string]bool, error) {
	temp := r.cfg.Database + tempSuffix
	conn, err := r.cfg.admin(temp).Connect(ctx)
	if err != nil {
		return nil, exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// An extension the archive names no schema for goes to public, as it would in a
	// session with the default search path: the guarded session's pg_catalog would
	// take it otherwise. Nothing of production's is in the database yet.
	if _, err := conn.Exec(ctx, "SET search_path = public"); err != nil {
		return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("choosing the extensions' default schema: %w", pg.RedactServerError(err)))
	}
	created := map[string]bool{}
	for _, ext := range r.cfg.Extensions {
		schema := schemas[ext]
		if schema == "" {
			err = utility(ctx, conn, "CREATE EXTENSION IF NOT EXISTS %I", ext)
		} else {
			err = r.ensureSchema(ctx, conn, schema, created)
			if err == nil {
				err = utility(ctx, conn, "CREATE EXTENSION IF NOT EXISTS %I WITH SCHEMA %I", ext, schema)
			}
		}
		if err != nil {
			return nil, exitcode.Wrap(ExitRestore, fmt.Errorf("creating extension %q: %w%s", ext, err, r.trustedHint(err)))
		}
	}
	r.log.Info("extensions created", "extensions", r.cfg.Extensions, "schemas", schemas)
	return created, nil
}

// ensureSchema creates a schema owned by the application role unless it exists.
func (r *run) ensureSchema(ctx context.Context, conn *pgx.Conn, schema string, created map[string]bool) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema).Scan(&exists); err != nil {
		return fmt.Errorf("looking up schema %q: %w", schema, err)
	}
	if exists {
		return nil
	}
	if err := utility(ctx, conn, "CREATE SCHEMA %I AUTHORIZATION %I", schema, r.cfg.User); err != nil {
		return fmt.Errorf("creating schema %q for the extension: %w", schema, err)
	}
	created[schema] = true
	return nil
}

// trustedHint explains a refused CREATE EXTENSION on PostgreSQL 12: before 13 no
// extension is trusted, so only a superuser may create one.
func (r *run) trustedHint(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "42501" && r.serverMajor() < 13 {
		return fmt.Sprintf(" (PostgreSQL %d has no trusted extensions: DATABASE_ADMIN_USER must be a superuser to create them)", r.serverMajor())
	}
	return ""
}

// dropStalePrevious drops what a run that died between the swap's commit and the drop
// of the replaced database left: <name>__previous_<time>. The lock is held, so no other
// run is between those two steps.
func (r *run) dropStalePrevious(ctx context.Context) error {
	prefix := r.cfg.Database + previousInfix
	rows, err := r.admin.Query(ctx, "SELECT datname FROM pg_database WHERE left(datname, length($1)) = $1 ORDER BY 1", prefix)
	if err != nil {
		return fmt.Errorf("looking for replaced databases: %w", err)
	}
	stale, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("looking for replaced databases: %w", err)
	}
	for _, name := range stale {
		if err := r.dropDatabase(ctx, name); err != nil {
			return fmt.Errorf("dropping the stale replaced database %q: %w", name, err)
		}
		r.log.Info("stale replaced database dropped (left by an interrupted run)", "previous", name)
	}
	return nil
}

// ensureRole creates the application role or resets its password, from the
// environment, as a SCRAM verifier. An administrator that is not a superuser is made a
// member, so pg_restore --role can create objects owned by the application role.
func (r *run) ensureRole(ctx context.Context) error {
	verifier, err := pg.ScramVerifier(r.cfg.Password)
	if err != nil {
		return err
	}
	var exists, super bool
	err = r.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		(SELECT rolsuper FROM pg_roles WHERE rolname = current_user)`, r.cfg.User).Scan(&exists, &super)
	if err != nil {
		return fmt.Errorf("looking up role %q: %w", r.cfg.User, err)
	}
	verb := "CREATE ROLE %I LOGIN PASSWORD %L"
	if exists {
		verb = "ALTER ROLE %I WITH LOGIN PASSWORD %L"
	}
	if err := utility(ctx, r.admin, verb, r.cfg.User, verifier); err != nil {
		return fmt.Errorf("ensuring role %q: %w", r.cfg.User, err)
	}
	if !super {
		if err := utility(ctx, r.admin, "GRANT %I TO %I", r.cfg.User, r.cfg.AdminUser); err != nil {
			return fmt.Errorf("granting %q to the administrator: %w", r.cfg.User, err)
		}
	}
	r.log.Info("application role ensured", "role", r.cfg.User, "created", !exists)
	return nil
}

// dropDatabase drops a database of ours (temporary or previous), ending its sessions.
func (r *run) dropDatabase(ctx context.Context, name string) error {
	if err := r.terminate(ctx, name); err != nil {
		return err
	}
	return utility(ctx, r.admin, "DROP DATABASE IF EXISTS %I", name)
}

// terminate ends every session on a database (renames and drops need none).
func (r *run) terminate(ctx context.Context, name string) error {
	_, err := r.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name)
	if err != nil {
		return fmt.Errorf("ending sessions on %q: %w", name, err)
	}
	return nil
}

// serverMajor is the server's major version, from the connection's parameters.
func (r *run) serverMajor() int {
	v := r.admin.PgConn().ParameterStatus("server_version")
	major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
	return major
}

// createEmpty makes an empty database for a brand-new customer, through the same
// temporary database and swap as a restore.
func (r *run) createEmpty(ctx context.Context, st State) (Record, error) {
	if err := r.prepare(ctx, st); err != nil {
		return Record{}, err
	}
	if _, err := r.createExtensions(ctx, nil); err != nil {
		return Record{}, err
	}
	rec := Record{Empty: true, RestoredAt: time.Now().UTC(), RequestID: r.cfg.RequestID, Pod: r.cfg.PodName}
	if err := r.swap(ctx, st, rec); err != nil {
		return Record{}, err
	}
	r.log.Info("empty database created (no backup exists)", "encoding", r.cfg.Codepage, "namespace", r.cfg.Namespace)
	return rec, nil
}

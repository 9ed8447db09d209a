package restore

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// utility runs a statement that takes no parameters (CREATE DATABASE, ALTER ROLE…),
// built by the server's format() from the template (%I identifiers, %L literals), so
// no name or value is ever spliced into SQL by hand.
func utility(ctx context.Context, conn *pgx.Conn, template string, args ...string) error {
	var stmt string
	if err := conn.QueryRow(ctx, "SELECT format($1::text, VARIADIC $2::text[])", template, args).Scan(&stmt); err != nil {
		return fmt.Errorf("building %q: %w", firstWords(template), err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("running %q: %w", firstWords(template), err)
	}
	return nil
}

// firstWords names a statement in errors without its arguments (a password verifier).
func firstWords(template string) string {
	f := strings.Fields(template)
	return strings.Join(f[:min(3, len(f))], " ")
}

// prepare: the application role, then a fresh temporary database with the extensions.
func (r *run) prepare(ctx context.Context, st State) error {
	if err := r.ensureRole(ctx); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	temp := r.cfg.Database + tempSuffix
	if st.TempExists {
		r.log.Info("dropping the temporary database of an interrupted run", "temporary", temp)
	}
	if err := r.dropDatabase(ctx, temp); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if err := utility(ctx, r.admin, "CREATE DATABASE %I OWNER %I ENCODING %L TEMPLATE template0 LC_COLLATE %L LC_CTYPE %L",
		temp, r.cfg.User, r.cfg.Codepage, r.cfg.Locale, r.cfg.Locale); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("creating %q in %s: %w", temp, r.cfg.Codepage, err))
	}
	conn, err := r.cfg.admin(temp).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, ext := range r.cfg.Extensions {
		if err := utility(ctx, conn, "CREATE EXTENSION IF NOT EXISTS %I", ext); err != nil {
			return exitcode.Wrap(ExitRestore, fmt.Errorf("creating extension %q: %w", ext, err))
		}
	}
	r.log.Info("temporary database created", "temporary", temp, "encoding", r.cfg.Codepage, "locale", r.cfg.Locale,
		"owner", r.cfg.User, "extensions", r.cfg.Extensions)
	return nil
}

// ensureRole creates the application role or resets its password, from the
// environment, as a SCRAM verifier. An administrator that is not a superuser is made a
// member, so pg_restore --role can create objects owned by the application role.
func (r *run) ensureRole(ctx context.Context) error {
	verifier, err := scramVerifier(r.cfg.Password)
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
	rec := Record{Empty: true, RestoredAt: time.Now().UTC(), RequestID: r.cfg.RequestID, Pod: r.cfg.PodName}
	if err := r.swap(ctx, st, rec); err != nil {
		return Record{}, err
	}
	r.log.Info("empty database created (no backup exists)", "encoding", r.cfg.Codepage, "namespace", r.cfg.Namespace)
	return rec, nil
}

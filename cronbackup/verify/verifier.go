package verify

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// verifierName is the verifier's name for the scratch database: the run role (see
// pg.CreateRunRole) pg_restore logs in as, and the count runs as, so that production's
// code a restore runs (a CHECK constraint's or a generated column's function, an index
// expression, run as the table's owner, a materialized view's query) has its rights
// only; as the admin, the owner of everything, it had made a role a superuser. The
// admin restores what runs no production code and the verifier may not create: the
// schemas and extensions.
func verifierName(scratch string) string { return pg.RunRoleName("smartbackup_verifier_", scratch) }

// createVerifier creates the verifier, allowed to connect to the scratch database and
// to create in its public schema, and keeps its password.
func (r *run) createVerifier(ctx context.Context, scratch string) error {
	conn, err := r.cfg.admin(scratch).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	name := verifierName(scratch)
	password, err := pg.CreateRunRole(ctx, conn, name, scratch, "")
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	r.verifierPassword = password
	var may bool
	if err := conn.QueryRow(ctx, "SELECT has_schema_privilege($1, 'public', 'CREATE')", name).Scan(&may); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("checking the verifier's rights on schema public: %w", pg.RedactServerError(err)))
	}
	if !may {
		if err := pg.Utility(ctx, conn, "GRANT CREATE ON SCHEMA public TO %I", name); err != nil {
			return exitcode.Wrap(ExitDatabase, fmt.Errorf("letting the verifier create in schema public: %w", err))
		}
	}
	r.log.Info("verifier created", "role", name, "scratch", scratch)
	return nil
}

// dropVerifier drops the verifier, if there is one (a killed run's too), on a fresh
// connection that outlives a cancelled run.
func (r *run) dropVerifier(ctx context.Context, scratch string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	conn, err := r.cfg.admin(r.cfg.MaintenanceDatabase).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("connecting to drop the verifier: %w", err))
	}
	defer conn.Close(ctx)
	name := verifierName(scratch)
	dropped, err := pg.DropRunRole(ctx, conn, name, scratch)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	if dropped {
		r.log.Info("verifier dropped", "role", name)
	}
	return nil
}

// grantSchemas lets the verifier use and create in the schemas the admin restored.
func (r *run) grantSchemas(ctx context.Context, scratch string, schemas []string) error {
	if len(schemas) == 0 {
		return nil
	}
	conn, err := r.cfg.admin(scratch).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, s := range schemas {
		if err := pg.Utility(ctx, conn, "GRANT USAGE, CREATE ON SCHEMA %I TO %I", s, verifierName(scratch)); err != nil {
			return exitcode.Wrap(ExitDatabase, fmt.Errorf("letting the verifier create in schema %q: %w", s, err))
		}
	}
	return nil
}

// verifierConn is how the verifier connects to the scratch database.
func (r *run) verifierConn(scratch string) pg.Conn {
	c := r.cfg.admin(scratch)
	c.User, c.Password, c.Params = verifierName(scratch), r.verifierPassword, nil
	return c
}

// asVerifier is a connection to the scratch database as the verifier, with params.
func (r *run) asVerifier(ctx context.Context, scratch string, params map[string]string) (*pgx.Conn, error) {
	c := r.verifierConn(scratch)
	c.Params = params
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, exitcode.Wrap(ExitDatabase, err)
	}
	return conn, nil
}

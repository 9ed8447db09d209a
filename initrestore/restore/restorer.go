package restore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// restorerName is the restorer's name for the database: the run role (see
// pg.CreateRunRole) pg_restore and the masking log in as, acting as the application
// role from it, so that production's code they run (a CHECK constraint's function at
// each row, a trigger the masking fires) reaches no higher; in the administrator's
// session it had made the application role a superuser. Dropped before the swap; a
// killed run's by the next run.
func restorerName(database string) string { return pg.RunRoleName("smartbackup_restorer_", database) }

// createRestorer creates the restorer, a member of the application role, allowed to
// connect to the temporary database only.
func (r *run) createRestorer(ctx context.Context, temp string) error {
	name := restorerName(r.cfg.Database)
	password, err := pg.CreateRunRole(ctx, r.admin, name, temp, r.cfg.User)
	if err != nil {
		return err
	}
	r.restorerPassword = password
	r.log.Info("restorer created", "role", name, "actsAs", r.cfg.User, "until", "the swap")
	return nil
}

// dropRestorer drops the restorer, if there is one, ending its sessions first.
func (r *run) dropRestorer(ctx context.Context) error {
	name := restorerName(r.cfg.Database)
	dropped, err := pg.DropRunRole(ctx, r.admin, name, r.cfg.Database+tempSuffix)
	if err != nil {
		return fmt.Errorf("%w (objects the restorer owns, made after a RESET ROLE by the masking SQL or by production's code, keep it)", err)
	}
	r.restorerPassword = ""
	if dropped {
		r.log.Info("restorer dropped", "role", name)
	}
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
	c.User, c.Password, c.Params = restorerName(r.cfg.Database), r.restorerPassword, nil
	return c
}

package restore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// pinSearchPaths pins the application role's functions in the temporary database to
// the search path its sessions start with, for the rest of the restore: pg_restore's
// empty search path would otherwise fail an index, a generated column or a constraint
// whose function names an object without its schema (pg.EarlyDefinitions says why).
func (r *run) pinSearchPaths(ctx context.Context) error {
	conn, err := r.asApplication(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p, err := pg.PinSearchPaths(ctx, conn, r.cfg.User)
	if err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	r.pinned = p
	r.log.Info("functions pinned to the application's search path until the swap", "functions", len(p.OIDs), "searchPath", p.Path)
	return nil
}

// unpinSearchPaths takes pinSearchPaths' pins off: the functions are as dumped.
func (r *run) unpinSearchPaths(ctx context.Context) error {
	if len(r.pinned.OIDs) == 0 {
		return nil
	}
	conn, err := r.asApplication(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pg.UnpinSearchPaths(ctx, conn, r.pinned); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	r.log.Info("functions unpinned", "functions", len(r.pinned.OIDs))
	r.pinned = pg.Pinned{}
	return nil
}

// asApplication is the administrator's connection to the temporary database, acting
// as the application role (which owns what pg_restore created), as pg_restore's
// --role does.
func (r *run) asApplication(ctx context.Context) (*pgx.Conn, error) {
	conn, err := r.cfg.admin(r.cfg.Database + tempSuffix).Connect(ctx)
	if err != nil {
		return nil, exitcode.Wrap(ExitDatabase, err)
	}
	if _, err := conn.Exec(ctx, "SET ROLE "+pg.Quote(r.cfg.User)); err != nil {
		_ = conn.Close(context.WithoutCancel(ctx))
		return nil, exitcode.Wrap(ExitRestore, fmt.Errorf("acting as the application role: %w", pg.RedactServerError(err)))
	}
	return conn, nil
}

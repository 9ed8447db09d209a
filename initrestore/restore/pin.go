package restore

import (
	"context"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// pinSearchPaths pins the application role's functions in the temporary database to
// the search path its sessions start with, for the rest of the restore: pg_restore's
// empty search path would otherwise fail an index, a generated column or a constraint
// whose function names an object without its schema (pg.EarlyDefinitions says why).
func (r *run) pinSearchPaths(ctx context.Context) error {
	conn, err := r.asRestorer(ctx)
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
	conn, err := r.asRestorer(ctx)
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

// forceRowSecurityAgain forces row security again on the tables the masking unforced
// it on (pg.UnforceRowSecurity), as the application role.
func (r *run) forceRowSecurityAgain(ctx context.Context) error {
	if len(r.forced) == 0 {
		return nil
	}
	conn, err := r.asRestorer(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if err := pg.ForceRowSecurity(ctx, conn, r.forced); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	r.log.Info("row security forced again", "tables", len(r.forced))
	r.forced = nil
	return nil
}

package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// userTables lists the restored tables, largest first, as qualified identifiers.
const userTables = `
SELECT format('%I.%I', n.nspname, c.relname)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY pg_total_relation_size(c.oid) DESC`

// analyze gives the restored database its planner statistics (pg_restore does not).
// With more than one job the tables are analyzed over that many connections, largest
// first, as `vacuumdb --analyze-only -j` does; the system catalogs are left to
// autovacuum. conn is a connection to the temporary database; an extra connection
// the server refuses (max_connections) only means fewer workers. The first failure
// stops every worker.
func (r *run) analyze(ctx context.Context, conn *pgx.Conn, jobs int) error {
	start := time.Now()
	var err error
	if jobs <= 1 {
		if _, err = conn.Exec(ctx, "ANALYZE"); err != nil {
			err = exitcode.Wrap(ExitRestore, fmt.Errorf("analyzing: %w", err))
		}
	} else {
		err = r.analyzeTables(ctx, conn, jobs)
	}
	if err != nil {
		return err
	}
	r.log.Info("restored database analyzed", "jobs", jobs, "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

func (r *run) analyzeTables(ctx context.Context, conn *pgx.Conn, jobs int) error {
	rows, err := conn.Query(ctx, userTables)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan string)
	worker := func(c *pgx.Conn) error {
		for table := range work {
			if _, err := c.Exec(gctx, "ANALYZE "+table); err != nil {
				return exitcode.Wrap(ExitRestore, fmt.Errorf("analyzing %s: %w", table, err))
			}
		}
		return nil
	}
	g.Go(func() error { return worker(conn) })
	for range min(jobs, len(tables)) - 1 {
		g.Go(func() error {
			c, err := r.cfg.admin(r.cfg.Database + tempSuffix).Connect(gctx)
			if err != nil {
				r.log.Info("analyzing with fewer connections", "error", err.Error())
				return nil
			}
			defer c.Close(context.WithoutCancel(ctx))
			return worker(c)
		})
	}
	g.Go(func() error {
		defer close(work)
		for _, t := range tables {
			select {
			case work <- t:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	return g.Wait()
}

package restore

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

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
// autovacuum. conn is a connection to the temporary database.
func (r *run) analyze(ctx context.Context, conn *pgx.Conn, jobs int) error {
	start := time.Now()
	defer func() {
		r.log.Info("restored database analyzed", "jobs", jobs, "duration", time.Since(start).Round(time.Millisecond).String())
	}()
	if jobs <= 1 {
		if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
			return exitcode.Wrap(ExitRestore, fmt.Errorf("analyzing: %w", err))
		}
		return nil
	}
	rows, err := conn.Query(ctx, userTables)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	tables, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	work := make(chan string)
	errs := make(chan error, jobs)
	var wg sync.WaitGroup
	for i := range min(jobs, max(len(tables), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := conn
			if i > 0 {
				var err error
				if c, err = r.cfg.admin(r.cfg.Database + tempSuffix).Connect(ctx); err != nil {
					errs <- exitcode.Wrap(ExitDatabase, err)
					for range work { // let the others finish the list
					}
					return
				}
				defer c.Close(context.WithoutCancel(ctx))
			}
			for table := range work {
				if _, err := c.Exec(ctx, "ANALYZE "+table); err != nil {
					errs <- exitcode.Wrap(ExitRestore, fmt.Errorf("analyzing %s: %w", table, err))
					for range work {
					}
					return
				}
			}
		}()
	}
	for _, t := range tables {
		work <- t
	}
	close(work)
	wg.Wait()
	close(errs)
	return <-errs // the first error, or nil
}

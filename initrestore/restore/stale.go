package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// afterLoad, when set (tests only), runs in the temporary database after pg_restore
// and before the masking, as autovacuum may.
var afterLoad func(ctx context.Context, conn *pgx.Conn) error

// statisticsHolders lists the relations that have planner statistics in the current
// database (per column, of an index expression, or of an extended statistics object
// with data), as the table to look into and whether the statistics are of its whole
// inheritance tree. The pg_stats views work for an administrator that is not a
// superuser (it sees the tables it may read: those the masking can change). Only
// tables, partitioned tables and materialized views: autovacuum analyzes no other kind.
const statisticsHolders = `
WITH s AS (
  SELECT schemaname, tablename, inherited FROM pg_stats
  UNION
  SELECT schemaname, tablename, coalesce((to_jsonb(e) ->> 'inherited')::boolean, false)
  FROM pg_stats_ext e
  WHERE coalesce(to_jsonb(e) ->> 'n_distinct', to_jsonb(e) ->> 'dependencies', to_jsonb(e) ->> 'most_common_vals') IS NOT NULL
)
SELECT DISTINCT format('%I.%I', tn.nspname, t.relname), s.inherited, t.relkind = 'm' AND NOT t.relispopulated
FROM s
JOIN pg_namespace n ON n.nspname = s.schemaname
JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = s.tablename
LEFT JOIN pg_index i ON i.indexrelid = c.oid
JOIN pg_class t ON t.oid = coalesce(i.indrelid, c.oid)
JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE t.relkind IN ('r', 'p', 'm')
  AND tn.nspname NOT IN ('pg_catalog', 'information_schema')
  AND tn.nspname NOT LIKE 'pg\_toast%' AND tn.nspname NOT LIKE 'pg\_temp%'
ORDER BY 1`

// checkStatistics fails closed when a table has statistics but no rows after the
// masking and ANALYZE. ANALYZE rewrites the statistics of every table it samples rows
// from, but keeps them for a table with none: a table the masking emptied (TRUNCATE,
// DELETE of every row, a materialized view refreshed WITH NO DATA) still carries what
// autovacuum sampled during pg_restore, before the masking, and a non-superuser owner
// has no way to delete them on PostgreSQL 12 to 17. Such a database is not swapped in.
// It runs on a fresh admin connection (the masking may have changed its session).
func (r *run) checkStatistics(ctx context.Context) error {
	conn, err := r.cfg.admin(r.cfg.Database + tempSuffix).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	type holder struct {
		table       string
		inherited   bool
		unpopulated bool
	}
	rows, err := conn.Query(ctx, statisticsHolders)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the tables with planner statistics: %w", err))
	}
	holders, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (holder, error) {
		var h holder
		return h, row.Scan(&h.table, &h.inherited, &h.unpopulated)
	})
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the tables with planner statistics: %w", err))
	}
	var stale []string
	for _, h := range holders {
		empty := h.unpopulated
		if !empty {
			only := "ONLY "
			if h.inherited {
				only = ""
			}
			var rowsLeft bool
			if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT FROM "+only+h.table+")").Scan(&rowsLeft); err != nil {
				return exitcode.Wrap(ExitDatabase, fmt.Errorf("checking whether %s has rows: %w", h.table, err))
			}
			empty = !rowsLeft
		}
		if empty && !slices.Contains(stale, h.table) {
			stale = append(stale, h.table)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	names := stale
	if len(names) > 10 {
		names = append(names[:10:10], fmt.Sprintf("and %d more", len(stale)-10))
	}
	r.log.Info("statistics older than the masking", "tables", names)
	return exitcode.Wrap(ExitRestore, fmt.Errorf("not swapping in: %s %s no rows after the masking but planner statistics gathered before it "+
		"(autovacuum analyzed it during pg_restore; ANALYZE of an empty table keeps the old statistics, which may hold unmasked values); "+
		"make the masking keep at least one (masked) row in it, or run the restore again", strings.Join(names, ", "), has(len(stale))))
}

func has(n int) string {
	if n == 1 {
		return "has"
	}
	return "have"
}

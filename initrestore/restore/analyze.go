package restore

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sync/errgroup"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// userTables lists the restored tables, largest heap first, as qualified identifiers
// with the size of their heap (0 for a partitioned table, whose statistics come from
// its partitions). The heap alone: ANALYZE samples the heap, and sizing the indexes and
// TOAST of every table too (pg_total_relation_size) opened four relations more per
// table, 0.4 to 0.7 s more on 3,000 tables with three indexes each (PostgreSQL 12),
// time the final ANALYZE waited for.
const userTables = `
SELECT format('%I.%I', n.nspname, c.relname), n.nspname, c.relname, c.relkind = 'p', pg_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm', 'p')
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname NOT LIKE 'pg\_temp%'
ORDER BY 5 DESC, 1`

// RestoredTable is one row of userTables: a qualified name, whether it is partitioned,
// and its heap's size; Analyzed when analyzeEarly has analyzed it.
type RestoredTable struct {
	Name        string
	Partitioned bool
	HeapBytes   int64
	Analyzed    bool
}

// Batching of small tables: up to smallBatch tables of less than smallTable bytes each
// in one ANALYZE statement (one round trip instead of one per table; the server still
// analyzes each in its own transaction).
const (
	smallTable = 8 << 20
	smallBatch = 64
)

// AnalyzeStatements are the ANALYZE statements for the restored tables (largest
// first): an empty table is skipped (a heap of no pages: its statistics would say
// nothing the planner does not assume of a new table, and autovacuum analyzes it once
// it has rows), one analyzed already too, a large one gets a statement of its own,
// small ones are batched (PostgreSQL 11 and later take several tables in one ANALYZE).
func AnalyzeStatements(tables []RestoredTable, serverMajor int) []string {
	var out, batch []string
	flush := func() {
		if len(batch) > 0 {
			out = append(out, "ANALYZE "+strings.Join(batch, ", "))
			batch = nil
		}
	}
	for _, t := range tables {
		switch {
		case !t.Partitioned && t.HeapBytes == 0, t.Analyzed:
			continue
		case t.HeapBytes >= smallTable || t.Partitioned || serverMajor < 11:
			out = append(out, "ANALYZE "+t.Name)
		default:
			batch = append(batch, t.Name)
			if len(batch) == smallBatch {
				flush()
			}
		}
	}
	flush()
	return out
}

// analyze gives the restored database its planner statistics (pg_restore does not):
// the statements of AnalyzeStatements over up to jobs connections, largest first, as
// `vacuumdb --analyze-only -j` does; the system catalogs are left to autovacuum. conn
// is a connection to the temporary database; an extra connection the server refuses
// (max_connections) only means fewer workers. The first failure stops every worker.
func (r *run) analyze(ctx context.Context, conn *pgx.Conn, jobs int) error {
	start := time.Now()
	rows, err := conn.Query(ctx, userTables)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (RestoredTable, error) {
		var t RestoredTable
		var name TableName
		err := row.Scan(&t.Name, &name.Schema, &name.Name, &t.Partitioned, &t.HeapBytes)
		t.Analyzed = r.analyzed.has(name)
		return t, err
	})
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("listing the restored tables: %w", err))
	}
	stmts := AnalyzeStatements(tables, r.serverMajor())
	if err := r.runAnalyze(ctx, conn, stmts, jobs); err != nil {
		return err
	}
	r.log.Info("restored database analyzed", "tables", len(tables), "statements", len(stmts), "jobs", jobs,
		"analyzedBefore", r.analyzed.len(), "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// analyzeEarly analyzes the big tables as soon as their run has loaded them and built
// their indexes, while the small tables' serial runs go on: those wait on the fsync of
// every file they create, and ANALYZE fills the cores meanwhile instead of after. It
// is called only when nothing is to be masked (statistics copy sampled values: with
// masking, ANALYZE comes after the masking SQL). The tables analyzed are recorded so
// that analyze skips them. It opens at most conns connections: those the run it
// follows has just closed.
func (r *run) analyzeEarly(ctx context.Context, tables []TableName, conns int) error {
	start := time.Now()
	conn, err := r.cfg.admin(r.cfg.Database + tempSuffix).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	stmts := make([]string, len(tables))
	for i, t := range tables {
		stmts[i] = "ANALYZE " + pgx.Identifier{t.Schema, t.Name}.Sanitize()
	}
	if err := r.runAnalyze(ctx, conn, stmts, EarlyAnalyzeConnections(len(stmts), conns, runtime.GOMAXPROCS(0))); err != nil {
		return err
	}
	r.analyzed.add(tables)
	r.log.Info("big tables analyzed", "tables", len(tables), "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// analyzedSet is the tables analyzeEarly has analyzed. A stage's runs go on side by
// side, so every access holds the lock: today only the big tables' run carries
// tables, but a plan that gives tables to two runs must not race.
type analyzedSet struct {
	mu     sync.Mutex
	tables map[TableName]bool
}

func (s *analyzedSet) add(tables []TableName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tables == nil {
		s.tables = make(map[TableName]bool, len(tables))
	}
	for _, t := range tables {
		s.tables[t] = true
	}
}

func (s *analyzedSet) has(t TableName) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tables[t]
}

func (s *analyzedSet) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.tables)
}

// EarlyAnalyzeConnections is how many connections analyzeEarly opens for tables
// tables after a run of runJobs connections, on cpus CPUs: no more than the tables,
// the cores (ANALYZE computes), or the run's connections, so that the restore never
// holds more than RESTORE_JOBS connections at once (the small tables' runs still hold
// theirs).
func EarlyAnalyzeConnections(tables, runJobs, cpus int) int {
	return max(1, min(tables, runJobs, cpus))
}

// analyzeSession is set on every analyzing connection: each table is its own
// transaction, and its commit need not wait for the WAL flush (see
// RestoreSessionOptions).
const analyzeSession = "SET synchronous_commit TO off"

func (r *run) runAnalyze(ctx context.Context, conn *pgx.Conn, stmts []string, jobs int) error {
	g, gctx := errgroup.WithContext(ctx)
	work := make(chan string)
	worker := func(c *pgx.Conn) error {
		if _, err := c.Exec(gctx, analyzeSession); err != nil {
			return exitcode.Wrap(ExitDatabase, fmt.Errorf("setting up the analyzing session: %w", err))
		}
		for stmt := range work {
			if _, err := c.Exec(gctx, stmt); err != nil {
				return exitcode.Wrap(ExitRestore, fmt.Errorf("analyzing (%s): %w", firstTable(stmt), err))
			}
		}
		return nil
	}
	g.Go(func() error { return worker(conn) })
	for range min(jobs, len(stmts)) - 1 {
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
		for _, s := range stmts {
			select {
			case work <- s:
			case <-gctx.Done():
				return nil
			}
		}
		return nil
	})
	return g.Wait()
}

// firstTable names the first table of an ANALYZE statement, for an error message.
func firstTable(stmt string) string {
	t := strings.TrimPrefix(stmt, "ANALYZE ")
	if i := strings.Index(t, ", "); i >= 0 {
		return t[:i] + ", …"
	}
	return t
}

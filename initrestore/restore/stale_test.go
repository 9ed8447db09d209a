package restore_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// withStatistics adds to people what keeps statistics of its own (an expression index
// and an extended statistics object) and a second table of CPFs, seen through a view.
var withStatistics = []string{
	`CREATE INDEX pessoas_nome_lower ON pessoas (lower(nome))`,
	`CREATE STATISTICS pessoas_nome_cpf (ndistinct, dependencies, mcv) ON nome, cpf FROM pessoas`,
	`CREATE TABLE registros (id int PRIMARY KEY, cpf text NOT NULL)`,
	`INSERT INTO registros SELECT i, (ARRAY['111.222.333-44','555.666.777-88','999.000.111-22'])[1 + i % 3] FROM generate_series(1, 2000) i`,
	`CREATE VIEW registros_cpfs AS SELECT DISTINCT cpf FROM registros`,
}

// allStatistics is every planner statistic of the user's tables in db, as text.
func allStatistics(t *testing.T, conn *pgx.Conn) string {
	t.Helper()
	var s string
	err := conn.QueryRow(t.Context(), `SELECT
		coalesce((SELECT string_agg(to_jsonb(s)::text, E'\n') FROM pg_stats s WHERE schemaname = 'public'), '') || E'\n' ||
		coalesce((SELECT string_agg(to_jsonb(e)::text, E'\n') FROM pg_stats_ext e WHERE schemaname = 'public'), '')`).Scan(&s)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestStatisticsOlderThanMasking (issue 10, item 1): statistics autovacuum gathers
// during pg_restore, before the masking, never reach the swapped-in database. ANALYZE
// after the masking rewrites them for a table that keeps rows (column, expression
// index and extended statistics); a table the masking empties would keep them, so
// such a restore is refused (exit 4) and nothing is swapped in.
func TestStatisticsOlderThanMasking(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, slices.Concat(people, withStatistics))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)

			// autovacuum, simulated: ANALYZE between pg_restore and the masking.
			early := ""
			*restore.AfterLoad = func(ctx context.Context, conn *pgx.Conn) error {
				if _, err := conn.Exec(ctx, "ANALYZE"); err != nil {
					return err
				}
				early = allStatistics(t, conn)
				return nil
			}
			t.Cleanup(func() { *restore.AfterLoad = nil })
			const maskPeople = "UPDATE pessoas SET nome = 'Pessoa ' || (id % 3), cpf = lpad((id % 3)::text, 11, '0');"
			checkClean := func(t *testing.T, tg *target) string {
				t.Helper()
				stats := allStatistics(t, tg.pg.Connect(t, tg.db))
				for _, v := range personalValues {
					if strings.Contains(stats, v) {
						t.Fatalf("the statistics of the masked database carry %q:\n%s", v, stats)
					}
				}
				return stats
			}

			t.Run("rows kept: every kind of statistics is rewritten", func(t *testing.T) {
				tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
				tg.env["ENVIRONMENT"] = "internal-dev"
				mask := writeFile(t, maskPeople+"\nUPDATE registros SET cpf = lpad((id % 2)::text, 11, '0');")
				if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": mask}); err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(early, "111.222.333-44") || !strings.Contains(early, "pessoas_nome_lower") || !strings.Contains(early, "pessoas_nome_cpf") {
					t.Fatalf("the early ANALYZE gathered no statistics of the original values:\n%s", early)
				}
				stats := checkClean(t, tg)
				for _, want := range []string{`"tablename": "pessoas_nome_lower"`, `"statistics_name": "pessoas_nome_cpf"`, "Pessoa 1", "00000000001"} {
					if !strings.Contains(stats, want) {
						t.Fatalf("no %s in the statistics of the masked database:\n%s", want, stats)
					}
				}
			})

			t.Run("a table emptied after autovacuum: refused", func(t *testing.T) {
				tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
				tg.env["ENVIRONMENT"] = "internal-dev"
				mask := writeFile(t, maskPeople+"\nTRUNCATE registros;")
				_, logs, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": mask})
				if err == nil {
					t.Fatalf("swapped in a database whose statistics predate the masking:\n%s", checkClean(t, tg))
				}
				if code := exitcode.Of(err, -1); code != restore.ExitRestore || !strings.Contains(err.Error(), "public.registros has no rows after the masking") {
					t.Fatalf("exit %d, %v; want %d naming public.registros", code, err, restore.ExitRestore)
				}
				for _, v := range personalValues {
					if strings.Contains(err.Error(), v) || strings.Contains(logs, v) {
						t.Fatalf("%q in the error or the log", v)
					}
				}
				if dbs := tg.databases(t); len(dbs) != 0 {
					t.Fatalf("left %v behind", dbs)
				}
			})

			t.Run("a table emptied without autovacuum: restored", func(t *testing.T) {
				*restore.AfterLoad = nil
				tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
				tg.env["ENVIRONMENT"] = "internal-dev"
				mask := writeFile(t, maskPeople+"\nDELETE FROM registros;")
				if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": mask}); err != nil {
					t.Fatal(err)
				}
				if stats := checkClean(t, tg); !strings.Contains(stats, "Pessoa 1") || strings.Contains(stats, `"tablename": "registros"`) {
					t.Fatalf("statistics of the masked database:\n%s", stats)
				}
				var n int
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT count(*) FROM registros_cpfs").Scan(&n); err != nil || n != 0 {
					t.Fatalf("registros_cpfs: %d rows, %v", n, err)
				}
			})
		})
	}
}

package restore_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestRestoreWithUnqualifiedFunctions: production's accent-insensitive search, a
// function naming unaccent without its schema called by an index, a generated column,
// a CHECK constraint and a materialized view, restores in every plan (pg_restore's
// empty search_path failed it: "function unaccent(unknown, text) does not exist"), and
// the restored functions are as dumped.
func TestRestoreWithUnqualifiedFunctions(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, []string{"CREATE EXTENSION unaccent"}, append(slices.Clone(people), unqualifiedFunctions("pessoas", "nome")...))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			for name, extra := range map[string]map[string]string{
				"streamed":         {},
				"spooled, 4 jobs":  {"RESTORE_SCRATCH_DIR": t.TempDir(), "RESTORE_JOBS": "4"},
				"spooled, one job": {"RESTORE_SCRATCH_DIR": t.TempDir(), "RESTORE_JOBS": "1"},
			} {
				t.Run(name, func(t *testing.T) {
					tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
					tg.env["DATABASE_EXTENSIONS"] = "unaccent"
					_, logs, err := tg.run(t, extra)
					if err != nil {
						t.Fatal(err)
					}
					if !strings.Contains(logs, `"msg":"functions pinned to the application's search path until the swap"`) ||
						!strings.Contains(logs, `"functions":1,"searchPath":"\"$user\", public"`) || !strings.Contains(logs, `"msg":"functions unpinned"`) {
						t.Errorf("the log does not say one function was pinned and unpinned:\n%s", logs)
					}
					// What the functions compute, in production and in the copy.
					computed := func(db string) (s string) {
						t.Helper()
						if err := tg.pg.Connect(t, db).QueryRow(t.Context(), `SELECT concat_ws(' | ',
							(SELECT string_agg(proname || '=' || coalesce(array_to_string(proconfig, ';'), 'none'), ' ' ORDER BY proname) FROM pg_proc WHERE proname LIKE '%sem_acento'),
							(SELECT count(*) FROM pg_index WHERE indexrelid::regclass::text IN ('busca_sem_acento', 'rotulo_sem_acento') AND indisvalid),
							(SELECT string_agg(DISTINCT busca, ',') FROM pessoas),
							(SELECT string_agg(r || '/' || s, ',') FROM rotulos),
							(SELECT count(*) FROM pessoas WHERE sem_acento(nome) = sem_acento('Ação')))`).Scan(&s); err != nil {
							t.Fatal(err)
						}
						return s
					}
					got, want := computed(tg.db), computed(src.Database)
					if got != want || !strings.HasPrefix(got, "rotulo_sem_acento=search_path=pg_catalog, public sem_acento=none | 2 | ") || !strings.HasSuffix(got, " | 3000") {
						t.Errorf("restored %q, production %q: want the same, the functions as dumped, 2 valid indexes, 3000 rows found", got, want)
					}
				})
			}
		})
	}
}

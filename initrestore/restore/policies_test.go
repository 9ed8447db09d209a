package restore_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// pgDumpPolicies is what pg_restore --file=- prints for policies and their comments.
const pgDumpPolicies = `--
-- PostgreSQL database dump
--

SET statement_timeout = 0;
SELECT pg_catalog.set_config('search_path', '', false);

--
-- Name: pessoas leitura; Type: POLICY; Schema: public; Owner: erp_prod
--

CREATE POLICY leitura ON public.pessoas AS RESTRICTIVE FOR SELECT TO relatorios, erp_prod USING ((id > 0));


--
-- Name: POLICY leitura ON pessoas; Type: COMMENT; Schema: public; Owner: erp_prod
--

COMMENT ON POLICY leitura ON public.pessoas IS 'só leitura; ''aspas''';


--
-- Name: pessoas "só relatórios"; Type: POLICY; Schema: public; Owner: erp_prod
--

CREATE POLICY "só relatórios" ON public.pessoas TO relatorios, "Auditoria" USING (true) WITH CHECK ((nome <> 'x;y'::text));

COMMENT ON POLICY "só relatórios" ON public.pessoas IS 'some';

CREATE POLICY "Todos" ON "Fiscal"."Itens da Nota" FOR ALL USING (true);
`

func TestParsePolicies(t *testing.T) {
	got, err := restore.ParsePolicies(pgDumpPolicies)
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		Key    string
		Create bool
		Roles  []string
	}
	var rows []row
	for _, p := range got {
		rows = append(rows, row{p.Key, p.Create, p.Roles})
	}
	want := []row{
		{"leitura ON public.pessoas", true, []string{"relatorios", "erp_prod"}},
		{"leitura ON public.pessoas", false, nil},
		{`"só relatórios" ON public.pessoas`, true, []string{"relatorios", "Auditoria"}},
		{`"só relatórios" ON public.pessoas`, false, nil},
		{`"Todos" ON "Fiscal"."Itens da Nota"`, true, nil},
	}
	if diff := cmp.Diff(want, rows); diff != "" {
		t.Fatalf("ParsePolicies (-want +got):\n%s", diff)
	}
	// A policy statement of another shape is an error, not a policy lost.
	for _, bad := range []string{`CREATE POLICY p ON t TO r USING (true);`, `COMMENT ON POLICY p IS 'x';`, `CREATE POLICY p ON s.t TO r"x" USING (true);`} {
		if _, err := restore.ParsePolicies(bad); err == nil {
			t.Errorf("ParsePolicies(%q): no error", bad)
		}
	}
	for name, c := range map[string]struct {
		exists  map[string]bool
		want    []string
		leftOut []string
	}{
		"production's role mapped, a missing one dropped, a policy left with none left out": {map[string]bool{}, []string{
			`CREATE POLICY leitura ON public.pessoas AS RESTRICTIVE FOR SELECT TO "app_hml" USING ((id > 0))`,
			`COMMENT ON POLICY leitura ON public.pessoas IS 'só leitura; ''aspas'''`,
			`CREATE POLICY "Todos" ON "Fiscal"."Itens da Nota" FOR ALL USING (true)`,
		}, []string{`"só relatórios" ON public.pessoas`}},
		"roles the server has kept": {map[string]bool{"relatorios": true, "Auditoria": true}, []string{
			`CREATE POLICY leitura ON public.pessoas AS RESTRICTIVE FOR SELECT TO "relatorios", "app_hml" USING ((id > 0))`,
			`COMMENT ON POLICY leitura ON public.pessoas IS 'só leitura; ''aspas'''`,
			`CREATE POLICY "só relatórios" ON public.pessoas TO "relatorios", "Auditoria" USING (true) WITH CHECK ((nome <> 'x;y'::text))`,
			`COMMENT ON POLICY "só relatórios" ON public.pessoas IS 'some'`,
			`CREATE POLICY "Todos" ON "Fiscal"."Itens da Nota" FOR ALL USING (true)`,
		}, nil},
	} {
		t.Run(name, func(t *testing.T) {
			stmts, leftOut := restore.MapPolicyRoles(got, "erp_prod", "app_hml", c.exists)
			if diff := cmp.Diff(c.want, stmts); diff != "" {
				t.Errorf("statements (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(c.leftOut, leftOut); diff != "" {
				t.Errorf("left out (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzParsePolicies: on any text, parsing returns; a CREATE POLICY it parses keeps
// its text around the roles, so giving it back its own roles rewrites nothing but
// their quoting.
func FuzzParsePolicies(f *testing.F) {
	f.Add(pgDumpPolicies)
	f.Add(`CREATE POLICY p ON s.t TO a, "b""c" USING (true)`)
	f.Add(`CREATE POLICY "x ON y" ON "a"."b" AS PERMISSIVE FOR UPDATE TO "TO", r;`)
	f.Add(`COMMENT ON POLICY p ON s.t IS $$a;b$$; CREATE POLICY`)
	f.Fuzz(func(t *testing.T, sql string) {
		policies, _ := restore.ParsePolicies(sql)
		for _, p := range policies {
			if !p.Create || len(p.Roles) == 0 {
				continue
			}
			again, err := restore.ParsePolicies(p.WithRoles(p.Roles))
			if err != nil || len(again) != 1 || !slices.Equal(again[0].Roles, p.Roles) || again[0].Key != p.Key {
				t.Fatalf("%q rewritten as %q parses as %+v", p.SQL, p.WithRoles(p.Roles), again)
			}
		}
	})
}

// TestRestorePoliciesWithThisServersRoles: production's row-level security policies
// name roles this server does not have (a reporting role, production's application
// role); pg_restore failed on them ("role … does not exist"). They are created after
// the load with this server's roles: production's application role becomes this one,
// a missing role is dropped, a policy left with none is left out with its comment.
func TestRestorePoliciesWithThisServersRoles(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			reports := testenv.RandomName("relatorios_")
			src := customSource(t, major, []string{"CREATE ROLE " + reports + " NOLOGIN"}, append(slices.Clone(people),
				`ALTER TABLE pessoas ENABLE ROW LEVEL SECURITY`,
				`CREATE POLICY leitura ON pessoas AS RESTRICTIVE FOR SELECT TO `+reports+`, CURRENT_USER USING (id > 0)`,
				`COMMENT ON POLICY leitura ON pessoas IS 'so leitura'`,
				`CREATE POLICY "So Relatorios" ON pessoas TO `+reports+` USING (true)`,
				`COMMENT ON POLICY "So Relatorios" ON pessoas IS 'relatorios'`,
				`CREATE POLICY "Todos" ON pessoas USING (true)`,
				// Accents as the database's WIN1252 holds them, in a name, a literal and a
				// comment: pg_restore prints them in WIN1252.
				`DO $$ BEGIN
					EXECUTE format('CREATE POLICY %I ON pessoas USING (nome <> %L)', 'pol' || chr(237) || 'tica', 'S' || chr(195) || 'O PAULO');
					EXECUTE format('COMMENT ON POLICY %I ON pessoas IS %L', 'pol' || chr(237) || 'tica', 'Pol' || chr(237) || 'tica de leitura');
				END $$`))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			// The reporting role is production's only.
			src.PG.Exec(t, src.Database, `DROP POLICY leitura ON pessoas`, `DROP POLICY "So Relatorios" ON pessoas`)
			src.PG.Exec(t, "postgres", "DROP ROLE "+reports)
			restoreBothWays(t, src, url, func(t *testing.T, tg *target, logs string) {
				if !strings.Contains(logs, `"msg":"policies left out: none of their roles is on this server","database":"`+tg.db+`","policies":["\"So Relatorios\" ON public.pessoas"]`) {
					t.Errorf("the log does not name the policy left out:\n%s", logs)
				}
				var policies string
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT string_agg(format('%s %s %s %s %s', policyname, permissive, cmd, roles::text,
					coalesce(obj_description(p.oid, 'pg_policy'), '-')), ' | ' ORDER BY policyname)
					FROM pg_policies s JOIN pg_policy p ON p.polname = s.policyname WHERE tablename = 'pessoas' AND policyname IN ('Todos', 'leitura')`).Scan(&policies); err != nil {
					t.Fatal(err)
				}
				want := fmt.Sprintf("Todos PERMISSIVE ALL {public} - | leitura RESTRICTIVE SELECT {%s} so leitura", tg.user)
				if policies != want {
					t.Errorf("policies %q, want %q", policies, want)
				}
				accented := func(db string) (s string) {
					if err := tg.pg.Connect(t, db).QueryRow(t.Context(), `SELECT format('%s %s %s', polname, pg_get_expr(polqual, polrelid), obj_description(oid, 'pg_policy'))
						FROM pg_policy WHERE polname LIKE 'pol_tica'`).Scan(&s); err != nil {
						t.Fatalf("the accented policy in %s: %v", db, err)
					}
					return s
				}
				if got, want := accented(tg.db), accented(src.Database); got != want {
					t.Errorf("accented policy %q, production's %q", got, want)
				}
			})
		})
	}
}

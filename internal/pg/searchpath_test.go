package pg_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestEarlyDefinitions(t *testing.T) {
	e := func(id int, desc string, section int, deps ...int) pg.TOCEntry {
		return pg.TOCEntry{ID: id, Desc: desc, Section: section, Deps: deps}
	}
	pre, none, data, post := pg.SectionPreData, pg.SectionNone, pg.SectionData, pg.SectionPostData
	for name, c := range map[string]struct {
		toc  []pg.TOCEntry
		want []int
	}{
		"a function and what it stands on": {[]pg.TOCEntry{e(1, "SCHEMA", pre), e(2, "DOMAIN", pre, 1), e(3, "FUNCTION", pre, 1, 2),
			e(4, "COMMENT", none, 3), e(5, "TABLE", pre, 1), e(6, "TABLE DATA", data, 5), e(7, "INDEX", post, 5, 3)}, []int{1, 2, 3, 4}},
		"on a table, directly or not": {[]pg.TOCEntry{e(1, "SCHEMA", pre), e(2, "FUNCTION", pre, 1), e(5, "TABLE", pre, 1),
			e(6, "COMMENT", none, 5), e(7, "FUNCTION", pre, 5), e(8, "VIEW", pre, 7), e(9, "SEQUENCE OWNED BY", pre, 5)}, []int{1, 2}},
		"a view over functions only": {[]pg.TOCEntry{e(1, "FUNCTION", pre), e(2, "VIEW", pre, 1)}, []int{1, 2}},
		"no function":                {[]pg.TOCEntry{e(1, "SCHEMA", pre), e(2, "TYPE", pre, 1), e(3, "TABLE", pre, 2)}, nil},
		"only a function over a row type": {[]pg.TOCEntry{e(1, "SCHEMA", pre), e(2, "TABLE", pre, 1),
			e(3, "FUNCTION", pre, 2)}, nil},
		"a dependency that points forward": {[]pg.TOCEntry{e(1, "FUNCTION", pre), e(2, "TYPE", pre, 3), e(3, "TABLE", pre)}, []int{1}},
		"a dependency not in the archive":  {[]pg.TOCEntry{e(1, "FUNCTION", pre, 99)}, []int{1}},
		"data and post-data never":         {[]pg.TOCEntry{e(1, "FUNCTION", pre), e(2, "SEQUENCE SET", data), e(3, "COMMENT", none), e(4, "TRIGGER", post)}, []int{1}},
		"empty":                            {nil, nil},
	} {
		t.Run(name, func(t *testing.T) {
			if diff := cmp.Diff(c.want, pg.EarlyDefinitions(c.toc)); diff != "" {
				t.Errorf("EarlyDefinitions (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPinSearchPaths: the role's functions that set no search path are pinned to the
// one its sessions start with (its ALTER ROLE setting), a function naming unaccent
// without its schema then works in an empty search path, and unpinning leaves every
// function as it was; functions that set their own, and an extension's, are left alone.
func TestPinSearchPaths(t *testing.T) {
	p := testenv.StartPostgres(t, 15)
	db, role := testenv.RandomName("pin_"), testenv.RandomName("pin_app_")
	p.CreateRole(t, role, "senha")
	p.Exec(t, "postgres", "CREATE DATABASE "+db+" OWNER "+role, "ALTER ROLE "+role+" SET search_path = extensoes, public")
	t.Cleanup(func() { p.Exec(t, "postgres", "DROP DATABASE "+db+" WITH (FORCE)", "DROP ROLE "+role) })
	conn := p.Connect(t, db)
	ctx := t.Context()
	query := func(sql string) string {
		t.Helper()
		var s string
		if err := conn.QueryRow(ctx, sql).Scan(&s); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		return s
	}
	configs := `SELECT string_agg(proname || '=' || coalesce(array_to_string(proconfig, ';'), '-'), ' ' ORDER BY proname)
		FROM pg_proc WHERE proname IN ('sem_acento', 'proprio', 'unaccent_init')`
	p.Exec(t, db, "SET ROLE "+role, "CREATE SCHEMA extensoes", "CREATE EXTENSION unaccent SCHEMA extensoes", "SET search_path = extensoes, public",
		`CREATE FUNCTION public.sem_acento(text) RETURNS text IMMUTABLE LANGUAGE sql AS $$ SELECT unaccent('unaccent', $1) $$`,
		`CREATE FUNCTION public.proprio() RETURNS int LANGUAGE sql SET search_path = pg_catalog AS $$ SELECT 1 $$`)
	before := query(configs)
	if _, err := conn.Exec(ctx, "SET ROLE "+role); err != nil {
		t.Fatal(err)
	}
	pinned, err := pg.PinSearchPaths(ctx, conn, role)
	if err != nil {
		t.Fatal(err)
	}
	if len(pinned.OIDs) != 1 || pinned.Path != "extensoes, public" {
		t.Errorf("pinned %+v, want sem_acento to the role's extensoes, public", pinned)
	}
	if got, want := query(configs), "proprio=search_path=pg_catalog sem_acento=search_path=extensoes, public unaccent_init=-"; got != want {
		t.Errorf("pinned: %q, want %q", got, want)
	}
	if got := query(`SELECT public.sem_acento('Ação')`); got != "Acao" {
		t.Errorf("sem_acento in an empty search path = %q, want Acao", got)
	}
	if err := pg.UnpinSearchPaths(ctx, conn, pinned); err != nil {
		t.Fatal(err)
	}
	if got := query(configs); got != before {
		t.Errorf("unpinned: %q, want %q as before", got, before)
	}
}

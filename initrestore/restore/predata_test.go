package restore_test

import (
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/pg"
)

func TestSplitPreData(t *testing.T) {
	// entry builds a TOC entry: id, desc, section, deps.
	entry := func(id int, desc string, section int, deps ...int) pg.TOCEntry {
		return pg.TOCEntry{ID: id, Desc: desc, Section: section, Deps: deps}
	}
	const pre, none, data, post = pg.SectionPreData, pg.SectionNone, pg.SectionData, pg.SectionPostData
	// tables: n tables from id 100 on, each in schema 1, each with a comment.
	tables := func(n int) []pg.TOCEntry {
		var toc []pg.TOCEntry
		for i := range n {
			toc = append(toc, entry(100+2*i, "TABLE", pre, 1), entry(101+2*i, "COMMENT", none, 100+2*i))
		}
		return toc
	}
	all := func(toc []pg.TOCEntry, except ...int) map[int]bool {
		m := map[int]bool{}
		for _, e := range toc {
			m[e.ID] = true
		}
		for _, id := range except {
			delete(m, id)
		}
		return m
	}
	many := append(append([]pg.TOCEntry{entry(1, "SCHEMA", pre), entry(2, "TYPE", pre, 1), entry(3, "SEQUENCE", pre, 1)},
		tables(64)...),
		entry(300, "SEQUENCE OWNED BY", pre, 3, 100), entry(301, "VIEW", pre, 102, 104), entry(302, "FUNCTION", pre, 1),
		entry(400, "TABLE DATA", data, 100), entry(401, "INDEX", post, 100), entry(402, "COMMENT", none, 401))

	t.Run("tables and what depends on them go together, the rest first", func(t *testing.T) {
		split, ok := restore.SplitPreData(many, all(many), 2)
		if !ok {
			t.Fatal("not split")
		}
		if want := []int{1, 2, 3, 302}; !cmp.Equal(split.First, want) {
			t.Errorf("First = %v, want %v", split.First, want)
		}
		if len(split.Groups) != 2 {
			t.Fatalf("%d groups", len(split.Groups))
		}
		group := map[int]int{}
		n := 0
		for g, ids := range split.Groups {
			for k, id := range ids {
				if k > 0 && ids[k-1] > id {
					t.Errorf("group %d is out of the archive's order: %v", g, ids)
				}
				group[id] = g
				n++
			}
		}
		if n != 2*64+2 {
			t.Errorf("%d entries in the groups, want %d", n, 2*64+2)
		}
		for _, tie := range [][]int{{100, 101, 300}, {102, 104, 301}} {
			for _, id := range tie[1:] {
				if _, ok := group[id]; !ok || group[id] != group[tie[0]] {
					t.Errorf("entry %d is not in the group of %d", id, tie[0])
				}
			}
		}
		for _, id := range []int{400, 401, 402} {
			if _, ok := group[id]; ok {
				t.Errorf("entry %d of data or post-data in a group", id)
			}
		}
		if d := len(split.Groups[0]) - len(split.Groups[1]); d < -3 || d > 3 {
			t.Errorf("groups of %d and %d entries", len(split.Groups[0]), len(split.Groups[1]))
		}
	})
	t.Run("entries left out of the list are not restored", func(t *testing.T) {
		split, ok := restore.SplitPreData(many, all(many, 1, 301), 2)
		if !ok {
			t.Fatal("not split")
		}
		for _, g := range append(split.Groups, split.First) {
			for _, id := range g {
				if id == 1 || id == 301 {
					t.Errorf("entry %d restored", id)
				}
			}
		}
	})
	t.Run("a function over a table's row type waits for the table", func(t *testing.T) {
		toc := append(append([]pg.TOCEntry{}, many...), entry(303, "FUNCTION", pre, 106), entry(304, "COMMENT", none, 303))
		split, _ := restore.SplitPreData(toc, all(toc), 2)
		for _, id := range split.First {
			if id == 303 || id == 304 {
				t.Errorf("entry %d in First: %v", id, split.First)
			}
		}
	})
	for name, c := range map[string]struct {
		toc []pg.TOCEntry
		n   int
	}{
		"one run":                      {many, 1},
		"few tables":                   {append([]pg.TOCEntry{entry(1, "SCHEMA", pre)}, tables(10)...), 2},
		"every table tied to the next": {chain(64), 2},
	} {
		t.Run(name, func(t *testing.T) {
			if split, ok := restore.SplitPreData(c.toc, all(c.toc), c.n); ok {
				t.Errorf("split: %+v", split)
			}
		})
	}
}

// chain is n tables, each inheriting from the one before.
func chain(n int) []pg.TOCEntry {
	toc := []pg.TOCEntry{{ID: 1, Desc: "TABLE", Section: pg.SectionPreData}}
	for i := 2; i <= n; i++ {
		toc = append(toc, pg.TOCEntry{ID: i, Desc: "TABLE", Section: pg.SectionPreData, Deps: []int{i - 1}})
	}
	return toc
}

func TestSubList(t *testing.T) {
	list := ";\n; Archive created at …\n208; 1259 16667 TABLE public sa1010 erp\n;209; 0 0 COMMENT - x\n1142; 1259 32545 TABLE public sa1020 erp\n2078; 1259 48457 TABLE public sa1030 erp\n"
	if got := restore.ListIDs(list); !cmp.Equal(got, []int{208, 1142, 2078}) {
		t.Errorf("ListIDs = %v", got)
	}
	if got, want := restore.SubList(list, []int{2078, 208}), "208; 1259 16667 TABLE public sa1010 erp\n2078; 1259 48457 TABLE public sa1030 erp\n"; got != want {
		t.Errorf("SubList = %q, want %q", got, want)
	}
}

// shapes are the definitions a split must keep in order: a schema, an enum and a
// domain, serial columns (sequences owned by their tables, defaults), comments, a view
// over two tables, a function over a table's row type, a partitioned table, an
// inherited one and a materialized view; and enough plain tables to split.
func shapes() []string {
	q := []string{
		`CREATE SCHEMA erp`,
		`CREATE TYPE erp.situacao AS ENUM ('aberto', 'fechado')`,
		`CREATE DOMAIN erp.cpf AS char(14) CHECK (VALUE ~ '^[0-9.-]+$')`,
	}
	for i := range 80 {
		q = append(q, fmt.Sprintf(`CREATE TABLE erp.t%02d (id serial PRIMARY KEY, s erp.situacao DEFAULT 'aberto', c erp.cpf, v char(10) DEFAULT ' ')`, i),
			fmt.Sprintf(`COMMENT ON TABLE erp.t%02d IS 'tabela %d'`, i, i),
			fmt.Sprintf(`COMMENT ON COLUMN erp.t%02d.v IS 'coluna'`, i),
			fmt.Sprintf(`CREATE INDEX ON erp.t%02d (v)`, i),
			fmt.Sprintf(`INSERT INTO erp.t%02d (c) SELECT '111.222.333-44' FROM generate_series(1, %d)`, i, i%7))
	}
	return append(q,
		`CREATE VIEW erp.juntas AS SELECT a.id, b.v FROM erp.t01 a JOIN erp.t02 b USING (id)`,
		`CREATE FUNCTION erp.rotulo(r erp.t03) RETURNS text LANGUAGE sql AS $$ SELECT r.v || r.c $$`,
		`CREATE TABLE erp.notas (id int, emitida date NOT NULL) PARTITION BY RANGE (emitida)`,
		`CREATE TABLE erp.notas_2025 PARTITION OF erp.notas FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')`,
		`CREATE TABLE erp.notas_2026 PARTITION OF erp.notas FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		`INSERT INTO erp.notas VALUES (1, '2025-03-01'), (2, '2026-03-01')`,
		`CREATE TABLE erp.base (id int, v text)`,
		`CREATE TABLE erp.filha (extra int) INHERITS (erp.base)`,
		`INSERT INTO erp.filha VALUES (1, 'x', 2)`,
		`CREATE MATERIALIZED VIEW erp.resumo AS SELECT count(*) AS n FROM erp.t04`,
	)
}

// TestSplitDefinitionsRestoreEveryShape: a database of the shapes above restores, with
// its definitions split, to the same schema-only dump and the same rows.
func TestSplitDefinitionsRestoreEveryShape(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(4))
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, []string{"CREATE EXTENSION pg_trgm", "CREATE EXTENSION unaccent"}, shapes())
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			_, logs, err := tg.run(t, map[string]string{"RESTORE_SCRATCH_DIR": t.TempDir(), "RESTORE_JOBS": "4"})
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs, `"definitions split"`) {
				t.Fatal("the definitions were not split")
			}
			dump := func(db string) string {
				c, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", major)
				if err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(c.Path, "--schema-only", "--no-owner", "--no-acl")
				cmd.Env = src.PG.Env(db)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("pg_dump %s: %v", db, err)
				}
				var keep []string
				for line := range strings.Lines(string(out)) {
					if !strings.HasPrefix(line, `\restrict`) && !strings.HasPrefix(line, `\unrestrict`) {
						keep = append(keep, line)
					}
				}
				return strings.Join(keep, "")
			}
			if diff := cmp.Diff(dump(src.Database), dump(tg.db)); diff != "" {
				t.Errorf("schema (-source +restored):\n%s", diff)
			}
			count := func(db string) string {
				var s string
				err := src.PG.Connect(t, db).QueryRow(t.Context(), `SELECT string_agg(format('%s=%s', t, n), ' ' ORDER BY t) FROM (
					SELECT 't00' AS t, count(*) AS n FROM erp.t00 UNION ALL SELECT 't06', count(*) FROM erp.t06
					UNION ALL SELECT 'notas', count(*) FROM erp.notas UNION ALL SELECT 'base', count(*) FROM erp.base
					UNION ALL SELECT 'resumo', n FROM erp.resumo UNION ALL SELECT 'juntas', count(*) FROM erp.juntas) c`).Scan(&s)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			if got, want := count(tg.db), count(src.Database); got != want {
				t.Errorf("rows restored: %s, want %s", got, want)
			}
		})
	}
}

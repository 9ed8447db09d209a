package restore_test

import (
	"fmt"
	"math/rand/v2"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// entry builds a TOC entry: id, desc, section, deps.
func entry(id int, desc string, section int, deps ...int) pg.TOCEntry {
	return pg.TOCEntry{ID: id, Desc: desc, Section: section, Deps: deps}
}

const pre, none, data, post = pg.SectionPreData, pg.SectionNone, pg.SectionData, pg.SectionPostData

// erpTOC is an archive's table of contents shaped like an ERP company's: n small
// tables from id 1000 on (each a TABLE with a comment, its data of a few KiB, a
// primary key and an index with a comment), one big table (100) with its data and an
// index, and what ties tables together: a view over two small tables, a function over
// a table's row type, a self-referencing foreign key, foreign keys between tables, a
// materialized view over a small table, a sequence and its value.
func erpTOC(n int) []pg.TOCEntry {
	toc := []pg.TOCEntry{entry(1, "SCHEMA", pre), entry(2, "TYPE", pre, 1), entry(3, "SEQUENCE", pre, 1), entry(4, "FUNCTION", pre, 1),
		entry(100, "TABLE", pre, 1, 2), entry(101, "COMMENT", none, 100)}
	for i := range n {
		id := 1000 + 10*i
		toc = append(toc, entry(id, "TABLE", pre, 1), entry(id+1, "COMMENT", none, id))
	}
	toc = append(toc, entry(300, "SEQUENCE OWNED BY", pre, 3, 1000), entry(301, "VIEW", pre, 1010, 1020),
		entry(302, "FUNCTION", pre, 1030), entry(303, "MATERIALIZED VIEW", pre, 1040), entry(304, "EXTENSION", pre))
	offset := int64(4096)
	blockAt := func(e pg.TOCEntry, size int64) pg.TOCEntry {
		e.DataOffset, offset = offset, offset+size
		return e
	}
	bigData := entry(102, "TABLE DATA", data, 100)
	bigData.Namespace, bigData.Tag = "public", "sc6010"
	toc = append(toc, blockAt(bigData, 64<<20))
	for i := range n {
		id := 1000 + 10*i
		toc = append(toc, blockAt(entry(id+2, "TABLE DATA", data, id), 4<<10))
	}
	toc = append(toc, entry(305, "SEQUENCE SET", data, 3), entry(103, "INDEX", post, 100))
	for i := range n {
		id := 1000 + 10*i
		toc = append(toc, entry(id+3, "CONSTRAINT", post, id), entry(id+4, "INDEX", post, id), entry(id+5, "COMMENT", none, id+4))
	}
	return append(toc, entry(306, "FK CONSTRAINT", post, 1050, 1053), // self-referencing
		entry(307, "FK CONSTRAINT", post, 1060, 1073), entry(308, "COMMENT", none, 307), // between small tables
		entry(309, "FK CONSTRAINT", post, 1080, 103), // to the big table
		entry(310, "MATERIALIZED VIEW DATA", post, 303), entry(311, "EVENT TRIGGER", post, 4))
}

// archiveEnd is the size of an archive whose last data block, as every small table's,
// is 4 KiB.
func archiveEnd(toc []pg.TOCEntry) int64 {
	var end int64
	for _, e := range toc {
		end = max(end, e.DataOffset+4<<10)
	}
	return end
}

// listedAll lists every entry of toc but except.
func listedAll(toc []pg.TOCEntry, except ...int) map[int]bool {
	m := map[int]bool{}
	for _, e := range toc {
		m[e.ID] = true
	}
	for _, id := range except {
		delete(m, id)
	}
	return m
}

func TestPlanSpooled(t *testing.T) {
	toc := erpTOC(200)
	listed := listedAll(toc, 1, 304)
	plan := restore.PlanSpooled(toc, listed, archiveEnd(toc), 4, false)
	if len(plan) != 4 {
		t.Fatalf("%d stages, want 4: %v", len(plan), plan)
	}
	// where: dump id → stage and run.
	type at struct{ stage, run int }
	where := map[int]at{}
	pos := map[int]int{}
	for i, e := range toc {
		pos[e.ID] = i
	}
	for s, stage := range plan {
		for r, run := range stage {
			for k, id := range run.IDs {
				if k > 0 && pos[run.IDs[k-1]] > pos[id] {
					t.Errorf("stage %d run %d is out of the archive's order: %v", s, r, run.IDs)
				}
				if w, dup := where[id]; dup {
					t.Errorf("entry %d in stage %d run %d and stage %d run %d", id, w.stage, w.run, s, r)
				}
				where[id] = at{s, r}
			}
		}
	}
	for id := range listed {
		if _, ok := where[id]; !ok {
			t.Errorf("listed entry %d not restored", id)
		}
	}
	for _, id := range []int{1, 304} {
		if w, ok := where[id]; ok {
			t.Errorf("entry %d, not listed, restored in %v", id, w)
		}
	}
	// Stage 0: what depends on no table, the function among it; its search path is
	// pinned after it.
	if got, want := plan[0], (restore.Stage{{Name: "functions and types", IDs: []int{2, 3, 4}, Jobs: 1, PinAfter: true}}); !cmp.Equal(got, want) {
		t.Errorf("stage 0 = %+v, want %+v", got, want)
	}
	// Stage 1: the big table's definition.
	if got, want := plan[1], (restore.Stage{{Name: "definitions", IDs: []int{100, 101}, Jobs: 1}}); !cmp.Equal(got, want) {
		t.Errorf("stage 1 = %+v, want %+v", got, want)
	}
	// Stage 2: the big table's data and index in a run of half the jobs, the small
	// tables in serial runs for the other half.
	side := plan[2]
	if len(side) != 3 || side[0].Name != "big tables" || side[0].Jobs != 2 || !cmp.Equal(side[0].IDs, []int{102, 103}) ||
		!cmp.Equal(side[0].Tables, []restore.TableName{{Schema: "public", Name: "sc6010"}}) {
		t.Fatalf("stage 2 = %+v", side)
	}
	for _, r := range side[1:] {
		if r.Jobs != 1 || r.Sections != nil {
			t.Errorf("serial run %+v", r)
		}
	}
	// Everything on one small table goes in the same run, and what ties two tables in
	// its definitions too.
	for i := range 200 {
		id := 1000 + 10*i
		for _, e := range []int{id + 1, id + 2, id + 3, id + 4, id + 5} {
			if where[e] != where[id] || where[id].stage != 2 {
				t.Errorf("entry %d in %v, its table %d in %v", e, where[e], id, where[id])
			}
		}
	}
	for tie, table := range map[int]int{300: 1000, 301: 1010, 302: 1030, 303: 1040, 306: 1050, 310: 1040} {
		if where[tie] != where[table] {
			t.Errorf("entry %d in %v, its table %d in %v", tie, where[tie], table, where[table])
		}
	}
	if where[1010] != where[1020] {
		t.Errorf("the view's tables in %v and %v", where[1010], where[1020])
	}
	// Stage 3: what ties tables of different runs, or none, with every job.
	last := plan[3]
	if len(last) != 1 || last[0].Jobs != 4 {
		t.Fatalf("stage 3 = %+v", last)
	}
	want := []int{305, 309, 311}
	if where[1060] != where[1070] {
		want = []int{305, 307, 308, 309, 311}
	}
	if !cmp.Equal(last[0].IDs, want) {
		t.Errorf("stage 3 restores %v, want %v", last[0].IDs, want)
	}
	// The serial runs share the small tables evenly.
	if a, b := len(side[1].IDs), len(side[2].IDs); a-b > 8 || b-a > 8 {
		t.Errorf("serial runs of %d and %d entries", a, b)
	}
}

func TestPlanSpooledWithoutSplit(t *testing.T) {
	// Without function 4, the only function is over a table's row type: nothing to
	// create first (TestPlanSpooledFunctionsFirst).
	noFunction := func(toc []pg.TOCEntry) []pg.TOCEntry {
		return slices.DeleteFunc(toc, func(e pg.TOCEntry) bool { return e.ID == 4 })
	}
	toc := noFunction(erpTOC(200))
	defs := []restore.Stage{
		{{Name: "definitions", Sections: []string{"pre-data"}, Jobs: 1}},
		{{Name: "data and indexes", Sections: []string{"data", "post-data"}, Jobs: 4}},
	}
	noOffsets := noFunction(erpTOC(200))
	for i := range noOffsets {
		noOffsets[i].DataOffset = 0
	}
	for name, c := range map[string]struct {
		toc        []pg.TOCEntry
		jobs       int
		walMinimal bool
		want       []restore.Stage
	}{
		"one job":                      {toc, 1, false, []restore.Stage{{{Name: "archive", Jobs: 1}}}},
		"wal_level=minimal":            {toc, 4, true, []restore.Stage{{{Name: "archive", Jobs: 4}}}},
		"table of contents unread":     {nil, 4, false, defs},
		"few tables":                   {noFunction(erpTOC(10)), 4, false, defs},
		"no data offsets":              {noOffsets, 4, false, defs},
		"every table tied to the next": {withData(chain(100)), 4, false, defs},
	} {
		t.Run(name, func(t *testing.T) {
			got := restore.PlanSpooled(c.toc, listedAll(c.toc), archiveEnd(c.toc), c.jobs, c.walMinimal)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("PlanSpooled (-want +got):\n%s", diff)
			}
		})
	}
}

// TestPlanSpooledFunctionsFirst: with a function that depends on no table, every plan
// starts with a serial run of the definitions that depend on no table, pinning after
// it, and its other runs restore the rest.
func TestPlanSpooledFunctionsFirst(t *testing.T) {
	// The schema, a type, a sequence, the function and an extension.
	early := []int{1, 2, 3, 4, 304}
	first := restore.Stage{{Name: "functions and types", IDs: early, Jobs: 1, PinAfter: true}}
	for name, c := range map[string]struct {
		toc        []pg.TOCEntry
		jobs       int
		walMinimal bool
	}{
		"one job":           {erpTOC(200), 1, false},
		"wal_level=minimal": {erpTOC(200), 4, true},
		"few tables":        {erpTOC(10), 4, false},
		"tables split":      {erpTOC(200), 4, false},
	} {
		t.Run(name, func(t *testing.T) {
			listed := listedAll(c.toc)
			plan := restore.PlanSpooled(c.toc, listed, archiveEnd(c.toc), c.jobs, c.walMinimal)
			if len(plan) < 2 || !cmp.Equal(plan[0], first) {
				t.Fatalf("PlanSpooled = %+v, want it to start with %+v", plan, first)
			}
			// An entry of no section goes with the one before it, as for --section.
			section := map[int]string{}
			in := "pre-data"
			for _, e := range c.toc {
				if e.Section != none {
					in = map[int]string{pre: "pre-data", data: "data", post: "post-data"}[e.Section]
				}
				section[e.ID] = in
			}
			restored := map[int]int{}
			for _, stage := range plan {
				for _, run := range stage {
					if run.IDs == nil || run.PinAfter != (run.Name == "functions and types") {
						t.Errorf("run %+v: every run names its entries, and only the first pins", run)
					}
					for _, id := range run.IDs {
						if run.Sections == nil || slices.Contains(run.Sections, section[id]) {
							restored[id]++
						}
					}
				}
			}
			for id := range listed {
				if restored[id] != 1 {
					t.Errorf("entry %d restored %d times, want once", id, restored[id])
				}
			}
		})
	}
	if plan := restore.PlanSpooled(nil, nil, 0, 1, false); len(plan) != 1 {
		t.Errorf("table of contents unread: %+v, want one run of everything", plan)
	}
}

// TestPlanSpooledKeepsDependenciesInOrder: on random tables of contents, no entry of a
// run depends on an entry restored side by side in another run, or after it.
func TestPlanSpooledKeepsDependenciesInOrder(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for round := range 200 {
		toc := erpTOC(70)
		// Random ties: entries of the data and post-data sections depending on random
		// earlier entries.
		for range 20 {
			i := len(toc) - 1 - rng.IntN(len(toc)/2)
			toc[i].Deps = append(toc[i].Deps, toc[rng.IntN(i)].ID)
		}
		listed := listedAll(toc)
		plan := restore.PlanSpooled(toc, listed, archiveEnd(toc), 2+rng.IntN(6), false)
		stage, run := map[int]int{}, map[int]int{}
		for s, st := range plan {
			for r, rr := range st {
				for _, id := range rr.IDs {
					stage[id], run[id] = s, r
				}
			}
		}
		for _, e := range toc {
			for _, d := range e.Deps {
				if _, ok := stage[d]; !ok {
					continue
				}
				if stage[d] > stage[e.ID] || stage[d] == stage[e.ID] && run[d] != run[e.ID] {
					t.Fatalf("round %d: entry %d (%s, stage %d run %d) depends on %d (stage %d run %d)",
						round, e.ID, e.Desc, stage[e.ID], run[e.ID], d, stage[d], run[d])
				}
			}
		}
	}
}

// withData gives every table of toc a data block of 4 KiB.
func withData(toc []pg.TOCEntry) []pg.TOCEntry {
	out := slices.Clone(toc)
	for i, e := range toc {
		if e.Desc == "TABLE" {
			out = append(out, pg.TOCEntry{ID: 10000 + i, Desc: "TABLE DATA", Section: pg.SectionData, Deps: []int{e.ID}, DataOffset: int64(4096 * (i + 1))})
		}
	}
	return out
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

// shapes are what a split restore must keep in order: a schema, an enum and a domain,
// serial columns (sequences owned by their tables, defaults), comments, a view over two
// tables, a function over a table's row type, a partitioned table, an inherited one, a
// materialized view over two tables with an index, a trigger, foreign keys (to the same
// table, between small tables, to the big one), a sequence of its own; enough plain
// tables to split, and a big one; names that need quoting; large objects with a
// comment.
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
	q = append(q,
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
		`CREATE MATERIALIZED VIEW erp.cruzada AS SELECT a.id, b.c FROM erp.t10 a JOIN erp.t11 b USING (id)`,
		`CREATE UNIQUE INDEX ON erp.cruzada (id)`,
		`CREATE TABLE erp.grande AS SELECT g AS id, repeat('x', 100) AS v FROM generate_series(1, 100000) g`,
		`ALTER TABLE erp.grande ADD PRIMARY KEY (id)`,
		`CREATE INDEX ON erp.grande (v)`,
		`ALTER TABLE erp.t05 ADD COLUMN g int REFERENCES erp.grande (id)`,
		`UPDATE erp.t05 SET g = id`,
		`ALTER TABLE erp.t06 ADD COLUMN ref int REFERENCES erp.t01 (id)`,
		`UPDATE erp.t06 SET ref = 1`,
		`ALTER TABLE erp.t08 ADD COLUMN pai int REFERENCES erp.t08 (id)`,
		`UPDATE erp.t08 SET pai = 1`,
		`CREATE FUNCTION erp.carimbo() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.v := 'carimbado'; RETURN NEW; END $$`,
		`CREATE TRIGGER carimbo BEFORE INSERT ON erp.t09 FOR EACH ROW EXECUTE FUNCTION erp.carimbo()`,
		`CREATE SEQUENCE erp.numeracao START 1000`,
		`SELECT setval('erp.numeracao', 1234)`,
		// Names that need quoting: a schema and a table with capitals, spaces and accents.
		`CREATE SCHEMA "Fiscal"`,
		`CREATE TABLE "Fiscal"."Itens da Nota" (id int PRIMARY KEY, "Descrição" char(30))`,
		`CREATE INDEX "Itens por Descrição" ON "Fiscal"."Itens da Nota" ("Descrição")`,
		`INSERT INTO "Fiscal"."Itens da Nota" SELECT g, 'item ' || g FROM generate_series(1, 40) g`,
		// Large objects (a fiscal document's XML), referenced by oid from a table.
		`CREATE TABLE erp.anexos (id int PRIMARY KEY, xml oid)`,
		`INSERT INTO erp.anexos SELECT g, lo_from_bytea(0, convert_to(repeat('<nfe n="' || g || '"/>', 2000), 'UTF8')) FROM generate_series(1, 3) g`,
		`DO $$ BEGIN EXECUTE format('COMMENT ON LARGE OBJECT %s IS %L', (SELECT xml FROM erp.anexos WHERE id = 1), 'nota 1'); END $$`,
	)
	return append(q, unqualifiedFunctions("erp.t07", "v")...)
}

// unqualifiedFunctions is an accent-insensitive search over table's column as
// Portuguese databases have it: a function that names unaccent (in public) without its
// schema, called by an index, a generated column, a CHECK constraint and a
// materialized view; and a function that sets its own search path.
func unqualifiedFunctions(table, column string) []string {
	return []string{
		`CREATE FUNCTION sem_acento(text) RETURNS text IMMUTABLE STRICT PARALLEL SAFE LANGUAGE sql AS $$ SELECT unaccent('unaccent', $1) $$`,
		`CREATE FUNCTION rotulo_sem_acento(text) RETURNS text IMMUTABLE LANGUAGE plpgsql SET search_path = pg_catalog, public AS $$ BEGIN RETURN lower(unaccent($1)); END $$`,
		`ALTER TABLE ` + table + ` ADD COLUMN busca text GENERATED ALWAYS AS (sem_acento(` + column + `)) STORED`,
		`ALTER TABLE ` + table + ` ADD CONSTRAINT sem_acento_valido CHECK (sem_acento(` + column + `) IS NOT NULL)`,
		`UPDATE ` + table + ` SET ` + column + ` = 'Ação'`,
		`CREATE INDEX busca_sem_acento ON ` + table + ` (sem_acento(` + column + `))`,
		`CREATE INDEX rotulo_sem_acento ON ` + table + ` (rotulo_sem_acento(` + column + `))`,
		`CREATE MATERIALIZED VIEW rotulos AS SELECT DISTINCT rotulo_sem_acento(` + column + `) AS r, sem_acento(` + column + `) AS s FROM ` + table,
	}
}

// TestSplitRestoreEveryShape: a database of the shapes above restores, its tables split
// among runs, to the same schema-only dump and the same rows.
func TestSplitRestoreEveryShape(t *testing.T) {
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
			for _, run := range []string{"definitions: ", "big tables: ", "small tables 2: ", "across tables: "} {
				if !strings.Contains(logs, `"restore planned"`) || !strings.Contains(logs, run) {
					t.Fatalf("no run %q planned:\n%s", run, logs)
				}
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
					UNION ALL SELECT 'resumo', n FROM erp.resumo UNION ALL SELECT 'juntas', count(*) FROM erp.juntas
					UNION ALL SELECT 'cruzada', count(*) FROM erp.cruzada UNION ALL SELECT 'grande', count(*) FROM erp.grande
					UNION ALL SELECT 'fks', count(*) FROM erp.t05 JOIN erp.grande g ON g.id = t05.g
					UNION ALL SELECT 'numeracao', last_value FROM erp.numeracao
					UNION ALL SELECT 'itens', count(*) FROM "Fiscal"."Itens da Nota"
					UNION ALL SELECT 'anexos ' || string_agg(md5(lo_get(xml)), ',' ORDER BY id), count(*) FROM erp.anexos) c`).Scan(&s)
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			if got, want := count(tg.db), count(src.Database); got != want {
				t.Errorf("rows restored: %s, want %s", got, want)
			}
			// The table whose name needs quoting is analyzed like the others.
			var itemStats int
			if err := src.PG.Connect(t, tg.db).QueryRow(t.Context(), `SELECT count(*) FROM pg_stats
				WHERE schemaname = 'Fiscal' AND tablename = 'Itens da Nota'`).Scan(&itemStats); err != nil || itemStats == 0 {
				t.Errorf("no statistics for \"Fiscal\".\"Itens da Nota\" (%v)", err)
			}
			// The large objects belong to the application role, their comment kept.
			var owners, comment string
			if err := src.PG.Connect(t, tg.db).QueryRow(t.Context(), `SELECT string_agg(DISTINCT pg_get_userbyid(lomowner), ','),
				coalesce(string_agg(obj_description(oid, 'pg_largeobject'), ','), '') FROM pg_largeobject_metadata`).Scan(&owners, &comment); err != nil {
				t.Fatal(err)
			}
			if owners != tg.user || comment != "nota 1" {
				t.Errorf("large objects owned by %q with comments %q, want %q and \"nota 1\"", owners, comment, tg.user)
			}
			// The big table is analyzed as soon as its run ends, and only then.
			if !strings.Contains(logs, `"big tables analyzed"`) {
				t.Error("the big table was not analyzed early")
			}
			var analyzed bool
			if err := src.PG.Connect(t, tg.db).QueryRow(t.Context(), `SELECT last_analyze IS NOT NULL FROM pg_stat_user_tables
				WHERE schemaname = 'erp' AND relname = 'grande'`).Scan(&analyzed); err != nil || !analyzed {
				t.Errorf("the big table has no statistics (%v)", err)
			}
			if major != 15 {
				return
			}
			// With masking, nothing is analyzed before the masking SQL: the big table's
			// statistics carry the masked values only.
			dev := newTarget(t, src.PG, url, "cliente-dev", prodNS)
			dev.env["ENVIRONMENT"] = "internal-dev"
			mask := writeFile(t, "UPDATE erp.grande SET v = 'mascarado ' || (id % 3);\n"+
				"SELECT count(*) FROM pg_largeobject_metadata; -- the attachments hold no personal data")
			_, logs, err = dev.run(t, map[string]string{"RESTORE_SCRATCH_DIR": t.TempDir(), "RESTORE_JOBS": "4", "RESTORE_MASKING_SQL": mask})
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(logs, `"big tables analyzed"`) || !strings.Contains(logs, "big tables: ") {
				t.Errorf("a masked restore analyzed before masking, or did not split:\n%s", logs)
			}
			var stats string
			if err := src.PG.Connect(t, dev.db).QueryRow(t.Context(), `SELECT coalesce(string_agg(coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, ''), ' '), '')
				FROM pg_stats WHERE schemaname = 'erp' AND tablename = 'grande' AND attname = 'v'`).Scan(&stats); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stats, "mascarado") || strings.Contains(stats, "xxxx") {
				t.Errorf("statistics of the masked big table: %q", stats)
			}
		})
	}
}

func TestMentionsLargeObjects(t *testing.T) {
	for sql, want := range map[string]bool{
		"UPDATE pessoas SET cpf = md5(cpf);":                                               false,
		"-- lo_unlink them later\nUPDATE t SET a = 1;":                                     false,
		"/* SELECT lo_unlink(oid) /* nested */ FROM x */ UPDATE t SET a = 1;":              false,
		"UPDATE t SET lo_unlinked = true, my_lo_put = 1, a$lo_unlink = 2;":                 false,
		"DO $$ BEGIN PERFORM lo_unlink(oid) FROM pg_largeobject_metadata; END $$":          true,
		"SELECT LO_PUT(oid, 0, '\\x00') FROM notas;":                                       true,
		"DO $m$ BEGIN EXECUTE format('SELECT lo_unlink(%s)', 1); END $m$":                  true,
		`SELECT "lo_unlink"(1);`:                                                           true,
		"-- keep: no personal data\nSELECT count(*) FROM pg_largeobject_metadata;":         true,
		"UPDATE t SET a = '--'; SELECT lo_truncate(lo_open(1, 131072), 0);":                true,
		"UPDATE notas SET xml = lo_from_bytea(0, convert_to('<masked/>', 'UTF8'));":        false, // the old object stays
		"SELECT lo_create(0), lo_import('/tmp/x');":                                        false,
		"UPDATE pessoas SET nome = $$Maria D'Ávila$$;\n-- TODO: lo_unlink the attachments": false,
		"UPDATE \"cliente's\" SET a = 1; -- lo_unlink later":                               false,
		"SELECT E'\\''; -- lo_unlink later\nSELECT 'c'":                                    false,
		"DO $$ BEGIN -- lo_unlink later\n UPDATE t SET a = 1; END $$":                      false,
		"DO $$ BEGIN EXECUTE 'UPDATE t SET a = 1 -- lo_unlink later'; END $$":              false,
		"SELECT $$it's$$, 'x'": false,
	} {
		if got := restore.MentionsLargeObjects(sql); got != want {
			t.Errorf("MentionsLargeObjects(%q) = %v, want %v", sql, got, want)
		}
	}
}

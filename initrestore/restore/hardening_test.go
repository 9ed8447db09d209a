package restore_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// customSource is a production database made of the given statements: asSuper run as
// the superuser first (extensions, comments on public, catalog tweaks), asOwner as the
// application role. Its name is its role's, as cronbackup expects.
func customSource(t *testing.T, major int, asSuper, asOwner []string) *fixture.Source {
	t.Helper()
	p := testenv.StartPostgres(t, major)
	name := testenv.RandomName("src_")
	s := &fixture.Source{PG: p, Database: name, User: name, Password: "senha-ç-" + name}
	p.CreateRole(t, name, s.Password)
	p.Exec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'WIN1252' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'", name, name))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, p.URL("postgres")); err == nil {
			_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name)
			_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+name)
			_ = conn.Close(ctx)
		}
	})
	p.Exec(t, name, asSuper...)
	conn, err := pgx.Connect(t.Context(), p.URLAs(name, s.Password, name))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, q := range asOwner {
		if _, err := conn.Exec(t.Context(), q); err != nil {
			t.Fatalf("%.200q: %v", q, err)
		}
	}
	return s
}

// people is a table of customers with few distinct names and CPFs, so that ANALYZE
// puts them in most_common_vals.
var people = []string{
	`CREATE TABLE pessoas (id int PRIMARY KEY, nome text NOT NULL, cpf text NOT NULL)`,
	`INSERT INTO pessoas SELECT i, (ARRAY['Maria da Conceição','João Brandão','Inês Guimarães'])[1 + i % 3],
		(ARRAY['111.222.333-44','555.666.777-88','999.000.111-22'])[1 + i % 3] FROM generate_series(1, 3000) i`,
}

var personalValues = []string{"Maria da Conceição", "João Brandão", "Inês Guimarães", "111.222.333-44", "555.666.777-88", "999.000.111-22"}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "mask.sql")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestMaskingComesBeforeStatistics (item 1): the planner statistics of a masked
// database carry none of the values the masking replaced.
func TestMaskingComesBeforeStatistics(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			tg := maskedRestore(t, customSource(t, major, nil, people))
			var stats string
			err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT coalesce(string_agg(attname || ':' || coalesce(most_common_vals::text, '') || coalesce(histogram_bounds::text, ''), ' '), '')
				FROM pg_stats WHERE tablename = 'pessoas'`).Scan(&stats)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(stats, "Pessoa ") {
				t.Fatalf("no statistics of the masked values: %q", stats)
			}
			for _, v := range personalValues {
				if strings.Contains(stats, v) {
					t.Fatalf("pg_stats of the masked database carries %q: %s", v, stats)
				}
			}
		})
	}
}

// TestMaskingMustMask (item 3): a masking file that changes nothing is refused before
// anything is created.
func TestMaskingMustMask(t *testing.T) {
	tests := map[string]struct {
		sql string
		ok  bool
	}{
		"an empty file":                      {sql: ""},
		"only comments":                      {sql: "-- UPDATE clientes SET nome = NULL;\n/* DELETE FROM x; /* nested */ TRUNCATE y; */\n"},
		"only queries":                       {sql: "SELECT pg_sleep(1); SELECT mask_everything();"},
		"keywords inside literals":           {sql: "SELECT 'UPDATE x SET a = 1'; SELECT $$DELETE FROM y$$; SELECT \"update\" FROM t;"},
		"a WITH without a change":            {sql: "WITH x AS (SELECT 1) SELECT * FROM x;"},
		"ALTER of something else":            {sql: "ALTER ROLE app SET search_path = public;"},
		"an UPDATE":                          {sql: "UPDATE clientes SET nome = 'x';", ok: true},
		"an UPDATE after a comment":          {sql: "-- masking\n/* all */ update clientes set cpf = null", ok: true},
		"a DELETE among queries":             {sql: "SELECT 1;\nDELETE FROM logs;", ok: true},
		"TRUNCATE":                           {sql: "TRUNCATE auditoria;", ok: true},
		"ALTER TABLE … DROP COLUMN":          {sql: "ALTER TABLE clientes DROP COLUMN cpf;", ok: true},
		"a DO block calling a function":      {sql: "DO $body$ BEGIN PERFORM mask(); END $body$;", ok: true},
		"CALL":                               {sql: "CALL mascarar();", ok: true},
		"a WITH that updates":                {sql: "WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT count(*) FROM u;", ok: true},
		"an E-string with an escaped quote":  {sql: "SELECT E'it\\'s; UPDATE'; INSERT INTO t VALUES (1);", ok: true},
		"an E-string hiding the only change": {sql: "SELECT E'it\\'s; UPDATE t SET a = 1';"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := restore.CheckMasking(tc.sql)
			if tc.ok != (err == nil) {
				t.Fatalf("CheckMasking = %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, restore.ErrMaskingMasksNothing) {
				t.Fatalf("error %v is not ErrMaskingMasksNothing", err)
			}
		})
	}

	t.Run("the binary refuses an empty file and creates nothing", func(t *testing.T) {
		p := testenv.StartPostgres(t, 15)
		tg := newTarget(t, p, "file://"+t.TempDir(), "cliente-dev", prodNS)
		tg.env["ENVIRONMENT"] = "internal-dev"
		for name, sql := range map[string]string{"empty": "", "queries only": "SELECT pg_sleep(1);"} {
			out, code := runBinary(t, testenv.Build(t, "initrestore"), tg.env, map[string]string{"RESTORE_MASKING_SQL": writeFile(t, sql)})
			if code != restore.ExitConfig || !strings.Contains(out, "no statement that changes data") {
				t.Fatalf("%s: exit %d, want %d with the reason:\n%s", name, code, restore.ExitConfig, out)
			}
			if dbs := tg.databases(t); len(dbs) != 0 || tg.roleExists(t) {
				t.Fatalf("%s: created %v (role: %v)", name, dbs, tg.roleExists(t))
			}
		}
	})
}

// TestTemporaryDatabaseIsTheAdmins (item 2): while a restore runs (here: killed during
// the masking), the application role cannot open <db>__restoring; after the swap it
// owns the database and everything in it.
func TestTemporaryDatabaseIsTheAdmins(t *testing.T) {
	bin := testenv.Build(t, "initrestore")
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, people)
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
			slow := writeFile(t, "SELECT pg_sleep(60); UPDATE pessoas SET nome = 'x';")
			killAt(t, bin, binaryEnv(tg.env, map[string]string{"RESTORE_MASKING_SQL": slow}), `"masking started"`, 0)
			temp := tg.db + "__restoring"
			if dbs := tg.databases(t); !contains(dbs, temp) {
				t.Fatalf("no temporary database after the kill: %v", dbs)
			}
			var owner string
			if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = $1", temp).Scan(&owner); err != nil || owner != tg.pg.User {
				t.Errorf("the temporary database is owned by %q (%v), want the administrator %q", owner, err, tg.pg.User)
			}
			conn, err := pgx.Connect(t.Context(), tg.pg.URLAs(tg.user, tg.password, temp))
			if err == nil {
				var n int
				_ = conn.QueryRow(t.Context(), "SELECT count(*) FROM pessoas").Scan(&n)
				_ = conn.Close(context.Background())
				t.Fatalf("the application role opened the unmasked temporary database (%d rows readable)", n)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Fatalf("connecting as the application role: %v, want permission denied", err)
			}

			mask := writeFile(t, "UPDATE pessoas SET nome = 'Pessoa ' || id, cpf = '';")
			if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": mask}); err != nil {
				t.Fatal(err)
			}
			app, err := pgx.Connect(t.Context(), tg.pg.URLAs(tg.user, tg.password, tg.db))
			if err != nil {
				t.Fatalf("the application role cannot open the swapped-in database: %v", err)
			}
			defer app.Close(context.Background())
			var dbOwner string
			var foreign int
			err = app.QueryRow(t.Context(), `SELECT pg_get_userbyid(d.datdba), (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
				WHERE n.nspname = 'public' AND c.relkind IN ('r','i') AND c.relowner <> d.datdba) FROM pg_database d WHERE datname = current_database()`).Scan(&dbOwner, &foreign)
			if err != nil || dbOwner != tg.user || foreign != 0 {
				t.Fatalf("owner %q, %d relations owned by someone else (%v); want all %q's", dbOwner, foreign, err, tg.user)
			}
		})
	}
}

// duplicatedCPF is a production table whose unique index no longer holds (as after a
// collation change): restoring it fails on the duplicated personal value.
func duplicatedCPF(expr string) []string {
	return []string{
		`CREATE TABLE clientes (id int PRIMARY KEY, nome text, cpf text)`,
		`INSERT INTO clientes VALUES (1, 'Maria da Conceição', '111.222.333-44'), (2, 'Maria da Conceição', '111.222.333-44')`,
		`CREATE INDEX clientes_cpf ON clientes (` + expr + `)`,
	}
}

const makeUnique = `UPDATE pg_index SET indisunique = true WHERE indexrelid = 'clientes_cpf'::regclass`

// TestLogsCarryNoData (item 4): a restore that fails on a duplicated CPF logs neither
// the CPF nor the name, in any line, nor in its error.
func TestLogsCarryNoData(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, duplicatedCPF("cpf"))
			src.PG.Exec(t, src.Database, makeUnique)
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			_, logs, err := tg.run(t, nil)
			if code := exitcode.Of(err, -1); code != restore.ExitRestore {
				t.Fatalf("exit %d (%v), want %d", code, err, restore.ExitRestore)
			}
			if !strings.Contains(logs, `could not create unique index \"clientes_cpf\"`) {
				t.Errorf("the log lacks the error line naming the index:\n%s", logs)
			}
			for _, v := range []string{"111.222.333-44", "Maria da Conc"} {
				if strings.Contains(logs, v) || strings.Contains(err.Error(), v) {
					t.Fatalf("the log or the error carries %q:\n%s\nerror: %v", v, logs, err)
				}
			}
			if dbs := tg.databases(t); len(dbs) != 0 {
				t.Fatalf("databases left: %v", dbs)
			}
		})
	}
}

// TestHugeClientLineDoesNotHang (item 5): a failing statement whose text is a 3 MiB
// line of pg_restore's stderr: initrestore reads past it, exits 4 within seconds, and
// the next run gets the lock at once.
func TestHugeClientLineDoesNotHang(t *testing.T) {
	bin := testenv.Build(t, "initrestore")
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			// Only a superuser may create a function in LANGUAGE internal: the
			// application role's pg_restore fails on it, and pg_restore prints the
			// statement, a 3 MiB default value included, on one line.
			big := strings.Repeat("x", 3<<20)
			src := customSource(t, major, []string{`CREATE FUNCTION public.tamanho(a text DEFAULT '` + big + `') RETURNS integer LANGUAGE internal IMMUTABLE AS 'textlen'`},
				duplicatedCPF("cpf"))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			for run := 1; run <= 2; run++ {
				ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
				cmd := exec.CommandContext(ctx, bin)
				cmd.Env = binaryEnv(tg.env, nil)
				start := time.Now()
				out, err := cmd.CombinedOutput()
				took := time.Since(start)
				timedOut := ctx.Err() != nil
				cancel()
				if timedOut {
					t.Fatalf("run %d did not end within 90 s (hung on the client's output)", run)
				}
				var ee *exec.ExitError
				if !errors.As(err, &ee) || ee.ExitCode() != restore.ExitRestore {
					t.Fatalf("run %d: %v, want exit %d:\n%.3000s", run, err, restore.ExitRestore, out)
				}
				if strings.Contains(string(out), "111.222.333-44") || len(out) > 1<<20 {
					t.Fatalf("run %d logged the value or the statement (%d bytes of log)", run, len(out))
				}
				t.Logf("METRIC huge_line_failure major=%d run=%d seconds=%.1f", major, run, took.Seconds())
			}
			var free bool
			if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT pg_try_advisory_lock($1)", restore.LockKey(tg.db)).Scan(&free); err != nil || !free {
				t.Fatalf("the restore lock is still held (%v)", err)
			}
		})
	}
}

// TestPublicSchemaComment (item 6): production's public schema has a comment; the
// restore succeeds on 12 (public belongs to the bootstrap superuser) and 15, and the
// administrator applies the comment.
func TestPublicSchemaComment(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, []string{`COMMENT ON SCHEMA public IS 'Esquema do ERP (produção)'`}, people[:1])
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			_, logs, err := tg.run(t, nil)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			var comment string
			if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT coalesce(obj_description('public'::regnamespace, 'pg_namespace'), '')").Scan(&comment); err != nil {
				t.Fatal(err)
			}
			if comment != "Esquema do ERP (produção)" || !strings.Contains(logs, "archive entry applied by the administrator") {
				t.Fatalf("public's comment is %q; log:\n%s", comment, logs)
			}
		})
	}
}

// TestExtensionInItsOwnSchema (item 7): pg_trgm in schema ext with a GIN index on
// ext.gin_trgm_ops restores, and the index serves a LIKE.
func TestExtensionInItsOwnSchema(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, nil)
			src.PG.Exec(t, src.Database, "CREATE SCHEMA ext AUTHORIZATION "+src.User, "CREATE EXTENSION pg_trgm WITH SCHEMA ext")
			conn, err := pgx.Connect(t.Context(), src.PG.URLAs(src.User, src.Password, src.Database))
			if err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{
				`CREATE TABLE produtos (id int PRIMARY KEY, descricao text)`,
				`INSERT INTO produtos SELECT i, 'Café torrado ' || i FROM generate_series(1, 2000) i`,
				`CREATE INDEX produtos_descricao_trgm ON produtos USING gin (descricao ext.gin_trgm_ops)`,
			} {
				if _, err := conn.Exec(t.Context(), q); err != nil {
					t.Fatal(err)
				}
			}
			_ = conn.Close(t.Context())
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			tg.env["DATABASE_EXTENSIONS"] = "pg_trgm"
			if _, _, err := tg.run(t, nil); err != nil {
				t.Fatalf("restore: %v", err)
			}
			db := tg.pg.Connect(t, tg.db)
			var schema, schemaOwner string
			if err := db.QueryRow(t.Context(), `SELECT n.nspname, pg_get_userbyid(n.nspowner) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE extname = 'pg_trgm'`).Scan(&schema, &schemaOwner); err != nil {
				t.Fatal(err)
			}
			if schema != "ext" || schemaOwner != tg.user {
				t.Errorf("pg_trgm is in %q owned by %q, want ext owned by %q", schema, schemaOwner, tg.user)
			}
			var plan []string
			_, err = db.Exec(t.Context(), "SET enable_seqscan = off")
			rows, err2 := db.Query(t.Context(), "EXPLAIN SELECT id FROM produtos WHERE descricao LIKE '%rado 19%'")
			if err = errors.Join(err, err2); err == nil {
				plan, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil || !strings.Contains(strings.Join(plan, "\n"), "produtos_descricao_trgm") {
				t.Fatalf("the trigram index does not serve LIKE (%v):\n%s", err, strings.Join(plan, "\n"))
			}
			var n int
			if err := db.QueryRow(t.Context(), "SELECT count(*) FROM produtos WHERE descricao LIKE '%rado 19%'").Scan(&n); err != nil || n != 111 {
				t.Fatalf("%d rows through the index (%v), want 111", n, err)
			}
		})
	}
}

// TestRequestAppliedOnceAcrossDrop (item 9): the applied request ids live in the
// administrator's table in the maintenance database: applied once, a restart is the
// fast path, a dropped database comes back from production, a new id is applied.
func TestRequestAppliedOnceAcrossDrop(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			prod := customSource(t, major, nil, []string{`CREATE TABLE origem (de text)`, `INSERT INTO origem VALUES ('produção')`})
			own := customSource(t, major, nil, []string{`CREATE TABLE origem (de text)`, `INSERT INTO origem VALUES ('homologação')`})
			url := "file://" + t.TempDir()
			writeCronbackup(t, prod, url, prodNS)
			writeCronbackup(t, own, url, "cliente-hml")
			tg := newTarget(t, prod.PG, url, "cliente-hml", prodNS)
			origin := func() string {
				var de string
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT de FROM origem").Scan(&de); err != nil {
					t.Fatal(err)
				}
				return de
			}
			step := func(name string, extra map[string]string, want restore.Outcome, wantOrigin string) {
				t.Helper()
				res, _, err := tg.run(t, extra)
				if err != nil || res.Outcome != want {
					t.Fatalf("%s: %+v, %v; want %s", name, res, err, want)
				}
				if got := origin(); got != wantOrigin {
					t.Fatalf("%s: the database comes from %s, want %s", name, got, wantOrigin)
				}
			}
			r1 := map[string]string{"RESTORE_REQUEST_ID": "chamado-" + tg.db, "RESTORE_REQUEST_SOURCE": "own"}
			step("the first start", nil, restore.OutcomeRestored, "produção")
			step("the request", r1, restore.OutcomeRestored, "homologação")
			step("a restart", r1, restore.OutcomeExists, "homologação")
			tg.pg.Exec(t, "postgres", fmt.Sprintf("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'", tg.db), "DROP DATABASE "+tg.db)
			step("a restart after a drop", r1, restore.OutcomeRestored, "produção")
			step("another restart", r1, restore.OutcomeExists, "produção")
			step("a new request", map[string]string{"RESTORE_REQUEST_ID": "chamado-2-" + tg.db, "RESTORE_REQUEST_SOURCE": "own"}, restore.OutcomeRestored, "homologação")

			var ids []string
			rows, err := tg.pg.Connect(t, "postgres").Query(t.Context(), "SELECT request_id FROM smartbackup_applied_requests WHERE database = $1 ORDER BY applied_at", tg.db)
			if err == nil {
				ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
			}
			if err != nil || len(ids) != 2 {
				t.Fatalf("applied requests %v (%v), want the two ids", ids, err)
			}
			app, err := pgx.Connect(t.Context(), tg.pg.URLAs(tg.user, tg.password, "postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer app.Close(context.Background())
			if _, err := app.Exec(t.Context(), "INSERT INTO smartbackup_applied_requests (database, request_id) VALUES ($1, 'forjado')", tg.db); err == nil {
				t.Fatal("the application role could write the applied requests")
			}
		})
	}
}

// TestStalePreviousDatabasesAreDropped (item 13): a <db>__previous_* left by a run
// that died after the swap is dropped by the next restore, with a log line.
func TestStalePreviousDatabasesAreDropped(t *testing.T) {
	src := customSource(t, 15, nil, people[:1])
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	tg.pg.Exec(t, "postgres", "CREATE DATABASE "+tg.db+"__previous_20261130T210000")
	_, logs, err := tg.run(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if dbs := tg.databases(t); len(dbs) != 1 || dbs[0] != tg.db {
		t.Fatalf("databases after the restore: %v", dbs)
	}
	if !strings.Contains(logs, "stale replaced database dropped") {
		t.Fatalf("no log line for the dropped database:\n%s", logs)
	}
}

// TestPostgres12NeedsSuperuserForExtensions (item 14): on PostgreSQL 12 an
// administrator that is not a superuser cannot create extensions; the error says so.
func TestPostgres12NeedsSuperuserForExtensions(t *testing.T) {
	src := customSource(t, 12, nil, people[:1])
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	admin := testenv.RandomName("adm_")
	tg.pg.Exec(t, "postgres", "CREATE ROLE "+admin+" LOGIN CREATEDB CREATEROLE PASSWORD 'adm-pw'")
	t.Cleanup(func() {
		tg.cleanup()
		c, err := pgx.Connect(context.Background(), tg.pg.URL("postgres"))
		if err == nil {
			_, _ = c.Exec(context.Background(), "DROP ROLE IF EXISTS "+admin)
			_ = c.Close(context.Background())
		}
	})
	tg.env["DATABASE_ADMIN_USER"], tg.env["DATABASE_ADMIN_PASSWORD"] = admin, "adm-pw"
	_, _, err := tg.run(t, nil)
	if code := exitcode.Of(err, -1); code != restore.ExitRestore || !strings.Contains(err.Error(), "must be a superuser") {
		t.Fatalf("exit %d: %v; want %d saying the administrator must be a superuser", code, err, restore.ExitRestore)
	}
	if dbs := tg.databases(t); len(dbs) != 0 {
		t.Fatalf("databases left: %v", dbs)
	}
}

// TestPublicSchemaCommentCannotInject: the administrator runs production's comment on
// public with the simple query protocol. A comment written to break out of its literal
// where backslashes escape quotes (standard_conforming_strings off, a legacy server's
// setting) must stay a comment: the administrator's session sets it on.
func TestPublicSchemaCommentCannotInject(t *testing.T) {
	const text = `x\';CREATE ROLE smartbackup_injected SUPERUSER;--`
	src := customSource(t, 15, []string{`COMMENT ON SCHEMA public IS 'x\'';CREATE ROLE smartbackup_injected SUPERUSER;--'`}, people[:1])
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	tg.pg.Exec(t, "postgres", "ALTER ROLE "+tg.pg.User+" SET standard_conforming_strings = off")
	t.Cleanup(func() {
		tg.pg.Exec(t, "postgres", "ALTER ROLE "+tg.pg.User+" RESET standard_conforming_strings", "DROP ROLE IF EXISTS smartbackup_injected")
	})
	if _, logs, err := tg.run(t, nil); err != nil {
		t.Fatalf("restore: %v\n%s", err, logs)
	}
	var injected bool
	if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_roles WHERE rolname = 'smartbackup_injected')").Scan(&injected); err != nil {
		t.Fatal(err)
	}
	if injected {
		t.Fatal("production's comment on public created a superuser on the target server")
	}
	var comment string
	if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT coalesce(obj_description('public'::regnamespace, 'pg_namespace'), '')").Scan(&comment); err != nil {
		t.Fatal(err)
	}
	if comment != text {
		t.Fatalf("public's comment is %q, want %q", comment, text)
	}
}

// TestMaskingLargeObjects: a masked restore of a database with large objects is not
// swapped in unless the masking file deals with them; one that removes them is, with
// none left.
func TestMaskingLargeObjects(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, append(slices.Clone(people),
				`CREATE TABLE notas (id int PRIMARY KEY, xml oid)`,
				`INSERT INTO notas SELECT i, lo_from_bytea(0, convert_to('<dest><nome>Maria da Conceição</nome><cpf>111.222.333-44</cpf></dest>', 'UTF8')) FROM generate_series(1, 2) i`))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			const tables = "UPDATE pessoas SET nome = 'Pessoa ' || (id % 3), cpf = lpad((id % 3)::text, 11, '0');\n"

			tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
			tg.env["ENVIRONMENT"] = "internal-dev"
			_, logs, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": writeFile(t, tables+"-- lo_unlink: later\n")})
			if code := exitcode.Of(err, -1); code != restore.ExitRestore || !strings.Contains(err.Error(), "2 large objects") {
				t.Fatalf("exit %d (%v), want %d naming 2 large objects", code, err, restore.ExitRestore)
			}
			if !strings.Contains(logs, `"large objects the masking SQL does not deal with"`) {
				t.Errorf("no log line of the large objects:\n%s", logs)
			}
			for _, v := range personalValues {
				if strings.Contains(logs, v) || strings.Contains(err.Error(), v) {
					t.Fatalf("the log or the error carries %q", v)
				}
			}
			if dbs := tg.databases(t); len(dbs) != 0 {
				t.Fatalf("databases left: %v", dbs)
			}

			unlink := tables + "DO $$ BEGIN PERFORM lo_unlink(oid) FROM pg_largeobject_metadata; END $$;\nUPDATE notas SET xml = NULL;\n"
			if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": writeFile(t, unlink)}); err != nil {
				t.Fatal(err)
			}
			var left int
			if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT count(*) FROM pg_largeobject_metadata").Scan(&left); err != nil || left != 0 {
				t.Fatalf("%d large objects left after a masking that removes them (%v)", left, err)
			}
		})
	}
}

// TestRestoreLeavesTablespacesBehind: production's tables and indexes in a tablespace of
// their own restore into the target database's default one, whether the target server
// has that tablespace (the application role, which creates the objects, has no right
// to create in it) or not.
func TestRestoreLeavesTablespacesBehind(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			p := testenv.StartPostgres(t, major)
			ts := testenv.RandomName("dados_")
			p.CreateTablespace(t, ts)
			src := customSource(t, major,
				[]string{fmt.Sprintf(`DO $$ BEGIN EXECUTE format('GRANT CREATE ON TABLESPACE %s TO %%I', current_database()); END $$`, ts)},
				[]string{
					`CREATE TABLE notas (id int PRIMARY KEY USING INDEX TABLESPACE ` + ts + `, emitente char(40)) TABLESPACE ` + ts,
					`CREATE INDEX notas_emitente ON notas (emitente) TABLESPACE ` + ts,
					`INSERT INTO notas SELECT g, 'emitente ' || g FROM generate_series(1, 500) g`,
				})
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			check := func(t *testing.T, tg *target, _ string) {
				var rows, inTablespace int
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT (SELECT count(*) FROM notas),
					(SELECT count(*) FROM pg_class WHERE reltablespace <> 0 AND relnamespace = 'public'::regnamespace)`).Scan(&rows, &inTablespace); err != nil {
					t.Fatal(err)
				}
				if rows != 500 || inTablespace != 0 {
					t.Errorf("%d rows (want 500), %d relations outside the database's tablespace (want 0)", rows, inTablespace)
				}
			}
			// The tablespace is there, but the application role may not create in it.
			restoreBothWays(t, src, url, check)
			// The server has no such tablespace (as a homologation server would not).
			src.PG.Exec(t, src.Database, "ALTER TABLE notas SET TABLESPACE pg_default", "ALTER INDEX notas_pkey SET TABLESPACE pg_default",
				"ALTER INDEX notas_emitente SET TABLESPACE pg_default")
			src.PG.Exec(t, "postgres", "DROP TABLESPACE "+ts)
			restoreBothWays(t, src, url, check)
		})
	}
}

// TestRestoreSkipsEventTriggersAndPublications: production's event trigger and its
// publications (one FOR ALL TABLES, by a superuser; one of a table, by the owner) are
// left out, said so in the log; the trigger's function and everything else restore.
func TestRestoreSkipsEventTriggersAndPublications(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, []string{
				`CREATE FUNCTION public.audita_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl'; END $$`,
				`CREATE EVENT TRIGGER audita ON ddl_command_end EXECUTE PROCEDURE public.audita_ddl()`,
				`COMMENT ON EVENT TRIGGER audita IS 'auditoria de DDL'`,
				`CREATE PUBLICATION todas FOR ALL TABLES`,
			}, append(slices.Clone(people), `CREATE PUBLICATION cdc FOR TABLE pessoas`, `COMMENT ON PUBLICATION cdc IS 'captura de mudanças'`))
			url := "file://" + t.TempDir()
			writeCronbackup(t, src, url, prodNS)
			restoreBothWays(t, src, url, func(t *testing.T, tg *target, logs string) {
				for _, skipped := range []string{"EVENT TRIGGER - audita", "only a superuser creates an event trigger", "PUBLICATION - todas",
					"PUBLICATION TABLE public cdc pessoas", "a restored copy publishes and subscribes to nothing"} {
					if !strings.Contains(logs, skipped) {
						t.Errorf("the log does not say %q was left out:\n%s", skipped, logs)
					}
				}
				var triggers, publications, functions, rows int
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT (SELECT count(*) FROM pg_event_trigger), (SELECT count(*) FROM pg_publication),
					(SELECT count(*) FROM pg_proc WHERE proname = 'audita_ddl'), (SELECT count(*) FROM pessoas)`).Scan(&triggers, &publications, &functions, &rows); err != nil {
					t.Fatal(err)
				}
				if triggers != 0 || publications != 0 || functions != 1 || rows != 3000 {
					t.Errorf("%d event triggers (want 0), %d publications (want 0), %d functions (want 1), %d rows (want 3000)", triggers, publications, functions, rows)
				}
			})
		})
	}
}

// restoreBothWays restores the backup at url into a new homologation database twice,
// streamed and spooled, and checks each.
func restoreBothWays(t *testing.T, src *fixture.Source, url string, check func(t *testing.T, tg *target, logs string)) {
	t.Helper()
	for _, spooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "streamed", true: "spooled"}[spooled], func(t *testing.T) {
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			extra := map[string]string{}
			if spooled {
				extra["RESTORE_SCRATCH_DIR"] = t.TempDir()
			}
			_, logs, err := tg.run(t, extra)
			if err != nil {
				t.Fatal(err)
			}
			check(t, tg, logs)
		})
	}
}

// escala is production code that makes a table's owner a superuser when it runs with a
// superuser's rights, even after a SET ROLE (it resets the role).
const escala = `CREATE FUNCTION escala(tabela oid) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN
	RESET ROLE;
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
		EXECUTE format('ALTER ROLE %I SUPERUSER', (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = tabela));
	END IF;
	RETURN true; END $$`

// TestProductionCodeRunsWithoutAdministratorRights: production's functions, run by
// pg_restore (a CHECK constraint at each row) or by the masking (a trigger its UPDATE
// fires), run as the application role logged in as the restorer, and RESET ROLE takes
// them no higher. Before, pg_restore and the masking ran in the administrator's
// sessions, and the application role came out a superuser (with it, a reader of every
// database on the server). The restorer is gone once the run is.
func TestProductionCodeRunsWithoutAdministratorRights(t *testing.T) {
	for _, major := range []int{12, 15} {
		for name, c := range map[string]struct {
			code     []string
			restores bool // the CHECK's RESET ROLE leaves pg_restore's session the restorer's: the restore fails
		}{
			"a CHECK constraint": {[]string{escala, `ALTER TABLE pessoas ADD CONSTRAINT escala CHECK (escala('pessoas'::regclass))`}, false},
			// The administrator's own queries list the tables by pg_relation_size(c.oid):
			// in public, a function of that name on oid matches closer than
			// pg_catalog's on regclass.
			"a function in public named as a built-in": {[]string{escala,
				`CREATE FUNCTION public.pg_relation_size(o oid) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM escala(o); RETURN 0; END $$`}, true},
			"a trigger the masking fires": {[]string{escala,
				`CREATE FUNCTION audita() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM escala(TG_RELID); RETURN NEW; END $$`,
				`CREATE TRIGGER audita BEFORE UPDATE ON pessoas FOR EACH ROW EXECUTE PROCEDURE audita()`}, true},
		} {
			t.Run(fmt.Sprintf("PostgreSQL %d/%s", major, name), func(t *testing.T) {
				src := customSource(t, major, nil, append(slices.Clone(people), c.code...))
				url := "file://" + t.TempDir()
				writeCronbackup(t, src, url, prodNS)
				tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
				tg.env["ENVIRONMENT"] = "internal-dev"
				_, logs, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": writeFile(t, "UPDATE pessoas SET nome = 'Pessoa ' || (id % 3), cpf = lpad((id % 3)::text, 11, '0');")})
				if c.restores && err != nil {
					t.Fatal(err)
				}
				if !c.restores && (exitcode.Of(err, 0) != restore.ExitRestore || !strings.Contains(logs, "must be owner of table pessoas")) {
					t.Fatalf("exit %d (%v), want %d, pg_restore no longer acting as the owner after the RESET ROLE:\n%s", exitcode.Of(err, 0), err, restore.ExitRestore, logs)
				}
				if !strings.Contains(logs, `"msg":"restorer dropped"`) {
					t.Errorf("the log does not say the restorer was dropped:\n%s", logs)
				}
				var super bool
				var restorers, databases int
				if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = $1),
					(SELECT count(*) FROM pg_roles WHERE rolname LIKE 'smartbackup\_restorer\_%'), (SELECT count(*) FROM pg_database WHERE datname LIKE $2)`,
					tg.user, tg.db+"%").Scan(&super, &restorers, &databases); err != nil {
					t.Fatal(err)
				}
				if super || restorers != 0 {
					t.Errorf("application role superuser: %v (want false); %d restorer roles left (want 0)", super, restorers)
				}
				if !c.restores {
					if databases != 0 {
						t.Errorf("%d databases left, want none", databases)
					}
					return
				}
				var masked int
				if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT count(*) FROM pessoas WHERE nome LIKE 'Pessoa %'`).Scan(&masked); err != nil {
					t.Fatal(err)
				}
				if masked != 3000 {
					t.Errorf("%d rows masked, want 3000", masked)
				}
			})
		}
	}
}

// TestMaskingMasksRowsRowSecurityHides: a table that forces row security on its
// owner, with a policy that shows a third of its rows, is masked whole (the masking
// runs as the application role, its owner), and forces row security again after.
func TestMaskingMasksRowsRowSecurityHides(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := customSource(t, major, nil, append(slices.Clone(people),
				`ALTER TABLE pessoas ENABLE ROW LEVEL SECURITY`, `ALTER TABLE pessoas FORCE ROW LEVEL SECURITY`,
				`CREATE POLICY um_terco ON pessoas USING (id % 3 = 0)`))
			// pg_dump refuses a table whose row security applies to the role dumping it.
			src.PG.Exec(t, "postgres", "ALTER ROLE "+src.User+" BYPASSRLS")
			tg := maskedRestore(t, src)
			var unmasked int
			var forced bool
			// As the superuser, whom no policy narrows.
			if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT (SELECT count(*) FROM pessoas WHERE nome NOT LIKE 'Pessoa %' OR cpf LIKE '%.%'),
				(SELECT relforcerowsecurity FROM pg_class WHERE relname = 'pessoas')`).Scan(&unmasked, &forced); err != nil {
				t.Fatal(err)
			}
			if unmasked != 0 || !forced {
				t.Errorf("%d rows unmasked (want 0); row security forced: %v (want true)", unmasked, forced)
			}
		})
	}
}

// maskedRestore backs src up and restores it into a new internal-dev database with
// the masking of people, which must succeed.
func maskedRestore(t *testing.T, src *fixture.Source) *target {
	t.Helper()
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
	tg.env["ENVIRONMENT"] = "internal-dev"
	mask := writeFile(t, "UPDATE pessoas SET nome = 'Pessoa ' || (id % 3), cpf = lpad((id % 3)::text, 11, '0');")
	if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": mask}); err != nil {
		t.Fatal(err)
	}
	return tg
}

// TestMaskingWritesAccentsAsWritten: the masking file is UTF-8; its 'São Paulo' is
// stored as the WIN1252 database's 'São Paulo' (chr(227) is its ã), not as 'SÃ£o Paulo'
// (the session spoke the database's encoding).
func TestMaskingWritesAccentsAsWritten(t *testing.T) {
	src := customSource(t, 15, nil, people)
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
	tg.env["ENVIRONMENT"] = "internal-dev"
	if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": writeFile(t, "UPDATE pessoas SET nome = 'São Paulo', cpf = '000';")}); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), `SELECT count(*) FROM pessoas WHERE nome = 'S' || chr(227) || 'o Paulo'`).Scan(&n); err != nil || n != 3000 {
		t.Errorf("%d rows say São Paulo (%v), want 3000", n, err)
	}
}

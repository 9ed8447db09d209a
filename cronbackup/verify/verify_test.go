package verify_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/cronbackup/verify"
	"github.com/smartbackup/smartbackup/internal/catalog"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const namespace = "cliente-prod"

// setEnv sets what the webhook's CronJobs give cronbackup backup and verify.
func setEnv(t *testing.T, src *fixture.Source, storeURL string) {
	t.Helper()
	for k, v := range map[string]string{
		"DATABASE_ENDPOINT":       src.PG.Host,
		"DATABASE_PORT":           strconv.Itoa(src.PG.Port),
		"DATABASE_USER":           src.User,
		"DATABASE_PASSWORD":       src.Password,
		"DATABASE_ADMIN_USER":     src.PG.User,
		"DATABASE_ADMIN_PASSWORD": src.PG.Password,
		"DATABASE_CODEPAGE":       "WIN1252",
		"BACKUP_STORAGE_URL":      storeURL,
		"NAMESPACE":               namespace,
		"DATABASE_WAIT_TIMEOUT":   "5s",
	} {
		t.Setenv(k, v)
	}
}

// backupOf runs the real cronbackup backup and returns its manifest.
func backupOf(t *testing.T) layout.Manifest {
	t.Helper()
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(t.Context(), testr.New(t), cfg)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return res.Manifest
}

func runVerify(t *testing.T, ctx context.Context) (verify.Result, error) {
	t.Helper()
	cfg, err := verify.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return verify.Run(ctx, testr.New(t), cfg)
}

func openStore(t *testing.T, url string) storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func readAll(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("opening %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// storedResult reads the verification result beside the backup.
func storedResult(t *testing.T, st storage.Store, object string) (verify.Result, []byte) {
	t.Helper()
	b := readAll(t, st, layout.VerifyKey(object))
	var r verify.Result
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("verification result: %v\n%s", err, b)
	}
	return r, b
}

// scratchExists reports whether the scratch database is on the server.
func scratchExists(t *testing.T, p *testenv.Postgres, name string) bool {
	t.Helper()
	var exists bool
	if err := p.Connect(t, "postgres").QueryRow(context.Background(), "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		t.Fatal(err)
	}
	return exists
}

// fixtureRows are the source's rows per table, from its summary.
func fixtureRows(t *testing.T, s *fixture.Source) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	for _, table := range fixture.Tables {
		var n int64
		if _, err := fmt.Sscanf(s.Summary[table], "rows=%d ", &n); err != nil {
			t.Fatal(err)
		}
		out[table] = n
	}
	return out
}

// TestGoodBackupVerifies: a real backup restores into <db>__verify, which the
// application role cannot open; every table's rows match; the result file says so in
// figures only; the scratch database is gone; a stale one from a killed run is dropped
// first.
func TestGoodBackupVerifies(t *testing.T) {
	for major, newStore := range map[int]func(t *testing.T) string{
		12: func(t *testing.T) string { return "file://" + t.TempDir() },
		15: func(t *testing.T) string { return testenv.StartS3(t).NewBucket(t) },
	} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := fixture.NewSource(t, major, "verify_erp", fixture.Tiny)
			url := newStore(t)
			setEnv(t, src, url)
			m := backupOf(t)
			scratch := src.Database + contract.VerifyDatabaseSuffix

			// A stale scratch database from a killed run, with a table of its own.
			src.PG.Exec(t, "postgres", "CREATE DATABASE "+pg.Quote(scratch))
			src.PG.Exec(t, scratch, "CREATE TABLE leftover (x int)")

			var appErr error
			verify.SetHooks(nil, func(scratch string) {
				// While the backup is restored there, the application role cannot
				// connect.
				conn, err := pgx.Connect(context.Background(), src.PG.URLAs(src.User, src.Password, scratch))
				if err == nil {
					_ = conn.Close(context.Background())
				}
				appErr = err
			})
			t.Cleanup(func() { verify.SetHooks(nil, nil) })
			res, err := runVerify(t, t.Context())
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			var pgErr *pgconn.PgError
			if !errors.As(appErr, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("the application role connecting to %s: %v, want permission denied (42501)", scratch, appErr)
			}

			st := openStore(t, url)
			got, raw := storedResult(t, st, m.Object)
			t.Logf("METRIC verify major=%d %s", major, raw)
			rows := fixtureRows(t, src)
			var total int64
			for _, n := range rows {
				total += n
			}
			f := got.Figures
			switch {
			case got.Verdict != verify.VerdictPassed || len(got.Failures) != 0:
				t.Errorf("verdict %q, failures %q", got.Verdict, got.Failures)
			case got.Object != m.Object || got.SHA256 != m.SHA256 || got.Namespace != namespace || !got.BackupTime.Equal(m.StartedAt):
				t.Errorf("result names %s %s %s %s, backup %s %s", got.Object, got.SHA256, got.Namespace, got.BackupTime, m.Object, m.SHA256)
			case got.ScratchDatabase != scratch || !got.ScratchDropped:
				t.Errorf("scratch %q dropped %v", got.ScratchDatabase, got.ScratchDropped)
			case f.RestoredTables != len(fixture.Tables) || f.ManifestTables != len(fixture.Tables) || f.TablesChecked != len(fixture.Tables):
				t.Errorf("tables: %+v", f)
			case f.RestoredRows != total || f.ManifestRows != total || len(f.Mismatches) != 0:
				t.Errorf("rows: %+v, want %d", f, total)
			case f.ArchiveEntries != m.ArchiveEntries || f.ManifestEntries != m.ArchiveEntries || f.ObjectBytes != m.Size || f.ArchiveBytes != m.ArchiveSize:
				t.Errorf("entries and sizes: %+v, manifest %+v", f, m)
			case f.DatabaseBytes < 1<<20 || got.DurationSeconds <= 0 || f.RowsMethod != layout.RowsExact:
				t.Errorf("figures: %+v, duration %v", f, got.DurationSeconds)
			}
			if got.Version != res.Version || got.Verdict != res.Verdict || got.Figures.RestoredRows != res.Figures.RestoredRows {
				t.Errorf("stored result %+v differs from the returned %+v", got, res)
			}
			// Figures and names only: no value of any row.
			noValues(t, src, raw)
			if scratchExists(t, src.PG, scratch) {
				t.Errorf("scratch database %s still exists", scratch)
			}
		})
	}
}

// noValues fails when b contains a value of the fixture's text columns.
func noValues(t *testing.T, src *fixture.Source, b []byte) {
	t.Helper()
	conn := src.PG.Connect(t, src.Database)
	var samples []string
	r, err := conn.Query(t.Context(), "SELECT nome FROM clientes LIMIT 20")
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var s string
		_ = r.Scan(&s)
		samples = append(samples, s)
	}
	r.Close()
	for _, s := range append(samples, "Conceição", "Araújo") {
		if bytes.Contains(b, []byte(s)) {
			t.Errorf("the result carries the row value %q", s)
		}
	}
}

// TestCutBackupFailsVerification: a backup whose data was silently cut (a table's data
// entry missing from a still valid archive, whose manifest's size, sha256 and entries
// match it) fails with ExitFailed; the result file names the table; the scratch
// database is gone.
func TestCutBackupFailsVerification(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := fixture.NewSource(t, major, "verify_erp", fixture.Tiny)
			url := testenv.StartGCS(t).NewBucket(t)
			setEnv(t, src, url)
			m := backupOf(t)
			st := openStore(t, url)
			cut := cutBackup(t, st, src, m, "itens_pedido")

			res, err := runVerify(t, t.Context())
			if code := exitcode.Of(err, 0); code != verify.ExitFailed {
				t.Fatalf("verify: %v (exit %d), want exit %d", err, code, verify.ExitFailed)
			}
			if !strings.Contains(err.Error(), "public.itens_pedido") {
				t.Errorf("error %q does not name the table", err)
			}
			got, raw := storedResult(t, st, cut.Object)
			t.Logf("result of the cut backup: %s", raw)
			want := []verify.Mismatch{{Schema: "public", Table: "itens_pedido", Recorded: fixtureRows(t, src)["itens_pedido"], InArchive: -1, Restored: 0}}
			if got.Verdict != verify.VerdictFailed || len(got.Failures) != 1 || fmt.Sprint(got.Figures.Mismatches) != fmt.Sprint(want) {
				t.Errorf("result: verdict %q failures %q mismatches %+v, want %+v", got.Verdict, got.Failures, got.Figures.Mismatches, want)
			}
			if res.Verdict != verify.VerdictFailed || !got.ScratchDropped {
				t.Errorf("returned verdict %q, scratch dropped %v", res.Verdict, got.ScratchDropped)
			}
			// Still a valid archive that pg_restore accepts: the only failure is the rows.
			if got.Figures.RestoredTables != len(fixture.Tables) || got.Figures.ArchiveEntries != cut.ArchiveEntries {
				t.Errorf("figures %+v", got.Figures)
			}
			noValues(t, src, raw)
			if scratchExists(t, src.PG, src.Database+contract.VerifyDatabaseSuffix) {
				t.Error("scratch database left after a failed verification")
			}
		})
	}
}

// cutBackup replaces the backup m by the same database's archive without table's data
// entry (pg_dump --exclude-table-data writes exactly that archive), with manifests that
// describe the new object: only the rows recorded at backup time can tell.
func cutBackup(t *testing.T, st storage.Store, src *fixture.Source, m layout.Manifest, table string) layout.Manifest {
	t.Helper()
	c, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", src.PG.Major)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	cmd := exec.Command("bash", "-o", "pipefail", "-c", c.Path+` -Fc -Z0 --no-owner --no-acl --encoding WIN1252 --exclude-table-data=public.`+table+` | gzip`)
	cmd.Env = src.PG.Env(src.Database)
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	hdr, err := pg.ReadArchiveContents(gunzip(t, out.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range hdr.Data {
		if d.Table == table {
			t.Fatalf("the cut archive still has %s's data", table)
		}
	}
	if _, err := st.Put(t.Context(), m.Object, bytes.NewReader(out.Bytes()), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	cut := m
	cut.Size, cut.SHA256, cut.ArchiveEntries = int64(out.Len()), sha256Hex(out.Bytes()), hdr.Header.Entries
	b, _ := cut.Marshal()
	for _, key := range []string{layout.ManifestKey(m.Object), layout.LatestManifestKey(namespace)} {
		if _, err := st.Put(t.Context(), key, bytes.NewReader(b), storage.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return cut
}

func gunzip(t *testing.T, b []byte) io.Reader {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestConfigUsesContractNames: verify reads only contract names.
func TestConfigUsesContractNames(t *testing.T) {
	if unknown := contract.UnknownTags(verify.Config{}); len(unknown) > 0 {
		t.Errorf("config names outside internal/contract: %v", unknown)
	}
}

// TestMissingBackupFailsClearly: a namespace without a backup is ExitNoBackup, the
// error says where it looked, and no scratch database is created.
func TestMissingBackupFailsClearly(t *testing.T) {
	src := fixture.NewSource(t, 15, "verify_erp", fixture.Tiny)
	url := "file://" + t.TempDir()
	setEnv(t, src, url)
	var created bool
	verify.SetHooks(func(string) { created = true }, nil)
	t.Cleanup(func() { verify.SetHooks(nil, nil) })
	_, err := runVerify(t, t.Context())
	if code := exitcode.Of(err, 0); code != verify.ExitNoBackup || !errors.Is(err, catalog.ErrNoBackup) || !strings.Contains(err.Error(), namespace+"/") {
		t.Fatalf("verify without a backup: %v (exit %d), want exit %d naming %s/", err, code, verify.ExitNoBackup, namespace)
	}
	if created || scratchExists(t, src.PG, src.Database+contract.VerifyDatabaseSuffix) {
		t.Error("a scratch database was created for a missing backup")
	}
}

// TestCancelledVerificationDropsTheScratchDatabase: SIGTERM (the context cancelled)
// while pg_restore runs still drops the scratch database.
func TestCancelledVerificationDropsTheScratchDatabase(t *testing.T) {
	src := fixture.NewSource(t, 15, "verify_erp", fixture.Tiny)
	url := "file://" + t.TempDir()
	setEnv(t, src, url)
	backupOf(t)
	scratch := src.Database + contract.VerifyDatabaseSuffix
	ctx, cancel := context.WithCancel(t.Context())
	var existed bool
	verify.SetHooks(func(s string) { existed = scratchExists(t, src.PG, s); cancel() }, nil)
	t.Cleanup(func() { verify.SetHooks(nil, nil) })
	_, err := runVerify(t, ctx)
	if err == nil || exitcode.Of(err, 0) == verify.ExitFailed {
		t.Fatalf("a cancelled verification: %v, want an error that is not a verdict", err)
	}
	if !existed || scratchExists(t, src.PG, scratch) {
		t.Errorf("scratch database existed before the restore: %v; exists after the cancellation: %v", existed, scratchExists(t, src.PG, scratch))
	}
}

// TestVerifyWithoutProductionTablespace: a backup of a table in a tablespace of its
// own verifies on a server that does not have that tablespace.
func TestVerifyWithoutProductionTablespace(t *testing.T) {
	src := fixture.NewSource(t, 12, "verify_tablespace", fixture.Tiny)
	ts := testenv.RandomName("dados_")
	src.PG.CreateTablespace(t, ts)
	src.PG.Exec(t, src.Database, "ALTER TABLE produtos SET TABLESPACE "+ts)
	// Back where it was even when the test fails: the fixture's database outlives it,
	// and a tablespace in use cannot be dropped.
	t.Cleanup(func() { src.PG.Exec(t, src.Database, "ALTER TABLE produtos SET TABLESPACE pg_default") })
	setEnv(t, src, "file://"+t.TempDir())
	backupOf(t)
	// The table moves back and the tablespace goes: the verifying server lacks it now.
	src.PG.Exec(t, src.Database, "ALTER TABLE produtos SET TABLESPACE pg_default")
	src.PG.Exec(t, "postgres", "DROP TABLESPACE "+ts)
	res, err := runVerify(t, t.Context())
	if err != nil {
		t.Fatalf("verify of a backup whose table was in tablespace %s: %v", ts, err)
	}
	if res.Verdict != verify.VerdictPassed || len(res.Failures) != 0 || res.Figures.RestoredRows == 0 {
		t.Fatalf("verdict %q, failures %q, figures %+v", res.Verdict, res.Failures, res.Figures)
	}
}

// TestVerifyLeavesOutWhatCopiesDo: a backup holding an event trigger and a publication
// FOR ALL TABLES (both a superuser's) verifies with an administrator that is not a
// superuser, leaving them out as initrestore does.
func TestVerifyLeavesOutWhatCopiesDo(t *testing.T) {
	src := fixture.NewSource(t, 15, "verify_left_out", fixture.Tiny)
	src.PG.Exec(t, src.Database,
		`CREATE FUNCTION public.audita_ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'ddl'; END $$`,
		`CREATE EVENT TRIGGER audita ON ddl_command_end EXECUTE FUNCTION public.audita_ddl()`,
		`COMMENT ON EVENT TRIGGER audita IS 'auditoria'`,
		`CREATE PUBLICATION todas FOR ALL TABLES`)
	t.Cleanup(func() {
		src.PG.Exec(t, src.Database, "DROP EVENT TRIGGER IF EXISTS audita", "DROP PUBLICATION IF EXISTS todas")
	})
	admin := testenv.RandomName("verificador_")
	src.PG.CreateRole(t, admin, "senha-verificador")
	src.PG.Exec(t, "postgres", "ALTER ROLE "+admin+" CREATEDB CREATEROLE")
	setEnv(t, src, "file://"+t.TempDir())
	backupOf(t)
	t.Setenv("DATABASE_ADMIN_USER", admin)
	t.Setenv("DATABASE_ADMIN_PASSWORD", "senha-verificador")
	verifyPasses(t)
}

// TestVerifyWithUnqualifiedFunctions: a backup whose index, generated column and CHECK
// constraint call a function naming unaccent without its schema verifies (pg_restore's
// empty search_path failed it: "function unaccent(unknown, text) does not exist").
func TestVerifyWithUnqualifiedFunctions(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := fixture.NewSource(t, major, "verify_unqualified", fixture.Tiny)
			src.PG.Exec(t, src.Database, "SET ROLE "+src.User,
				`CREATE FUNCTION sem_acento(text) RETURNS text IMMUTABLE STRICT LANGUAGE sql AS $$ SELECT unaccent('unaccent', $1) $$`,
				`CREATE TABLE buscas (id int PRIMARY KEY, termo text CHECK (sem_acento(termo) <> ''),
					normalizado text GENERATED ALWAYS AS (sem_acento(termo)) STORED)`,
				`CREATE INDEX ON buscas (sem_acento(termo))`,
				`INSERT INTO buscas (id, termo) SELECT g, 'ação ' || g FROM generate_series(1, 100) g`)
			t.Cleanup(func() { src.PG.Exec(t, src.Database, "DROP TABLE buscas", "DROP FUNCTION sem_acento(text)") })
			backupVerifies(t, src)
		})
	}
}

// TestVerifyRunsProductionCodeWithoutAdminRights: production's functions that a
// restore runs, a CHECK constraint's at each row and an index expression's (as the
// table's owner), run as the verifier, not as the admin: before, the admin owned what
// pg_restore created and ran them, and this one made a role of the server a
// superuser. The verifier is gone afterwards; the backup verifies.
func TestVerifyRunsProductionCodeWithoutAdminRights(t *testing.T) {
	for _, major := range []int{12, 15} {
		t.Run(fmt.Sprintf("PostgreSQL %d", major), func(t *testing.T) {
			src := fixture.NewSource(t, major, "verify_escalation", fixture.Tiny)
			victim := testenv.RandomName("vitima_")
			src.PG.Exec(t, "postgres", "CREATE ROLE "+victim+" NOLOGIN")
			src.PG.Exec(t, src.Database, "SET ROLE "+src.User,
				`CREATE FUNCTION escala(t text) RETURNS text LANGUAGE plpgsql AS $$ BEGIN
					IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN EXECUTE 'ALTER ROLE `+victim+` SUPERUSER'; END IF;
					RETURN t; END $$`,
				// An index's function must be immutable; one that calls escala escalates all the same.
				`CREATE FUNCTION imutavel(t text) RETURNS text IMMUTABLE LANGUAGE plpgsql AS $$ BEGIN RETURN escala(t); END $$`,
				`CREATE TABLE marcas (id int PRIMARY KEY, nome text CHECK (escala(nome) IS NOT NULL))`,
				`CREATE INDEX ON marcas (imutavel(nome))`,
				`INSERT INTO marcas SELECT g, 'marca ' || g FROM generate_series(1, 50) g`)
			t.Cleanup(func() {
				src.PG.Exec(t, src.Database, "DROP TABLE marcas", "DROP FUNCTION imutavel(text)", "DROP FUNCTION escala(text)")
				src.PG.Exec(t, "postgres", "DROP ROLE "+victim)
			})
			backupVerifies(t, src)
			var super bool
			var verifiers int
			if err := src.PG.Connect(t, "postgres").QueryRow(t.Context(), `SELECT (SELECT rolsuper FROM pg_roles WHERE rolname = $1),
				(SELECT count(*) FROM pg_roles WHERE rolname LIKE 'smartbackup\_verifier\_%')`, victim).Scan(&super, &verifiers); err != nil {
				t.Fatal(err)
			}
			if super || verifiers != 0 {
				t.Errorf("%s superuser: %v (want false); %d verifier roles left (want 0)", victim, super, verifiers)
			}
		})
	}
}

// backupVerifies backs src up and verifies the backup, which must pass.
func backupVerifies(t *testing.T, src *fixture.Source) {
	t.Helper()
	setEnv(t, src, "file://"+t.TempDir())
	backupOf(t)
	verifyPasses(t)
}

// verifyPasses verifies the latest backup, which must pass.
func verifyPasses(t *testing.T) {
	t.Helper()
	res, err := runVerify(t, t.Context())
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if res.Verdict != verify.VerdictPassed || len(res.Failures) != 0 {
		t.Fatalf("verdict %q, failures %q", res.Verdict, res.Failures)
	}
}

// TestVerifyExtensionInItsOwnSchema: an extension in a schema of its own, which the
// admin creates with the schema, and production's objects that use it in that schema
// and elsewhere, restored by the verifier.
func TestVerifyExtensionInItsOwnSchema(t *testing.T) {
	src := fixture.NewSource(t, 12, "verify_extension_schema", fixture.Tiny)
	src.PG.Exec(t, src.Database, "CREATE SCHEMA extensoes AUTHORIZATION "+src.User, "CREATE EXTENSION citext WITH SCHEMA extensoes",
		"SET ROLE "+src.User,
		`CREATE TABLE extensoes.apelidos (id int PRIMARY KEY, apelido extensoes.citext UNIQUE)`,
		`CREATE TABLE emails (id int PRIMARY KEY, email extensoes.citext NOT NULL)`,
		`CREATE INDEX ON emails (email)`,
		`INSERT INTO emails SELECT g, 'Cliente' || g || '@Exemplo.com.br' FROM generate_series(1, 30) g`,
		`INSERT INTO extensoes.apelidos VALUES (1, 'Zé')`)
	t.Cleanup(func() { src.PG.Exec(t, src.Database, "DROP TABLE emails", "DROP SCHEMA extensoes CASCADE") })
	backupVerifies(t, src)
}

// TestVerifyLeavesPoliciesOut: a policy naming a role the verification server lacks
// (production's reporting role) does not fail the verification: policies are not
// restored there (they change no count; initrestore maps their roles).
func TestVerifyLeavesPoliciesOut(t *testing.T) {
	src := fixture.NewSource(t, 15, "verify_policies", fixture.Tiny)
	reports := testenv.RandomName("relatorios_")
	src.PG.Exec(t, "postgres", "CREATE ROLE "+reports+" NOLOGIN")
	src.PG.Exec(t, src.Database, "SET ROLE "+src.User, `ALTER TABLE produtos ENABLE ROW LEVEL SECURITY`,
		`CREATE POLICY relatorios ON produtos FOR SELECT TO `+reports+` USING (true)`)
	t.Cleanup(func() {
		src.PG.Exec(t, src.Database, "DROP POLICY IF EXISTS relatorios ON produtos", "ALTER TABLE produtos DISABLE ROW LEVEL SECURITY")
		src.PG.Exec(t, "postgres", "DROP ROLE IF EXISTS "+reports)
	})
	setEnv(t, src, "file://"+t.TempDir())
	backupOf(t)
	// The role is production's only.
	src.PG.Exec(t, src.Database, "DROP POLICY relatorios ON produtos")
	src.PG.Exec(t, "postgres", "DROP ROLE "+reports)
	res, err := runVerify(t, t.Context())
	if err != nil || res.Verdict != verify.VerdictPassed {
		t.Fatalf("verdict %q, failures %q: %v", res.Verdict, res.Failures, err)
	}
}

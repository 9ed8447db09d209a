package restore_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) {
	testenv.Main(m)
}

const prodNS = "cliente-prod"

// production is the customer's production database on PostgreSQL major.
func production(t *testing.T, major int) *fixture.Source {
	return fixture.NewSource(t, major, "cliente_erp", fixture.Small)
}

// writeCronbackup backs the source up into storeURL under ns, as the 21:00 job does.
func writeCronbackup(t *testing.T, src *fixture.Source, storeURL, ns string) layout.Manifest {
	t.Helper()
	env := map[string]string{
		"DATABASE_ENDPOINT": src.PG.Host, "DATABASE_PORT": strconv.Itoa(src.PG.Port), "DATABASE_USER": src.User,
		"DATABASE_PASSWORD": src.Password, "DATABASE_CODEPAGE": "WIN1252", "BACKUP_STORAGE_URL": storeURL, "NAMESPACE": ns,
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	res, err := backup.Run(t.Context(), testr.New(t), cfg)
	if err != nil {
		t.Fatalf("backing up: %v", err)
	}
	for k := range env {
		os.Unsetenv(k)
	}
	return res.Manifest
}

// writeShell makes database_latest.dump.gz with the operations page's literal
// pipeline, and uploads it without a manifest, as the old process did.
func writeShell(t *testing.T, src *fixture.Source, storeURL, ns string) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump.gz")
	if b, err := src.PageCommand(t, out).CombinedOutput(); err != nil {
		t.Fatalf("the page's pipeline: %v\n%s", err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := openStore(t, storeURL).Put(t.Context(), layout.LatestKey(ns), f, storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

func openStore(t *testing.T, url string) storage.Store {
	t.Helper()
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// target is a database initrestore must guarantee: a fresh name and role per test.
type target struct {
	pg       *testenv.Postgres
	db, user string
	password string
	env      map[string]string
}

func newTarget(t *testing.T, p *testenv.Postgres, storeURL, namespace, source string) *target {
	t.Helper()
	tg := &target{pg: p, db: testenv.RandomName("hml_"), user: testenv.RandomName("app_"), password: "pw-hml-ção"}
	tg.env = map[string]string{
		"DATABASE_ENDPOINT": p.Host, "DATABASE_PORT": strconv.Itoa(p.Port), "DATABASE_NAME": tg.db,
		"DATABASE_USER": tg.user, "DATABASE_PASSWORD": tg.password,
		"DATABASE_ADMIN_USER": p.User, "DATABASE_ADMIN_PASSWORD": p.Password,
		"DATABASE_CODEPAGE": "WIN1252", "DATABASE_EXTENSIONS": "pg_trgm, unaccent",
		"BACKUP_STORAGE_URL": storeURL, "NAMESPACE": namespace, "POD_NAME": "dbaccess-7c9f-abcde",
		"RESTORE_SOURCE_NAMESPACE": source, "DATABASE_WAIT_TIMEOUT": "10s", "ENVIRONMENT": "homologation",
	}
	t.Cleanup(func() { tg.cleanup() })
	return tg
}

// cleanup drops what a run may have created.
func (tg *target) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, tg.pg.URL("postgres"))
	if err != nil {
		return
	}
	defer conn.Close(ctx)
	rows, _ := conn.Query(ctx, "SELECT datname FROM pg_database WHERE datname LIKE $1", tg.db+"%")
	names, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, n := range names {
		_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", n)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize())
	}
	_, _ = conn.Exec(ctx, "DROP ROLE IF EXISTS "+pgx.Identifier{tg.user}.Sanitize())
}

func (tg *target) config(t *testing.T, extra map[string]string) restore.Config {
	t.Helper()
	for _, k := range contract.Names {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}
	for k, v := range tg.env {
		t.Setenv(k, v)
	}
	for k, v := range extra {
		t.Setenv(k, v)
	}
	cfg, err := restore.LoadConfig()
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

// run runs initrestore in-process, with its log captured.
func (tg *target) run(t *testing.T, extra map[string]string) (restore.Result, string, error) {
	t.Helper()
	var logs bytes.Buffer
	var mu sync.Mutex
	log := funcr.NewJSON(func(obj string) { mu.Lock(); logs.WriteString(obj + "\n"); mu.Unlock() }, funcr.Options{})
	res, err := restore.Run(t.Context(), teeLog(t, log), tg.config(t, extra))
	return res, logs.String(), err
}

// teeLog logs to the test too, for failures.
func teeLog(t *testing.T, l logr.Logger) logr.Logger {
	return logr.New(&teeSink{a: l.GetSink(), b: testr.New(t).GetSink()})
}

type teeSink struct{ a, b logr.LogSink }

func (s *teeSink) Init(i logr.RuntimeInfo)         { s.a.Init(i); s.b.Init(i) }
func (s *teeSink) Enabled(level int) bool          { return s.a.Enabled(level) || s.b.Enabled(level) }
func (s *teeSink) Info(l int, m string, kv ...any) { s.a.Info(l, m, kv...); s.b.Info(l, m, kv...) }
func (s *teeSink) Error(e error, m string, kv ...any) {
	s.a.Error(e, m, kv...)
	s.b.Error(e, m, kv...)
}
func (s *teeSink) WithValues(kv ...any) logr.LogSink {
	return &teeSink{a: s.a.WithValues(kv...), b: s.b.WithValues(kv...)}
}
func (s *teeSink) WithName(n string) logr.LogSink {
	return &teeSink{a: s.a.WithName(n), b: s.b.WithName(n)}
}

// databases lists the target's databases (real, temporary, previous).
func (tg *target) databases(t *testing.T) []string {
	t.Helper()
	rows, err := tg.pg.Connect(t, "postgres").Query(t.Context(), "SELECT datname FROM pg_database WHERE datname LIKE $1 ORDER BY 1", tg.db+"%")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func (tg *target) roleExists(t *testing.T) bool {
	var ok bool
	if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", tg.user).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// checkRestored: same content as want, WIN1252, the extensions, everything owned by the
// application role, which logs in with the password from the environment.
// checkAnalyzed: every restored table has planner statistics (serial or parallel ANALYZE).
func (tg *target) checkAnalyzed(t *testing.T) {
	t.Helper()
	conn := tg.pg.Connect(t, tg.db)
	var missing []string
	rows, err := conn.Query(t.Context(), "SELECT relname FROM pg_stat_user_tables WHERE last_analyze IS NULL ORDER BY 1")
	if err == nil {
		missing, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(missing) > 0 {
		t.Errorf("tables without statistics after the restore: %v (%v)", missing, err)
	}
}

// checkSchema compares the restored database's indexes, constraints, triggers, rules
// and views with the source's.
func (tg *target) checkSchema(t *testing.T, src *fixture.Source) {
	t.Helper()
	want, err := fixture.Schema(t.Context(), src.PG.Connect(t, src.Database))
	if err != nil {
		t.Fatal(err)
	}
	got, err := fixture.Schema(t.Context(), tg.pg.Connect(t, tg.db))
	if err != nil {
		t.Fatal(err)
	}
	if len(want) == 0 {
		t.Fatal("the source has no index, constraint or view to compare")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("restored schema (-source +restored):\n%s", diff)
	}
}

func (tg *target) checkRestored(t *testing.T, want fixture.Summary) restore.Record {
	t.Helper()
	if dbs := tg.databases(t); !cmp.Equal(dbs, []string{tg.db}) {
		t.Fatalf("databases after the restore: %v, want only %s", dbs, tg.db)
	}
	conn, err := pgx.Connect(t.Context(), tg.pg.URLAs(tg.user, tg.password, tg.db))
	if err != nil {
		t.Fatalf("the application role cannot log in with its password: %v", err)
	}
	defer conn.Close(context.Background())
	if want == nil { // an empty database: no table at all
		var tables int
		if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").Scan(&tables); err != nil || tables != 0 {
			t.Fatalf("the empty database has %d tables (%v)", tables, err)
		}
	} else {
		got, err := fixture.Summarize(t.Context(), conn)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("restored content (-source +restored):\n%s", diff)
		}
	}
	var enc, owner, comment string
	var exts []string
	var foreign int
	err = conn.QueryRow(t.Context(), `SELECT pg_encoding_to_char(d.encoding), pg_get_userbyid(d.datdba), shobj_description(d.oid, 'pg_database'),
		(SELECT array_agg(extname ORDER BY extname) FROM pg_extension WHERE extname <> 'plpgsql'),
		(SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		 WHERE n.nspname = 'public' AND c.relkind IN ('r','i','S','v') AND pg_get_userbyid(c.relowner) <> $1)
		FROM pg_database d WHERE d.datname = current_database()`, tg.user).Scan(&enc, &owner, &comment, &exts, &foreign)
	if err != nil {
		t.Fatal(err)
	}
	if enc != "WIN1252" || owner != tg.user || foreign != 0 || !cmp.Equal(exts, []string{"pg_trgm", "unaccent"}) {
		t.Errorf("encoding %s, owner %s, %d relations not owned by %s, extensions %v", enc, owner, foreign, tg.user, exts)
	}
	rec, err := restore.ParseRecord(comment)
	if err != nil {
		t.Fatalf("record %q: %v", comment, err)
	}
	return rec
}

func stores() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"file": func(t *testing.T) string { return "file://" + t.TempDir() },
		"gcs":  func(t *testing.T) string { return testenv.StartGCS(t).NewBucket(t) },
		"s3":   func(t *testing.T) string { return testenv.StartS3(t).NewBucket(t) },
	}
}

// TestRestoresMissingDatabase: for backups written by cronbackup and by the page's
// pipeline, on each store and each server, streamed and spooled (pg_restore -j).
func TestRestoresMissingDatabase(t *testing.T) {
	type tcase struct {
		major   int
		store   string
		writer  string
		spooled bool
	}
	var cases []tcase
	for _, major := range []int{12, 15} {
		for _, st := range []string{"file", "gcs", "s3"} {
			cases = append(cases, tcase{major, st, "cronbackup", st == "file"})
		}
		cases = append(cases, tcase{major, "s3", "shell pipeline", major == 15}, tcase{major, "file", "cronbackup", false})
	}
	for _, tc := range cases {
		name := fmt.Sprintf("PostgreSQL %d, %s, %s, spooled=%v", tc.major, tc.store, tc.writer, tc.spooled)
		t.Run(name, func(t *testing.T) {
			src := production(t, tc.major)
			url := stores()[tc.store](t)
			var m layout.Manifest
			if tc.writer == "cronbackup" {
				m = writeCronbackup(t, src, url, prodNS)
			} else {
				writeShell(t, src, url, prodNS)
			}
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			extra := map[string]string{}
			if tc.spooled {
				extra["RESTORE_SCRATCH_DIR"] = t.TempDir()
				extra["RESTORE_JOBS"] = "2"
			}
			res, logs, err := tg.run(t, extra)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			t.Logf("METRIC restore major=%d store=%s writer=%q spooled=%v seconds=%.2f", tc.major, tc.store, tc.writer, tc.spooled, res.Duration.Seconds())
			if res.Outcome != restore.OutcomeRestored {
				t.Fatalf("outcome %s", res.Outcome)
			}
			rec := tg.checkRestored(t, src.Summary)
			tg.checkAnalyzed(t)
			tg.checkSchema(t, src)
			if rec.SourceNamespace != prodNS || rec.Pod != "dbaccess-7c9f-abcde" || rec.RestoredAt.IsZero() {
				t.Errorf("record %+v", rec)
			}
			if tc.writer == "cronbackup" && (rec.SHA256 != m.SHA256 || rec.Object != m.Object || !rec.BackupTime.Equal(m.StartedAt)) {
				t.Errorf("record %+v does not name the backup %+v", rec, m)
			}
			for _, secret := range []string{tg.password, src.Password, testenv.SuperPassword} {
				if strings.Contains(logs, secret) {
					t.Fatalf("the log carries a password")
				}
			}
			wantSpool := tc.spooled && tc.writer == "cronbackup" // a shell-pipeline backup has no manifest: size unknown
			if !strings.Contains(logs, fmt.Sprintf(`"msg":"restore mode chosen","database":%q,"spooled":%v`, tg.db, wantSpool)) {
				t.Errorf("the restore was not spooled=%v", wantSpool)
			}
			if wantSpool && !strings.Contains(logs, `"archive indexed for a parallel restore"`) {
				t.Errorf("the spooled archive was not indexed")
			}
			// Spooled: the definitions, then the data and post-data with RESTORE_JOBS.
			passes := strings.Count(logs, `"msg":"pg_restore started"`)
			if wantSpool && (passes != 2 || !strings.Contains(logs, `"jobs":1,"sections":["pre-data"]`) ||
				!strings.Contains(logs, `"jobs":2,"sections":["data","post-data"]`)) || !wantSpool && passes != 1 {
				t.Errorf("pg_restore ran %d times (spooled %v); want the two passes when spooled, one streamed", passes, wantSpool)
			}
			if !strings.Contains(logs, `"restore complete"`) || !strings.Contains(logs, `"download progress"`) && !strings.Contains(logs, `"download complete"`) {
				t.Errorf("the log lacks the audit or progress lines")
			}
		})
	}
}

// TestExistingDatabaseIsUntouched: the fast path changes nothing and is quick.
func TestExistingDatabaseIsUntouched(t *testing.T) {
	src := production(t, 12)
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	if _, _, err := tg.run(t, nil); err != nil {
		t.Fatal(err)
	}
	rec := tg.checkRestored(t, src.Summary)
	// A change the restore would undo: it must survive.
	tg.pg.Exec(t, tg.db, "UPDATE clientes SET nome = 'Alterado em homologação' WHERE id = 1")

	bin := testenv.Build(t, "initrestore")
	var durations []time.Duration
	for range 5 {
		start := time.Now()
		out, code := runBinary(t, bin, tg.env, nil)
		durations = append(durations, time.Since(start))
		if code != 0 || !strings.Contains(out, `"outcome":"exists"`) {
			t.Fatalf("exit %d, log:\n%s", code, out)
		}
	}
	t.Logf("METRIC fastpath wall_ms=%v", durations)
	var nome string
	if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT nome FROM clientes WHERE id = 1").Scan(&nome); err != nil || nome != "Alterado em homologação" {
		t.Fatalf("the existing database was changed: %q, %v", nome, err)
	}
	if again := tg.checkRecord(t); again != rec {
		t.Errorf("the record changed: %+v → %+v", rec, again)
	}
	if median(durations) > time.Second {
		t.Errorf("fast path took %v (median), want well under a second", median(durations))
	}
}

func (tg *target) checkRecord(t *testing.T) restore.Record {
	var comment string
	if err := tg.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1", tg.db).Scan(&comment); err != nil {
		t.Fatal(err)
	}
	rec, err := restore.ParseRecord(comment)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s[len(s)/2]
}

// runBinary runs initrestore with env (plus PATH and HOME) and returns its log and exit
// code.
func runBinary(t *testing.T, bin string, env, extra map[string]string) (string, int) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = binaryEnv(env, extra)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return string(out), ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return string(out), 0
}

func binaryEnv(env, extra map[string]string) []string {
	out := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for _, k := range []string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION", "AWS_EC2_METADATA_DISABLED"} {
		if v, ok := os.LookupEnv(k); ok {
			out = append(out, k+"="+v)
		}
	}
	for k, v := range env {
		out = append(out, k+"="+v)
	}
	for k, v := range extra {
		out = append(out, k+"="+v)
	}
	return out
}

// TestKilledAtEachStep: a SIGKILL during the download, during pg_restore, and just
// before the swap leaves no database under the real name; the next run completes.
func TestKilledAtEachStep(t *testing.T) {
	src := production(t, 15)
	s3 := testenv.StartS3(t)
	url := s3.NewBucket(t)
	writeCronbackup(t, src, url, prodNS)
	bin := testenv.Build(t, "initrestore")
	masking := filepath.Join(t.TempDir(), "slow-masking.sql")
	if err := os.WriteFile(masking, []byte("SELECT pg_sleep(60); UPDATE clientes SET nome = nome;"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		extra     func(t *testing.T) map[string]string
		killAfter string
		delay     time.Duration
	}{
		"during the download": {
			// A slow link to the store keeps the download going for seconds.
			extra: func(t *testing.T) map[string]string {
				proxy := testenv.StartThrottlingProxy(t, strings.TrimPrefix(s3.Endpoint, "http://"), 512<<10)
				return map[string]string{"BACKUP_STORAGE_URL": strings.Replace(url, s3.Endpoint, "http://"+proxy, 1), "PROGRESS_INTERVAL": "200ms"}
			},
			killAfter: `"download progress"`,
		},
		"during pg_restore": {
			extra:     func(t *testing.T) map[string]string { return nil },
			killAfter: `"pg_restore started"`,
			delay:     300 * time.Millisecond,
		},
		"just before the swap": {
			extra:     func(t *testing.T) map[string]string { return map[string]string{"RESTORE_MASKING_SQL": masking} },
			killAfter: `"masking started"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
			killAt(t, bin, binaryEnv(tg.env, tc.extra(t)), tc.killAfter, tc.delay)
			dbs := tg.databases(t)
			if contains(dbs, tg.db) {
				t.Fatalf("after the kill a database with the real name exists: %v", dbs)
			}
			if !contains(dbs, tg.db+"__restoring") {
				t.Fatalf("no temporary database after the kill (%v): the kill came too late to test this step", dbs)
			}
			res, _, err := tg.run(t, nil)
			if err != nil || res.Outcome != restore.OutcomeRestored {
				t.Fatalf("the next run: %+v, %v", res, err)
			}
			tg.checkRestored(t, src.Summary)
		})
	}
}

// killAt starts initrestore and SIGKILLs it `delay` after a log line containing marker.
func killAt(t *testing.T, bin string, env []string, marker string, delay time.Duration) {
	t.Helper()
	cmd := exec.Command(bin)
	cmd.Env = env
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	var seen []string
	for sc.Scan() {
		seen = append(seen, sc.Text())
		if strings.Contains(sc.Text(), marker) {
			time.Sleep(delay)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("initrestore was not killed at %s (%v); log:\n%s", marker, err, strings.Join(seen, "\n"))
	}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// TestConcurrentRunsRestoreOnce: five init containers starting together restore once;
// the others wait and take the fast path.
func TestConcurrentRunsRestoreOnce(t *testing.T) {
	src := production(t, 12)
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	bin := testenv.Build(t, "initrestore")
	var wg sync.WaitGroup
	outs := make([]string, 5)
	codes := make([]int, 5)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[i], codes[i] = runBinary(t, bin, tg.env, map[string]string{"POD_NAME": fmt.Sprintf("dbaccess-%d", i)})
		}()
	}
	wg.Wait()
	restored, existed := 0, 0
	for i, out := range outs {
		if codes[i] != 0 {
			t.Fatalf("run %d exited %d:\n%s", i, codes[i], out)
		}
		switch {
		case strings.Contains(out, `"outcome":"restored"`):
			restored++
		case strings.Contains(out, `"outcome":"exists"`):
			existed++
		}
	}
	if restored != 1 || existed != 4 {
		t.Fatalf("%d runs restored and %d found the database; want 1 and 4", restored, existed)
	}
	tg.checkRestored(t, src.Summary)
}

// TestUnreachableStoreCreatesNothing: an unreachable or forbidden store is a failure,
// never "no backup", whatever RESTORE_ON_MISSING_BACKUP says.
func TestUnreachableStoreCreatesNothing(t *testing.T) {
	src := production(t, 15)
	s3 := testenv.StartS3(t)
	bucket := s3.NewBucket(t)
	writeCronbackup(t, src, bucket, prodNS)
	tests := map[string]struct {
		url   string
		extra map[string]string
	}{
		"S3 endpoint down":   {url: fmt.Sprintf("s3://bucket-x?endpoint=http://127.0.0.1:%d&region=us-east-1", testenv.FreePort(t))},
		"S3 access denied":   {url: bucket, extra: map[string]string{"AWS_SECRET_ACCESS_KEY": "wrong-secret"}},
		"S3 bucket missing":  {url: strings.Replace(bucket, "s3://test-", "s3://gone-", 1)},
		"GCS bucket missing": {url: testenv.StartGCS(t).URL("no-such-bucket-here")},
		"volume not mounted": {url: "file://" + filepath.Join(t.TempDir(), "not-mounted")},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			tg := newTarget(t, src.PG, tc.url, "cliente-hml", prodNS)
			extra := map[string]string{"RESTORE_ON_MISSING_BACKUP": "empty"}
			for k, v := range tc.extra {
				extra[k] = v
			}
			_, _, err := tg.run(t, extra)
			if code := exitcode.Of(err, -1); code != restore.ExitStorage {
				t.Fatalf("exit code %d (%v), want %d", code, err, restore.ExitStorage)
			}
			if dbs := tg.databases(t); len(dbs) != 0 || tg.roleExists(t) {
				t.Fatalf("created %v (role: %v) although the store could not answer", dbs, tg.roleExists(t))
			}
		})
	}
}

// TestMissingBackup: `empty` makes an empty database for a brand-new customer; `fail`
// creates nothing.
func TestMissingBackup(t *testing.T) {
	p := testenv.StartPostgres(t, 12)
	url := testenv.StartGCS(t).NewBucket(t)
	t.Run("empty", func(t *testing.T) {
		tg := newTarget(t, p, url, "novo-cliente-prod", "novo-cliente-prod")
		res, _, err := tg.run(t, map[string]string{"RESTORE_ON_MISSING_BACKUP": "empty"})
		if err != nil || res.Outcome != restore.OutcomeEmpty {
			t.Fatalf("%+v, %v", res, err)
		}
		rec := tg.checkRestored(t, nil)
		if !rec.Empty {
			t.Errorf("record %+v", rec)
		}
		// No restorer: it would keep CONNECT on the database, as a member of the
		// application role (it did, and the next forced restore could not drop it).
		var restorers int
		if err := p.Connect(t, "postgres").QueryRow(t.Context(), "SELECT count(*) FROM pg_roles WHERE rolname = $1", restore.RestorerName(tg.db)).Scan(&restorers); err != nil || restorers != 0 {
			t.Errorf("%d restorer roles left (%v), want none", restorers, err)
		}
		// The extensions in public, where a session with the default search path puts
		// them (the administrator's guarded session put them in pg_catalog).
		var exts string
		if err := p.Connect(t, tg.db).QueryRow(t.Context(), `SELECT string_agg(extname || '=' || extnamespace::regnamespace::text, ',' ORDER BY extname)
			FROM pg_extension WHERE extname <> 'plpgsql'`).Scan(&exts); err != nil || exts != "pg_trgm=public,unaccent=public" {
			t.Errorf("extensions %q (%v), want pg_trgm=public,unaccent=public", exts, err)
		}
	})
	t.Run("fail", func(t *testing.T) {
		tg := newTarget(t, p, url, "novo-cliente-prod", "novo-cliente-prod")
		_, _, err := tg.run(t, map[string]string{"RESTORE_ON_MISSING_BACKUP": "fail"})
		if code := exitcode.Of(err, -1); code != restore.ExitNoBackup {
			t.Fatalf("exit %d (%v), want %d", code, err, restore.ExitNoBackup)
		}
		if dbs := tg.databases(t); len(dbs) != 0 {
			t.Fatalf("created %v", dbs)
		}
	})
}

// TestCorruptBackupIsNeverSwappedIn: a truncated or bit-flipped object is detected,
// streamed or spooled, with or without a manifest, and nothing takes the real name.
func TestCorruptBackupIsNeverSwappedIn(t *testing.T) {
	src := production(t, 15)
	goodURL := "file://" + t.TempDir()
	m := writeCronbackup(t, src, goodURL, prodNS)
	good := readAll(t, openStore(t, goodURL), layout.LatestKey(prodNS))
	mb := readAll(t, openStore(t, goodURL), layout.LatestManifestKey(prodNS))
	flip := func(b []byte) []byte { c := append([]byte(nil), b...); c[len(c)/2] ^= 0x40; return c }
	tests := map[string]struct {
		object       []byte
		withManifest bool
	}{
		"truncated, with its manifest":    {object: good[:len(good)*2/3], withManifest: true},
		"bit-flipped, with its manifest":  {object: flip(good), withManifest: true},
		"truncated, without a manifest":   {object: good[:len(good)*2/3]},
		"bit-flipped, without a manifest": {object: flip(good)},
	}
	for name, tc := range tests {
		for _, spooled := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s, spooled=%v", name, spooled), func(t *testing.T) {
				url := "file://" + t.TempDir()
				st := openStore(t, url)
				put(t, st, layout.LatestKey(prodNS), tc.object)
				if tc.withManifest {
					// A restore reads the immutable object the latest manifest names:
					// the corrupt bytes go there too, with its own manifest, so a
					// bit-flipped object (right size) reaches the download's sha256 check.
					put(t, st, m.Object, tc.object)
					put(t, st, layout.ManifestKey(m.Object), mb)
					put(t, st, layout.LatestManifestKey(prodNS), mb)
				}
				tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
				extra := map[string]string{}
				if spooled {
					extra["RESTORE_SCRATCH_DIR"] = t.TempDir()
				}
				_, _, err := tg.run(t, extra)
				if code := exitcode.Of(err, -1); code != restore.ExitVerify {
					t.Fatalf("exit %d (%v), want %d", code, err, restore.ExitVerify)
				}
				if dbs := tg.databases(t); len(dbs) != 0 {
					t.Fatalf("databases left: %v", dbs)
				}
			})
		}
	}
}

func readAll(t *testing.T, st storage.Store, key string) []byte {
	t.Helper()
	rc, _, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, st storage.Store, key string, b []byte) {
	t.Helper()
	if _, err := st.Put(t.Context(), key, bytes.NewReader(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestRestoreRequest: a new request id restores once (from the environment's own
// latest when asked), replacing the database; the same id again is the fast path.
func TestRestoreRequest(t *testing.T) {
	prod := production(t, 12)
	hmlSrc := fixture.NewSource(t, 12, "cliente_hml_own", fixture.Tiny)
	url := testenv.StartS3(t).NewBucket(t)
	writeCronbackup(t, prod, url, prodNS)
	writeCronbackup(t, hmlSrc, url, "cliente-hml")
	tg := newTarget(t, prod.PG, url, "cliente-hml", prodNS)
	if res, _, err := tg.run(t, nil); err != nil || res.Outcome != restore.OutcomeRestored {
		t.Fatalf("first restore: %+v, %v", res, err)
	}
	tg.checkRestored(t, prod.Summary)

	own := map[string]string{"RESTORE_REQUEST_ID": "chamado-4711", "RESTORE_REQUEST_SOURCE": "own"}
	res, _, err := tg.run(t, own)
	if err != nil || res.Outcome != restore.OutcomeRestored {
		t.Fatalf("requested restore: %+v, %v", res, err)
	}
	rec := tg.checkRestored(t, hmlSrc.Summary) // also: no __previous_ database is left
	if rec.RequestID != "chamado-4711" || rec.SourceNamespace != "cliente-hml" {
		t.Errorf("record %+v", rec)
	}
	for range 2 {
		res, _, err = tg.run(t, own)
		if err != nil || res.Outcome != restore.OutcomeExists {
			t.Fatalf("the same request again: %+v, %v; want the fast path", res, err)
		}
	}
	res, _, err = tg.run(t, map[string]string{"RESTORE_REQUEST_ID": "chamado-4712"})
	if err != nil || res.Outcome != restore.OutcomeRestored {
		t.Fatalf("a request for production's latest: %+v, %v", res, err)
	}
	if rec := tg.checkRestored(t, prod.Summary); rec.RequestID != "chamado-4712" || rec.SourceNamespace != prodNS {
		t.Errorf("record %+v", rec)
	}
}

// TestMasking: internal-dev refuses to run without masking; with it, the restored data
// is masked before it is swapped in.
func TestMasking(t *testing.T) {
	src := production(t, 15)
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-dev", prodNS)
	tg.env["ENVIRONMENT"] = "internal-dev"
	for _, k := range contract.Names {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	for k, v := range tg.env {
		t.Setenv(k, v)
	}
	if _, err := restore.LoadConfig(); err == nil || !strings.Contains(err.Error(), "RESTORE_MASKING_SQL") {
		t.Fatalf("internal-dev without masking: %v, want a configuration error naming RESTORE_MASKING_SQL", err)
	}
	out, code := runBinary(t, testenv.Build(t, "initrestore"), tg.env, nil)
	if code != restore.ExitConfig || len(tg.databases(t)) != 0 {
		t.Fatalf("exit %d, databases %v:\n%s", code, tg.databases(t), out)
	}
	sql := filepath.Join(t.TempDir(), "mask.sql")
	if err := os.WriteFile(sql, []byte("UPDATE clientes SET nome = 'Cliente ' || id, cpf_cnpj = NULL, endereco = NULL;\nUPDATE pedidos SET observacao = NULL;\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tg.run(t, map[string]string{"RESTORE_MASKING_SQL": sql}); err != nil {
		t.Fatal(err)
	}
	var unmasked int
	if err := tg.pg.Connect(t, tg.db).QueryRow(t.Context(), "SELECT count(*) FROM clientes WHERE nome <> 'Cliente ' || id OR cpf_cnpj IS NOT NULL").Scan(&unmasked); err != nil || unmasked != 0 {
		t.Fatalf("%d unmasked customers (%v)", unmasked, err)
	}
}

func TestDecide(t *testing.T) {
	cfg := restore.Config{Namespace: "cliente-hml", SourceNamespace: prodNS, RequestSource: "production"}
	with := func(f func(*restore.Config)) restore.Config { c := cfg; f(&c); return c }
	tests := map[string]struct {
		cfg        restore.Config
		st         restore.State
		wantKind   restore.ActionKind
		wantSource string
		wantForced bool
	}{
		"a missing database is restored from production": {cfg: cfg, st: restore.State{}, wantKind: restore.ActionRestore, wantSource: prodNS},
		"an existing database is left alone":             {cfg: cfg, st: restore.State{Exists: true}, wantKind: restore.ActionNone},
		"a database without record and no request is left alone": {
			cfg: cfg, st: restore.State{Exists: true, HasRecord: false}, wantKind: restore.ActionNone},
		"a new request replaces the database": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r2" }), st: restore.State{Exists: true, HasRecord: true, Record: restore.Record{RequestID: "r1"}},
			wantKind: restore.ActionRestore, wantSource: prodNS, wantForced: true},
		"an applied request is the fast path": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r1" }), st: restore.State{Exists: true, HasRecord: true, Record: restore.Record{RequestID: "r1"}},
			wantKind: restore.ActionNone},
		"a request for the own backup uses this namespace": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r1"; c.RequestSource = "own" }), st: restore.State{Exists: true},
			wantKind: restore.ActionRestore, wantSource: "cliente-hml", wantForced: true},
		"a missing database under an own request restores the own backup": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r1"; c.RequestSource = "own" }), st: restore.State{},
			wantKind: restore.ActionRestore, wantSource: "cliente-hml"},
		"a missing database under an applied own request comes from production": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r1"; c.RequestSource = "own" }), st: restore.State{RequestApplied: true},
			wantKind: restore.ActionRestore, wantSource: prodNS},
		"a request applied according to the table is the fast path": {
			cfg: with(func(c *restore.Config) { c.RequestID = "r1"; c.RequestSource = "own" }), st: restore.State{Exists: true, RequestApplied: true},
			wantKind: restore.ActionNone},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			a := restore.Decide(tc.cfg, tc.st)
			if a.Kind != tc.wantKind || a.SourceNamespace != tc.wantSource || a.Forced != tc.wantForced || a.Reason == "" {
				t.Fatalf("Decide = %+v", a)
			}
		})
	}
}

func TestPlanTOC(t *testing.T) {
	in := `;
; Archive created at 2026-11-24 21:00:00 UTC
;
2; 3079 16385 EXTENSION - pg_trgm 
3718; 0 0 COMMENT - EXTENSION pg_trgm 
215; 1259 16397 TABLE public clientes cliente_erp
3720; 0 16397 COMMENT public TABLE clientes cliente_erp
3727; 3466 16512 EVENT TRIGGER - audita postgres
3728; 0 0 COMMENT - EVENT TRIGGER audita postgres
2891; 6104 8634209 PUBLICATION - cdc postgres
2902; 0 0 COMMENT - PUBLICATION cdc postgres
2893; 6106 8634210 PUBLICATION TABLE public cdc clientes postgres
2895; 6237 8634212 PUBLICATION TABLES IN SCHEMA public cdc erp postgres
2896; 6100 8634213 SUBSCRIPTION - replica postgres
2897; 0 0 SECURITY LABEL - PUBLICATION cdc postgres
2898; 0 0 SECURITY LABEL - EVENT TRIGGER audita postgres
2899; 0 16397 SECURITY LABEL public TABLE clientes cliente_erp
`
	p := restore.PlanTOC(in)
	if len(p.Skipped) != 11 || !strings.Contains(p.List, "SECURITY LABEL public TABLE clientes") || strings.Contains(p.List, "EVENT TRIGGER") || strings.Contains(p.List, "PUBLICATION") || strings.Contains(p.List, "SUBSCRIPTION") || !strings.Contains(p.Skipped[2], "EVENT TRIGGER - audita") || strings.Contains(p.List, "COMMENT - EXTENSION") || strings.Contains(p.List, "EXTENSION - pg_trgm") ||
		!strings.Contains(p.List, "COMMENT public TABLE clientes") || !strings.Contains(p.Definitions, "EXTENSION - pg_trgm") {
		t.Fatalf("PlanTOC = %+v", p)
	}
}

func TestRestoreSessionOptions(t *testing.T) {
	tests := []struct {
		major int
		want  string
	}{
		{12, "-c synchronous_commit=off -c max_parallel_workers_per_gather=0 -c max_parallel_maintenance_workers=0"},
		{17, "-c synchronous_commit=off -c max_parallel_workers_per_gather=0 -c max_parallel_maintenance_workers=0"},
		{10, "-c synchronous_commit=off -c max_parallel_workers_per_gather=0"}, // no max_parallel_maintenance_workers before 11: the session would not start
	}
	for _, tc := range tests {
		if got := restore.RestoreSessionOptions(tc.major); got != tc.want {
			t.Errorf("RestoreSessionOptions(%d) = %q, want %q", tc.major, got, tc.want)
		}
	}
}

func TestRestoreArgs(t *testing.T) {
	got := restore.RestoreArgs("hml__restoring", "app", "/tmp/toc.list", "/scratch/a.dump", restore.RestoreRun{Jobs: 4})
	want := []string{"--dbname=hml__restoring", "--no-owner", "--no-acl", "--no-tablespaces", "--exit-on-error", "--verbose", "--role=app", "--use-list=/tmp/toc.list", "--jobs=4", "/scratch/a.dump"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	got = restore.RestoreArgs("db", "app", "l", "/s/a.dump", restore.RestoreRun{Sections: []string{"pre-data", "data"}, Jobs: 2})
	want = []string{"--dbname=db", "--no-owner", "--no-acl", "--no-tablespaces", "--exit-on-error", "--verbose", "--role=app", "--use-list=l", "--section=pre-data", "--section=data", "--jobs=2", "/s/a.dump"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("sectioned (-want +got):\n%s", diff)
	}
	if got := restore.RestoreArgs("db", "app", "l", "", restore.RestoreRun{Jobs: 1}); contains(got, "--jobs=1") || len(got) != 8 {
		t.Errorf("streamed args %v", got)
	}
}

func TestConfigUsesContractNames(t *testing.T) {
	if unknown := contract.UnknownTags(restore.Config{}); len(unknown) > 0 {
		t.Errorf("initrestore reads variables outside internal/contract: %v", unknown)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	rec := restore.Record{Object: "p/database_20261124T000000Z.dump.gz", SHA256: strings.Repeat("a", 64), SourceNamespace: "p",
		BackupTime: time.Date(2026, 11, 24, 0, 0, 0, 0, time.UTC), RestoredAt: time.Date(2026, 11, 24, 1, 0, 0, 0, time.UTC), RequestID: "it's"}
	got, err := restore.ParseRecord(rec.String())
	if err != nil || got != rec {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, c := range []string{"", "Banco da produção", "smartbackup:{", "smartbackup:[]"} {
		if _, err := restore.ParseRecord(c); err == nil {
			t.Errorf("ParseRecord(%q) accepted", c)
		}
	}
}

// FuzzParseRecord: the comment is database content; no input may panic, and what is
// accepted renders back to an equivalent record.
func FuzzParseRecord(f *testing.F) {
	f.Add(restore.Record{Object: "a/b", RequestID: "x"}.String())
	f.Add("smartbackup:{\"requestId\":1}")
	f.Fuzz(func(t *testing.T, s string) {
		rec, err := restore.ParseRecord(s)
		if err != nil {
			return
		}
		again, err := restore.ParseRecord(rec.String())
		if err != nil {
			t.Fatalf("re-parsing %q: %v", rec.String(), err)
		}
		a, _ := json.Marshal(rec)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("%s != %s", a, b)
		}
	})
}

// TestLockKeyIsStable: pods of different versions must agree on the lock of a
// database, so the key is pinned.
func TestLockKeyIsStable(t *testing.T) {
	if got := restore.LockKey("cliente_erp"); got != -7890033959750706816 {
		t.Fatalf("LockKey(cliente_erp) = %d: changing it lets two versions restore at once", got)
	}
	if restore.LockKey("a") == restore.LockKey("b") {
		t.Fatal("different databases share a lock")
	}
}

func TestSpoolDecision(t *testing.T) {
	const mib = 1 << 20
	tests := map[string]struct {
		dir                string
		archive, free, max int64
		want               bool
	}{
		"no scratch directory":               {"", 100 * mib, 1 << 40, 0, false},
		"an archive of unknown size":         {"/scratch", 0, 1 << 40, 0, false},
		"an archive that fits":               {"/scratch", 100 * mib, 1 << 40, 20 << 30, true},
		"an archive beyond the volume limit": {"/scratch", 20 << 30, 1 << 40, 20 << 30, false},
		"an archive beyond the free space":   {"/scratch", 100 * mib, 120 * mib, 0, false},
		"free space unknown, within limit":   {"/scratch", 100 * mib, -1, 20 << 30, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, why := restore.SpoolDecision(tc.dir, tc.archive, tc.free, tc.max)
			if got != tc.want || why == "" {
				t.Fatalf("SpoolDecision = %v (%s), want %v", got, why, tc.want)
			}
		})
	}
}

func TestScratchMaxParses(t *testing.T) {
	tests := map[string]int64{"20Gi": 20 << 30, "512Mi": 512 << 20, "1000": 1000, "2G": 2e9}
	for in, want := range tests {
		var s restore.Size
		if err := s.Decode(in); err != nil || int64(s) != want {
			t.Errorf("Decode(%q) = %d, %v; want %d", in, s, err, want)
		}
	}
	for _, bad := range []string{"", "20GB", "-1", "1.5Gi", "99999999999999Ti"} {
		var s restore.Size
		if err := s.Decode(bad); err == nil {
			t.Errorf("Decode(%q) accepted", bad)
		}
	}
}

func TestMissingExtensions(t *testing.T) {
	list := `;
; Archive created at 2026-11-24
2; 3079 16385 EXTENSION - pg_trgm 
3; 3079 16386 EXTENSION - unaccent 
4; 3079 16387 EXTENSION - plpgsql 
215; 1259 16397 TABLE public clientes erp
`
	if got := restore.MissingExtensions(list, []string{"pg_trgm"}); !cmp.Equal(got, []string{"unaccent"}) {
		t.Errorf("missing = %v, want [unaccent]", got)
	}
	if got := restore.MissingExtensions(list, []string{"pg_trgm", "unaccent"}); len(got) != 0 {
		t.Errorf("missing = %v, want none", got)
	}
}

// TestUndeclaredExtensionFailsClearly: a backup that needs an extension the namespace
// does not declare fails with a message naming it, and leaves nothing.
func TestUndeclaredExtensionFailsClearly(t *testing.T) {
	src := production(t, 15)
	url := "file://" + t.TempDir()
	writeCronbackup(t, src, url, prodNS)
	tg := newTarget(t, src.PG, url, "cliente-hml", prodNS)
	_, _, err := tg.run(t, map[string]string{"DATABASE_EXTENSIONS": "pg_trgm"})
	if code := exitcode.Of(err, -1); code != restore.ExitRestore || !strings.Contains(err.Error(), "[unaccent]") {
		t.Fatalf("exit %d: %v; want %d naming unaccent", code, err, restore.ExitRestore)
	}
	if dbs := tg.databases(t); len(dbs) != 0 {
		t.Fatalf("databases left: %v", dbs)
	}
}

func TestAnalyzeStatements(t *testing.T) {
	big := restore.RestoredTable{Name: "public.sc6010", HeapBytes: 400 << 20}
	part := restore.RestoredTable{Name: "public.movimentos", Partitioned: true}
	empty := restore.RestoredTable{Name: "public.sb1010"}
	var small []restore.RestoredTable
	var names []string
	for i := range 70 {
		n := fmt.Sprintf("public.s%03d", i)
		small = append(small, restore.RestoredTable{Name: n, HeapBytes: 8192})
		names = append(names, n)
	}
	tests := []struct {
		name   string
		tables []restore.RestoredTable
		major  int
		want   []string
	}{
		{"nothing", nil, 12, nil},
		{"only empty tables", []restore.RestoredTable{empty, empty}, 15, nil},
		{"large and partitioned alone, empty skipped", []restore.RestoredTable{big, part, empty}, 12,
			[]string{"ANALYZE public.sc6010", "ANALYZE public.movimentos"}},
		{"small ones batched by 64", append([]restore.RestoredTable{big, empty}, small...), 12,
			[]string{"ANALYZE public.sc6010", "ANALYZE " + strings.Join(names[:64], ", "), "ANALYZE " + strings.Join(names[64:], ", ")}},
		{"PostgreSQL 10 takes one table per ANALYZE", append([]restore.RestoredTable{empty}, small[:2]...), 10,
			[]string{"ANALYZE public.s000", "ANALYZE public.s001"}},
		{"analyzed early, skipped", []restore.RestoredTable{{Name: "public.sc6010", HeapBytes: 400 << 20, Analyzed: true}, part, {Name: "public.s000", HeapBytes: 8192, Analyzed: true}, small[1]}, 15,
			[]string{"ANALYZE public.movimentos", "ANALYZE public.s001"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, restore.AnalyzeStatements(tc.tables, tc.major)); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

// TestEarlyAnalyzeConnections: the early ANALYZE takes no more connections than the
// big tables' run it follows released (RESTORE_JOBS set below twice the CPUs gave it
// more: the run's half of the jobs, but all of RESTORE_JOBS for ANALYZE), nor more
// than the tables or the CPUs.
func TestEarlyAnalyzeConnections(t *testing.T) {
	for _, c := range []struct{ tables, runJobs, cpus, want int }{
		{tables: 2, runJobs: 2, cpus: 2, want: 2}, // the default on 2 CPUs: RESTORE_JOBS=4, half to the big run
		{tables: 5, runJobs: 2, cpus: 8, want: 2}, // RESTORE_JOBS=4 on 8 CPUs
		{tables: 5, runJobs: 8, cpus: 4, want: 4}, // more connections than cores
		{tables: 1, runJobs: 8, cpus: 8, want: 1}, // one big table
		{tables: 3, runJobs: 0, cpus: 8, want: 1}, // never none
	} {
		if got := restore.EarlyAnalyzeConnections(c.tables, c.runJobs, c.cpus); got != c.want {
			t.Errorf("EarlyAnalyzeConnections(%d tables, run of %d, %d CPUs) = %d, want %d", c.tables, c.runJobs, c.cpus, got, c.want)
		}
	}
}

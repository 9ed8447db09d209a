package backup_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) {
	// This test binary doubles as a pg_dump that gets killed mid-way (see killedPgDump).
	if after := os.Getenv("SMARTBACKUP_TEST_KILL_PG_DUMP_AFTER"); after != "" {
		runKilledPgDump(after)
	}
	testenv.Main(m)
}

// fixtureSource is the WIN1252 ERP fixture on PostgreSQL major.
func fixtureSource(t *testing.T, major int) *fixture.Source {
	return fixture.NewSource(t, major, "cliente_erp", fixture.Small)
}

// stores are the three kinds of backup store, each a fresh bucket or directory.
func stores() map[string]func(t *testing.T) string {
	return map[string]func(t *testing.T) string{
		"file": func(t *testing.T) string { return "file://" + t.TempDir() },
		"gcs":  func(t *testing.T) string { return testenv.StartGCS(t).NewBucket(t) },
		"s3":   func(t *testing.T) string { return testenv.StartS3(t).NewBucket(t) },
	}
}

// configFor sets the cronbackup environment and loads it as main does.
func configFor(t *testing.T, s *fixture.Source, storeURL, namespace string, extra map[string]string) backup.Config {
	t.Helper()
	env := map[string]string{
		"DATABASE_ENDPOINT":     s.PG.Host,
		"DATABASE_PORT":         strconv.Itoa(s.PG.Port),
		"DATABASE_USER":         s.User,
		"DATABASE_PASSWORD":     s.Password,
		"DATABASE_CODEPAGE":     "WIN1252",
		"BACKUP_STORAGE_URL":    storeURL,
		"NAMESPACE":             namespace,
		"DATABASE_WAIT_TIMEOUT": "5s",
	}
	for k, v := range extra {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
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

// TestBackupRestoresIdentically: the object cronbackup writes restores with plain
// `gunzip | pg_restore` into a fresh database with the same rows and content, for each
// server major and each store.
func TestBackupRestoresIdentically(t *testing.T) {
	for _, major := range []int{12, 15} {
		for name, newStore := range stores() {
			t.Run(fmt.Sprintf("PostgreSQL %d to %s", major, name), func(t *testing.T) {
				src := fixtureSource(t, major)
				url := newStore(t)
				cfg := configFor(t, src, url, "cliente-prod", nil)
				resetPeakRSS()
				res, err := backup.Run(t.Context(), testr.New(t), cfg)
				if err != nil {
					t.Fatalf("backup: %v", err)
				}
				t.Logf("METRIC backup major=%d store=%s bytes=%d seconds=%.2f peak_rss_MiB=%.1f",
					major, name, res.Manifest.Size, res.Duration.Seconds(), float64(peakRSS())/(1<<20))
				st := openStore(t, url)
				m := res.Manifest
				checkManifest(t, st, m, cfg)
				checkRows(t, m, src.Summary)

				latest := download(t, st, layout.LatestKey("cliente-prod"))
				if sha := sha256File(t, latest); sha != m.SHA256 {
					t.Fatalf("latest sha256 %s, manifest %s", sha, m.SHA256)
				}
				checkCompacted(t, src, latest, m)
				got := restoreWithShell(t, src.PG, latest)
				if diff := cmp.Diff(src.Summary, got); diff != "" {
					t.Fatalf("restored content differs (-source +restored):\n%s", diff)
				}
			})
		}
	}
}

// checkCompacted: the object holds pg_dump's archive with the rows' chunks merged:
// manifest.archiveBytes bytes, the same contents, at least 4 bytes a row smaller than
// what pg_dump -Z0 writes (a 5-byte length before every row).
func checkCompacted(t *testing.T, src *fixture.Source, gz string, m layout.Manifest) {
	t.Helper()
	archive, err := exec.Command("gunzip", "-c", gz).Output()
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	if int64(len(archive)) != m.ArchiveSize {
		t.Fatalf("object holds %d archive bytes, manifest says %d", len(archive), m.ArchiveSize)
	}
	dump, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", src.PG.Major)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dump.Path, backup.DumpArgs(0, "WIN1252")...)
	cmd.Env = src.PG.Env(src.Database)
	plain, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	want, err := pg.ReadArchiveContents(bytes.NewReader(plain))
	if err != nil {
		t.Fatal(err)
	}
	got, err := pg.ReadArchiveContents(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want.Data, got.Data); diff != "" {
		t.Fatalf("table data (-pg_dump's archive +the object's):\n%s", diff)
	}
	var rows int64
	for _, d := range got.Data {
		rows += d.Rows
	}
	t.Logf("archive %d bytes as pg_dump writes it, %d in the object; %d rows", len(plain), len(archive), rows)
	if saved := int64(len(plain) - len(archive)); rows < 1000 || saved < 4*rows {
		t.Fatalf("the object's archive is %d bytes smaller than pg_dump's for %d rows; want at least 4 a row", saved, rows)
	}
}

func checkManifest(t *testing.T, st storage.Store, m layout.Manifest, cfg backup.Config) {
	t.Helper()
	for _, key := range []string{layout.ManifestKey(m.Object), layout.LatestManifestKey(cfg.Namespace)} {
		b := readAll(t, st, key)
		got, err := layout.ParseManifest(b)
		if err != nil {
			t.Fatalf("manifest %s: %v", key, err)
		}
		if diff := cmp.Diff(m, got); diff != "" {
			t.Fatalf("manifest %s (-returned +stored):\n%s", key, diff)
		}
	}
	info, err := st.Stat(t.Context(), m.Object)
	if err != nil || info.Size != m.Size {
		t.Fatalf("object %s: %+v, %v; manifest size %d", m.Object, info, err, m.Size)
	}
	if m.Encoding != "WIN1252" || m.Database != cfg.Database || m.ArchiveEntries < 20 || m.DumpVersion == "" || m.ServerVersion == "" {
		t.Errorf("manifest fields: %+v", m)
	}
	if !strings.HasPrefix(m.Object, cfg.Namespace+"/database_") {
		t.Errorf("object %q outside the namespace", m.Object)
	}
}

// checkRows: the manifest records the source's exact row count of every table.
func checkRows(t *testing.T, m layout.Manifest, sum fixture.Summary) {
	t.Helper()
	var want []layout.TableRows
	for _, table := range fixture.Tables {
		var n int64
		if _, err := fmt.Sscanf(sum[table], "rows=%d ", &n); err != nil {
			t.Fatalf("summary of %s: %q", table, sum[table])
		}
		want = append(want, layout.TableRows{Schema: "public", Table: table, Rows: n})
	}
	got := append([]layout.TableRows(nil), m.Rows...)
	sort.Slice(got, func(i, j int) bool {
		return slices.Index(fixture.Tables, got[i].Table) < slices.Index(fixture.Tables, got[j].Table)
	})
	if diff := cmp.Diff(want, got); diff != "" || m.Tables != len(fixture.Tables) || m.RowsMethod != layout.RowsExact {
		t.Errorf("manifest rows (-source +manifest):\n%s\ntables %d, method %q", diff, m.Tables, m.RowsMethod)
	}
}

// TestShellPipelineInterchangeable: a dump made by the operations page's literal
// pipeline and one made by cronbackup list the same archive entries and restore to the
// same content with the same commands.
func TestShellPipelineInterchangeable(t *testing.T) {
	src := fixtureSource(t, 12)
	dir := t.TempDir()
	url := "file://" + dir
	cfg := configFor(t, src, url, "cliente-prod", nil)
	res, err := backup.Run(t.Context(), testr.New(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Join(dir, filepath.FromSlash(res.Manifest.Object))
	theirs := filepath.Join(t.TempDir(), "database_latest.dump.gz")
	if out, err := src.PageCommand(t, theirs).CombinedOutput(); err != nil {
		t.Fatalf("the page's pipeline: %v\n%s", err, out)
	}
	if a, b := tocOf(t, ours), tocOf(t, theirs); !cmp.Equal(a, b) {
		t.Errorf("archive entries differ (-ours +page):\n%s", cmp.Diff(a, b))
	}
	for name, f := range map[string]string{"cronbackup": ours, "shell pipeline": theirs} {
		if got := restoreWithShell(t, src.PG, f); !cmp.Equal(src.Summary, got) {
			t.Errorf("%s dump restores differently (-source +restored):\n%s", name, cmp.Diff(src.Summary, got))
		}
	}
}

// tocOf lists an archive's entries without the header lines (which carry dates).
func tocOf(t *testing.T, gz string) []string {
	t.Helper()
	restore, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", 12)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("bash", "-c", `gunzip -c "$1" | "$2" --list`, "_", gz, restore.Path).Output()
	if err != nil {
		t.Fatalf("pg_restore --list %s: %v", gz, err)
	}
	var entries []string
	for _, l := range strings.Split(string(out), "\n") {
		if l != "" && !strings.HasPrefix(l, ";") {
			entries = append(entries, l)
		}
	}
	return entries
}

// restoreWithShell restores a .dump.gz with the plain tools into a fresh WIN1252
// database and returns its summary.
func restoreWithShell(t *testing.T, p *testenv.Postgres, gz string) fixture.Summary {
	t.Helper()
	db := testenv.RandomName("restored_")
	p.CreateDatabase(t, db, "WIN1252")
	restore, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", p.Major)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", "-o", "pipefail", "-c", `gunzip -c "$1" | "$2" --no-owner --no-acl --exit-on-error -d "$3"`, "_", gz, restore.Path, db)
	cmd.Env = p.Env(db)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gunzip | pg_restore: %v\n%s", err, out)
	}
	sum, err := fixture.Summarize(t.Context(), p.Connect(t, db))
	if err != nil {
		t.Fatal(err)
	}
	return sum
}

// history seeds a store with the backups of the days before today (made from one real
// backup, re-dated), its latest pointing at yesterday's, and snapshots what a failed run
// must leave untouched.
type history struct {
	store    storage.Store
	ns       string
	latest   layout.Manifest
	listing  []string
	latestSH string
}

func seedHistory(t *testing.T, src *fixture.Source, url, ns string, days int) *history {
	t.Helper()
	cfg := configFor(t, src, url, ns, map[string]string{"BACKUP_KEEP_DAILY": "30"})
	res, err := backup.Run(t.Context(), testr.New(t), cfg)
	if err != nil {
		t.Fatalf("seeding a good backup: %v", err)
	}
	st := openStore(t, url)
	body := readAll(t, st, res.Manifest.Object)
	var newest layout.Manifest
	for i := days; i >= 1; i-- {
		m := res.Manifest
		m.StartedAt = m.StartedAt.AddDate(0, 0, -i)
		m.FinishedAt = m.FinishedAt.AddDate(0, 0, -i)
		m.Object = layout.BackupKey(ns, m.StartedAt)
		put(t, st, m.Object, body)
		mb, _ := m.Marshal()
		put(t, st, layout.ManifestKey(m.Object), mb)
		newest = m
	}
	for _, k := range []string{res.Manifest.Object, layout.ManifestKey(res.Manifest.Object)} {
		if err := st.Delete(t.Context(), k); err != nil {
			t.Fatal(err)
		}
	}
	mb, _ := newest.Marshal()
	put(t, st, layout.LatestManifestKey(ns), mb)
	h := &history{store: st, ns: ns, latest: newest}
	h.listing = listKeys(t, st, ns)
	h.latestSH = string(readAll(t, st, layout.LatestManifestKey(ns)))
	return h
}

func put(t *testing.T, st storage.Store, key string, b []byte) {
	t.Helper()
	if _, err := st.Put(t.Context(), key, bytes.NewReader(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// assertUntouched: the previous latest is still the latest, nothing partial is listed
// and nothing was pruned.
func (h *history) assertUntouched(t *testing.T) {
	t.Helper()
	if diff := cmp.Diff(h.listing, listKeys(t, h.store, h.ns)); diff != "" {
		t.Errorf("objects changed after a failed run (-before +after):\n%s", diff)
	}
	if got := string(readAll(t, h.store, layout.LatestManifestKey(h.ns))); got != h.latestSH {
		t.Errorf("the latest manifest changed after a failed run")
	}
	if got := sha256Bytes(readAll(t, h.store, layout.LatestKey(h.ns))); got != h.latest.SHA256 {
		t.Errorf("database_latest.dump.gz changed after a failed run")
	}
}

func listKeys(t *testing.T, st storage.Store, ns string) []string {
	t.Helper()
	l, err := st.List(t.Context(), ns+"/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range l {
		keys = append(keys, o.Key)
	}
	return keys
}

// TestFailedRunsChangeNothing: whatever fails, latest keeps the previous good backup,
// no partial object is listed, retention deletes nothing, and the exit code is the
// documented one.
func TestFailedRunsChangeNothing(t *testing.T) {
	src := fixtureSource(t, 12)
	tests := map[string]struct {
		store    func(t *testing.T) string
		breakRun func(t *testing.T, storeURL string) map[string]string
		wantCode int
	}{
		"the database is unreachable": {
			store: stores()["file"],
			breakRun: func(t *testing.T, storeURL string) map[string]string {
				return map[string]string{"DATABASE_PORT": strconv.Itoa(testenv.FreePort(t)), "DATABASE_WAIT_TIMEOUT": "2s"}
			},
			wantCode: backup.ExitDatabase,
		},
		"the password is wrong": {
			store: stores()["file"],
			breakRun: func(t *testing.T, storeURL string) map[string]string {
				return map[string]string{"DATABASE_PASSWORD": "not-the-password"}
			},
			wantCode: backup.ExitDatabase,
		},
		"pg_dump is killed mid-way": {
			store: stores()["s3"],
			breakRun: func(t *testing.T, storeURL string) map[string]string {
				return map[string]string{"PG_CLIENT_ROOT": killedPgDumpRoot(t, 256<<10)}
			},
			wantCode: backup.ExitDump,
		},
		"the store fails mid-upload": {
			store: stores()["s3"],
			breakRun: func(t *testing.T, storeURL string) map[string]string {
				// A TCP proxy in front of the real S3 server that cuts every connection
				// once 1 MiB has passed: the upload fails after its first bytes.
				s3 := testenv.StartS3(t)
				proxy := testenv.StartCuttingProxy(t, strings.TrimPrefix(s3.Endpoint, "http://"), 1<<20)
				return map[string]string{"BACKUP_STORAGE_URL": strings.Replace(storeURL, s3.Endpoint, "http://"+proxy, 1) + "&part_size_mib=5"}
			},
			wantCode: backup.ExitStorage,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			url := tc.store(t)
			h := seedHistory(t, src, url, "cliente-prod", 9)
			extra := tc.breakRun(t, url)
			extra["BACKUP_KEEP_DAILY"] = "3" // would prune if the run got that far
			cfg := configFor(t, src, url, "cliente-prod", extra)
			_, err := backup.Run(t.Context(), testr.New(t), cfg)
			if err == nil {
				t.Fatal("the run succeeded")
			}
			if code := exitcode.Of(err, backup.ExitUnexpected); code != tc.wantCode {
				t.Fatalf("exit code %d (%v), want %d", code, err, tc.wantCode)
			}
			if strings.Contains(err.Error(), src.Password) || strings.Contains(err.Error(), "not-the-password") {
				t.Fatalf("the error carries a password: %v", err)
			}
			h.assertUntouched(t)
		})
	}
}

// TestRetention: after nine daily backups, today's run makes ten; keeping seven prunes
// exactly the three oldest, objects and manifests, and never latest.
func TestRetention(t *testing.T) {
	src := fixtureSource(t, 15)
	url := "file://" + t.TempDir()
	h := seedHistory(t, src, url, "cliente-prod", 9)
	var dated []string
	for _, k := range h.listing {
		if _, ok := layout.ParseBackupKey(k); ok {
			dated = append(dated, k) // oldest first: keys sort by time
		}
	}
	cfg := configFor(t, src, url, "cliente-prod", map[string]string{"BACKUP_KEEP_DAILY": "7", "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0"})
	res, err := backup.Run(t.Context(), testr.New(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(dated[:3], sorted(res.Pruned)); diff != "" {
		t.Errorf("pruned (-want the three oldest +got):\n%s", diff)
	}
	after := listKeys(t, h.store, "cliente-prod")
	for _, k := range dated[:3] {
		for _, gone := range []string{k, layout.ManifestKey(k)} {
			if contains(after, gone) {
				t.Errorf("%s is still there", gone)
			}
		}
	}
	want := append(append([]string(nil), dated[3:]...), res.Manifest.Object)
	var kept []string
	for _, k := range after {
		if _, ok := layout.ParseBackupKey(k); ok {
			kept = append(kept, k)
		}
	}
	if diff := cmp.Diff(want, kept); diff != "" {
		t.Errorf("kept (-want +got):\n%s", diff)
	}
	for _, k := range []string{layout.LatestKey("cliente-prod"), layout.LatestManifestKey("cliente-prod"), layout.ManifestKey(res.Manifest.Object)} {
		if !contains(after, k) {
			t.Errorf("%s is gone", k)
		}
	}
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// killedPgDumpRoot builds a client root whose pg_dump is this test binary, which runs
// the real pg_dump and is SIGKILLed, with it, once `after` bytes went out.
func killedPgDumpRoot(t *testing.T, after int) string {
	t.Helper()
	real, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", 12)
	if err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	bin := filepath.Join(root, strconv.Itoa(real.Major), "bin")
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\nSMARTBACKUP_TEST_KILL_PG_DUMP_AFTER=%d SMARTBACKUP_TEST_REAL_PG_DUMP=%q exec %q \"$@\"\n", after, real.Path, self)
	if err := os.WriteFile(filepath.Join(bin, "pg_dump"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return root
}

func runKilledPgDump(after string) {
	n, _ := strconv.ParseInt(after, 10, 64)
	cmd := exec.Command(os.Getenv("SMARTBACKUP_TEST_REAL_PG_DUMP"), os.Args[1:]...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err == nil {
		err = cmd.Start()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake pg_dump:", err)
		os.Exit(99)
	}
	copied, _ := io.CopyN(os.Stdout, out, n)
	fmt.Fprintf(os.Stderr, "fake pg_dump: killing pg_dump after %d bytes\n", copied)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
}

func TestDumpArgsArePagesFlags(t *testing.T) {
	got := backup.DumpArgs(6, "WIN1252")
	want := []string{"-Fc", "-Z6", "--no-owner", "--no-acl", "--verbose", "--encoding", "WIN1252"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	for _, a := range got {
		if strings.Contains(a, "postgres://") || strings.Contains(a, "password") {
			t.Errorf("argument %q could carry credentials", a)
		}
	}
}

func TestConfigErrorsNameTheVariable(t *testing.T) {
	base := map[string]string{
		"DATABASE_ENDPOINT": "db", "DATABASE_USER": "u", "DATABASE_PASSWORD": "p", "DATABASE_CODEPAGE": "WIN1252",
		"BACKUP_STORAGE_URL": "gs://bucket", "NAMESPACE": "ns",
	}
	tests := map[string]struct {
		set      map[string]string
		unset    string
		wantName string
	}{
		"a missing endpoint":     {unset: "DATABASE_ENDPOINT", wantName: "DATABASE_ENDPOINT"},
		"a missing password":     {unset: "DATABASE_PASSWORD", wantName: "DATABASE_PASSWORD"},
		"a port that is no port": {set: map[string]string{"DATABASE_PORT": "abc"}, wantName: "DATABASE_PORT"},
		"an odd codepage":        {set: map[string]string{"DATABASE_CODEPAGE": "WIN-1252;"}, wantName: "DATABASE_CODEPAGE"},
		"a bad storage URL":      {set: map[string]string{"BACKUP_STORAGE_URL": "ftp://x"}, wantName: "BACKUP_STORAGE_URL"},
		"a bad namespace":        {set: map[string]string{"NAMESPACE": "Prod_1"}, wantName: "NAMESPACE"},
		"keeping no backup":      {set: map[string]string{"BACKUP_KEEP_DAILY": "0"}, wantName: "BACKUP_KEEP_DAILY"},
		"an unknown time zone":   {set: map[string]string{"BACKUP_TIMEZONE": "Mars/Olympus"}, wantName: "BACKUP_TIMEZONE"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range base {
				if k != tc.unset {
					t.Setenv(k, v)
				} else {
					t.Setenv(k, "")
					os.Unsetenv(k)
				}
			}
			for k, v := range tc.set {
				t.Setenv(k, v)
			}
			_, err := backup.LoadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.wantName) {
				t.Fatalf("LoadConfig = %v, want an error naming %s", err, tc.wantName)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error spans lines: %q", err)
			}
		})
	}
	t.Run("DATABASE_NAME defaults to the user, as in the page's URL", func(t *testing.T) {
		for k, v := range base {
			t.Setenv(k, v)
		}
		cfg, err := backup.LoadConfig()
		if err != nil || cfg.Database != "u" || cfg.Port != 5432 || cfg.KeepDaily != 7 {
			t.Fatalf("cfg = %+v, %v", cfg, err)
		}
	})
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

func download(t *testing.T, st storage.Store, key string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), filepath.Base(key))
	if err := os.WriteFile(f, readAll(t, st, key), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestConfigUsesContractNames(t *testing.T) {
	if unknown := contract.UnknownTags(backup.Config{}); len(unknown) > 0 {
		t.Errorf("cronbackup backup reads variables outside internal/contract: %v", unknown)
	}
}

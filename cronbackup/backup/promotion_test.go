package backup_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	gosync "sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// stopAfterEnv makes TestHelperKilledBackup, run as a child process, SIGKILL itself
// right after its k-th write to the store.
const stopAfterEnv = "SMARTBACKUP_TEST_KILL_AFTER_WRITE"

// killingStore is the real store; after its k-th successful write (Put, Copy, Delete)
// the process dies on the spot, as a node failure or an OOM kill would make it.
type killingStore struct {
	storage.Store
	left atomic.Int32
}

func (s *killingStore) wrote() {
	if s.left.Add(-1) == 0 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

func (s *killingStore) Put(ctx context.Context, key string, r io.Reader, o storage.PutOptions) (storage.ObjectInfo, error) {
	info, err := s.Store.Put(ctx, key, r, o)
	if err == nil {
		s.wrote()
	}
	return info, err
}

func (s *killingStore) Copy(ctx context.Context, src, dst string) (storage.ObjectInfo, error) {
	info, err := s.Store.Copy(ctx, src, dst)
	if err == nil {
		s.wrote()
	}
	return info, err
}

func (s *killingStore) Delete(ctx context.Context, key string) error {
	err := s.Store.Delete(ctx, key)
	if err == nil {
		s.wrote()
	}
	return err
}

// TestHelperKilledBackup is not a test: it is the body of the child process of
// TestEveryCrashOfAPromotionRestores, a cronbackup run through the real store that is
// killed after a given write.
func TestHelperKilledBackup(t *testing.T) {
	k, err := strconv.Atoi(os.Getenv(stopAfterEnv))
	if err != nil {
		t.Skip("run by TestEveryCrashOfAPromotionRestores")
	}
	*backup.OpenStore = func(ctx context.Context, url string) (storage.Store, error) {
		st, err := storage.Open(ctx, url)
		if err != nil {
			return nil, err
		}
		ks := &killingStore{Store: st}
		ks.left.Store(int32(k))
		return ks, nil
	}
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := backup.Run(context.Background(), testr.New(t), cfg); err != nil {
		t.Fatal(err)
	}
}

// TestEveryCrashOfAPromotionRestores: cronbackup is killed after each of its writes
// (the new object, its manifest, the latest copy, the latest manifest, retention's two
// deletes of the previous backup), and after each a real initrestore restores from the
// store against real PostgreSQL: the previous backup until the latest manifest names the
// new one, the new one from then on. A first backup killed before its promotion is
// restored from its immutable object.
func TestEveryCrashOfAPromotionRestores(t *testing.T) {
	src := fixture.NewSource(t, 15, "cliente_promocao", fixture.Tiny)
	admin := src.PG.Connect(t, src.Database)
	setMarker := func(v string) {
		t.Helper()
		if _, err := admin.Exec(t.Context(), fmt.Sprintf(`CREATE TABLE IF NOT EXISTS promocao_marker (v text);
			ALTER TABLE promocao_marker OWNER TO %s; TRUNCATE promocao_marker; INSERT INTO promocao_marker VALUES ('%s')`,
			pgx.Identifier{src.User}.Sanitize(), v)); err != nil {
			t.Fatal(err)
		}
	}
	bin := testenv.Build(t, "initrestore")
	tests := []struct {
		name   string
		seeded bool
		kill   int
		want   string
	}{
		{"killed after writing the object", true, 1, "old"},
		{"killed after writing its manifest", true, 2, "old"},
		{"killed after the latest copy", true, 3, "old"},
		{"killed after the latest manifest", true, 4, "new"},
		{"killed after deleting the previous object", true, 5, "new"},
		{"first backup killed after its manifest", false, 2, "new"},
		{"first backup killed after the latest copy", false, 3, "new"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			url := "file://" + t.TempDir()
			env := map[string]string{"BACKUP_KEEP_DAILY": "1", "BACKUP_KEEP_WEEKLY": "0", "BACKUP_KEEP_MONTHLY": "0"}
			if tc.seeded {
				setMarker("old")
				if _, err := backup.Run(t.Context(), testr.New(t), configFor(t, src, url, "cliente-prod", env)); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(1100 * time.Millisecond))) // a new key
			}
			setMarker("new")
			configFor(t, src, url, "cliente-prod", env) // sets the environment the child inherits
			child := exec.Command(os.Args[0], "-test.run=^TestHelperKilledBackup$", "-test.count=1")
			child.Env = append(os.Environ(), stopAfterEnv+"="+strconv.Itoa(tc.kill))
			out, err := child.CombinedOutput()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ProcessState.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
				t.Fatalf("cronbackup was not killed after write %d (%v):\n%s", tc.kill, err, out)
			}
			t.Logf("store after the kill: %v", listKeys(t, openStore(t, url), "cliente-prod"))

			got, log := restoreWithInitrestore(t, bin, src.PG, url)
			if got != tc.want {
				t.Fatalf("restored the %q backup, want the %q one; log:\n%s", got, tc.want, log)
			}
			if !strings.Contains(log, "restoring the backup the latest manifest names") &&
				!strings.Contains(log, "restoring the newest immutable backup whose manifest is complete") {
				t.Errorf("the log does not say which backup it restored and why:\n%s", log)
			}
		})
	}
}

// restoreWithInitrestore runs the initrestore binary for a fresh homologation database
// restored from cliente-prod and returns the marker it holds and the log.
func restoreWithInitrestore(t *testing.T, bin string, p *testenv.Postgres, url string) (string, string) {
	t.Helper()
	db, user := testenv.RandomName("hml_"), testenv.RandomName("app_")
	t.Cleanup(func() {
		conn := p.Connect(t, "postgres")
		_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+pgx.Identifier{db}.Sanitize()+" WITH (FORCE)")
		_, _ = conn.Exec(context.Background(), "DROP ROLE IF EXISTS "+pgx.Identifier{user}.Sanitize())
	})
	env := map[string]string{
		"DATABASE_ENDPOINT": p.Host, "DATABASE_PORT": strconv.Itoa(p.Port), "DATABASE_NAME": db,
		"DATABASE_USER": user, "DATABASE_PASSWORD": "pw-hml", "DATABASE_ADMIN_USER": p.User, "DATABASE_ADMIN_PASSWORD": p.Password,
		"DATABASE_CODEPAGE": "WIN1252", "DATABASE_EXTENSIONS": "pg_trgm, unaccent", "BACKUP_STORAGE_URL": url,
		"NAMESPACE": "cliente-hml", "POD_NAME": "dbaccess-0", "RESTORE_SOURCE_NAMESPACE": "cliente-prod",
		"DATABASE_WAIT_TIMEOUT": "10s", "ENVIRONMENT": "homologation", "PG_CLIENT_ROOT": os.Getenv("PG_CLIENT_ROOT"),
	}
	cmd := exec.Command(bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		if v != "" {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
	}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Run(); err != nil {
		t.Fatalf("initrestore: %v\n%s", err, log.String())
	}
	var v string
	if err := p.Connect(t, db).QueryRow(t.Context(), "SELECT v FROM promocao_marker").Scan(&v); err != nil {
		t.Fatalf("reading the marker: %v\n%s", err, log.String())
	}
	return v, log.String()
}

// TestRetentionRemovesStaleTemporaryFiles: a backup's retention removes the temporary
// files that writes killed more than a day ago left under its namespace, each with a
// log line; a fresh one (a write that may be running) and other namespaces' stay.
func TestRetentionRemovesStaleTemporaryFiles(t *testing.T) {
	src := fixture.NewSource(t, 15, "cliente_promocao", fixture.Tiny)
	dir := t.TempDir()
	stale := filepath.Join(dir, "cliente-prod", ".smartbackup-tmp-database_20261101T000000Z.dump.gz-1")
	fresh := filepath.Join(dir, "cliente-prod", ".smartbackup-tmp-database_20261102T000000Z.dump.gz-2")
	other := filepath.Join(dir, "cliente-dev", ".smartbackup-tmp-database_20261101T000000Z.dump.gz-3")
	old := time.Now().Add(-storage.StaleTempAge - time.Hour)
	for _, p := range []string{stale, fresh, other} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 1024), 0o644); err != nil {
			t.Fatal(err)
		}
		if p != fresh {
			if err := os.Chtimes(p, old, old); err != nil {
				t.Fatal(err)
			}
		}
	}
	var mu gosync.Mutex
	var logs strings.Builder
	log := funcr.NewJSON(func(obj string) { mu.Lock(); logs.WriteString(obj + "\n"); mu.Unlock() }, funcr.Options{})
	if _, err := backup.Run(t.Context(), log, configFor(t, src, "file://"+dir, "cliente-prod", nil)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there (%v)", err)
	}
	for _, p := range []string{fresh, other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", p, err)
		}
	}
	if !strings.Contains(logs.String(), `"msg":"stale temporary file of an interrupted write removed","file":"cliente-prod/.smartbackup-tmp-database_20261101T000000Z.dump.gz-1"`) {
		t.Errorf("no log line names the removed file:\n%s", logs.String())
	}
}

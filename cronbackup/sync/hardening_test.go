package sync_test

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	cbsync "github.com/smartbackup/smartbackup/cronbackup/sync"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// failingSource is the real source store whose dump objects' reads fail half-way, the
// way a cut connection or a dying disk makes them fail.
type failingSource struct {
	storage.Store
	end error
}

func (f failingSource) Open(ctx context.Context, key string) (io.ReadCloser, storage.ObjectInfo, error) {
	rc, info, err := f.Store.Open(ctx, key)
	if err != nil || !strings.HasSuffix(key, layout.DumpSuffix) {
		return rc, info, err
	}
	return struct {
		io.Reader
		io.Closer
	}{io.MultiReader(io.LimitReader(rc, info.Size/2), errorReader{f.end}), rc}, info, nil
}

type errorReader struct{ err error }

func (e errorReader) Read([]byte) (int, error) { return 0, e.err }

// withSource makes the next runs open SYNC_SOURCE_URL through wrap.
func withSource(t *testing.T, srcURL string, wrap func(storage.Store) storage.Store) {
	orig := *cbsync.OpenStore
	*cbsync.OpenStore = func(ctx context.Context, url string) (storage.Store, error) {
		st, err := orig(ctx, url)
		if err != nil || url != srcURL {
			return st, err
		}
		return wrap(st), nil
	}
	t.Cleanup(func() { *cbsync.OpenStore = orig })
}

// TestSourceReadFailureKeepsTargetCopies: when reading the source fails in the middle
// of an object (an error, or an early clean end), the target keeps its previous good
// latest copy, gets nothing of the new backup, and no manifest whose object did not
// copy; the next run with a healthy source copies everything.
func TestSourceReadFailureKeepsTargetCopies(t *testing.T) {
	targets := map[string]func(t *testing.T) *volume{
		"a mounted Rubrik volume": newVolume,
		"an S3 bucket":            func(t *testing.T) *volume { return openVolume(t, testenv.StartS3(t).NewBucket(t)) },
	}
	ends := map[string]error{
		"io.ErrUnexpectedEOF":   io.ErrUnexpectedEOF,
		"an early clean io.EOF": io.EOF,
	}
	for tname, newTarget := range targets {
		for ename, end := range ends {
			t.Run(tname+", "+ename, func(t *testing.T) {
				src, dst := newVolume(t), newTarget(t)
				src.addBackup(t, "cliente-a", day0, 3<<20)
				if _, err := runSync(t, t.Context(), src.url, dst.url, nil); err != nil {
					t.Fatal(err)
				}
				before := dst.contents(t)
				newest := src.addBackup(t, "cliente-a", day0.AddDate(0, 0, 1), 2<<20)

				withSource(t, src.url, func(st storage.Store) storage.Store { return failingSource{st, end} })
				_, err := runSync(t, t.Context(), src.url, dst.url, nil)
				if err == nil {
					t.Fatal("a sync whose source reads failed reported success")
				}
				after := dst.contents(t)
				for _, k := range []string{layout.LatestKey("cliente-a"), layout.LatestManifestKey("cliente-a")} {
					if after[k] != before[k] {
						t.Errorf("%s changed on the target (%q, was %q) although its copy failed", k, after[k], before[k])
					}
				}
				for _, k := range []string{newest.Object, layout.ManifestKey(newest.Object)} {
					if _, ok := after[k]; ok {
						t.Errorf("%s is on the target although the object's copy failed", k)
					}
				}
				if strings.HasPrefix(dst.url, "file://") {
					if left := tempFiles(t, strings.TrimPrefix(dst.url, "file://")); len(left) > 0 {
						t.Errorf("temporary files left: %v", left)
					}
				}

				*cbsync.OpenStore = storage.Open
				if _, err := runSync(t, t.Context(), src.url, dst.url, nil); err != nil {
					t.Fatal(err)
				}
				if got := dst.contents(t); got[layout.LatestKey("cliente-a")] != newest.SHA256 || got[newest.Object] != newest.SHA256 {
					t.Errorf("after a healthy run the target holds %v, want the newest backup %s", got, newest.SHA256)
				}
			})
		}
	}
}

// TestManifestFollowsItsObject: a backup object whose sha256 differs from its own
// manifest on the source is not copied, and neither is the manifest (exit 6).
func TestManifestFollowsItsObject(t *testing.T) {
	src, dst := newVolume(t), newVolume(t)
	m := src.addBackup(t, "cliente-a", day0, 1<<20)
	bad := bytes.Repeat([]byte{'x'}, int(m.Size))
	src.put(t, m.Object, bad) // same size, other bytes
	_, err := runSync(t, t.Context(), src.url, dst.url, nil)
	if code := exitcode.Of(err, -1); code != cbsync.ExitStorage && code != cbsync.ExitVerify {
		t.Fatalf("exit %d (%v), want a failure", code, err)
	}
	got := dst.contents(t)
	for _, k := range []string{m.Object, layout.ManifestKey(m.Object)} {
		if _, ok := got[k]; ok {
			t.Errorf("%s reached the target although the object does not match its manifest", k)
		}
	}
	// The latest copy is checked by size only (a half-done promotion is legitimate).
	if got[layout.LatestKey("cliente-a")] != m.SHA256 || got[layout.LatestManifestKey("cliente-a")] == "" {
		t.Errorf("the latest pair did not reach the target: %v", got)
	}
}

// TestSyncRemovesStaleTemporaryFiles: temporary files of writes killed more than a day
// ago are removed from the target, each with a log line; a fresh one (a write that may
// be running) stays.
func TestSyncRemovesStaleTemporaryFiles(t *testing.T) {
	src, dst := newVolume(t), newVolume(t)
	src.addBackup(t, "cliente-a", day0, 1000)
	root := strings.TrimPrefix(dst.url, "file://")
	stale := filepath.Join(root, "cliente-a", ".smartbackup-tmp-database_20261101T000000Z.dump.gz-123")
	fresh := filepath.Join(root, "cliente-a", ".smartbackup-tmp-database_20261102T000000Z.dump.gz-456")
	for _, p := range []string{stale, fresh} {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, 4096), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-storage.StaleTempAge - time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var logs strings.Builder
	t.Setenv("SYNC_SOURCE_URL", src.url)
	t.Setenv("SYNC_TARGET_URL", dst.url)
	cfg, err := cbsync.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	log := funcr.NewJSON(func(obj string) { mu.Lock(); logs.WriteString(obj + "\n"); mu.Unlock() }, funcr.Options{})
	if _, err := cbsync.Run(t.Context(), log, cfg); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("the stale temporary file is still there (%v)", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("the fresh temporary file was removed: %v", err)
	}
	if !strings.Contains(logs.String(), `"msg":"stale temporary file of an interrupted write removed","file":"cliente-a/.smartbackup-tmp-database_20261101T000000Z.dump.gz-123"`) {
		t.Errorf("no log line names the removed file:\n%s", logs.String())
	}
}

// TestMissingCloudCredentialIsStorageFailure: a store whose cloud credential is absent
// is a storage failure (exit 5), as in backup, status and initrestore; only a URL that
// cannot be used is a configuration error (exit 2).
func TestMissingCloudCredentialIsStorageFailure(t *testing.T) {
	gcs := testenv.StartGCS(t)
	s3 := testenv.StartS3(t)
	tests := map[string]struct {
		url string
		env map[string]string
	}{
		"GCS without Application Default Credentials": {
			url: "gs://some-bucket?endpoint=" + gcs.Endpoint,
			env: map[string]string{"GOOGLE_APPLICATION_CREDENTIALS": filepath.Join(t.TempDir(), "absent.json"), "STORAGE_EMULATOR_HOST": ""},
		},
		"S3 without any AWS credential": {
			url: s3.NewBucket(t),
			env: map[string]string{"AWS_ACCESS_KEY_ID": "", "AWS_SECRET_ACCESS_KEY": "", "AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "absent"),
				"AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "absent"), "AWS_EC2_METADATA_DISABLED": "true"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			dst := newVolume(t)
			_, err := runSync(t, t.Context(), tc.url, dst.url, nil)
			if code := exitcode.Of(err, -1); code != cbsync.ExitStorage {
				t.Fatalf("exit %d (%v), want %d", code, err, cbsync.ExitStorage)
			}
		})
	}
}

package sync_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/go-logr/logr/testr"
	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/cronbackup/sync"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// volume is a cluster volume with backups laid out as cronbackup writes them.
type volume struct {
	url   string
	store storage.Store
}

func newVolume(t *testing.T) *volume {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "backup")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return openVolume(t, "file://"+dir)
}

func openVolume(t *testing.T, url string) *volume {
	t.Helper()
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return &volume{url: url, store: st}
}

// addBackup writes a backup object of n random bytes with its manifest, and promotes
// it to latest as cronbackup does.
func (v *volume) addBackup(t *testing.T, ns string, at time.Time, n int) layout.Manifest {
	t.Helper()
	body := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(at.Unix()), byte(n)})
	_, _ = r.Read(body)
	sum := sha256.Sum256(body)
	m := layout.Manifest{Version: 1, Namespace: ns, Object: layout.BackupKey(ns, at), Size: int64(n),
		SHA256: hex.EncodeToString(sum[:]), Database: "erp", Encoding: "WIN1252", StartedAt: at, FinishedAt: at.Add(time.Minute)}
	mb, _ := m.Marshal()
	v.put(t, m.Object, body)
	v.put(t, layout.ManifestKey(m.Object), mb)
	v.put(t, layout.LatestKey(ns), body)
	v.put(t, layout.LatestManifestKey(ns), mb)
	return m
}

func (v *volume) put(t *testing.T, key string, b []byte) {
	t.Helper()
	if _, err := v.store.Put(context.Background(), key, bytes.NewReader(b), storage.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// contents maps every key to its sha256.
func (v *volume) contents(t *testing.T) map[string]string {
	t.Helper()
	l, err := v.store.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, o := range l {
		rc, _, err := v.store.Open(context.Background(), o.Key)
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, _ = io.Copy(h, rc)
		_ = rc.Close()
		out[o.Key] = hex.EncodeToString(h.Sum(nil))
	}
	return out
}

func runSync(t *testing.T, ctx context.Context, src, dst string, extra map[string]string) (sync.Result, error) {
	t.Helper()
	t.Setenv("SYNC_SOURCE_URL", src)
	t.Setenv("SYNC_TARGET_URL", dst)
	t.Setenv("SYNC_KEEP_DAILY", "0")
	for k, v := range extra {
		t.Setenv(k, v)
	}
	cfg, err := sync.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	return sync.Run(ctx, testr.New(t), cfg)
}

var day0 = time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)

func TestSyncCopiesAndIsIdempotent(t *testing.T) {
	targets := map[string]func(t *testing.T) *volume{
		"a mounted Rubrik volume": newVolume,
		"an S3 bucket":            func(t *testing.T) *volume { return openVolume(t, testenv.StartS3(t).NewBucket(t)) },
	}
	for name, newTarget := range targets {
		t.Run(name, func(t *testing.T) {
			src, dst := newVolume(t), newTarget(t)
			for i := range 3 {
				src.addBackup(t, "cliente-a", day0.AddDate(0, 0, i), 100_000+i)
			}
			src.addBackup(t, "cliente-b", day0, 5000)
			src.put(t, "cliente-a/notes.txt", []byte("not a backup"))
			src.put(t, "lost+found/x.dump.gz", []byte("not a namespace of ours"))

			res, err := runSync(t, t.Context(), src.url, dst.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			want := src.contents(t)
			delete(want, "cliente-a/notes.txt")
			delete(want, "lost+found/x.dump.gz")
			if diff := cmp.Diff(want, dst.contents(t)); diff != "" {
				t.Fatalf("target (-want +got):\n%s", diff)
			}
			if res.Copied != len(want) || res.Skipped != 0 {
				t.Errorf("first run %+v, want %d copied", res, len(want))
			}
			res, err = runSync(t, t.Context(), src.url, dst.url, nil)
			if err != nil || res.Copied != 0 || res.Skipped != len(want) {
				t.Errorf("second run %+v, %v: want everything skipped", res, err)
			}
			// A new backup of the same size replaces latest: it must be copied although
			// its size did not change.
			newest := src.addBackup(t, "cliente-b", day0.AddDate(0, 0, 1), 5000)
			res, err = runSync(t, t.Context(), src.url, dst.url, nil)
			if err != nil || res.Copied != 4 {
				t.Errorf("after a new backup %+v, %v: want its object, manifest, latest and latest manifest copied", res, err)
			}
			if got := dst.contents(t)[layout.LatestKey("cliente-b")]; got != newest.SHA256 {
				t.Errorf("target latest of cliente-b is %s, want %s", got, newest.SHA256)
			}
		})
	}
}

func TestSyncInterruptedThenResumed(t *testing.T) {
	src, dst := newVolume(t), newVolume(t)
	for i := range 4 {
		src.addBackup(t, "cliente-a", day0.AddDate(0, 0, i), 20<<20)
	}
	// Interrupt in the middle of a copy: at the first progress line of a transfer.
	ctx, cancel := context.WithCancel(t.Context())
	t.Setenv("SYNC_SOURCE_URL", src.url)
	t.Setenv("SYNC_TARGET_URL", dst.url)
	t.Setenv("PROGRESS_INTERVAL", "1ms")
	cfg, err := sync.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	log := funcr.New(func(_, args string) {
		if strings.Contains(args, `"copy progress"`) {
			cancel()
		}
	}, funcr.Options{})
	if _, err := sync.Run(ctx, log, cfg); err == nil {
		t.Fatal("the interrupted sync reported success")
	}
	t.Setenv("PROGRESS_INTERVAL", "10s")
	// Whatever is on the target is whole: every object there matches the source.
	srcC := src.contents(t)
	for k, sha := range dst.contents(t) {
		if srcC[k] != sha {
			t.Errorf("interrupted sync left %s with another content", k)
		}
	}
	if left := tempFiles(t, strings.TrimPrefix(dst.url, "file://")); len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if _, err := runSync(t, t.Context(), src.url, dst.url, nil); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(srcC, dst.contents(t)); diff != "" {
		t.Fatalf("after resuming (-want +got):\n%s", diff)
	}
}

func tempFiles(t *testing.T, dir string) []string {
	var out []string
	_ = filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil && strings.HasPrefix(info.Name(), ".smartbackup-tmp-") {
			out = append(out, p)
		}
		return nil
	})
	return out
}

func TestSyncDeletesOnlyWithRetention(t *testing.T) {
	src, dst := newVolume(t), newVolume(t)
	var all []layout.Manifest
	for i := range 5 {
		all = append(all, src.addBackup(t, "cliente-a", day0.AddDate(0, 0, i), 1000+i))
	}
	if _, err := runSync(t, t.Context(), src.url, dst.url, nil); err != nil {
		t.Fatal(err)
	}
	// The source prunes its two oldest: the target keeps them.
	for _, m := range all[:2] {
		_ = src.store.Delete(t.Context(), m.Object)
		_ = src.store.Delete(t.Context(), layout.ManifestKey(m.Object))
	}
	if _, err := runSync(t, t.Context(), src.url, dst.url, nil); err != nil {
		t.Fatal(err)
	}
	if got := dst.contents(t); got[all[0].Object] == "" {
		t.Fatal("the target lost a backup without a retention option")
	}
	res, err := runSync(t, t.Context(), src.url, dst.url, map[string]string{"SYNC_KEEP_DAILY": "3", "BACKUP_TIMEZONE": "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	got := dst.contents(t)
	if res.Pruned != 2 || got[all[0].Object] != "" || got[all[1].Object] != "" || got[all[2].Object] == "" || got[layout.LatestKey("cliente-a")] == "" {
		t.Errorf("with SYNC_KEEP_DAILY=3: pruned %d, target %v", res.Pruned, got)
	}
}

func TestSyncUnreachableTargetFails(t *testing.T) {
	src := newVolume(t)
	src.addBackup(t, "cliente-a", day0, 1000)
	_, err := runSync(t, t.Context(), src.url, "file://"+filepath.Join(t.TempDir(), "rubrik-not-mounted"), nil)
	if err == nil {
		t.Fatal("sync to an unmounted volume succeeded")
	}
}

func TestPlan(t *testing.T) {
	obj := func(k string, n int64) storage.ObjectInfo { return storage.ObjectInfo{Key: k, Size: n} }
	a := layout.BackupKey("ns", day0)
	tests := map[string]struct {
		src, dst []storage.ObjectInfo
		sm, dm   map[string]string
		wantCopy []string
	}{
		"everything missing is copied, objects before manifests": {
			src:      []storage.ObjectInfo{obj(layout.ManifestKey(a), 10), obj(a, 100)},
			sm:       map[string]string{layout.ManifestKey(a): "m"},
			wantCopy: []string{a, layout.ManifestKey(a)},
		},
		"same size and same manifest is skipped": {
			src: []storage.ObjectInfo{obj(a, 100), obj(layout.ManifestKey(a), 10)},
			dst: []storage.ObjectInfo{obj(a, 100), obj(layout.ManifestKey(a), 10)},
			sm:  map[string]string{layout.ManifestKey(a): "m"}, dm: map[string]string{layout.ManifestKey(a): "m"},
		},
		"same size but another manifest is copied": {
			src: []storage.ObjectInfo{obj("ns/database_latest.dump.gz", 100), obj("ns/database_latest.manifest.json", 10)},
			dst: []storage.ObjectInfo{obj("ns/database_latest.dump.gz", 100), obj("ns/database_latest.manifest.json", 10)},
			sm:  map[string]string{"ns/database_latest.manifest.json": "new"}, dm: map[string]string{"ns/database_latest.manifest.json": "old"},
			wantCopy: []string{"ns/database_latest.dump.gz", "ns/database_latest.manifest.json"},
		},
		"a legacy object without manifest goes by size": {
			src: []storage.ObjectInfo{obj("ns/database_latest.dump.gz", 100)}, dst: []storage.ObjectInfo{obj("ns/database_latest.dump.gz", 99)},
			wantCopy: []string{"ns/database_latest.dump.gz"},
		},
		"foreign files are ignored": {
			src: []storage.ObjectInfo{obj("ns/readme.txt", 1), obj("a/b/database_latest.dump.gz", 1), obj("Bad_NS/x.dump.gz", 1)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, it := range sync.Plan(tc.src, tc.dst, tc.sm, tc.dm) {
				if !it.Skip {
					got = append(got, it.Object.Key)
				}
			}
			if diff := cmp.Diff(tc.wantCopy, got); diff != "" {
				t.Errorf("copied (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConfigUsesContractNames(t *testing.T) {
	if unknown := contract.UnknownTags(sync.Config{}); len(unknown) > 0 {
		t.Errorf("cronbackup sync reads variables outside internal/contract: %v", unknown)
	}
}

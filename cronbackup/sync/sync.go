// Package sync is `cronbackup sync`: the 06:00 copy of SmartERP's backups from the
// cluster volume to the Rubrik managed volume (or any storage URL). Every backup object
// and its manifest present under the source and missing or different under the target is
// copied, then read back from the target and its sha256 checked. It is idempotent and
// safe to re-run after an interruption (writes are atomic, so an interrupted copy leaves
// nothing); it deletes on the target only when a retention option asks for it.
package sync

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/kelseyhightower/envconfig"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/progress"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes shared with backup.
const (
	ExitConfig  = 2
	ExitStorage = 5
	ExitVerify  = 6
)

// Config is cronbackup sync's environment.
type Config struct {
	// SourceURL is the cluster volume (or any store) holding the backups.
	SourceURL string `envconfig:"SYNC_SOURCE_URL" required:"true"`
	// TargetURL is the Rubrik managed volume, mounted as a path, or any store.
	TargetURL string `envconfig:"SYNC_TARGET_URL" required:"true"`
	// KeepDaily, when positive, prunes the target's backups beyond that many days
	// (per namespace); zero never deletes on the target.
	KeepDaily int `envconfig:"SYNC_KEEP_DAILY" default:"0"`
	// KeepWeekly and KeepMonthly also keep, when KeepDaily prunes, the newest backup
	// of that many ISO weeks and months.
	KeepWeekly  int `envconfig:"SYNC_KEEP_WEEKLY" default:"0"`
	KeepMonthly int `envconfig:"SYNC_KEEP_MONTHLY" default:"0"`
	// Timezone decides which day a backup belongs to for SYNC_KEEP_DAILY.
	Timezone string `envconfig:"BACKUP_TIMEZONE" default:"America/Sao_Paulo"`
	// ProgressInterval is how often the progress of a large copy is logged.
	ProgressInterval time.Duration `envconfig:"PROGRESS_INTERVAL" default:"10s"`
}

// LoadConfig reads and validates the environment.
func LoadConfig() (Config, error) {
	var c Config
	if err := envconfig.Process("", &c); err != nil {
		return Config{}, fmt.Errorf("reading configuration: %w", err)
	}
	for name, u := range map[string]string{"SYNC_SOURCE_URL": c.SourceURL, "SYNC_TARGET_URL": c.TargetURL} {
		if _, err := storage.ParseURL(u); err != nil {
			return Config{}, fmt.Errorf("invalid configuration: %s: %w", name, err)
		}
	}
	if c.SourceURL == c.TargetURL {
		return Config{}, errors.New("invalid configuration: SYNC_SOURCE_URL and SYNC_TARGET_URL are the same")
	}
	if c.KeepDaily < 0 || c.KeepWeekly < 0 || c.KeepMonthly < 0 {
		return Config{}, errors.New("invalid configuration: SYNC_KEEP_DAILY, SYNC_KEEP_WEEKLY and SYNC_KEEP_MONTHLY must not be negative")
	}
	if _, err := time.LoadLocation(c.Timezone); err != nil {
		return Config{}, fmt.Errorf("invalid configuration: BACKUP_TIMEZONE: %w", err)
	}
	return c, nil
}

// Result counts what a run did.
type Result struct {
	Copied, Skipped, Pruned int
	Bytes                   int64
}

// openStore opens a store; tests wrap it to make a source fail mid-read.
var openStore = storage.Open

// openExitCode: a storage URL that cannot be used is a configuration error; a store
// that cannot be reached or has no credential is a storage failure, as everywhere.
func openExitCode(err error) int {
	if errors.Is(err, storage.ErrInvalidURL) {
		return ExitConfig
	}
	return ExitStorage
}

// Run copies what is missing or different, then applies the target's retention.
func Run(ctx context.Context, log logr.Logger, cfg Config) (Result, error) {
	src, err := openStore(ctx, cfg.SourceURL)
	if err != nil {
		return Result{}, exitcode.Wrap(openExitCode(err), err)
	}
	defer src.Close()
	dst, err := openStore(ctx, cfg.TargetURL)
	if err != nil {
		return Result{}, exitcode.Wrap(openExitCode(err), err)
	}
	defer dst.Close()
	s := &syncer{log: log, src: src, dst: dst, cfg: cfg}

	srcObjs, err := src.List(ctx, "")
	if err != nil {
		return Result{}, exitcode.Wrap(ExitStorage, fmt.Errorf("listing the source: %w", err))
	}
	dstObjs, err := dst.List(ctx, "")
	if err != nil {
		return Result{}, exitcode.Wrap(ExitStorage, fmt.Errorf("listing the target: %w", err))
	}
	srcMan, err := readManifests(ctx, src, srcObjs)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitStorage, fmt.Errorf("on the source: %w", err))
	}
	dstMan, err := readManifests(ctx, dst, dstObjs)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitStorage, fmt.Errorf("on the target: %w", err))
	}
	plan := Plan(srcObjs, dstObjs, srcMan, dstMan)
	var res Result
	var failed []string
	// verified holds the objects copied and read back in this run: a manifest goes to
	// the target only after its object, so a manifest there never describes an object
	// that failed to copy (or an older one).
	verified := map[string]bool{}
	for _, item := range plan {
		if item.Skip {
			res.Skipped++
			continue
		}
		key := item.Object.Key
		if obj := objectOf(key); obj != "" && !verified[obj] {
			log.Info("manifest not copied: its object was not copied and verified in this run", "manifest", key, "object", obj)
			continue
		}
		n, err := s.copyVerified(ctx, item.Object, expected(key, srcMan))
		if err != nil {
			// Go on with the others: one bad object must not keep the rest off Rubrik.
			log.Error(err, "copy failed", "object", key)
			failed = append(failed, key)
			continue
		}
		verified[key] = true
		res.Copied++
		res.Bytes += n
	}
	if removed, err := storage.RemoveStaleTemp(ctx, dst, "", storage.StaleTempAge); err != nil {
		log.Error(err, "could not remove stale temporary files on the target")
	} else {
		for _, f := range removed {
			log.Info("stale temporary file of an interrupted write removed", "file", f, "olderThan", storage.StaleTempAge.String())
		}
	}
	if cfg.KeepDaily > 0 && len(failed) == 0 {
		pruned, err := s.prune(ctx)
		res.Pruned = pruned
		if err != nil {
			return res, exitcode.Wrap(ExitStorage, err)
		}
	}
	if len(failed) > 0 {
		return res, exitcode.Wrapf(ExitStorage, "%d of %d objects failed to copy: %s", len(failed), len(plan), strings.Join(failed, ", "))
	}
	return res, nil
}

// Item is one source object and whether the target already has it.
type Item struct {
	Object storage.ObjectInfo
	Skip   bool
}

// Plan decides what to copy among the objects of the backup layout: an object is
// skipped when the target has it with the same size and, where the source has a manifest
// for it, the same manifest (so a new latest of an equal size is still copied); a
// manifest is skipped when the target's is identical. Objects go before manifests, so a
// manifest on the target always describes an object already there.
func Plan(src, dst []storage.ObjectInfo, srcManifests, dstManifests map[string]string) []Item {
	have := map[string]int64{}
	for _, o := range dst {
		have[o.Key] = o.Size
	}
	var items []Item
	for _, o := range src {
		if !syncable(o.Key) {
			continue
		}
		size, ok := have[o.Key]
		skip := ok && size == o.Size
		if mk := manifestOf(o.Key); mk != "" {
			if sm, has := srcManifests[mk]; has && dstManifests[mk] != sm {
				skip = false
			}
		} else {
			skip = ok && srcManifests[o.Key] == dstManifests[o.Key]
		}
		items = append(items, Item{Object: o, Skip: skip})
	}
	sort.SliceStable(items, func(i, j int) bool {
		mi, mj := manifestOf(items[i].Object.Key) == "", manifestOf(items[j].Object.Key) == ""
		if mi != mj {
			return !mi
		}
		return items[i].Object.Key < items[j].Object.Key
	})
	return items
}

// objectOf is the dump object a manifest key describes, or "" for a dump object.
func objectOf(key string) string {
	ns, name, _ := strings.Cut(key, "/")
	switch {
	case name == layout.LatestManifest:
		return layout.LatestKey(ns)
	case strings.HasSuffix(name, layout.ManifestSuffix):
		return strings.TrimSuffix(key, layout.ManifestSuffix) + layout.DumpSuffix
	}
	return ""
}

// expected is what an immutable backup object must hash to: its own manifest's sha256,
// when the source has a valid one. The latest copy is checked by size only: a
// promotion killed half-way leaves it newer than its manifest, legitimately.
func expected(key string, srcMan map[string]string) string {
	if _, ok := layout.ParseBackupKey(key); !ok {
		return ""
	}
	m, err := layout.ParseManifest([]byte(srcMan[layout.ManifestKey(key)]))
	if err != nil || m.Object != key {
		return ""
	}
	return m.SHA256
}

// manifestOf is the manifest key describing a dump object, or "" for a manifest.
func manifestOf(key string) string {
	ns, name, _ := strings.Cut(key, "/")
	switch {
	case name == layout.LatestObject:
		return layout.LatestManifestKey(ns)
	case strings.HasSuffix(name, layout.DumpSuffix):
		return layout.ManifestKey(key)
	}
	return ""
}

// readManifests returns the content of every manifest in objs.
func readManifests(ctx context.Context, st storage.Store, objs []storage.ObjectInfo) (map[string]string, error) {
	out := map[string]string{}
	for _, o := range objs {
		if !syncable(o.Key) || manifestOf(o.Key) != "" {
			continue
		}
		rc, _, err := st.Open(ctx, o.Key)
		if errors.Is(err, storage.ErrNotFound) {
			continue // pruned meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("reading manifest %q: %w", o.Key, err)
		}
		b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
		_ = rc.Close()
		if err != nil {
			return nil, fmt.Errorf("reading manifest %q: %w", o.Key, err)
		}
		out[o.Key] = string(b)
	}
	return out, nil
}

// syncable: objects of the backup layout only, in a valid namespace.
func syncable(key string) bool {
	ns, name, ok := strings.Cut(key, "/")
	if !ok || layout.ValidNamespace(ns) != nil || strings.Contains(name, "/") {
		return false
	}
	return strings.HasSuffix(name, layout.DumpSuffix) || strings.HasSuffix(name, layout.ManifestSuffix)
}

type syncer struct {
	log      logr.Logger
	src, dst storage.Store
	cfg      Config
}

// copyVerified streams one object to the target, hashing it, then reads the target
// back and compares. The write commits only when the source was read to its end with
// the size the source reported (and, for a backup object, the sha256 of its manifest,
// wantSHA): a failed or short source read aborts the write, so the target's previous
// copy stays whole. A mismatch on reading back deletes the bad copy.
func (s *syncer) copyVerified(ctx context.Context, o storage.ObjectInfo, wantSHA string) (int64, error) {
	rc, info, err := s.src.Open(ctx, o.Key)
	if err != nil {
		return 0, fmt.Errorf("opening %q on the source: %w", o.Key, err)
	}
	defer rc.Close()
	h := sha256.New()
	c := progress.NewCounter()
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go progress.Report(pctx, s.log.WithValues("object", o.Key), "copy progress", c, info.Size, s.cfg.ProgressInterval)
	in := &checkedReader{r: io.TeeReader(io.TeeReader(rc, h), c), h: h, c: c, size: info.Size, sha: wantSHA}
	if _, err := s.dst.Put(ctx, o.Key, in, storage.PutOptions{Metadata: info.Metadata}); err != nil {
		if in.mismatch != nil {
			return 0, exitcode.Wrap(ExitVerify, fmt.Errorf("copying %q: %w", o.Key, err))
		}
		return 0, fmt.Errorf("copying %q: %w", o.Key, err)
	}
	stop()
	want := hex.EncodeToString(h.Sum(nil))
	got, n, err := hashObject(ctx, s.dst, o.Key)
	if err != nil {
		return 0, fmt.Errorf("reading back %q: %w", o.Key, err)
	}
	if got != want || n != info.Size {
		_ = s.dst.Delete(context.WithoutCancel(ctx), o.Key)
		return 0, exitcode.Wrapf(ExitVerify, "target copy of %q has sha256 %s and %d bytes, source %s and %d", o.Key, got, n, want, info.Size)
	}
	s.log.Info("object copied", "object", o.Key, "bytes", n, "sha256", got, "MiBps", fmt.Sprintf("%.1f", c.Rate()))
	return n, nil
}

// checkedReader passes the source through, and at its end turns a clean io.EOF into an
// error when the bytes read differ from the size (or sha256) expected: the store then
// aborts the write instead of committing a short or wrong object.
type checkedReader struct {
	r        io.Reader
	h        hash.Hash
	c        *progress.Counter
	size     int64
	sha      string
	mismatch error
}

func (r *checkedReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != io.EOF {
		return n, err
	}
	if got := r.c.Bytes(); got != r.size {
		r.mismatch = fmt.Errorf("the source ended after %d bytes of %d", got, r.size)
		return n, r.mismatch
	}
	if r.sha != "" {
		if got := hex.EncodeToString(r.h.Sum(nil)); got != r.sha {
			r.mismatch = fmt.Errorf("the source has sha256 %s, its manifest says %s", got, r.sha)
			return n, r.mismatch
		}
	}
	return n, io.EOF
}

func hashObject(ctx context.Context, s storage.Store, key string) (string, int64, error) {
	rc, _, err := s.Open(ctx, key)
	if err != nil {
		return "", 0, err
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, rc)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

func (s *syncer) prune(ctx context.Context) (int, error) {
	loc, _ := time.LoadLocation(s.cfg.Timezone)
	objs, err := s.dst.List(ctx, "")
	if err != nil {
		return 0, fmt.Errorf("listing the target for retention: %w", err)
	}
	var backups []layout.Backup
	for _, o := range objs {
		if b, ok := layout.ParseBackupKey(o.Key); ok {
			backups = append(backups, b)
		}
	}
	_, drop := layout.Retain(backups, layout.Policy{Daily: s.cfg.KeepDaily, Weekly: s.cfg.KeepWeekly, Monthly: s.cfg.KeepMonthly, Location: loc})
	for i, b := range drop {
		for _, key := range []string{b.Key, layout.ManifestKey(b.Key)} {
			if err := s.dst.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return i, fmt.Errorf("pruning %q on the target: %w", key, err)
			}
		}
		s.log.Info("target backup pruned", "object", b.Key)
	}
	return len(drop), nil
}

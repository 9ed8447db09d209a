// Package catalog finds a namespace's backup in a store and downloads it checked
// against its manifest: what initrestore restores and `cronbackup verify` verifies,
// chosen and checked by the one rule (see Find and Download).
package catalog

import (
	"compress/flate"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/go-logr/logr"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/progress"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes the errors of Find and Download carry: the same in every binary.
const (
	// ExitStorage: the store could not be read.
	ExitStorage = 5
	// ExitVerify: an object or manifest is corrupt, inconsistent or of another namespace.
	ExitVerify = 6
)

// ErrNoBackup: the store answered, and there is no backup for the namespace.
var ErrNoBackup = errors.New("no backup found")

type finder struct {
	log   logr.Logger
	store storage.Store
}

// Ref is the object to restore and what it must match.
type Ref struct {
	Key string
	// Manifest is nil for a backup made by the operations page's shell pipeline,
	// which writes no manifest: such a backup cannot be checked against a hash.
	Manifest *layout.Manifest
	Size     int64
}

// Find chooses the object to restore. It reads only immutable objects when it
// can, so a promotion in flight or killed half-way (cronbackup writes the object, its
// manifest, the latest copy, then the latest manifest) never blocks a restore:
//
//  1. the immutable NS/database_<time>.dump.gz that database_latest.manifest.json
//     names, when that object's own manifest agrees with it and the object is there;
//  2. otherwise the newest immutable backup whose own manifest is complete (valid,
//     naming that very object, with the object's size);
//  3. otherwise, when there is no latest manifest at all, database_latest.dump.gz as
//     the operations page's pipeline writes it, without a manifest to check it by.
//
// A latest manifest that names another namespace is refused outright, and a latest
// manifest that nothing consistent backs is ExitVerify, never "no backup": a store
// that once held a verified backup does not turn into an empty database.
func Find(ctx context.Context, log logr.Logger, store storage.Store, ns string) (Ref, error) {
	r := &finder{log: log, store: store}
	latestMan := layout.LatestManifestKey(ns)
	mb, err := r.readSmall(ctx, latestMan)
	hasLatestManifest := err == nil
	var why string
	switch {
	case errors.Is(err, storage.ErrNotFound):
		why = "there is no latest manifest"
	case err != nil:
		return Ref{}, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	default:
		m, perr := layout.ParseManifest(mb)
		if perr == nil && m.Namespace != ns {
			return Ref{}, exitcode.Wrapf(ExitVerify, "manifest %q describes namespace %q: refusing a backup of another namespace", latestMan, m.Namespace)
		}
		if perr != nil {
			why = fmt.Sprintf("the latest manifest is not valid: %v", perr)
			break
		}
		ref, reason, err := r.checkImmutable(ctx, ns, m.Object, &m)
		if err != nil {
			return Ref{}, err
		}
		if reason == "" {
			r.log.Info("restoring the backup the latest manifest names", "object", ref.Key, "bytes", ref.Size,
				"backupTime", ref.Manifest.StartedAt, "sha256", ref.Manifest.SHA256)
			return ref, nil
		}
		why = reason
	}

	ref, skipped, err := r.newestComplete(ctx, ns)
	if err != nil {
		return Ref{}, err
	}
	if ref.Key != "" {
		r.log.Info("restoring the newest immutable backup whose manifest is complete", "object", ref.Key,
			"bytes", ref.Size, "backupTime", ref.Manifest.StartedAt, "sha256", ref.Manifest.SHA256,
			"reason", why, "newerIncompleteBackups", skipped)
		return ref, nil
	}
	if hasLatestManifest {
		return Ref{}, exitcode.Wrapf(ExitVerify, "no consistent backup under %q: %s, and no immutable backup has a complete manifest", ns+"/", why)
	}
	latest := layout.LatestKey(ns)
	info, err := r.store.Stat(ctx, latest)
	if errors.Is(err, storage.ErrNotFound) {
		return Ref{}, fmt.Errorf("%w under %q in %s", ErrNoBackup, ns+"/", r.store)
	}
	if err != nil {
		return Ref{}, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	}
	r.log.Info("latest backup has no manifest (made by the shell pipeline?); its integrity cannot be checked against a hash",
		"object", latest, "bytes", info.Size, "ignoredIncompleteBackups", skipped)
	return Ref{Key: latest, Size: info.Size}, nil
}

// checkImmutable checks that key is a backup of ns whose own manifest is valid, names
// key, agrees with want (when given) and matches the object's size. A non-empty
// reason says what is wrong; err is a store that could not answer.
func (r *finder) checkImmutable(ctx context.Context, ns, key string, want *layout.Manifest) (Ref, string, error) {
	if b, ok := layout.ParseBackupKey(key); !ok || b.Namespace != ns {
		return Ref{}, fmt.Sprintf("%q is not a backup of namespace %q", key, ns), nil
	}
	mkey := layout.ManifestKey(key)
	mb, err := r.readSmall(ctx, mkey)
	if errors.Is(err, storage.ErrNotFound) {
		return Ref{}, fmt.Sprintf("%q has no manifest %q", key, mkey), nil
	}
	if err != nil {
		return Ref{}, "", exitcode.Wrap(ExitStorage, fmt.Errorf("reading %q: %w", mkey, err))
	}
	m, err := layout.ParseManifest(mb)
	switch {
	case err != nil:
		return Ref{}, fmt.Sprintf("manifest %q is not valid: %v", mkey, err), nil
	case m.Object != key || m.Namespace != ns:
		return Ref{}, fmt.Sprintf("manifest %q describes %q", mkey, m.Object), nil
	case want != nil && (want.Object != m.Object || want.SHA256 != m.SHA256 || want.Size != m.Size || want.Database != m.Database):
		return Ref{}, fmt.Sprintf("the latest manifest and %q disagree", mkey), nil
	}
	info, err := r.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return Ref{}, fmt.Sprintf("%q is missing", key), nil
	}
	if err != nil {
		return Ref{}, "", exitcode.Wrap(ExitStorage, fmt.Errorf("reading attributes of %q: %w", key, err))
	}
	if info.Size != m.Size {
		return Ref{}, fmt.Sprintf("%q has %d bytes, its manifest says %d", key, info.Size, m.Size), nil
	}
	return Ref{Key: key, Manifest: &m, Size: m.Size}, "", nil
}

// newestComplete is the newest immutable backup of ns whose manifest is complete, or a
// zero ref; skipped lists the newer backups passed over, each with its reason.
func (r *finder) newestComplete(ctx context.Context, ns string) (Ref, []string, error) {
	objs, err := r.store.List(ctx, ns+"/")
	if err != nil {
		return Ref{}, nil, exitcode.Wrap(ExitStorage, fmt.Errorf("listing the backups of %q: %w", ns, err))
	}
	var backups []layout.Backup
	for _, o := range objs {
		if b, ok := layout.ParseBackupKey(o.Key); ok && b.Namespace == ns {
			backups = append(backups, b)
		}
	}
	sort.Slice(backups, func(i, j int) bool { return backups[i].Time.After(backups[j].Time) })
	var skipped []string
	for _, b := range backups {
		ref, reason, err := r.checkImmutable(ctx, ns, b.Key, nil)
		if err != nil {
			return Ref{}, skipped, err
		}
		if reason == "" {
			return ref, skipped, nil
		}
		skipped = append(skipped, reason)
	}
	return Ref{}, skipped, nil
}

// readSmall reads a small object (a manifest) whole.
func (r *finder) readSmall(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := r.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

// Download streams the object through a hash and gunzip into w, reporting progress,
// then checks size and sha256 against the manifest. Errors of w are returned as they
// are; a corrupt or mismatching object is ExitVerify.
func Download(ctx context.Context, log logr.Logger, store storage.Store, ref Ref, w io.Writer, progressInterval time.Duration) error {
	r := &finder{log: log, store: store}
	rc, info, err := r.store.Open(ctx, ref.Key)
	if err != nil {
		return exitcode.Wrap(ExitStorage, fmt.Errorf("opening %q: %w", ref.Key, err))
	}
	defer rc.Close()
	if ref.Manifest != nil && info.Size != ref.Manifest.Size {
		return exitcode.Wrapf(ExitVerify, "%q changed: %d bytes, its manifest says %d", ref.Key, info.Size, ref.Manifest.Size)
	}
	hash := sha256.New()
	count := progress.NewCounter()
	in := &readErr{r: io.TeeReader(rc, io.MultiWriter(hash, count))}
	pctx, stop := context.WithCancel(ctx)
	defer stop()
	go progress.Report(pctx, r.log, "download progress", count, info.Size, progressInterval)

	gz, err := gzipx.NewReader(in)
	if err != nil {
		return classify(ref, in, fmt.Errorf("%q is not a gzip stream: %w", ref.Key, err))
	}
	out := &writeErr{w: w}
	_, err = io.Copy(out, gz)
	if err != nil && out.err != nil {
		// The consumer (pg_restore) stopped. Garbage from a corrupt object makes it
		// stop before gzip's checksum at the end can tell: read on, so the object is
		// judged by its checksum and hash rather than by pg_restore's complaint.
		if _, derr := io.Copy(io.Discard, gz); derr != nil {
			_ = gz.Close()
			return classify(ref, in, fmt.Errorf("decompressing %q: %w", ref.Key, derr))
		}
		err = nil
	}
	_ = gz.Close()
	if err != nil {
		return classify(ref, in, fmt.Errorf("decompressing %q: %w", ref.Key, err))
	}
	// Bytes after the gzip stream still belong to the object and to its hash.
	if _, err := io.Copy(io.Discard, in); err != nil {
		return classify(ref, in, fmt.Errorf("reading %q: %w", ref.Key, err))
	}
	stop()
	got := hex.EncodeToString(hash.Sum(nil))
	r.log.Info("download complete", progress.Fields(count, info.Size)...)
	if m := ref.Manifest; m != nil {
		if count.Bytes() != m.Size || got != m.SHA256 {
			return exitcode.Wrapf(ExitVerify, "%q has %d bytes with sha256 %s; its manifest says %d bytes with sha256 %s",
				ref.Key, count.Bytes(), got, m.Size, m.SHA256)
		}
		r.log.Info("backup verified against its manifest", "sha256", got)
	}
	return out.err
}

// classify: a read error of the store is a storage failure; anything else while
// decoding (bad gzip, bad checksum, early end) means the object is corrupt.
func classify(ref Ref, in *readErr, err error) error {
	if in.err != nil && !errors.Is(in.err, io.EOF) {
		return exitcode.Wrap(ExitStorage, fmt.Errorf("reading %q: %w", ref.Key, in.err))
	}
	var corrupt flate.CorruptInputError
	if errors.As(err, &corrupt) || errors.Is(err, gzipx.ErrCorrupt) || errors.Is(err, io.ErrUnexpectedEOF) {
		return exitcode.Wrap(ExitVerify, fmt.Errorf("%w (corrupt or truncated object)", err))
	}
	return exitcode.Wrap(ExitVerify, err)
}

type readErr struct {
	r   io.Reader
	err error
}

func (e *readErr) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

type writeErr struct {
	w   io.Writer
	err error
}

func (e *writeErr) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil && e.err == nil {
		e.err = err
	}
	return n, err
}

package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// errNoBackup: the store answered, and there is no backup for the namespace.
var errNoBackup = errors.New("no backup found")

// backupRef is the object to restore and what it must match.
type backupRef struct {
	key string
	// manifest is nil for a backup made by the operations page's shell pipeline,
	// which writes no manifest: such a backup cannot be checked against a hash.
	manifest *layout.Manifest
	size     int64
}

// findBackup chooses the object to restore. It reads only immutable objects when it
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
func (r *run) findBackup(ctx context.Context, ns string) (backupRef, error) {
	latestMan := layout.LatestManifestKey(ns)
	mb, err := r.readSmall(ctx, latestMan)
	hasLatestManifest := err == nil
	var why string
	switch {
	case errors.Is(err, storage.ErrNotFound):
		why = "there is no latest manifest"
	case err != nil:
		return backupRef{}, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	default:
		m, perr := layout.ParseManifest(mb)
		if perr == nil && m.Namespace != ns {
			return backupRef{}, exitcode.Wrapf(ExitVerify, "manifest %q describes namespace %q: refusing a backup of another namespace", latestMan, m.Namespace)
		}
		if perr != nil {
			why = fmt.Sprintf("the latest manifest is not valid: %v", perr)
			break
		}
		ref, reason, err := r.checkImmutable(ctx, ns, m.Object, &m)
		if err != nil {
			return backupRef{}, err
		}
		if reason == "" {
			r.log.Info("restoring the backup the latest manifest names", "object", ref.key, "bytes", ref.size,
				"backupTime", ref.manifest.StartedAt, "sha256", ref.manifest.SHA256)
			return ref, nil
		}
		why = reason
	}

	ref, skipped, err := r.newestComplete(ctx, ns)
	if err != nil {
		return backupRef{}, err
	}
	if ref.key != "" {
		r.log.Info("restoring the newest immutable backup whose manifest is complete", "object", ref.key,
			"bytes", ref.size, "backupTime", ref.manifest.StartedAt, "sha256", ref.manifest.SHA256,
			"reason", why, "newerIncompleteBackups", skipped)
		return ref, nil
	}
	if hasLatestManifest {
		return backupRef{}, exitcode.Wrapf(ExitVerify, "no consistent backup under %q: %s, and no immutable backup has a complete manifest", ns+"/", why)
	}
	latest := layout.LatestKey(ns)
	info, err := r.store.Stat(ctx, latest)
	if errors.Is(err, storage.ErrNotFound) {
		return backupRef{}, fmt.Errorf("%w under %q in %s", errNoBackup, ns+"/", r.store)
	}
	if err != nil {
		return backupRef{}, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	}
	r.log.Info("latest backup has no manifest (made by the shell pipeline?); its integrity cannot be checked against a hash",
		"object", latest, "bytes", info.Size, "ignoredIncompleteBackups", skipped)
	return backupRef{key: latest, size: info.Size}, nil
}

// checkImmutable checks that key is a backup of ns whose own manifest is valid, names
// key, agrees with want (when given) and matches the object's size. A non-empty
// reason says what is wrong; err is a store that could not answer.
func (r *run) checkImmutable(ctx context.Context, ns, key string, want *layout.Manifest) (backupRef, string, error) {
	if b, ok := layout.ParseBackupKey(key); !ok || b.Namespace != ns {
		return backupRef{}, fmt.Sprintf("%q is not a backup of namespace %q", key, ns), nil
	}
	mkey := layout.ManifestKey(key)
	mb, err := r.readSmall(ctx, mkey)
	if errors.Is(err, storage.ErrNotFound) {
		return backupRef{}, fmt.Sprintf("%q has no manifest %q", key, mkey), nil
	}
	if err != nil {
		return backupRef{}, "", exitcode.Wrap(ExitStorage, fmt.Errorf("reading %q: %w", mkey, err))
	}
	m, err := layout.ParseManifest(mb)
	switch {
	case err != nil:
		return backupRef{}, fmt.Sprintf("manifest %q is not valid: %v", mkey, err), nil
	case m.Object != key || m.Namespace != ns:
		return backupRef{}, fmt.Sprintf("manifest %q describes %q", mkey, m.Object), nil
	case want != nil && (want.Object != m.Object || want.SHA256 != m.SHA256 || want.Size != m.Size || want.Database != m.Database):
		return backupRef{}, fmt.Sprintf("the latest manifest and %q disagree", mkey), nil
	}
	info, err := r.store.Stat(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		return backupRef{}, fmt.Sprintf("%q is missing", key), nil
	}
	if err != nil {
		return backupRef{}, "", exitcode.Wrap(ExitStorage, fmt.Errorf("reading attributes of %q: %w", key, err))
	}
	if info.Size != m.Size {
		return backupRef{}, fmt.Sprintf("%q has %d bytes, its manifest says %d", key, info.Size, m.Size), nil
	}
	return backupRef{key: key, manifest: &m, size: m.Size}, "", nil
}

// newestComplete is the newest immutable backup of ns whose manifest is complete, or a
// zero ref; skipped lists the newer backups passed over, each with its reason.
func (r *run) newestComplete(ctx context.Context, ns string) (backupRef, []string, error) {
	objs, err := r.store.List(ctx, ns+"/")
	if err != nil {
		return backupRef{}, nil, exitcode.Wrap(ExitStorage, fmt.Errorf("listing the backups of %q: %w", ns, err))
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
			return backupRef{}, skipped, err
		}
		if reason == "" {
			return ref, skipped, nil
		}
		skipped = append(skipped, reason)
	}
	return backupRef{}, skipped, nil
}

// readSmall reads a small object (a manifest) whole.
func (r *run) readSmall(ctx context.Context, key string) ([]byte, error) {
	rc, _, err := r.store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(io.LimitReader(rc, 1<<20))
}

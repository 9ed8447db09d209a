package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// retryDelay is the first pause before looking again at a latest backup that
// disagrees with its manifest; it grows with each attempt.
var retryDelay = 2 * time.Second

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

// findBackup locates NS/database_latest.dump.gz and its manifest. A latest object whose
// size differs from the latest manifest is a promotion in flight (cronbackup copies the
// object, then writes the manifest): it is retried a few times before it is reported.
func (r *run) findBackup(ctx context.Context, ns string) (backupRef, error) {
	const attempts = 4
	var lastErr error
	for i := range attempts {
		if i > 0 {
			select {
			case <-ctx.Done():
				return backupRef{}, exitcode.Wrap(ExitStorage, ctx.Err())
			case <-time.After(time.Duration(i) * retryDelay):
			}
		}
		ref, retry, err := r.findOnce(ctx, ns)
		if err == nil || !retry {
			return ref, err
		}
		lastErr = err
		r.log.Info("latest backup and its manifest disagree; retrying", "attempt", i+1, "error", err.Error())
	}
	return backupRef{}, lastErr
}

func (r *run) findOnce(ctx context.Context, ns string) (backupRef, bool, error) {
	latest := layout.LatestKey(ns)
	mb, err := r.readSmall(ctx, layout.LatestManifestKey(ns))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		info, err := r.store.Stat(ctx, latest)
		if errors.Is(err, storage.ErrNotFound) {
			return backupRef{}, false, fmt.Errorf("%w under %q in %s", errNoBackup, ns+"/", r.store)
		}
		if err != nil {
			return backupRef{}, false, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
		}
		r.log.Info("latest backup has no manifest (made by the shell pipeline?); its integrity cannot be checked against a hash",
			"object", latest, "bytes", info.Size)
		return backupRef{key: latest, size: info.Size}, false, nil
	case err != nil:
		return backupRef{}, false, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	}
	m, err := layout.ParseManifest(mb)
	if err != nil {
		return backupRef{}, false, exitcode.Wrap(ExitVerify, fmt.Errorf("reading %q: %w", layout.LatestManifestKey(ns), err))
	}
	if m.Namespace != ns {
		return backupRef{}, false, exitcode.Wrapf(ExitVerify, "manifest under %q describes namespace %q: refusing a backup of another namespace", ns, m.Namespace)
	}
	info, err := r.store.Stat(ctx, latest)
	if errors.Is(err, storage.ErrNotFound) {
		return backupRef{}, true, exitcode.Wrapf(ExitVerify, "latest manifest exists but %q does not", latest)
	}
	if err != nil {
		return backupRef{}, false, exitcode.Wrap(ExitStorage, fmt.Errorf("finding the latest backup: %w", err))
	}
	if info.Size != m.Size {
		return backupRef{}, true, exitcode.Wrapf(ExitVerify, "%q has %d bytes, its manifest says %d", latest, info.Size, m.Size)
	}
	return backupRef{key: latest, manifest: &m, size: m.Size}, false, nil
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

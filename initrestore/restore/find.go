package restore

import (
	"context"
	"io"

	"github.com/smartbackup/smartbackup/internal/catalog"
	"github.com/smartbackup/smartbackup/internal/layout"
)

// errNoBackup: the store answered, and there is no backup for the namespace.
var errNoBackup = catalog.ErrNoBackup

// initrestore's codes are the ones catalog's errors carry (a compile error otherwise).
const _ = uint(ExitStorage-catalog.ExitStorage) + uint(catalog.ExitStorage-ExitStorage) +
	uint(ExitVerify-catalog.ExitVerify) + uint(catalog.ExitVerify-ExitVerify)

// backupRef is the object to restore and what it must match.
type backupRef struct {
	key string
	// manifest is nil for a backup made by the operations page's shell pipeline,
	// which writes no manifest: such a backup cannot be checked against a hash.
	manifest *layout.Manifest
	size     int64
}

// findBackup chooses the object to restore by catalog.Find's rule, which
// `cronbackup verify` shares: the immutable object the latest manifest names, else the
// newest immutable backup with a complete manifest, else the page's
// database_latest.dump.gz when there is no latest manifest at all.
func (r *run) findBackup(ctx context.Context, ns string) (backupRef, error) {
	ref, err := catalog.Find(ctx, r.log, r.store, ns)
	return backupRef{key: ref.Key, manifest: ref.Manifest, size: ref.Size}, err
}

// download streams the object through a hash and gunzip into w and checks it against
// its manifest (catalog.Download).
func (r *run) download(ctx context.Context, ref backupRef, w io.Writer) error {
	return catalog.Download(ctx, r.log, r.store, catalog.Ref{Key: ref.key, Manifest: ref.manifest, Size: ref.size}, w, r.cfg.ProgressInterval)
}

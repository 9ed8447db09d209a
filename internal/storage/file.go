package storage

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// fileStore keeps objects as files under a directory: the cluster volume of SmartERP,
// or a mounted Rubrik managed volume. Writes go to a hidden temporary file in the target
// directory, are fsynced and renamed into place, so a reader sees all or nothing.
// Metadata lives in user extended attributes.
type fileStore struct {
	loc  Location
	root string
	// marked: every key's first segment is a namespace whose directory must hold the
	// marker naming it (option namespace_marker=true; see checkNamespace).
	marked bool
}

const xattrPrefix = "user.smartbackup."

func newFile(loc Location) (*fileStore, error) {
	marked, _ := strconv.ParseBool(loc.Query.Get("namespace_marker")) // validated by ParseURL
	return &fileStore{loc: loc, root: loc.Prefix, marked: marked}, nil
}

func (s *fileStore) String() string { return s.loc.String() }
func (s *fileStore) Close() error   { return nil }

// checkRoot tells a missing volume (the store is unavailable) from a missing object.
func (s *fileStore) checkRoot() error {
	fi, err := os.Stat(s.root)
	if err != nil {
		return fmt.Errorf("checking volume %q: %w", s.root, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("checking volume %q: not a directory", s.root)
	}
	return nil
}

func (s *fileStore) path(key string) (string, error) {
	if err := ValidateKey(key); err != nil {
		return "", err
	}
	if err := s.checkNamespace(key); err != nil {
		return "", err
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// NamespaceMarker is the file that names the namespace a directory of the SmartERP
// volume belongs to. `cronbackup provision` writes it when the directory is made.
const NamespaceMarker = ".smartbackup-namespace"

// ErrNotProvisioned reports a namespace directory without its marker, or with another
// namespace's: a missing or mis-bound volume (the kubelet creates a missing subPath, and
// a hostPath DirectoryOrCreate, empty), which must read as unreachable, never as "no
// backup". It is not ErrNotFound.
var ErrNotProvisioned = errors.New("namespace directory not provisioned")

// checkNamespace, on a marked store, checks that the directory of the key's (or
// prefix's) first segment holds the marker naming that namespace, before anything is
// read or written there.
func (s *fileStore) checkNamespace(key string) error {
	if !s.marked {
		return nil
	}
	ns, _, _ := strings.Cut(key, "/")
	if ns == "" {
		return fmt.Errorf("%w: %q names no namespace directory", ErrNotProvisioned, key)
	}
	if err := s.checkRoot(); err != nil {
		return err
	}
	b, err := os.ReadFile(filepath.Join(s.root, ns, NamespaceMarker))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s has no %s (a missing or mis-bound volume, or a directory no provisioning made)",
			ErrNotProvisioned, filepath.Join(s.root, ns), NamespaceMarker)
	case err != nil:
		return fmt.Errorf("reading the namespace marker of %q: %w", ns, err)
	case strings.TrimSpace(string(b)) != ns:
		return fmt.Errorf("%w: %s is marked for another namespace (a mis-bound volume)", ErrNotProvisioned, filepath.Join(s.root, ns))
	}
	return nil
}

// MarkNamespace provisions the directory of namespace ns under root: it creates it
// (mode 0750) if needed and writes the marker naming ns, atomically. It is idempotent,
// and refuses a directory already marked for another namespace.
func MarkNamespace(root, ns string) error {
	if err := ValidateKey(ns); err != nil || strings.Contains(ns, "/") || strings.HasPrefix(ns, ".") {
		return fmt.Errorf("provisioning %q: not a namespace name", ns)
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		return fmt.Errorf("provisioning %q: volume %q is not a directory: %w", ns, root, err)
	}
	dir := filepath.Join(root, ns)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return fmt.Errorf("provisioning %q: %w", ns, err)
	}
	marker := filepath.Join(dir, NamespaceMarker)
	switch b, err := os.ReadFile(marker); {
	case err == nil && strings.TrimSpace(string(b)) == ns:
		return nil
	case err == nil:
		return fmt.Errorf("provisioning %q: %s is marked for another namespace", ns, dir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("provisioning %q: reading its marker: %w", ns, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+NamespaceMarker+"-*")
	if err != nil {
		return fmt.Errorf("provisioning %q: %w", ns, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.WriteString(ns + "\n"); err != nil {
		_ = f.Close()
		return fmt.Errorf("provisioning %q: writing its marker: %w", ns, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("provisioning %q: writing its marker: %w", ns, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("provisioning %q: writing its marker: %w", ns, err)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return fmt.Errorf("provisioning %q: %w", ns, err)
	}
	if err := os.Rename(f.Name(), marker); err != nil {
		return fmt.Errorf("provisioning %q: committing its marker: %w", ns, err)
	}
	syncDir(dir)
	return nil
}

// notFound maps a missing file to ErrNotFound, but only when the volume itself is there.
func (s *fileStore) notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		if rerr := s.checkRoot(); rerr != nil {
			return rerr
		}
		return fmt.Errorf("%q: %w", key, ErrNotFound)
	}
	return err
}

func (s *fileStore) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return ObjectInfo{}, err
	}
	if err := validMetadata(opts.Metadata); err != nil {
		return ObjectInfo{}, err
	}
	if err := s.checkRoot(); err != nil {
		return ObjectInfo{}, err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return ObjectInfo{}, fmt.Errorf("creating directory for %q: %w", key, err)
	}
	f, err := os.CreateTemp(dir, tempPrefix+filepath.Base(p)+"-*")
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("creating temporary file for %q: %w", key, err)
	}
	tmp := f.Name()
	committed := false
	defer func() {
		if !committed {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, ctxReader{ctx, r}); err != nil {
		return ObjectInfo{}, fmt.Errorf("writing %q: %w", key, err)
	}
	for k, v := range opts.Metadata {
		if err := unix.Fsetxattr(int(f.Fd()), xattrPrefix+k, []byte(v), 0); err != nil {
			return ObjectInfo{}, fmt.Errorf("setting metadata %q on %q: %w", k, key, err)
		}
	}
	if err := f.Sync(); err != nil {
		return ObjectInfo{}, fmt.Errorf("syncing %q: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return ObjectInfo{}, fmt.Errorf("closing %q: %w", key, err)
	}
	// The last chance to abort: once renamed, the object is committed.
	if err := ctx.Err(); err != nil {
		return ObjectInfo{}, fmt.Errorf("writing %q: %w", key, err)
	}
	if err := os.Rename(tmp, p); err != nil {
		return ObjectInfo{}, fmt.Errorf("committing %q: %w", key, err)
	}
	committed = true
	syncDir(dir)
	return s.Stat(ctx, key)
}

// syncDir makes a rename durable; failures are not fatal (some filesystems refuse it).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
}

func (s *fileStore) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("opening %q: %w", key, s.notFound(key, err))
	}
	info, err := s.info(key, f)
	if err != nil {
		_ = f.Close()
		return nil, ObjectInfo{}, err
	}
	return f, info, nil
}

func (s *fileStore) info(key string, f *os.File) (ObjectInfo, error) {
	fi, err := f.Stat()
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("reading attributes of %q: %w", key, err)
	}
	if fi.IsDir() {
		return ObjectInfo{}, fmt.Errorf("%q is a directory: %w", key, ErrNotFound)
	}
	md, err := readXattrs(f)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("reading metadata of %q: %w", key, err)
	}
	return ObjectInfo{Key: key, Size: fi.Size(), Modified: fi.ModTime().UTC(), Metadata: md}, nil
}

func readXattrs(f *os.File) (map[string]string, error) {
	fd := int(f.Fd())
	buf := make([]byte, 4096)
	n, err := unix.Flistxattr(fd, buf)
	if errors.Is(err, unix.ENOTSUP) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var md map[string]string
	for _, name := range strings.Split(string(buf[:n]), "\x00") {
		k, ok := strings.CutPrefix(name, xattrPrefix)
		if !ok {
			continue
		}
		v := make([]byte, 1024)
		m, err := unix.Fgetxattr(fd, name, v)
		if err != nil {
			return nil, err
		}
		if md == nil {
			md = map[string]string{}
		}
		md[k] = string(v[:m])
	}
	return md, nil
}

func (s *fileStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	rc, info, err := s.Open(ctx, key)
	if err != nil {
		return ObjectInfo{}, err
	}
	_ = rc.Close()
	return info, nil
}

func (s *fileStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	if err := s.checkRoot(); err != nil {
		return nil, err
	}
	if err := s.checkNamespace(prefix); err != nil {
		return nil, err
	}
	// Walk only the deepest directory the prefix names.
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var out []ObjectInfo
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) || d.Name() == NamespaceMarker || !d.Type().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		f, err := os.Open(p)
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted while listing
		}
		if err != nil {
			return err
		}
		info, err := s.info(key, f)
		_ = f.Close()
		if err != nil {
			return err
		}
		out = append(out, info)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing %q: %w", prefix, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *fileStore) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return fmt.Errorf("deleting %q: %w", key, s.notFound(key, err))
	}
	syncDir(filepath.Dir(p))
	return nil
}

// Copy hard-links src to a temporary name and renames it over dst: objects are never
// modified in place, so sharing the inode is safe and costs no I/O. Across filesystems
// it falls back to a streamed copy.
func (s *fileStore) Copy(ctx context.Context, src, dst string) (ObjectInfo, error) {
	ps, err := s.path(src)
	if err != nil {
		return ObjectInfo{}, err
	}
	pd, err := s.path(dst)
	if err != nil {
		return ObjectInfo{}, err
	}
	if _, err := s.Stat(ctx, src); err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %q: %w", src, err)
	}
	if err := os.MkdirAll(filepath.Dir(pd), 0o750); err != nil {
		return ObjectInfo{}, fmt.Errorf("creating directory for %q: %w", dst, err)
	}
	tmp := filepath.Join(filepath.Dir(pd), tempPrefix+filepath.Base(pd)+"-"+randomSuffix())
	if err := os.Link(ps, tmp); err == nil {
		err = os.Rename(tmp, pd)
		// rename(2) does nothing when both names already link the same inode.
		_ = os.Remove(tmp)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("committing copy %q: %w", dst, err)
		}
		syncDir(filepath.Dir(pd))
		return s.Stat(ctx, dst)
	}
	rc, info, err := s.Open(ctx, src)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %q: %w", src, err)
	}
	defer rc.Close()
	return s.Put(ctx, dst, rc, PutOptions{Metadata: info.Metadata})
}

func randomSuffix() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// ctxReader stops a copy as soon as its context is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// StaleTempAge is the age past which a temporary file of the file store is taken for
// the leftover of a write that was killed before its rename: a live write touches its
// file continuously, and no backup or copy runs for a day.
const StaleTempAge = 24 * time.Hour

// RemoveStaleTemp deletes the temporary files older than age that killed writes left
// under prefix (a key prefix such as "NS/", or "" for the whole store) and returns
// their paths relative to the store. Object stores keep no such files (an aborted
// upload leaves no object), so it does nothing for them.
func RemoveStaleTemp(ctx context.Context, s Store, prefix string, age time.Duration) ([]string, error) {
	fst, ok := s.(*fileStore)
	if !ok {
		return nil, nil
	}
	return fst.removeStaleTemp(ctx, prefix, time.Now().Add(-age))
}

func (s *fileStore) removeStaleTemp(ctx context.Context, prefix string, before time.Time) ([]string, error) {
	if err := s.checkRoot(); err != nil {
		return nil, err
	}
	start := s.root
	if i := strings.LastIndex(prefix, "/"); i > 0 {
		start = filepath.Join(s.root, filepath.FromSlash(prefix[:i]))
	}
	var removed []string
	err := filepath.WalkDir(start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // gone meanwhile, or a prefix with nothing under it
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if !strings.HasPrefix(d.Name(), tempPrefix) || !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !fi.ModTime().Before(before) {
			return nil
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		rel, err := filepath.Rel(s.root, p)
		if err != nil {
			return err
		}
		removed = append(removed, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		return removed, fmt.Errorf("removing stale temporary files under %q: %w", prefix, err)
	}
	return removed, nil
}

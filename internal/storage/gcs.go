package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"

	"cloud.google.com/go/storage"
	"google.golang.org/api/iterator"
	"google.golang.org/api/option"
)

// gcsStore writes through resumable uploads: ChunkSize bounds the memory of a write and
// lets a failed chunk be retried; the object exists only once the upload is finalised,
// and cancelling the upload's context abandons it.
type gcsStore struct {
	loc       Location
	client    *storage.Client
	bucket    *storage.BucketHandle
	chunkSize int
}

const defaultGCSChunkMiB = 16

func newGCS(ctx context.Context, loc Location) (*gcsStore, error) {
	var opts []option.ClientOption
	if ep := loc.Query.Get("endpoint"); ep != "" {
		u, _ := url.Parse(ep) // validated by ParseURL
		if u.Path == "" || u.Path == "/" {
			u.Path = "/storage/v1/"
		}
		opts = append(opts, option.WithEndpoint(u.String()))
	}
	if boolOption(loc.Query, "anonymous", false) {
		opts = append(opts, option.WithoutAuthentication())
	}
	client, err := storage.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("creating GCS client: %w", err)
	}
	return &gcsStore{
		loc:       loc,
		client:    client,
		bucket:    client.Bucket(loc.Bucket),
		chunkSize: intOption(loc.Query, "chunk_size_mib", defaultGCSChunkMiB) << 20,
	}, nil
}

func (s *gcsStore) String() string { return s.loc.String() }
func (s *gcsStore) Close() error   { return s.client.Close() }

// mapErr turns "no such object" into ErrNotFound, after confirming with a listing (which
// object-level roles allow) that the bucket itself answers: a missing or misnamed bucket
// must never read as "no backup".
func (s *gcsStore) mapErr(ctx context.Context, key string, err error) error {
	if !errors.Is(err, storage.ErrObjectNotExist) {
		return err
	}
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: s.loc.join(key)})
	it.PageInfo().MaxSize = 1
	if _, lerr := it.Next(); lerr != nil && !errors.Is(lerr, iterator.Done) {
		return fmt.Errorf("confirming %q is missing: %w", key, lerr)
	}
	return fmt.Errorf("%q: %w", key, ErrNotFound)
}

func (s *gcsStore) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := validMetadata(opts.Metadata); err != nil {
		return ObjectInfo{}, err
	}
	// The writer abandons the upload only when its context ends, so every failure
	// path cancels it.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	w := s.bucket.Object(s.loc.join(key)).NewWriter(wctx)
	w.ChunkSize = s.chunkSize
	w.ContentType = opts.ContentType
	w.Metadata = opts.Metadata
	if _, err := io.Copy(w, r); err != nil {
		cancel()
		_ = w.Close()
		return ObjectInfo{}, fmt.Errorf("uploading %q: %w", key, s.mapErr(ctx, key, err))
	}
	if err := w.Close(); err != nil {
		return ObjectInfo{}, fmt.Errorf("finalising %q: %w", key, s.mapErr(ctx, key, err))
	}
	return s.info(w.Attrs()), nil
}

func (s *gcsStore) info(a *storage.ObjectAttrs) ObjectInfo {
	return ObjectInfo{Key: s.loc.trim(a.Name), Size: a.Size, Modified: a.Updated.UTC(), Metadata: a.Metadata}
}

func (s *gcsStore) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	// Read the attributes first: they carry the generation, and reading that exact
	// generation makes the stream consistent even if the object is replaced meanwhile.
	obj := s.bucket.Object(s.loc.join(key))
	a, err := obj.Attrs(ctx)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("opening %q: %w", key, s.mapErr(ctx, key, err))
	}
	r, err := obj.Generation(a.Generation).ReadCompressed(true).NewReader(ctx)
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("opening %q: %w", key, s.mapErr(ctx, key, err))
	}
	return r, s.info(a), nil
}

func (s *gcsStore) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	a, err := s.bucket.Object(s.loc.join(key)).Attrs(ctx)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("reading attributes of %q: %w", key, s.mapErr(ctx, key, err))
	}
	return s.info(a), nil
}

func (s *gcsStore) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	it := s.bucket.Objects(ctx, &storage.Query{Prefix: s.loc.join(prefix)})
	var out []ObjectInfo
	for {
		a, err := it.Next()
		if errors.Is(err, iterator.Done) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, err)
		}
		if s.loc.Prefix != "" && !strings.HasPrefix(a.Name, s.loc.Prefix+"/") {
			continue
		}
		out = append(out, s.info(a))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *gcsStore) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := s.bucket.Object(s.loc.join(key)).Delete(ctx); err != nil {
		return fmt.Errorf("deleting %q: %w", key, s.mapErr(ctx, key, err))
	}
	return nil
}

// Copy uses the rewrite API, which the client repeats until large objects are done.
func (s *gcsStore) Copy(ctx context.Context, src, dst string) (ObjectInfo, error) {
	if err := ValidateKey(src); err != nil {
		return ObjectInfo{}, err
	}
	if err := ValidateKey(dst); err != nil {
		return ObjectInfo{}, err
	}
	a, err := s.bucket.Object(s.loc.join(dst)).CopierFrom(s.bucket.Object(s.loc.join(src))).Run(ctx)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %q to %q: %w", src, dst, s.mapErr(ctx, src, err))
	}
	return s.info(a), nil
}

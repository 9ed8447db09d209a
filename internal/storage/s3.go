package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Store writes through multipart uploads of unknown length. The part size bounds both
// the memory of a write ((concurrency+1) parts are buffered) and its largest object
// (10,000 parts): the default 16 MiB allows 156 GiB. One part uploads while the next
// fills (concurrency 1): a backup's compressed stream (10 MB/s on 2 cores) needs no more,
// and each further part in flight is 16 MiB more of the backup's resident memory (with
// 2, the backup peaked at 145 MiB beside the gzip layer's 20 MiB of C buffers). S3 shows a multipart object only
// when the upload completes; any failure, a cancelled context included, aborts it.
type s3Store struct {
	loc         Location
	client      *s3.Client
	partSize    int64
	concurrency int
	// copyPartSize is the largest object CopyObject copies in one request (S3 allows
	// 5 GiB) and the part size of multipart copies above it.
	copyPartSize int64
	// spare keeps up to concurrency+1 part buffers from one upload to the next: a
	// backup writes its dump and then a few small manifests, and fresh buffers for each
	// (32 MiB per upload) were garbage the heap grew by up to the soft memory limit.
	// (Not a sync.Pool: its per-processor slots hide a buffer from the next upload.)
	mu    sync.Mutex
	spare [][]byte
}

const (
	defaultS3PartMiB     = 16
	defaultS3Concurrency = 1
	maxSingleCopy        = 5 << 30
	s3MaxParts           = 10000
)

func newS3(ctx context.Context, loc Location) (*s3Store, error) {
	var cfgOpts []func(*config.LoadOptions) error
	if r := loc.Query.Get("region"); r != "" {
		cfgOpts = append(cfgOpts, config.WithRegion(r))
	}
	cfg, err := config.LoadDefaultConfig(ctx, cfgOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	endpoint := loc.Query.Get("endpoint")
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = boolOption(loc.Query, "path_style", endpoint != "")
		// The SDK would print a plain-text warning for every multipart object read;
		// our logs are JSON, and the object's sha256 is checked against its manifest.
		o.DisableLogOutputChecksumValidationSkipped = true
	})
	partSize := int64(intOption(loc.Query, "part_size_mib", defaultS3PartMiB)) << 20
	if partSize < 5<<20 {
		return nil, fmt.Errorf("%w: part_size_mib must be at least 5", ErrInvalidURL)
	}
	return &s3Store{
		loc:          loc,
		client:       client,
		partSize:     partSize,
		concurrency:  intOption(loc.Query, "concurrency", defaultS3Concurrency),
		copyPartSize: maxSingleCopy,
	}, nil
}

// part is a buffer of partSize, a spare one when there is one.
func (s *s3Store) part() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := len(s.spare); n > 0 {
		b := s.spare[n-1]
		s.spare = s.spare[:n-1]
		return b
	}
	return make([]byte, s.partSize)
}

// release keeps b for the next upload, unless as many as one upload uses are kept.
func (s *s3Store) release(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.spare) < s.concurrency+1 {
		s.spare = append(s.spare, b[:cap(b)])
	}
}

func (s *s3Store) String() string { return s.loc.String() }
func (s *s3Store) Close() error   { return nil }

// mapErr turns "no such key" into ErrNotFound. S3 answers a HEAD with a bare 404 both
// for a missing key and for a missing bucket, so before saying ErrNotFound it confirms
// the bucket answers a listing: a misnamed bucket must never read as "no backup".
func (s *s3Store) mapErr(ctx context.Context, key string, err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	if !errors.As(err, &nsk) && !errors.As(err, &nf) {
		return err
	}
	_, lerr := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.Bucket), Prefix: aws.String(s.loc.join(key)), MaxKeys: aws.Int32(1),
	})
	if lerr != nil {
		return fmt.Errorf("confirming %q is missing: %w", key, lerr)
	}
	return fmt.Errorf("%q: %w", key, ErrNotFound)
}

func (s *s3Store) Put(ctx context.Context, key string, r io.Reader, opts PutOptions) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	if err := validMetadata(opts.Metadata); err != nil {
		return ObjectInfo{}, err
	}
	u := &s3Upload{s: s, key: s.loc.join(key), opts: opts}
	if err := u.run(ctx, ctxReader{ctx, r}); err != nil {
		return ObjectInfo{}, fmt.Errorf("uploading %q: %w", key, err)
	}
	return s.Stat(ctx, key)
}

func (s *s3Store) Open(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return nil, ObjectInfo{}, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.join(key))})
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("opening %q: %w", key, s.mapErr(ctx, key, err))
	}
	return out.Body, ObjectInfo{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Modified: aws.ToTime(out.LastModified).UTC(),
		Metadata: out.Metadata,
	}, nil
}

func (s *s3Store) Stat(ctx context.Context, key string) (ObjectInfo, error) {
	if err := ValidateKey(key); err != nil {
		return ObjectInfo{}, err
	}
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.join(key))})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("reading attributes of %q: %w", key, s.mapErr(ctx, key, err))
	}
	return ObjectInfo{
		Key:      key,
		Size:     aws.ToInt64(out.ContentLength),
		Modified: aws.ToTime(out.LastModified).UTC(),
		Metadata: out.Metadata,
	}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]ObjectInfo, error) {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{
		Bucket: aws.String(s.loc.Bucket),
		Prefix: aws.String(s.loc.join(prefix)),
	})
	var out []ObjectInfo
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing %q: %w", prefix, err)
		}
		for _, o := range page.Contents {
			name := aws.ToString(o.Key)
			if s.loc.Prefix != "" && !strings.HasPrefix(name, s.loc.Prefix+"/") {
				continue
			}
			out = append(out, ObjectInfo{Key: s.loc.trim(name), Size: aws.ToInt64(o.Size), Modified: aws.ToTime(o.LastModified).UTC()})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

// Delete reports ErrNotFound for a missing key, which S3's DeleteObject does not.
func (s *s3Store) Delete(ctx context.Context, key string) error {
	if _, err := s.Stat(ctx, key); err != nil {
		return fmt.Errorf("deleting %q: %w", key, err)
	}
	_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.loc.Bucket), Key: aws.String(s.loc.join(key))})
	if err != nil {
		return fmt.Errorf("deleting %q: %w", key, s.mapErr(ctx, key, err))
	}
	return nil
}

// Copy is server-side: CopyObject up to 5 GiB, a multipart copy (UploadPartCopy)
// above, completed or aborted as a whole.
func (s *s3Store) Copy(ctx context.Context, src, dst string) (ObjectInfo, error) {
	if err := ValidateKey(dst); err != nil {
		return ObjectInfo{}, err
	}
	info, err := s.Stat(ctx, src)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %q: %w", src, err)
	}
	source := url.PathEscape(s.loc.Bucket) + "/" + escapeKey(s.loc.join(src))
	if info.Size <= s.copyPartSize {
		_, err = s.client.CopyObject(ctx, &s3.CopyObjectInput{
			Bucket:     aws.String(s.loc.Bucket),
			Key:        aws.String(s.loc.join(dst)),
			CopySource: aws.String(source),
		})
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("copying %q to %q: %w", src, dst, s.mapErr(ctx, src, err))
		}
		return s.Stat(ctx, dst)
	}
	if err := s.multipartCopy(ctx, source, info, dst); err != nil {
		return ObjectInfo{}, fmt.Errorf("copying %q to %q: %w", src, dst, err)
	}
	return s.Stat(ctx, dst)
}

func (s *s3Store) multipartCopy(ctx context.Context, source string, info ObjectInfo, dst string) error {
	create, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:   aws.String(s.loc.Bucket),
		Key:      aws.String(s.loc.join(dst)),
		Metadata: info.Metadata,
	})
	if err != nil {
		return fmt.Errorf("starting multipart copy: %w", err)
	}
	abort := (&s3Upload{s: s, key: s.loc.join(dst), uploadID: create.UploadId}).abort
	var parts []types.CompletedPart
	for off, n := int64(0), int32(1); off < info.Size; off, n = off+s.copyPartSize, n+1 {
		end := min(off+s.copyPartSize, info.Size) - 1
		out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
			Bucket:          aws.String(s.loc.Bucket),
			Key:             aws.String(s.loc.join(dst)),
			UploadId:        create.UploadId,
			PartNumber:      aws.Int32(n),
			CopySource:      aws.String(source),
			CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", off, end)),
		})
		if err != nil {
			abort(ctx)
			return fmt.Errorf("copying part %d: %w", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: out.CopyPartResult.ETag, PartNumber: aws.Int32(n)})
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.loc.Bucket),
		Key:             aws.String(s.loc.join(dst)),
		UploadId:        create.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		abort(ctx)
		return fmt.Errorf("completing multipart copy: %w", err)
	}
	return nil
}

// escapeKey escapes each segment of a key for the x-amz-copy-source header.
func escapeKey(k string) string {
	segs := strings.Split(k, "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	return strings.Join(segs, "/")
}

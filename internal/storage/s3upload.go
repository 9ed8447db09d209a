package storage

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// s3Upload streams a reader of unknown length into one object. It holds at most
// concurrency+1 part buffers (one for an object smaller than a part), taken from the
// store's free ones, so a write's memory is bounded and does not grow with the object:
// one buffer fills from the reader while the others upload.
// A stream shorter than one part is sent as a single PutObject. Parts carry CRC32
// checksums that S3 verifies. On any failure (the reader's, S3's, or a cancelled
// context) the multipart upload is aborted with a fresh context, so nothing remains.
type s3Upload struct {
	s    *s3Store
	key  string
	opts PutOptions

	uploadID *string
	mu       sync.Mutex
	parts    []types.CompletedPart
	err      error
}

func (u *s3Upload) run(ctx context.Context, r io.Reader) error {
	buf := u.s.part()
	n, err := fill(r, buf)
	if err == io.EOF {
		if err := u.single(ctx, buf[:n]); err != nil {
			return err // the transport may still read a failed request's body
		}
		u.s.release(buf)
		return nil
	}
	if err != nil {
		u.s.release(buf)
		return err
	}
	free := make(chan []byte, u.s.concurrency+1)
	for range u.s.concurrency {
		free <- u.s.part()
	}
	// Every buffer is back in free once the parts in flight are done (one taken by
	// the loop when it stopped may not be: it is left to the collector). After a
	// failure none is kept: the transport may still read a failed request's body.
	defer func() {
		for u.err == nil {
			select {
			case b := <-free:
				u.s.release(b)
			default:
				return
			}
		}
	}()

	create, err := u.s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(u.s.loc.Bucket),
		Key:               aws.String(u.key),
		ContentType:       nonEmpty(u.opts.ContentType),
		Metadata:          u.opts.Metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("starting multipart upload: %w", err)
	}
	u.uploadID = create.UploadId

	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	part := int32(0)
	for {
		part++
		if part > s3MaxParts {
			u.fail(fmt.Errorf("object exceeds %d parts of %d MiB; raise part_size_mib", s3MaxParts, u.s.partSize>>20))
			break
		}
		wg.Add(1)
		go func(num int32, b []byte, n int) {
			defer wg.Done()
			defer func() { free <- b }()
			if err := u.uploadPart(pctx, num, b[:n]); err != nil {
				u.fail(err)
				cancel()
			}
		}(part, buf, n)
		if err != nil { // the part just queued was the last
			break
		}
		select {
		case buf = <-free:
		case <-pctx.Done():
		}
		if pctx.Err() != nil {
			break
		}
		n, err = fill(r, buf)
		if err == io.EOF && n == 0 {
			free <- buf
			break
		}
		if err != nil && err != io.EOF {
			u.fail(err)
			free <- buf
			break
		}
		// err == io.EOF here: a short last part, queued by the next iteration.
	}
	wg.Wait()
	if u.err == nil && ctx.Err() != nil {
		u.err = ctx.Err()
	}
	if u.err != nil {
		u.abort(ctx)
		return u.err
	}
	return u.complete(ctx)
}

// fill reads into buf until it is full or r fails. It returns io.EOF only when r
// returned exactly io.EOF, the one clean end of a stream: io.ReadFull would turn a
// source's own io.ErrUnexpectedEOF, or an error wrapping io.EOF, into something that
// reads as a clean short part, and the upload would commit a truncated object. An
// error that comes with the last bytes is kept, never dropped with a full buffer.
func fill(r io.Reader, buf []byte) (int, error) {
	n := 0
	for n < len(buf) {
		m, err := r.Read(buf[n:])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (u *s3Upload) fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.err == nil {
		u.err = err
	}
}

func (u *s3Upload) single(ctx context.Context, b []byte) error {
	_, err := u.s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:            aws.String(u.s.loc.Bucket),
		Key:               aws.String(u.key),
		Body:              bytes.NewReader(b),
		ContentLength:     aws.Int64(int64(len(b))),
		ContentType:       nonEmpty(u.opts.ContentType),
		Metadata:          u.opts.Metadata,
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	return err
}

func (u *s3Upload) uploadPart(ctx context.Context, num int32, b []byte) error {
	out, err := u.s.client.UploadPart(ctx, &s3.UploadPartInput{
		Bucket:            aws.String(u.s.loc.Bucket),
		Key:               aws.String(u.key),
		UploadId:          u.uploadID,
		PartNumber:        aws.Int32(num),
		Body:              bytes.NewReader(b),
		ContentLength:     aws.Int64(int64(len(b))),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32,
	})
	if err != nil {
		return fmt.Errorf("uploading part %d: %w", num, err)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.parts = append(u.parts, types.CompletedPart{PartNumber: aws.Int32(num), ETag: out.ETag, ChecksumCRC32: out.ChecksumCRC32})
	return nil
}

func (u *s3Upload) complete(ctx context.Context) error {
	sort.Slice(u.parts, func(i, j int) bool { return *u.parts[i].PartNumber < *u.parts[j].PartNumber })
	_, err := u.s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(u.s.loc.Bucket),
		Key:             aws.String(u.key),
		UploadId:        u.uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: u.parts},
	})
	if err != nil {
		u.abort(ctx)
		return fmt.Errorf("completing multipart upload: %w", err)
	}
	return nil
}

// abort runs even when ctx is cancelled: a pending upload holds storage until aborted.
func (u *s3Upload) abort(ctx context.Context) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	_, _ = u.s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
		Bucket: aws.String(u.s.loc.Bucket), Key: aws.String(u.key), UploadId: u.uploadID,
	})
}

func nonEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return aws.String(s)
}

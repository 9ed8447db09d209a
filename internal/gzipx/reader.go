package gzipx

import (
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/flate"
	kgzip "github.com/klauspost/compress/gzip"
)

// ErrCorrupt marks a stream that is not gzip, fails its checksum or is cut short: the
// object is bad, not the store.
var ErrCorrupt = errors.New("corrupt or truncated gzip stream")

// Reader decodes any gzip stream: one member (the operations page's objects) or many
// (this package's, pigz's), with klauspost/compress's inflater, the fastest measured
// that reads every stream (see the README's benchmark). Errors of the stream itself
// wrap ErrCorrupt; errors of the underlying reader are returned as they are.
type Reader struct {
	z *kgzip.Reader
}

// NewReader reads the first member's header from r.
func NewReader(r io.Reader) (*Reader, error) {
	z, err := kgzip.NewReader(r)
	if err != nil {
		return nil, classify(err)
	}
	return &Reader{z: z}, nil
}

// Read implements io.Reader.
func (r *Reader) Read(p []byte) (int, error) {
	n, err := r.z.Read(p)
	if err != nil && err != io.EOF {
		err = classify(err)
	}
	return n, err
}

// Close releases the inflater; it does not close the underlying reader.
func (r *Reader) Close() error { return r.z.Close() }

func classify(err error) error {
	var corrupt flate.CorruptInputError
	if errors.As(err, &corrupt) || errors.Is(err, kgzip.ErrChecksum) || errors.Is(err, kgzip.ErrHeader) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %w", ErrCorrupt, err)
	}
	return err
}

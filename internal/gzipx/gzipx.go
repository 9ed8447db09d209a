// Package gzipx is the backup's gzip layer: a parallel gzip writer, and the reader
// every object is decoded with.
//
// The writer, in builds with cgo (the images' build), is libdeflate linked statically:
// the input is cut into members of a few MiB, each compressed on its own by one of
// several workers into an independent gzip member, and the members are written in
// order. Concatenated members are one gzip stream by the format's definition (RFC
// 1952 §2.2): gunzip, pigz, Go's and klauspost's readers read it whole. libdeflate's
// level 6 costs about a third of zlib's CPU at a comparable ratio (see the README's
// benchmark); independent members lose a little ratio at each boundary, which a few
// MiB make negligible.
//
// Without cgo, and for Huffman-only coding (which libdeflate lacks), the writer is the
// standard library's deflate in the manner of pigz (one member, blocks primed with
// the previous block's last 32 KiB). Implementation says which one a build has.
//
// Why not klauspost/pgzip for writing: its deflate trades ratio for speed at every
// level (its level 6 is 9 % larger than zlib's on our dumps), and the backup must stay
// within 2 % of the operations page's size.
package gzipx

import (
	"compress/flate"
	"errors"
	"io"
)

// HuffmanOnly is the level of Huffman coding only (no matching): what re-compressing
// an archive pg_dump already compressed is worth.
const HuffmanOnly = flate.HuffmanOnly

// MaxLevel is the highest level NewWriter accepts.
const MaxLevel = flate.BestCompression

// Writer compresses in parallel. It is not safe for concurrent use.
type Writer struct {
	io.WriteCloser
	impl string
}

// NewWriter returns a writer compressing at level (HuffmanOnly, 0 to 9) with
// `workers` goroutines. Levels 0-9 are libdeflate's where the build has it.
func NewWriter(w io.Writer, level, workers int) (*Writer, error) {
	return newWriter(w, level, workers, 0, "")
}

// newWriter is NewWriter with a block size (0: the implementation's default) and an
// implementation forced ("": the build's choice), for tests.
func newWriter(w io.Writer, level, workers, blockSize int, impl string) (*Writer, error) {
	if level < HuffmanOnly || level > MaxLevel {
		return nil, errors.New("gzipx: invalid compression level")
	}
	if impl == "" {
		impl = implementationFor(level)
	}
	switch impl {
	case implFlate:
		if blockSize == 0 {
			blockSize = flateBlockSize
		}
		return &Writer{newFlateWriter(w, level, workers, blockSize), impl}, nil
	case implLibdeflate:
		if blockSize == 0 {
			blockSize = MemberSize
		}
		mw, err := newMemberWriter(w, level, workers, blockSize)
		if err != nil {
			return nil, err
		}
		return &Writer{mw, impl}, nil
	}
	return nil, errors.New("gzipx: unknown implementation " + impl)
}

// Implementation is the writer this writer is ("libdeflate 1.14" or "compress/flate").
func (z *Writer) Implementation() string { return z.impl }

const implFlate = "compress/flate"

// Implementation is the compressor of levels 0-9 in this build: "libdeflate <version>"
// with cgo, "compress/flate" without.
func Implementation() string { return implementationFor(6) }

func implementationFor(level int) string {
	if level == HuffmanOnly || implLibdeflate == "" {
		return implFlate
	}
	return implLibdeflate
}

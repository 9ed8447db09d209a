//go:build bench

package gzipx

import "io"

// NewLibdeflateWriter is newWriter with libdeflate and a member size, for the benchmark.
func NewLibdeflateWriter(w io.Writer, level, workers, memberSize int) (*Writer, error) {
	return newWriter(w, level, workers, memberSize, implLibdeflate)
}

// NewFlateWriter is newWriter with the standard library's deflate, for the benchmark.
func NewFlateWriter(w io.Writer, level, workers int) (*Writer, error) {
	return newWriter(w, level, workers, 0, implFlate)
}

//go:build cgo

package gzipx_test

import (
	"io"
	"runtime/debug"
	"testing"

	"github.com/smartbackup/smartbackup/internal/gzipx"
)

// TestWriterReservesItsCMemory: the libdeflate writer's C buffers are taken off the
// soft memory limit while it lives (the runtime does not count them), and given back
// when it closes.
func TestWriterReservesItsCMemory(t *testing.T) {
	const limit = 96 << 20
	old := debug.SetMemoryLimit(limit)
	defer debug.SetMemoryLimit(old)
	w, err := gzipx.NewWriter(io.Discard, 7, 2)
	if err != nil {
		t.Fatal(err)
	}
	during := debug.SetMemoryLimit(-1)
	// Four members in flight (two workers, one filling, one being written) of 2 MiB of
	// input and its bound of output.
	if reserved := limit - during; reserved < 4*(4<<20) || reserved > 20<<20 {
		t.Errorf("the writer reserved %d bytes of the limit, want its members' 16-20 MiB", reserved)
	}
	if _, err := w.Write(make([]byte, 5<<20)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if after := debug.SetMemoryLimit(-1); after != limit {
		t.Errorf("limit after Close = %d, want %d back", after, limit)
	}
}

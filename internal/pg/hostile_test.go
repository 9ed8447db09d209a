package pg_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/pg"
)

// allocated is the number of bytes the heap handed out while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

func writeArchive(t *testing.T, b []byte) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "a.dump")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestIndexArchiveOfASyntheticArchive(t *testing.T) {
	b := validArchive(3)
	path := writeArchive(t, b)
	n, err := pg.IndexArchive(openRW(t, path))
	if err != nil || n != 3 {
		t.Fatalf("IndexArchive = %d, %v; want 3 entries", n, err)
	}
	after, _ := os.ReadFile(path)
	if len(after) != len(b) || bytes.Equal(after, b) {
		t.Fatalf("the archive was not patched in place (%d bytes, was %d)", len(after), len(b))
	}
	if again, err := pg.IndexArchive(openRW(t, path)); err != nil || again != 0 {
		t.Fatalf("second pass: %d, %v", again, err)
	}
}

// A corrupt archive in the scratch volume must fail at once (exit 6), not hang the
// restore: no allocation or read may follow a count or a length the file cannot hold.
// The first case is what stalled FuzzIndexArchive: a count of 2^29 entries made
// IndexArchive allocate 12 GiB before reading the first entry.
func TestIndexArchiveFailsFastOnHostileLengths(t *testing.T) {
	withCount := func(count uint32, rest ...byte) []byte {
		var a archive
		a.head()
		a.rawInt(count)
		return append(a.Bytes(), rest...)
	}
	longString := func() []byte {
		var a archive
		a.head()
		a.int(1)
		a.int(1)
		a.int(1)
		a.rawInt(1<<31 - 1) // the table oid's length
		a.WriteString("1259")
		a.Write(make([]byte, 200)) // enough for one entry: only the length is wrong
		return a.Bytes()
	}
	longChunk := func() []byte {
		var a archive
		a.head()
		a.int(1)
		a.entry(1)
		a.WriteByte(1)
		a.int(1)
		a.rawInt(1 << 30)
		a.WriteString("1\n2\n")
		return a.Bytes()
	}
	endlessDeps := func() []byte {
		var a archive
		a.head()
		a.int(1)
		a.entryHead(1)
		for range 1000 {
			a.str("1")
		}
		return a.Bytes()
	}
	tests := map[string]struct {
		archive []byte
		says    string
	}{
		"a TOC count that needs gigabytes":     {withCount(1 << 26), "cannot fit"},
		"a TOC count of 2^29 (the fuzz stall)": {withCount(1 << 29), "cannot fit"},
		"a TOC count wider than a C int":       {withCount(1<<32 - 1), "wider than 32 bits"},
		"a string length past the end":         {longString(), "runs past the end"},
		"a data chunk length past the end":     {longChunk(), "runs past the end"},
		"dependencies that run to the end":     {endlessDeps(), "unexpected EOF"},
		"a header string length past the end":  {[]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00" + strings.Repeat("\x00\x00\x00\x00\x00", 7) + "\x00\xff\xff\x0f\x00erp"), "runs past the end"},
		"a header string longer than any name": {[]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00" + strings.Repeat("\x00\x00\x00\x00\x00", 7) + "\x00\xff\xff\xff\x7ferp"), "in the header"},
		"a negative data chunk length":         {append(validArchive(1)[:len(validArchive(1))-5], 1, 4, 0, 0, 0), "negative length"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			path := writeArchive(t, tc.archive)
			var err error
			if n := allocated(func() { _, err = pg.IndexArchive(openRW(t, path)) }); n > 1<<20 {
				t.Errorf("allocated %d bytes for a %d-byte archive", n, len(tc.archive))
			}
			if !errors.Is(err, pg.ErrNotArchive) || !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("IndexArchive = %v; want ErrNotArchive saying %q", err, tc.says)
			}
			if after, _ := os.ReadFile(path); !bytes.Equal(after, tc.archive) {
				t.Fatal("a rejected archive was modified")
			}
		})
	}
}

// A stream that announces a long string and then ends costs the bytes it sent, not the
// length it announced (a backup's head is read from the bucket before it is kept).
func TestReadArchiveHeaderAllocatesWhatArrives(t *testing.T) {
	b := []byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00" + strings.Repeat("\x00\x00\x00\x00\x00", 7) + "\x00\x00\x00\x10\x00erp")
	const calls = 50
	n := allocated(func() {
		for range calls {
			if _, err := pg.ReadArchiveHeader(bytes.NewReader(b)); !errors.Is(err, pg.ErrNotArchive) {
				t.Fatalf("ReadArchiveHeader = %v, want ErrNotArchive", err)
			}
		}
	})
	if n/calls > 64<<10 {
		t.Errorf("allocated %d bytes per call for a %d-byte stream", n/calls, len(b))
	}
}

func TestReadArchiveHeaderRefusesCountsNoDumpWrites(t *testing.T) {
	var a archive
	a.head()
	a.rawInt(1<<32 - 1)
	if h, err := pg.ReadArchiveHeader(bytes.NewReader(a.Bytes())); !errors.Is(err, pg.ErrNotArchive) {
		t.Fatalf("ReadArchiveHeader = %+v, %v; want ErrNotArchive", h, err)
	}
	var ok archive
	ok.head()
	ok.int(1<<31 - 1)
	if h, err := pg.ReadArchiveHeader(bytes.NewReader(ok.Bytes())); err != nil || h.Entries != 1<<31-1 {
		t.Fatalf("ReadArchiveHeader = %+v, %v; want 2^31-1 entries", h, err)
	}
}

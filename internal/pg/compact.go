package pg

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// CompactChunk is the most table data one chunk of CompactArchive's output carries.
const CompactChunk = 256 << 10

// CompactArchive copies a custom-format archive, as pg_dump -Fc writes it to a pipe,
// from r to w, and returns its contents as ReadArchiveContents counts them. The copy is
// the same archive but for how uncompressed table data is cut into chunks.
//
// pg_dump -Z0 writes each row of a table's COPY text as a chunk of its own, behind a
// 5-byte length: on an ERP table of 100-byte rows, 5 % more bytes for the gzip layer
// to compress, and lengths that compress badly (the whole backup was 1.06 times the
// size of the operations page's at the same level). A data block's chunks are one
// stream to every reader: pg_restore reads each chunk's bytes and hands them on
// (to COPY, or to the output file) whatever their boundaries, as it does with the
// 4 KiB chunks of compressed data. So the copy merges them into chunks of up to
// CompactChunk bytes: byte for byte the same COPY text, the same tables restored.
// The header, the table of contents, large objects and compressed data are copied as
// they are.
//
// A stream that is not an archive is refused with ErrNotArchive, after writing what
// came before the fault; a failed write to w is returned wrapped in ErrWrite. An archive whose
// data is compressed with a method this package cannot read is copied whole, and its
// contents are returned with ErrRowsUnknown, as ReadArchiveContents does.
func CompactArchive(w io.Writer, r io.Reader) (ArchiveContents, error) {
	out := &echo{w: bufio.NewWriterSize(w, 64<<10)}
	ar := &archReader{r: bufio.NewReaderSize(r, 64<<10), size: -1, out: out}
	c, err := readContents(ar, make([]byte, CompactChunk))
	if errors.Is(err, ErrRowsUnknown) {
		if _, cerr := io.Copy(out, ar.r); cerr != nil && out.err == nil {
			err = fmt.Errorf("%w: reading the archive: %v", ErrNotArchive, cerr)
		}
	}
	if out.err == nil {
		out.err = out.w.Flush()
	}
	if out.err != nil {
		return ArchiveContents{}, out.failed()
	}
	return c, err
}

// copyRows reads one uncompressed data block's chunks and counts the lines of COPY
// text in them; when a copies, it writes them merged into chunks of up to len(buf)
// bytes, then the block's end.
func (a *archReader) copyRows(buf []byte) (int64, error) {
	out := a.out
	a.out = nil // chunk lengths are written anew
	defer func() { a.out = out }()
	var rows int64
	var tail lastBytes // the block's last bytes, for the end-of-copy marker
	n := 0             // bytes of buf pending
	flush := func() {
		if n == 0 {
			return
		}
		rows += int64(bytes.Count(buf[:n], []byte{'\n'}))
		tail.add(buf[:n])
		if out != nil {
			out.int(n, a.intSize)
			_, _ = out.Write(buf[:n])
		}
		n = 0
	}
	for {
		size, err := a.int()
		if err != nil {
			return 0, err
		}
		if size < 0 {
			return 0, fmt.Errorf("negative chunk length %d", size)
		}
		if size == 0 {
			break
		}
		if int64(size) > a.left() {
			return 0, fmt.Errorf("chunk of %d bytes runs past the end of the archive (%d bytes left)", size, a.left())
		}
		for size > 0 {
			m, err := io.ReadFull(a.r, buf[n:n+min(size, len(buf)-n)])
			a.pos += int64(m)
			n += m
			size -= m
			if err != nil {
				return 0, fmt.Errorf("reading table data: %w", noEOF(err))
			}
			if n == len(buf) {
				flush()
			}
		}
		if err := out.failed(); err != nil {
			return 0, err
		}
	}
	flush()
	if out != nil {
		out.int(0, a.intSize)
	}
	return rows - markerLines(tail.bytes()), nil
}

// echo is where an archReader copies what it reads. A failed write is kept and
// reported by failed; later writes are dropped.
type echo struct {
	w   *bufio.Writer
	err error
}

// ErrWrite marks CompactArchive's failures to write its copy: a fault of the writer
// (the upload), not of the archive.
var ErrWrite = errors.New("writing the archive")

func (e *echo) failed() error {
	if e == nil || e.err == nil {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrWrite, e.err)
}

func (e *echo) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}

// ReadFrom lets io.CopyN fill the writer's buffer without a buffer of its own.
func (e *echo) ReadFrom(r io.Reader) (int64, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.ReadFrom(r)
	if err != nil {
		// The reader's error or the writer's: a failed flush stays in the writer.
		_, e.err = e.w.Write(nil)
	}
	return n, err
}

func (e *echo) writeByte(b byte) {
	if e.err == nil {
		e.err = e.w.WriteByte(b)
	}
}

// int writes v as pg_dump's WriteInt does: a sign byte, then size bytes little-endian.
func (e *echo) int(v, size int) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	e.writeByte(sign)
	for range size {
		e.writeByte(byte(v))
		v >>= 8
	}
}

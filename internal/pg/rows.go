package pg

import (
	"bufio"
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// TableRows is the number of rows one table's data holds.
type TableRows struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Rows   int64  `json:"rows"`
}

// ArchiveContents is what a whole custom-format archive holds, in figures only: no
// row's content is kept.
type ArchiveContents struct {
	Header ArchiveHeader
	// Tables is the number of TABLE entries in the table of contents (partitioned
	// parents and unlogged tables included; views, sequences and foreign tables not).
	Tables int
	// Data is the rows of every TABLE DATA entry, in table-of-contents order. A table
	// whose data entry has no data block (which pg_dump never writes) has -1 rows.
	Data []TableRows
}

// ErrRowsUnknown reports an archive whose data blocks are compressed with a method this
// package cannot read (lz4, zstd): its row counts are unknown, the archive may be fine.
var ErrRowsUnknown = errors.New("row counts unknown")

// ReadArchiveContents reads a custom-format archive from r to its end, as pg_dump -Fc
// writes it to a pipe, and counts the rows of each table's data: the lines of the COPY
// text in its data block (a row is one line; a newline inside a value is written as
// \n), exactly what pg_restore loads. It keeps no data, reads the stream once in
// chunks, and decompresses zlib-compressed blocks (pg_dump -Z1..9) on the way.
func ReadArchiveContents(r io.Reader) (ArchiveContents, error) {
	return readContents(&archReader{r: bufio.NewReaderSize(r, 64<<10), size: -1}, make([]byte, 64<<10))
}

// readContents is ReadArchiveContents on ar; buf holds table data on its way (when ar
// copies, the merged chunks of uncompressed data).
func readContents(ar *archReader, buf []byte) (ArchiveContents, error) {
	h, err := readHeaderFrom(ar)
	if err != nil {
		return ArchiveContents{}, fmt.Errorf("%w: %v", ErrNotArchive, noEOF(err))
	}
	c := ArchiveContents{Header: h}
	data := map[int]int{} // dump id → index in c.Data
	for i := 0; i < h.Entries; i++ {
		e, err := ar.tocEntry()
		if err != nil {
			return ArchiveContents{}, tocErr(i, err)
		}
		switch e.desc {
		case "TABLE":
			c.Tables++
		case "TABLE DATA":
			if _, dup := data[e.id]; dup {
				return ArchiveContents{}, tocErr(i, fmt.Errorf("dump id %d appears twice", e.id))
			}
			data[e.id] = len(c.Data)
			c.Data = append(c.Data, TableRows{Schema: e.namespace, Table: e.tag, Rows: -1})
		}
	}
	for {
		start := ar.pos
		typ, err := ar.byte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return ArchiveContents{}, err
		}
		id, err := ar.int()
		if err != nil {
			return ArchiveContents{}, blockErr(start, err)
		}
		switch typ {
		case blockData:
			idx, isTable := data[id]
			if !isTable {
				err = ar.skipChunks()
				break
			}
			var rows int64
			if ar.compression == compressionNone {
				rows, err = ar.copyRows(buf)
			} else {
				rows, err = ar.countRows(buf)
			}
			if err == nil {
				if c.Data[idx].Rows >= 0 {
					err = fmt.Errorf("a second data block for dump id %d", id)
				}
				c.Data[idx].Rows = rows
			}
		case blockBlobs:
			for {
				oid, err2 := ar.int()
				if err2 != nil || oid == 0 {
					err = err2
					break
				}
				if err = ar.skipChunks(); err != nil {
					break
				}
			}
		default:
			err = fmt.Errorf("unknown block type %d", typ)
		}
		if err != nil {
			if errors.Is(err, ErrRowsUnknown) {
				return c, err
			}
			return ArchiveContents{}, blockErr(start, err)
		}
		if err := ar.out.failed(); err != nil {
			return ArchiveContents{}, err
		}
	}
	return c, nil
}

// tocFields is the part of a TOC entry ReadArchiveContents needs.
type tocFields struct {
	id          int
	tag, desc   string
	namespace   string
	section     int
	deps        []int
	offsetState int
	offsetPos   int64 // where the offset state is, for IndexArchive to patch
	offset      int64 // where the entry's data block starts, when offsetState is offsetSet
}

// tocEntry reads one TOC entry (WriteToc, pg_backup_archiver.c), keeping its dump id,
// tag, description, schema, section and dependencies.
func (a *archReader) tocEntry() (tocFields, error) {
	var e tocFields
	var err error
	if e.id, err = a.int(); err != nil {
		return e, err
	}
	if _, err := a.int(); err != nil { // hadDumper
		return e, err
	}
	for range 2 { // table oid, oid
		if err := a.skipStr(); err != nil {
			return e, err
		}
	}
	if e.tag, err = a.str(); err != nil {
		return e, err
	}
	if e.desc, err = a.str(); err != nil {
		return e, err
	}
	if e.section, err = a.int(); err != nil {
		return e, err
	}
	for range 3 { // defn, drop, copy
		if err := a.skipStr(); err != nil {
			return e, err
		}
	}
	if e.namespace, err = a.str(); err != nil {
		return e, err
	}
	strs := 1 // tablespace
	if a.version >= 1<<16|14<<8 {
		strs++ // table access method
	}
	for range strs {
		if err := a.skipStr(); err != nil {
			return e, err
		}
	}
	if a.version >= 1<<16|16<<8 {
		if _, err := a.int(); err != nil { // relkind
			return e, err
		}
	}
	for range 2 { // owner, "false" (WITH OIDS)
		if err := a.skipStr(); err != nil {
			return e, err
		}
	}
	var dep [10]byte // a dump id as text: an int of at most 10 digits
	for {            // dependencies, dump ids as text, ended by a NULL string
		n, err := a.int()
		if err != nil {
			return e, err
		}
		if n < 0 {
			break
		}
		if len(e.deps) > 1<<20 {
			return e, errors.New("too many dependencies")
		}
		if n > len(dep) {
			return e, fmt.Errorf("dependency of %d bytes", n)
		}
		b := dep[:n]
		if err := a.read(b); err != nil {
			return e, err
		}
		id, err := strconv.Atoi(string(b))
		if err != nil {
			return e, fmt.Errorf("dependency %q", b)
		}
		e.deps = append(e.deps, id)
	}
	e.offsetPos = a.pos
	if e.offsetState, err = a.byte(); err != nil {
		return e, noEOF(err)
	}
	if e.offsetState < offsetNotSet || e.offsetState > offsetNoData {
		return e, fmt.Errorf("offset state %d", e.offsetState)
	}
	// The offset: offSize bytes, least significant first (WriteOffset).
	for i := range a.offSize {
		b, err := a.byte()
		if err != nil {
			return e, noEOF(err)
		}
		e.offset |= int64(b) << (8 * i) // offSize is at most 8 (readHeaderFrom)
	}
	if e.offsetState != offsetSet || e.offset < 0 {
		e.offset = 0
	}
	return e, nil
}

// countRows reads one compressed data block's chunks and counts the lines of COPY
// text in them.
func (a *archReader) countRows(buf []byte) (int64, error) {
	chunks := &chunkReader{a: a}
	if a.compression != compressionGzip {
		_ = chunks.drain()
		return 0, fmt.Errorf("%w: data compressed with method %d", ErrRowsUnknown, a.compression)
	}
	in, err := zlib.NewReader(chunks)
	if err != nil {
		return 0, fmt.Errorf("decompressing table data: %w", err)
	}
	defer in.Close()
	var rows int64
	var tail lastBytes // the block's last bytes, for the end-of-copy marker
	for {
		n, err := in.Read(buf)
		if n > 0 {
			rows += int64(bytes.Count(buf[:n], []byte{'\n'}))
			tail.add(buf[:n])
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("reading table data: %w", noEOF(err))
		}
	}
	if err := chunks.drain(); err != nil {
		return 0, err
	}
	return rows - markerLines(tail.bytes()), nil
}

// markerLines is how many of the lines counted in a COPY text ending in tail are
// pg_dump's end marker. pg_dump ends the COPY text with the end marker line "\." and
// two empty lines (older versions with the marker line alone), none of them rows: a
// value "\." is written "\\.", so a whole line "\." is the marker.
func markerLines(tail []byte) int64 {
	for _, end := range []string{copyEnd, copyEnd[:3]} {
		if t := string(tail); t == end || strings.HasSuffix(t, "\n"+end) {
			return int64(strings.Count(end, "\n"))
		}
	}
	return 0
}

// copyEnd is what pg_dump writes after a table's COPY rows.
const copyEnd = "\\.\n\n\n"

// lastBytes keeps the last len(copyEnd)+1 bytes written to it, in place: the append
// and reslice it replaces allocated a new array every few reads (16 MB of garbage per
// 100 MB of dump, which the backup's heap grew by).
type lastBytes struct {
	b [len(copyEnd) + 1]byte
	n int
}

func (l *lastBytes) add(p []byte) {
	if len(p) >= len(l.b) {
		l.n = copy(l.b[:], p[len(p)-len(l.b):])
		return
	}
	keep := min(l.n, len(l.b)-len(p))
	copy(l.b[:], l.b[l.n-keep:l.n])
	l.n = keep + copy(l.b[keep:], p)
}

func (l *lastBytes) bytes() []byte { return l.b[:l.n] }

// chunkReader reads the length-prefixed chunks of one data block as one stream, ending
// at the zero-length chunk.
type chunkReader struct {
	a    *archReader
	left int
	done bool
}

func (c *chunkReader) Read(p []byte) (int, error) {
	for c.left == 0 {
		if c.done {
			return 0, io.EOF
		}
		n, err := c.a.int()
		if err != nil {
			return 0, err
		}
		if n < 0 {
			return 0, fmt.Errorf("negative chunk length %d", n)
		}
		if n == 0 {
			c.done = true
			return 0, io.EOF
		}
		c.left = n
	}
	n, err := c.a.r.Read(p[:min(len(p), c.left)])
	c.left -= n
	c.a.pos += int64(n)
	if c.a.out != nil {
		_, _ = c.a.out.Write(p[:n])
	}
	if err != nil && !(errors.Is(err, io.EOF) && n > 0) {
		return n, noEOF(err)
	}
	return n, nil
}

// drain reads what is left of the block (the zlib reader may stop before the final
// chunk marker).
func (c *chunkReader) drain() error {
	_, err := io.Copy(io.Discard, c)
	return err
}

package pg

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// ArchiveHeader is what the head of a pg_dump custom-format archive says about it.
type ArchiveHeader struct {
	// Version is the archive format version, e.g. "1.14" (pg_dump 12–15), "1.16" (17).
	Version string
	// Database is the dumped database's name.
	Database string
	// ServerVersion and DumpVersion are the server's and pg_dump's versions.
	ServerVersion string
	DumpVersion   string
	// Entries is the number of entries in the table of contents.
	Entries int
	// Compressed tells whether pg_dump compressed the data blocks (-Z > 0).
	Compressed bool
}

// ErrNotArchive reports bytes that are not a usable custom-format archive.
var ErrNotArchive = errors.New("not a pg_dump custom-format archive")

const (
	archCustom = 1
	maxStr     = 1 << 20 // no header string is near this long; stops a hostile length
)

// ReadArchiveHeader reads the header and the table-of-contents count of a custom-format
// archive, as written by pg_dump -Fc to a file or a pipe (the TOC comes first). It reads
// only the head of the stream.
//
// Layout (pg_backup_archiver.c, WriteHead/WriteToc): "PGDMP", version major, minor,
// revision, int size, offset size, format; compression (an int before 1.15, one byte
// since); seven ints of creation time; the database name, server version and pg_dump
// version as strings; the TOC entry count. An int is a sign byte then intSize bytes,
// little-endian; a string is an int length (-1 for NULL) then its bytes.
func ReadArchiveHeader(r io.Reader) (ArchiveHeader, error) {
	h, err := readHeaderFrom(&archReader{r: bufio.NewReaderSize(r, 4096), size: -1})
	if err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			err = fmt.Errorf("stream ends inside the header")
		}
		return ArchiveHeader{}, fmt.Errorf("%w: %v", ErrNotArchive, err)
	}
	return h, nil
}

// readHeaderFrom reads the header and the TOC count, leaving hr at the first TOC entry
// with its integer and offset sizes and the archive version set.
func readHeaderFrom(hr *archReader) (ArchiveHeader, error) {
	var magic [5]byte
	for i := range magic {
		b, err := hr.byte()
		if err != nil {
			return ArchiveHeader{}, err
		}
		magic[i] = byte(b)
	}
	if string(magic[:]) != "PGDMP" {
		return ArchiveHeader{}, fmt.Errorf("no PGDMP magic (a plain-text or foreign file?)")
	}
	var v [3]int
	for i := range v {
		b, err := hr.byte()
		if err != nil {
			return ArchiveHeader{}, err
		}
		v[i] = b
	}
	ver := v[0]<<16 | v[1]<<8 | v[2]
	// 1.12 is the oldest pg_dump 12 might read; 1.16 is pg_dump 17's.
	if ver < 1<<16|12<<8 || ver > 1<<16|16<<8|255 {
		return ArchiveHeader{}, fmt.Errorf("archive version %d.%d.%d is not supported", v[0], v[1], v[2])
	}
	intSize, err := hr.byte()
	if err != nil {
		return ArchiveHeader{}, err
	}
	if intSize < 4 || intSize > 8 {
		return ArchiveHeader{}, fmt.Errorf("integer size %d", intSize)
	}
	hr.intSize, hr.version = intSize, ver
	offSize, err := hr.byte()
	if err != nil {
		return ArchiveHeader{}, err
	}
	if offSize < 4 || offSize > 8 {
		return ArchiveHeader{}, fmt.Errorf("offset size %d", offSize)
	}
	hr.offSize = offSize
	format, err := hr.byte()
	if err != nil {
		return ArchiveHeader{}, err
	}
	if format != archCustom {
		return ArchiveHeader{}, fmt.Errorf("archive format %d is not custom (-Fc)", format)
	}
	h := ArchiveHeader{Version: fmt.Sprintf("%d.%d", v[0], v[1])}
	if ver >= 1<<16|15<<8 {
		alg, err := hr.byte()
		if err != nil {
			return ArchiveHeader{}, err
		}
		h.Compressed = alg != 0
		hr.compression = alg
	} else {
		level, err := hr.int()
		if err != nil {
			return ArchiveHeader{}, err
		}
		h.Compressed = level != 0
		if h.Compressed {
			hr.compression = compressionGzip // zlib, the only method before 1.15
		}
	}
	for range 7 { // creation time
		if _, err := hr.int(); err != nil {
			return ArchiveHeader{}, err
		}
	}
	if h.Database, err = hr.str(); err != nil {
		return ArchiveHeader{}, err
	}
	if h.ServerVersion, err = hr.str(); err != nil {
		return ArchiveHeader{}, err
	}
	if h.DumpVersion, err = hr.str(); err != nil {
		return ArchiveHeader{}, err
	}
	if h.Entries, err = hr.int(); err != nil {
		return ArchiveHeader{}, err
	}
	if h.Entries <= 0 {
		return ArchiveHeader{}, fmt.Errorf("empty table of contents (%d entries)", h.Entries)
	}
	return h, nil
}

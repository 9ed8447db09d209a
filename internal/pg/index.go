package pg

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
)

// Offset states of a TOC entry (pg_backup_archiver.h).
const (
	offsetNotSet = 1
	offsetSet    = 2
	offsetNoData = 3
)

// Block types of the custom format's data section (pg_backup_custom.c).
const (
	blockData  = 1
	blockBlobs = 3
)

// IndexArchive writes the data offsets into the table of contents of a custom-format
// archive that pg_dump wrote to a pipe. pg_dump records where each table's data starts
// only when it can seek back over its output; without those offsets a parallel
// pg_restore must scan the file for every table and is slower than a single one. With
// them, `pg_restore -j N` seeks straight to each table, as with an archive pg_dump wrote
// to a file. It returns the number of entries indexed; on error the file may be left
// as it was (still restorable, only slower) — it is never changed before the whole
// archive has been read and understood.
func IndexArchive(f *os.File) (int, error) {
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	// Every length and count read below is checked against the bytes the file has, so a
	// corrupt archive fails at once instead of allocating or reading for what it claims.
	ar := &archReader{r: bufio.NewReaderSize(f, int(min(1<<20, st.Size()))), size: st.Size()}
	h, err := readHeaderFrom(ar)
	if err != nil {
		return 0, fmt.Errorf("%w: %v", ErrNotArchive, noEOF(err))
	}
	if most := ar.left() / ar.minTOCEntry(); int64(h.Entries) > most {
		return 0, fmt.Errorf("%w: a table of contents of %d entries cannot fit in the %d bytes after the header (%d at most)", ErrNotArchive, h.Entries, ar.left(), most)
	}
	entries := make([]tocFields, 0, min(h.Entries, 1<<16))
	for i := 0; i < h.Entries; i++ {
		e, err := ar.tocEntry()
		if err != nil {
			return 0, tocErr(i, err)
		}
		entries = append(entries, e)
	}

	// The data section: blocks of (type, dump id, length-prefixed chunks ending in 0).
	blocks := map[int]int64{}
	for {
		start := ar.pos
		typ, err := ar.byte()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return 0, err
		}
		id, err := ar.int()
		if err != nil {
			return 0, blockErr(start, err)
		}
		switch typ {
		case blockData:
			err = ar.skipChunks()
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
			return 0, blockErr(start, err)
		}
		blocks[id] = start
	}

	// Everything is understood: patch the offsets in place.
	patched := 0
	buf := make([]byte, 1+ar.offSize)
	for _, e := range entries {
		pos, ok := blocks[e.id]
		if e.offsetState != offsetNotSet || !ok {
			continue
		}
		buf[0] = offsetSet
		var off [8]byte
		binary.LittleEndian.PutUint64(off[:], uint64(pos))
		copy(buf[1:], off[:min(8, ar.offSize)])
		if _, err := f.WriteAt(buf, e.offsetPos); err != nil {
			return patched, fmt.Errorf("writing the offset of entry %d: %w", e.id, err)
		}
		patched++
	}
	// No fsync: the archive is scratch, read back at once and deleted after the restore.
	return patched, nil
}

func tocErr(i int, err error) error {
	return fmt.Errorf("%w: table of contents entry %d: %v", ErrNotArchive, i, err)
}

func blockErr(pos int64, err error) error {
	return fmt.Errorf("%w: data block at byte %d: %v", ErrNotArchive, pos, err)
}

// archReader reads the archive's primitive types and counts the bytes read. When the
// archive's size is known (a file), no length may point past its end; on a stream (size
// -1), strings are read in steps, so memory follows the bytes that actually arrive.
type archReader struct {
	r                *bufio.Reader
	pos              int64
	size             int64
	intSize, offSize int
	version          int
	// compression is the data blocks' method (compressionNone, compressionGzip, …).
	compression int
	// out, when set, receives every byte read (CompactArchive's copy); copyRows
	// writes the data blocks it merges itself.
	out *echo
}

// Compression methods of the data blocks (pg_compress_algorithm, since 1.15).
const (
	compressionNone = 0
	compressionGzip = 1
)

// left is the number of bytes after pos, or MaxInt64 on a stream.
func (a *archReader) left() int64 {
	if a.size < 0 {
		return math.MaxInt64
	}
	return max(a.size-a.pos, 0)
}

// minTOCEntry is the fewest bytes one TOC entry takes: 4 ints (5 since 1.16), 11 strings
// (12 since 1.14), each at least a sign byte and intSize bytes, then the offset state and
// the offset.
func (a *archReader) minTOCEntry() int64 {
	fields := 15
	if a.version >= 1<<16|14<<8 {
		fields++
	}
	if a.version >= 1<<16|16<<8 {
		fields++
	}
	return int64(fields*(1+a.intSize) + 1 + a.offSize)
}

func (a *archReader) byte() (int, error) {
	b, err := a.r.ReadByte()
	if err != nil {
		return 0, err
	}
	a.pos++
	if a.out != nil {
		a.out.writeByte(b)
	}
	return int(b), nil
}

func (a *archReader) int() (int, error) {
	sign, err := a.byte()
	if err != nil {
		return 0, noEOF(err)
	}
	v := 0
	for i := 0; i < a.intSize; i++ {
		b, err := a.byte()
		if err != nil {
			return 0, noEOF(err)
		}
		if i < 4 {
			v |= b << (8 * i)
		} else if b != 0 {
			return 0, errors.New("integer wider than 32 bits")
		}
	}
	// pg_dump writes C ints as a sign and a magnitude, at most 2^31 (INT_MIN, which a
	// large object's OID of 2^31 becomes).
	if v > 1<<31 {
		return 0, fmt.Errorf("integer %d wider than 32 bits", v)
	}
	if sign != 0 {
		v = -v
	}
	return v, nil
}

func (a *archReader) skip(n int64) error {
	if n < 0 {
		return fmt.Errorf("negative length %d", n)
	}
	if n > a.left() {
		return fmt.Errorf("length %d runs past the end of the archive (%d bytes left)", n, a.left())
	}
	if a.out != nil {
		m, err := io.CopyN(a.out, a.r, n)
		a.pos += m
		return noEOF(err)
	}
	m, err := a.r.Discard(int(n))
	a.pos += int64(m)
	return noEOF(err)
}

func (a *archReader) str() (string, error) {
	n, err := a.int()
	if err != nil || n < 0 {
		return "", err
	}
	if n > maxStr {
		return "", fmt.Errorf("string of %d bytes in the header", n)
	}
	if int64(n) > a.left() {
		return "", fmt.Errorf("string of %d bytes runs past the end of the archive (%d bytes left)", n, a.left())
	}
	// Not make([]byte, n): a stream that claims a long string and then ends costs only
	// the bytes it sent.
	var b bytes.Buffer
	m, err := io.CopyN(&b, a.r, int64(n))
	a.pos += m
	if err != nil {
		return "", noEOF(err)
	}
	if a.out != nil {
		_, _ = a.out.Write(b.Bytes())
	}
	return b.String(), nil
}

// read fills b (a few bytes: the caller bounds len(b)).
func (a *archReader) read(b []byte) error {
	if int64(len(b)) > a.left() {
		return fmt.Errorf("length %d runs past the end of the archive (%d bytes left)", len(b), a.left())
	}
	m, err := io.ReadFull(a.r, b)
	a.pos += int64(m)
	if err != nil {
		return noEOF(err)
	}
	if a.out != nil {
		_, _ = a.out.Write(b)
	}
	return nil
}

func (a *archReader) skipStr() error {
	n, err := a.int()
	if err != nil || n < 0 {
		return err
	}
	return a.skip(int64(n))
}

// skipChunks passes the length-prefixed chunks of one data block.
func (a *archReader) skipChunks() error {
	for {
		n, err := a.int()
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		if err := a.skip(int64(n)); err != nil {
			return err
		}
	}
}

// noEOF: inside a structure, the end of the file is a truncation.
func noEOF(err error) error {
	if errors.Is(err, io.EOF) {
		return io.ErrUnexpectedEOF
	}
	return err
}

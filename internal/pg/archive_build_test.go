package pg_test

import (
	"bytes"
	"encoding/binary"
)

// archive builds custom-format archives byte by byte, as pg_dump's WriteHead, WriteToc
// and the custom format's data blocks lay them out (format 1.14, 4-byte ints, 8-byte
// offsets), so the parsers can be tested on exact, hostile or huge inputs without a server.
type archive struct{ bytes.Buffer }

func (a *archive) int(v int) {
	sign := byte(0)
	if v < 0 {
		sign, v = 1, -v
	}
	a.WriteByte(sign)
	_ = binary.Write(&a.Buffer, binary.LittleEndian, uint32(v))
}

// rawInt writes a sign byte and four bytes as they are (lengths no pg_dump writes).
func (a *archive) rawInt(v uint32) {
	a.WriteByte(0)
	_ = binary.Write(&a.Buffer, binary.LittleEndian, v)
}

func (a *archive) str(s string) {
	a.int(len(s))
	a.WriteString(s)
}

func (a *archive) null() { a.int(-1) }

// head writes the header up to the TOC count, which the caller writes.
func (a *archive) head() {
	a.WriteString("PGDMP")
	a.Write([]byte{1, 14, 0, 4, 8, 1})
	a.int(0) // compression level
	for range 7 {
		a.int(0)
	}
	a.str("erp")
	a.str("15.8")
	a.str("15.8")
}

// entry writes one TOC entry whose data offset is not set.
func (a *archive) entry(id int, deps ...string) {
	a.entryHead(id)
	for _, d := range deps {
		a.str(d)
	}
	a.null()
	a.WriteByte(1) // offset not set
	a.Write(make([]byte, 8))
}

// entryHead writes a TOC entry up to its dependencies.
func (a *archive) entryHead(id int) {
	a.int(id)
	a.int(1) // hadDumper
	for _, s := range []string{"1259", "16385", "nota", "TABLE DATA"} {
		a.str(s)
	}
	a.int(3) // section: data
	for _, s := range []string{"", "", "COPY public.nota (id) FROM stdin;\n", "public", ""} {
		a.str(s)
	}
	a.str("heap")
	a.str("erp")
	a.str("false")
}

// data writes a data block of the given chunks.
func (a *archive) data(id int, chunks ...string) {
	a.WriteByte(1)
	a.int(id)
	for _, c := range chunks {
		a.str(c)
	}
	a.int(0)
}

// validArchive is a well-formed archive of n tables, each with one data block.
func validArchive(n int) []byte {
	var a archive
	a.head()
	a.int(n)
	for i := 1; i <= n; i++ {
		a.entry(i, "1")
	}
	for i := 1; i <= n; i++ {
		a.data(i, "1\n2\n")
	}
	return a.Bytes()
}

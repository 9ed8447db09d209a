package pg

import (
	"bufio"
	"fmt"
	"io"
)

// Sections of a table-of-contents entry (teSection, pg_backup.h). An entry of no
// section (a comment, an ACL) belongs where the entry before it does.
const (
	SectionNone     = 1
	SectionPreData  = 2
	SectionData     = 3
	SectionPostData = 4
)

// TOCEntry is one entry of an archive's table of contents, as far as the order of a
// restore needs it.
type TOCEntry struct {
	ID   int
	Desc string // TABLE, INDEX, COMMENT…
	// Namespace and Tag name the entry's object: for a TABLE DATA entry, the table's
	// schema and name, unquoted.
	Namespace, Tag string
	Section        int
	Deps           []int // the dump ids it depends on
	// DataOffset is where the entry's data block starts in the archive, when the table
	// of contents records it (pg_dump wrote to a file, or IndexArchive indexed it);
	// 0 otherwise.
	DataOffset int64
}

// ReadTOC reads the header and the table of contents heading a custom-format archive;
// it reads nothing after them.
func ReadTOC(r io.Reader) ([]TOCEntry, error) {
	ar := &archReader{r: bufio.NewReaderSize(r, 64<<10), size: -1}
	h, err := readHeaderFrom(ar)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNotArchive, noEOF(err))
	}
	entries := make([]TOCEntry, 0, min(h.Entries, 1<<16))
	for i := range h.Entries {
		e, err := ar.tocEntry()
		if err != nil {
			return nil, tocErr(i, err)
		}
		entries = append(entries, TOCEntry{ID: e.id, Desc: e.desc, Namespace: e.namespace, Tag: e.tag, Section: e.section, Deps: e.deps, DataOffset: e.offset})
	}
	return entries, nil
}

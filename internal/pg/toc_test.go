package pg_test

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// ReadTOC reads what pg_restore --list lists, in its order, with the sections and
// dependencies pg_dump wrote: every index depends on its table, every table's data on
// the table, and no entry on one after it (pg_dump sorts by dependency).
func TestReadTOCAgreesWithPgRestore(t *testing.T) {
	p := testenv.StartPostgres(t, 12)
	db := testenv.RandomName("toc_")
	p.CreateDatabase(t, db, "WIN1252")
	if err := fixture.Create(t.Context(), p.Connect(t, db), fixture.Tiny); err != nil {
		t.Fatal(err)
	}
	path := pipedDump(t, p, db, "0")
	entries := readTOCFile(t, path)
	restore, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", 12)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(restore.Path, "--list", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for line := range strings.Lines(string(out)) {
		if line == "" || line[0] == ';' {
			continue
		}
		// "208; 1259 16667 TABLE public clientes erp": the id, and the description
		// up to the schema (a description can be two words).
		id, rest, _ := strings.Cut(line, ";")
		f := strings.Fields(rest)
		listed = append(listed, id+" "+strings.Join(f[2:], " "))
	}
	byID := map[int]pg.TOCEntry{}
	pos := map[int]int{}
	sections := map[string]int{}
	for n, e := range entries {
		byID[e.ID], pos[e.ID] = e, n
		sections[fmt.Sprint(e.Desc, " ", e.Section)]++
	}
	// --list leaves out what pg_restore applies itself (ENCODING, DATABASE…); what it
	// lists is read, in the same order.
	last := -1
	for _, l := range listed {
		id, _ := strconv.Atoi(strings.Fields(l)[0])
		e, ok := byID[id]
		if !ok || !strings.HasPrefix(l, strconv.Itoa(id)+" "+e.Desc+" ") || pos[id] <= last {
			t.Fatalf("pg_restore lists %q; read as %+v (position %d, after %d)", l, e, pos[id], last)
		}
		last = pos[id]
		if e.Desc == "TABLE" || e.Desc == "TABLE DATA" {
			if want := fmt.Sprintf("%d %s %s %s ", id, e.Desc, e.Namespace, e.Tag); !strings.HasPrefix(l, want) {
				t.Errorf("pg_restore lists %q; read as %q", l, want)
			}
		}
	}
	for desc, want := range map[string]int{"TABLE": pg.SectionPreData, "TABLE DATA": pg.SectionData, "INDEX": pg.SectionPostData} {
		if sections[fmt.Sprint(desc, " ", want)] == 0 {
			t.Errorf("no %s entry in section %d: %v", desc, want, sections)
		}
	}
	for _, e := range entries {
		onTable := false
		for _, d := range e.Deps {
			dep, ok := byID[d]
			if ok && pos[d] > pos[e.ID] {
				t.Errorf("entry %d (%s) depends on %d, which comes after it", e.ID, e.Desc, d)
			}
			onTable = onTable || ok && dep.Desc == "TABLE"
		}
		if (e.Desc == "INDEX" || e.Desc == "TABLE DATA") && !onTable {
			t.Errorf("%s entry %d does not depend on a table: %v", e.Desc, e.ID, e.Deps)
		}
	}
}

// FuzzReadTOC: any stream is read or refused with ErrNotArchive, within bounded
// memory, and agrees with ReadArchiveContents on the entries it reads.
func FuzzReadTOC(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00"))
	f.Add(validArchive(2))
	f.Fuzz(func(t *testing.T, b []byte) {
		var entries []pg.TOCEntry
		var err error
		if n := allocated(func() { entries, err = pg.ReadTOC(bytes.NewReader(b)) }); n > 8<<20+256*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for a %d-byte archive", n, len(b))
		}
		if err != nil {
			if !errors.Is(err, pg.ErrNotArchive) {
				t.Fatalf("error %v is not ErrNotArchive", err)
			}
			return
		}
		h, err := pg.ReadArchiveHeader(bytes.NewReader(b))
		if err != nil || h.Entries != len(entries) {
			t.Fatalf("read %d entries of an archive whose header reads %+v, %v", len(entries), h, err)
		}
		for _, e := range entries {
			if len(e.Deps) > len(b) {
				t.Fatalf("%d dependencies in a %d-byte archive", len(e.Deps), len(b))
			}
		}
	})
}

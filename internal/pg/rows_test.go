package pg_test

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// rowsSchema has the rows that could fool a line count: a value with newlines, values
// that look like the end-of-copy marker, an empty table, partitions, and names with
// dots and quotes.
const rowsSchema = `
CREATE TABLE plain (id int, v text);
INSERT INTO plain VALUES (1, E'two\nlines'), (2, E'\\.'), (3, '.'), (4, E'\\'), (5, NULL), (6, E'\r\n');
CREATE TABLE empty (id int);
CREATE TABLE parted (id int, k int) PARTITION BY RANGE (k);
CREATE TABLE parted_a PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE TABLE parted_b PARTITION OF parted FOR VALUES FROM (10) TO (20);
INSERT INTO parted SELECT i, i % 20 FROM generate_series(1, 1000) i;
CREATE SCHEMA "Odd.Schema";
CREATE TABLE "Odd.Schema"."a.""b" (x int);
INSERT INTO "Odd.Schema"."a.""b" SELECT generate_series(1, 70000);
CREATE VIEW plain_view AS SELECT * FROM plain;
CREATE SEQUENCE s;
CREATE UNLOGGED TABLE last (v text);
INSERT INTO last VALUES (E'\\.');
`

func TestReadArchiveContentsCountsEveryRow(t *testing.T) {
	want := []pg.TableRows{
		{Schema: "Odd.Schema", Table: `a."b`, Rows: 70000},
		{Schema: "public", Table: "empty", Rows: 0},
		{Schema: "public", Table: "last", Rows: 1},
		{Schema: "public", Table: "parted_a", Rows: 500},
		{Schema: "public", Table: "parted_b", Rows: 500},
		{Schema: "public", Table: "plain", Rows: 6},
	}
	for _, major := range []int{12, 15} {
		p := testenv.StartPostgres(t, major)
		db := testenv.RandomName("rows_")
		p.CreateDatabase(t, db, "WIN1252")
		p.Exec(t, db, rowsSchema)
		c, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", major)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range []string{"-Z0", "-Z6"} {
			t.Run(fmt.Sprintf("PostgreSQL %d %s", major, z), func(t *testing.T) {
				cmd := exec.Command(c.Path, "-Fc", z, "--no-owner", "--no-acl")
				cmd.Env = p.Env(db)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("pg_dump: %v", err)
				}
				got, err := pg.ReadArchiveContents(bytes.NewReader(out))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got.Data); diff != "" {
					t.Errorf("rows (-want +got):\n%s", diff)
				}
				// plain, empty, parted and its two partitions, a."b, last.
				if got.Tables != 7 {
					t.Errorf("%d tables, want 7", got.Tables)
				}
				h, _ := pg.ReadArchiveHeader(bytes.NewReader(out))
				if got.Header != h {
					t.Errorf("header %+v, ReadArchiveHeader says %+v", got.Header, h)
				}
				// Every truncation is refused, never counted short.
				for _, n := range []int{len(out) - 1, len(out) - 2, len(out) / 2, len(out) - 200} {
					if _, err := pg.ReadArchiveContents(bytes.NewReader(out[:n])); !errors.Is(err, pg.ErrNotArchive) {
						t.Errorf("a %d-byte prefix of %d: %v", n, len(out), err)
					}
				}
			})
		}
	}
}

// FuzzReadArchiveContents: any stream is counted or refused with ErrNotArchive (or
// ErrRowsUnknown), within bounded memory, and never disagrees with ReadArchiveHeader.
func FuzzReadArchiveContents(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00"))
	f.Add(validArchive(2))
	f.Fuzz(func(t *testing.T, b []byte) {
		var c pg.ArchiveContents
		var err error
		if n := allocated(func() { c, err = pg.ReadArchiveContents(bytes.NewReader(b)) }); n > 8<<20+256*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for a %d-byte archive", n, len(b))
		}
		if err != nil {
			if !errors.Is(err, pg.ErrNotArchive) && !errors.Is(err, pg.ErrRowsUnknown) {
				t.Fatalf("error %v is neither ErrNotArchive nor ErrRowsUnknown", err)
			}
			return
		}
		h, err := pg.ReadArchiveHeader(bytes.NewReader(b))
		if err != nil || h != c.Header {
			t.Fatalf("counted an archive whose header reads %+v, %v; counted as %+v", h, err, c.Header)
		}
		for _, d := range c.Data {
			// Deflate expands at most about 1032 times.
			if d.Rows > 1100*int64(len(b)) {
				t.Fatalf("%d rows in a %d-byte archive", d.Rows, len(b))
			}
		}
	})
}

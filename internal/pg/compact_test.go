package pg_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// compactSchema adds to rowsSchema what a merge could get wrong: a row longer than a
// merged chunk, a table whose rows fill several, and a large object (copied as is).
const compactSchema = rowsSchema + `
CREATE TABLE wide (id int, v text);
INSERT INTO wide VALUES (1, repeat('x', 700000)), (2, 'after');
CREATE TABLE many (id int, v text);
INSERT INTO many SELECT i, md5(i::text) FROM generate_series(1, 30000) i;
SELECT lo_from_bytea(0, convert_to(repeat('lo', 50000), 'UTF8'));
`

// TestCompactArchiveRestoresTheSame: a real archive and its compacted copy give the
// same script (every COPY text byte for byte), the same row counts, and the same
// database through a parallel restore of the indexed copy; compressed archives are
// copied unchanged; a compacted -Z0 archive is smaller and compacts to itself.
func TestCompactArchiveRestoresTheSame(t *testing.T) {
	for _, major := range []int{12, 15} {
		p := testenv.StartPostgres(t, major)
		db := testenv.RandomName("compact_")
		p.CreateDatabase(t, db, "WIN1252")
		p.Exec(t, db, compactSchema)
		dump, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", major)
		if err != nil {
			t.Fatal(err)
		}
		restore, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", major)
		if err != nil {
			t.Fatal(err)
		}
		for _, z := range []string{"-Z0", "-Z6"} {
			t.Run(fmt.Sprintf("PostgreSQL %d %s", major, z), func(t *testing.T) {
				cmd := exec.Command(dump.Path, "-Fc", z, "--no-owner", "--no-acl")
				cmd.Env = p.Env(db)
				orig, err := cmd.Output()
				if err != nil {
					t.Fatalf("pg_dump: %v", err)
				}
				var out bytes.Buffer
				got, err := pg.CompactArchive(&out, bytes.NewReader(orig))
				if err != nil {
					t.Fatal(err)
				}
				want, err := pg.ReadArchiveContents(bytes.NewReader(orig))
				if err != nil {
					t.Fatal(err)
				}
				checkCompacted(t, want, got, out.Bytes())
				if z == "-Z6" && !bytes.Equal(out.Bytes(), orig) {
					t.Errorf("a compressed archive was changed (%d bytes, %d before)", out.Len(), len(orig))
				}
				if z == "-Z0" {
					// 30,000 rows of `many` alone took 150,000 bytes of chunk lengths.
					if saved := len(orig) - out.Len(); saved < 150_000 {
						t.Errorf("compacted %d bytes into %d: saved %d", len(orig), out.Len(), saved)
					}
					var twice bytes.Buffer
					if _, err := pg.CompactArchive(&twice, bytes.NewReader(out.Bytes())); err != nil || !bytes.Equal(twice.Bytes(), out.Bytes()) {
						t.Errorf("compacting a compacted archive changed it (%v)", err)
					}
				}
				dir := t.TempDir()
				script := func(b []byte) string {
					f := filepath.Join(dir, "a.dump")
					if err := os.WriteFile(f, b, 0o600); err != nil {
						t.Fatal(err)
					}
					s, err := exec.Command(restore.Path, "-f", "-", f).Output()
					if err != nil {
						t.Fatalf("pg_restore -f -: %v", err)
					}
					// Since 15.14 a script opens with \restrict and a random key, and
					// closes with \unrestrict.
					var keep []string
					for _, l := range strings.Split(string(s), "\n") {
						if !strings.HasPrefix(l, "\\restrict ") && !strings.HasPrefix(l, "\\unrestrict ") {
							keep = append(keep, l)
						}
					}
					return strings.Join(keep, "\n")
				}
				if a, b := script(orig), script(out.Bytes()); a != b {
					t.Errorf("the compacted archive's script differs (%d bytes, %d before)", len(b), len(a))
				}
				if !strings.Contains(script(out.Bytes()), strings.Repeat("x", 700000)) {
					t.Error("the long row is not in the compacted archive's script")
				}

				// Restored in parallel from the indexed copy: the same rows as the source.
				f := filepath.Join(dir, "c.dump")
				if err := os.WriteFile(f, out.Bytes(), 0o600); err != nil {
					t.Fatal(err)
				}
				fh, err := os.OpenFile(f, os.O_RDWR, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := pg.IndexArchive(fh); err != nil {
					t.Fatalf("indexing the compacted archive: %v", err)
				}
				_ = fh.Close()
				target := testenv.RandomName("compacted_")
				p.CreateDatabase(t, target, "WIN1252")
				r := exec.Command(restore.Path, "-j", "2", "--no-owner", "--no-acl", "--exit-on-error", "-d", target, f)
				r.Env = p.Env(target)
				if b, err := r.CombinedOutput(); err != nil {
					t.Fatalf("pg_restore -j 2: %v\n%s", err, b)
				}
				const q = `SELECT string_agg(t || ':' || h, ',' ORDER BY t) FROM (
					SELECT 'plain' t, md5(string_agg(id || '/' || coalesce(v, 'NULL'), ',' ORDER BY id)) h FROM plain
					UNION ALL SELECT 'wide', md5(string_agg(id || '/' || v, ',' ORDER BY id)) FROM wide
					UNION ALL SELECT 'many', md5(string_agg(id || '/' || v, ',' ORDER BY id)) FROM many
					UNION ALL SELECT 'parted', md5(string_agg(id || '/' || k, ',' ORDER BY id)) FROM parted
					UNION ALL SELECT 'lo', md5(string_agg(md5(lo_get(oid)), ',')) FROM pg_largeobject_metadata) s`
				var src, dst string
				if err := p.Connect(t, db).QueryRow(t.Context(), q).Scan(&src); err != nil {
					t.Fatal(err)
				}
				if err := p.Connect(t, target).QueryRow(t.Context(), q).Scan(&dst); err != nil {
					t.Fatal(err)
				}
				if src != dst {
					t.Errorf("restored %s, source %s", dst, src)
				}
			})
		}
	}
}

// TestCompactArchiveMergesChunks: the chunks of a data block become chunks of up to
// CompactChunk bytes with the same bytes; other blocks are copied as they are.
// checkCompacted fails t unless CompactArchive reported the contents the original reads
// as (want) and the compacted archive reads as the same.
func checkCompacted(t *testing.T, want, reported pg.ArchiveContents, compacted []byte) {
	t.Helper()
	if diff := cmp.Diff(want, reported); diff != "" {
		t.Fatalf("contents (-original +reported by CompactArchive):\n%s", diff)
	}
	again, err := pg.ReadArchiveContents(bytes.NewReader(compacted))
	if err != nil {
		t.Fatalf("reading the compacted archive: %v", err)
	}
	if diff := cmp.Diff(want, again); diff != "" {
		t.Fatalf("contents of the compacted archive (-original +compacted):\n%s", diff)
	}
}

func TestCompactArchiveMergesChunks(t *testing.T) {
	row := strings.Repeat("r", 99) + "\n"
	var rows []string
	for range 3000 { // 300,000 bytes: one full chunk and the rest
		rows = append(rows, row)
	}
	long := strings.Repeat("L", pg.CompactChunk+10) + "\n"
	var in archive
	in.head()
	in.int(3)
	in.entry(1)
	in.entry(2)
	in.entry(3)
	in.data(1, append(rows, "\\.\n\n\n")...)
	in.data(2, "a\n", long, "b\n", "\\.\n\n\n")
	in.data(3, "\\.\n\n\n")

	var want archive
	want.head()
	want.int(3)
	want.entry(1)
	want.entry(2)
	want.entry(3)
	all := strings.Join(rows, "") + "\\.\n\n\n"
	want.data(1, all[:pg.CompactChunk], all[pg.CompactChunk:])
	all = "a\n" + long + "b\n" + "\\.\n\n\n"
	want.data(2, all[:pg.CompactChunk], all[pg.CompactChunk:])
	want.data(3, "\\.\n\n\n")

	var out bytes.Buffer
	c, err := pg.CompactArchive(&out, bytes.NewReader(in.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), want.Bytes()) {
		t.Errorf("compacted %d bytes into %d, want %d", in.Len(), out.Len(), want.Len())
	}
	got := []int64{c.Data[0].Rows, c.Data[1].Rows, c.Data[2].Rows}
	if diff := cmp.Diff([]int64{3000, 3, 0}, got); diff != "" {
		t.Errorf("rows (-want +got):\n%s", diff)
	}
}

// TestCompactArchiveRefuses: a stream that is not a whole archive is refused with
// ErrNotArchive; a writer that fails is reported as such, not as a bad archive.
func TestCompactArchiveRefuses(t *testing.T) {
	a := validArchive(3)
	for _, n := range []int{0, 10, len(a) / 2, len(a) - 1} {
		if _, err := pg.CompactArchive(&bytes.Buffer{}, bytes.NewReader(a[:n])); !errors.Is(err, pg.ErrNotArchive) {
			t.Errorf("a %d-byte prefix of %d: %v", n, len(a), err)
		}
	}
	broken := errors.New("store gone")
	for _, after := range []int{0, 100, len(a) - 20} {
		_, err := pg.CompactArchive(&failingWriter{left: after, err: broken}, bytes.NewReader(a))
		if !errors.Is(err, broken) || !errors.Is(err, pg.ErrWrite) || errors.Is(err, pg.ErrNotArchive) {
			t.Errorf("writer failing after %d bytes: %v", after, err)
		}
	}
}

// failingWriter accepts left bytes, then fails.
type failingWriter struct {
	left int
	err  error
}

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, w.err
	}
	w.left -= len(p)
	return len(p), nil
}

// FuzzCompactArchive: any stream is compacted or refused as ReadArchiveContents would
// count or refuse it; a compacted archive counts the same and compacts to itself.
func FuzzCompactArchive(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00"))
	f.Add(validArchive(2))
	f.Fuzz(func(t *testing.T, b []byte) {
		var out bytes.Buffer
		var c pg.ArchiveContents
		var err error
		if n := allocated(func() { c, err = pg.CompactArchive(&out, bytes.NewReader(b)) }); n > 8<<20+256*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for a %d-byte archive", n, len(b))
		}
		want, werr := pg.ReadArchiveContents(bytes.NewReader(b))
		if (err == nil) != (werr == nil) || errors.Is(err, pg.ErrRowsUnknown) != errors.Is(werr, pg.ErrRowsUnknown) {
			t.Fatalf("compacting: %v; counting: %v", err, werr)
		}
		if err != nil {
			if !errors.Is(err, pg.ErrNotArchive) && !errors.Is(err, pg.ErrRowsUnknown) {
				t.Fatalf("error %v is neither ErrNotArchive nor ErrRowsUnknown", err)
			}
			if errors.Is(err, pg.ErrRowsUnknown) && !bytes.Equal(out.Bytes(), b) {
				t.Fatal("an archive of unknown compression was not copied as it is")
			}
			return
		}
		checkCompacted(t, want, c, out.Bytes())
		var twice bytes.Buffer
		if _, err := pg.CompactArchive(&twice, bytes.NewReader(out.Bytes())); err != nil || !bytes.Equal(twice.Bytes(), out.Bytes()) {
			t.Fatalf("compacting again: %v, or the copy changed", err)
		}
	})
}

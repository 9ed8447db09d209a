package pg_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// pipedDump is pg_dump -Fc written through a pipe, as backups are: no data offsets.
func pipedDump(t *testing.T, p *testenv.Postgres, db, z string) string {
	t.Helper()
	c, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", p.Major)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "archive.dump")
	cmd := exec.Command("bash", "-o", "pipefail", "-c", `"$1" -Fc -Z"$2" --no-owner --no-acl | cat > "$3"`, "_", c.Path, z, out)
	cmd.Env = p.Env(db)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("pg_dump: %v\n%s", err, b)
	}
	return out
}

func TestIndexArchiveLetsParallelRestoreSeek(t *testing.T) {
	for _, major := range []int{12, 15} {
		for _, z := range []string{"0", "6"} {
			t.Run(fmt.Sprintf("PostgreSQL %d -Z%s", major, z), func(t *testing.T) {
				p := testenv.StartPostgres(t, major)
				db := testenv.RandomName("idx_")
				p.CreateDatabase(t, db, "WIN1252")
				conn := p.Connect(t, db)
				if err := fixture.Create(t.Context(), conn, fixture.Tiny); err != nil {
					t.Fatal(err)
				}
				// Large objects are stored in a block of their own kind.
				p.Exec(t, db, "SELECT lo_from_bytea(0, convert_to(repeat('nota fiscal ', 5000), 'UTF8'))", "SELECT lo_from_bytea(0, '\\x00ff'::bytea)")
				want, err := fixture.Summarize(t.Context(), conn)
				if err != nil {
					t.Fatal(err)
				}
				file := pipedDump(t, p, db, z)
				before := listing(t, file)
				if offsets := dataOffsets(t, file); len(offsets) != 0 {
					t.Errorf("a piped archive's table of contents has data offsets: %v", offsets)
				}
				n, err := pg.IndexArchive(openRW(t, file))
				if err != nil {
					t.Fatal(err)
				}
				// ReadTOC reads the offsets written: each points at its entry's block.
				offsets := dataOffsets(t, file)
				if len(offsets) != n {
					t.Errorf("ReadTOC reads %d data offsets, %d were written", len(offsets), n)
				}
				raw, err := os.ReadFile(file)
				if err != nil {
					t.Fatal(err)
				}
				for id, off := range offsets {
					// A block: its type (1 data, 3 large objects), then the dump id as an
					// int (a sign byte and 4 bytes, least significant first).
					if b := raw[off:min(int64(len(raw)), off+6)]; len(b) < 6 || b[0] != 1 && b[0] != 3 || b[1] != 0 ||
						int(b[2])|int(b[3])<<8|int(b[4])<<16|int(b[5])<<24 != id {
						t.Errorf("entry %d: offset %d points at % x", id, off, b)
					}
				}
				if n < len(fixture.Tables)+1 {
					t.Errorf("indexed %d entries, want at least the %d tables and the large objects", n, len(fixture.Tables))
				}
				if after := listing(t, file); !cmp.Equal(before, after) {
					t.Errorf("the listing changed (-before +after):\n%s", cmp.Diff(before, after))
				}
				// Indexing twice finds nothing left to do.
				if again, err := pg.IndexArchive(openRW(t, file)); err != nil || again != 0 {
					t.Errorf("second pass: %d, %v", again, err)
				}
				target := testenv.RandomName("idxr_")
				p.CreateDatabase(t, target, "WIN1252")
				c, _ := pg.FindClient(pg.DefaultClientRoot, "pg_restore", major)
				cmd := exec.Command(c.Path, "--no-owner", "--no-acl", "--exit-on-error", "-j2", "-d", target, file)
				cmd.Env = p.Env(target)
				if b, err := cmd.CombinedOutput(); err != nil {
					t.Fatalf("pg_restore -j2: %v\n%s", err, b)
				}
				got, err := fixture.Summarize(t.Context(), p.Connect(t, target))
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("restored (-want +got):\n%s", diff)
				}
				var los int
				if err := p.Connect(t, target).QueryRow(t.Context(), "SELECT count(*) FROM pg_largeobject_metadata").Scan(&los); err != nil || los != 2 {
					t.Errorf("%d large objects restored (%v), want 2", los, err)
				}
			})
		}
	}
}

// readTOCFile is ReadTOC of the archive at path.
func readTOCFile(t *testing.T, path string) []pg.TOCEntry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	toc, err := pg.ReadTOC(f)
	if err != nil {
		t.Fatal(err)
	}
	return toc
}

// dataOffsets are the data offsets ReadTOC reads from file, by dump id.
func dataOffsets(t *testing.T, file string) map[int]int64 {
	t.Helper()
	out := map[int]int64{}
	for _, e := range readTOCFile(t, file) {
		if e.DataOffset != 0 {
			out[e.ID] = e.DataOffset
		}
	}
	return out
}

func TestIndexArchiveLeavesBrokenArchivesAlone(t *testing.T) {
	p := testenv.StartPostgres(t, 15)
	db := testenv.RandomName("idx_")
	p.CreateDatabase(t, db, "WIN1252")
	if err := fixture.Create(t.Context(), p.Connect(t, db), fixture.Tiny); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(pipedDump(t, p, db, "0"))
	if err != nil {
		t.Fatal(err)
	}
	tests := map[string][]byte{
		"truncated in the data":   good[:len(good)*3/4],
		"truncated in the header": good[:40],
		"a foreign block type":    append(append([]byte(nil), good...), 9, 0, 1, 0, 0, 0),
	}
	for name, b := range tests {
		t.Run(name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "a.dump")
			if err := os.WriteFile(f, b, 0o600); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			if _, err := pg.IndexArchive(openRW(t, f)); !errors.Is(err, pg.ErrNotArchive) {
				t.Fatalf("IndexArchive = %v, want ErrNotArchive", err)
			}
			after, _ := os.ReadFile(f)
			if sha256.Sum256(after) != sum {
				t.Fatal("a broken archive was modified")
			}
		})
	}
}

// FuzzIndexArchive: no input panics or allocates more than a small multiple of its
// size (a count or length the file cannot hold once made it allocate gigabytes and
// stall; see testdata/fuzz/FuzzIndexArchive/stall-*), a rejected one is left unchanged,
// and an indexed one is a header ReadArchiveHeader accepts, with nothing left to index.
func FuzzIndexArchive(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x00\x00\x00\x00"))
	f.Add(validArchive(2))
	f.Fuzz(func(t *testing.T, b []byte) {
		fh := scratchFile(t, b)
		var err error
		if n := allocated(func() { _, err = pg.IndexArchive(fh) }); n > 8<<20+256*uint64(len(b)) {
			t.Fatalf("allocated %d bytes for a %d-byte archive", n, len(b))
		}
		if err != nil {
			if !errors.Is(err, pg.ErrNotArchive) {
				t.Fatalf("error %v is not ErrNotArchive", err)
			}
			after := make([]byte, len(b)+1)
			if n, _ := fh.ReadAt(after, 0); !bytes.Equal(after[:n], b) {
				t.Fatal("a rejected input was modified")
			}
			return
		}
		if _, err := pg.ReadArchiveHeader(bytes.NewReader(b)); err != nil {
			t.Fatalf("indexed an archive whose header is refused: %v", err)
		}
		if again, err := pg.IndexArchive(fh); err != nil || again != 0 {
			t.Fatalf("second pass: %d, %v", again, err)
		}
	})
}

var scratch struct {
	sync.Mutex
	f *os.File
}

// scratchFile is one file per fuzzing process holding b, rewritten for each input, on
// tmpfs where the machine has one: a directory and a file made on disk for every input
// made the file system, not IndexArchive, what a fuzzing run measured.
func scratchFile(t *testing.T, b []byte) *os.File {
	t.Helper()
	scratch.Lock()
	defer scratch.Unlock()
	if scratch.f == nil {
		dir := "/dev/shm"
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			dir = os.TempDir()
		}
		f, err := os.CreateTemp(dir, "fuzz-archive-*")
		if err != nil {
			t.Fatal(err)
		}
		_ = os.Remove(f.Name()) // gone when the process ends
		scratch.f = f
	}
	if err := scratch.f.Truncate(0); err != nil {
		t.Fatal(err)
	}
	if _, err := scratch.f.WriteAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return scratch.f
}

func openRW(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func listing(t *testing.T, file string) []string {
	t.Helper()
	c, _ := pg.FindClient(pg.DefaultClientRoot, "pg_restore", 12)
	out, err := exec.Command(c.Path, "--list", file).Output()
	if err != nil {
		t.Fatalf("pg_restore --list: %v", err)
	}
	var lines []string
	for _, l := range bytes.Split(out, []byte("\n")) {
		if len(l) > 0 && l[0] != ';' {
			lines = append(lines, string(l))
		}
	}
	return lines
}

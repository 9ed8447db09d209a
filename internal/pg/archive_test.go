package pg_test

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"testing"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// dumpOf runs the real pg_dump on a small fixture database of that server major.
func dumpOf(t *testing.T, major int, args ...string) []byte {
	t.Helper()
	p := testenv.StartPostgres(t, major)
	db := testenv.RandomName("arch_")
	p.CreateDatabase(t, db, "WIN1252")
	if err := fixture.Create(t.Context(), p.Connect(t, db), fixture.Tiny); err != nil {
		t.Fatal(err)
	}
	c, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", major)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(c.Path, args...)
	cmd.Env = p.Env(db)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	return out
}

func TestReadArchiveHeaderOfRealDumps(t *testing.T) {
	for _, major := range []int{12, 15} {
		for _, z := range []string{"-Z0", "-Z6"} {
			t.Run(fmt.Sprintf("PostgreSQL %d %s", major, z), func(t *testing.T) {
				b := dumpOf(t, major, "-Fc", z, "--no-owner", "--no-acl")
				h, err := pg.ReadArchiveHeader(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if h.Version != "1.14" || h.Entries < 15 || h.Compressed != (z != "-Z0") || h.DumpVersion == "" || len(h.ServerVersion) < 2 || h.ServerVersion[:2] != fmt.Sprint(major) {
					t.Errorf("header %+v", h)
				}
				// Every truncation inside the header is refused; the first prefix that
				// parses says what the whole archive says.
				for n := 0; n < len(b); n++ {
					got, err := pg.ReadArchiveHeader(bytes.NewReader(b[:n]))
					if err == nil {
						if got != h || n < 60 {
							t.Fatalf("a %d-byte prefix parses as %+v", n, got)
						}
						break
					}
					if !errors.Is(err, pg.ErrNotArchive) {
						t.Fatalf("a %d-byte prefix: %v", n, err)
					}
				}
			})
		}
	}
}

func TestReadArchiveHeaderRefuses(t *testing.T) {
	plain := dumpOf(t, 15, "-Fp")
	tar := dumpOf(t, 15, "-Ft")
	custom := dumpOf(t, 15, "-Fc")
	flipped := append([]byte(nil), custom...)
	flipped[1] ^= 0x20
	wrongFormat := append([]byte(nil), custom...)
	wrongFormat[10] = 3 // the format byte: tar
	tests := map[string][]byte{
		"a plain SQL dump": plain,
		"a tar dump":       tar,
		"a flipped magic":  flipped,
		"another format":   wrongFormat,
		"nothing":          nil,
		"a gzip stream":    {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3},
	}
	for name, b := range tests {
		if _, err := pg.ReadArchiveHeader(bytes.NewReader(b)); !errors.Is(err, pg.ErrNotArchive) {
			t.Errorf("%s: %v, want ErrNotArchive", name, err)
		}
	}
}

// FuzzReadArchiveHeader: archive headers come from buckets; no input may panic or
// allocate without bound.
func FuzzReadArchiveHeader(f *testing.F) {
	f.Add([]byte("PGDMP\x01\x0e\x00\x04\x08\x01\x00\x06\x00\x00\x00"))
	f.Add([]byte("PGDMP\x01\x10\x00\x04\x08\x01\x01"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := pg.ReadArchiveHeader(bytes.NewReader(b))
		if err == nil && h.Entries <= 0 {
			t.Fatalf("accepted an empty table of contents: %+v", h)
		}
		if err != nil && !errors.Is(err, pg.ErrNotArchive) {
			t.Fatalf("error %v is not ErrNotArchive", err)
		}
	})
}

func TestFindClient(t *testing.T) {
	root := t.TempDir()
	for _, major := range []string{"12", "14", "17"} {
		mkExec(t, root+"/"+major+"/bin/pg_dump")
	}
	mkExec(t, root+"/notamajor/bin/pg_dump")
	tests := map[string]struct {
		min     int
		want    int
		wantErr bool
	}{
		"the server's own major":           {min: 12, want: 12},
		"the lowest major above a gap":     {min: 13, want: 14},
		"the newest for the newest server": {min: 17, want: 17},
		"none for a future server":         {min: 18, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := pg.FindClient(root, "pg_dump", tc.min)
			if tc.wantErr {
				if !errors.Is(err, pg.ErrNoClient) {
					t.Fatalf("err = %v, want ErrNoClient", err)
				}
				return
			}
			if err != nil || c.Major != tc.want {
				t.Fatalf("FindClient(%d) = %+v, %v; want major %d", tc.min, c, err, tc.want)
			}
		})
	}
}

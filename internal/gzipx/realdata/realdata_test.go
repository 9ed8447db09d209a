// Package realdata tests gzipx on real pg_dump archives (a package of its own: its
// servers and fixtures would make gzipx's build without cgo, which TestBuildsWithoutCgo
// runs, compile the whole test environment).
package realdata_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	kgzip "github.com/klauspost/compress/gzip"

	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestRealArchive: a real pg_dump archive, compressed into several members, reads back
// whole with gunzip (and then pg_restore), pigz, Go's, klauspost's and our reader.
func TestRealArchive(t *testing.T) {
	src := fixture.NewSource(t, 15, "gzipx_real", fixture.Size{Customers: 30_000})
	dump, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", src.PG.Major)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(dump.Path, "-Fc", "-Z0", "--no-owner", "--no-acl", src.Database)
	cmd.Env = src.PG.Env(src.Database)
	archive, err := cmd.Output()
	if err != nil {
		t.Fatalf("pg_dump: %v", err)
	}
	if len(archive) < 3*gzipx.MemberSize && gzipx.Implementation() != "compress/flate" {
		t.Fatalf("the archive (%d bytes) makes fewer than 3 members", len(archive))
	}
	restore, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", src.PG.Major)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rawPath := filepath.Join(dir, "raw.dump")
	if err := os.WriteFile(rawPath, archive, 0o600); err != nil {
		t.Fatal(err)
	}
	// The whole archive as SQL: pg_restore reads every block of every table.
	wantSQL := run(t, nil, restore.Path, "-f", "-", rawPath)

	gz := gzipxCompress(t, archive, gzipx.DefaultLevel)
	t.Logf("%s level %d: %d bytes -> %d", gzipx.Implementation(), gzipx.DefaultLevel, len(archive), len(gz))

	readers := map[string]func([]byte) ([]byte, error){
		"gunzip": func(b []byte) ([]byte, error) { return run(t, b, "gunzip", "-c"), nil },
		"pigz":   func(b []byte) ([]byte, error) { return run(t, b, "pigz", "-d", "-c"), nil },
		"compress/gzip": func(b []byte) ([]byte, error) {
			r, err := gzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		"klauspost/compress/gzip": func(b []byte) ([]byte, error) {
			r, err := kgzip.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
		"gzipx.NewReader": func(b []byte) ([]byte, error) {
			r, err := gzipx.NewReader(bytes.NewReader(b))
			if err != nil {
				return nil, err
			}
			return io.ReadAll(r)
		},
	}
	for name, read := range readers {
		t.Run(name, func(t *testing.T) {
			got, err := read(gz)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, archive) {
				t.Fatalf("%d bytes back, want %d", len(got), len(archive))
			}
		})
	}
	t.Run("gunzip | pg_restore", func(t *testing.T) {
		gzPath := filepath.Join(dir, "archive.dump.gz")
		if err := os.WriteFile(gzPath, gz, 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("bash", "-o", "pipefail", "-c", `gunzip -c "$1" | "$2" -f -`, "-", gzPath, restore.Path).Output()
		if err != nil {
			t.Fatalf("gunzip | pg_restore: %v", err)
		}
		if !bytes.Equal(unrestrict(out), unrestrict(wantSQL)) || !bytes.Contains(out, []byte("COPY public.itens_pedido")) {
			t.Fatalf("pg_restore through gunzip differs from the raw archive's (%d bytes, want %d)", len(out), len(wantSQL))
		}
	})
}

func gzipxCompress(t *testing.T, data []byte, level int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := gzipx.NewWriter(&buf, level, 2)
	if err != nil {
		t.Fatal(err)
	}
	// Uneven writes: members are cut by size, not by write.
	for p := data; len(p) > 0; {
		k := min(len(p), 100_000+len(p)%777)
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func run(t *testing.T, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.Bytes())
	}
	return out
}

// unrestrict drops psql's \restrict and \unrestrict lines, whose key pg_restore draws
// anew on every run.
func unrestrict(sql []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(sql, []byte("\n")) {
		if !bytes.HasPrefix(l, []byte(`\restrict `)) && !bytes.HasPrefix(l, []byte(`\unrestrict `)) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

package gzipx_test

import (
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/gzipx"
)

// TestImplementation: the default build of this machine (cgo on, as the images build)
// compresses with libdeflate, and a build without cgo with the standard library, so a
// build that silently lost cgo is caught here.
func TestImplementation(t *testing.T) {
	out, err := exec.Command("go", "env", "CGO_ENABLED").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "compress/flate"
	if strings.TrimSpace(string(out)) == "1" {
		want = "libdeflate 1.14"
	}
	if got := gzipx.Implementation(); got != want {
		t.Errorf("Implementation() = %q, want %q (go env CGO_ENABLED = %s)", got, want, out)
	}
	var buf bytes.Buffer
	w, err := gzipx.NewWriter(&buf, gzipx.HuffmanOnly, 2)
	if err != nil {
		t.Fatal(err)
	}
	if got := w.Implementation(); got != "compress/flate" {
		t.Errorf("Huffman-only coding is done by %q, want compress/flate", got)
	}
	_ = w.Close()
}

// TestBuildsWithoutCgo: the package's tests pass in a build without cgo (the pure-Go
// fallback), and the binaries that use it build that way.
func TestBuildsWithoutCgo(t *testing.T) {
	if os.Getenv("CGO_ENABLED") == "0" {
		t.Skip("this is the build without cgo")
	}
	if testing.Short() {
		t.Skip("builds the package again")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"test", "-count=1", "-run", "TestRoundTrip|TestImplementation|TestReader|TestWriteErrorsSurface", "./internal/gzipx/"},
		{"build", "-o", os.DevNull, "./cronbackup"},
		{"build", "-o", os.DevNull, "./initrestore"},
	} {
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("CGO_ENABLED=0 go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
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

// TestReader: the reader reads every kind of gzip stream the objects may be, and tells
// a corrupt or truncated one (ErrCorrupt) from a failing store.
func TestReader(t *testing.T) {
	data := bytes.Repeat([]byte("João Conceição;AÇÃO;    São Paulo      ;1234\n"), 400_000)
	stdlib := func(level int) []byte {
		var b bytes.Buffer
		w, _ := gzip.NewWriterLevel(&b, level)
		_, _ = w.Write(data)
		_ = w.Close()
		return b.Bytes()
	}
	ours := gzipxCompress(t, data, gzipx.DefaultLevel)
	streams := map[string][]byte{
		"one member (the page's gzip)": run(t, data, "gzip", "-6", "-c"),
		"one member (compress/gzip)":   stdlib(6),
		"this package's members":       ours,
		"pigz's output":                run(t, data, "pigz", "-6", "-c"),
		"two streams concatenated":     append(append([]byte(nil), stdlib(1)...), ours...),
	}
	for name, gz := range streams {
		t.Run(name, func(t *testing.T) {
			r, err := gzipx.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			want := data
			if strings.HasPrefix(name, "two") {
				want = append(append([]byte(nil), data...), data...)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("%d bytes back, want %d", len(got), len(want))
			}
		})
	}
	flipped := append([]byte(nil), ours...)
	flipped[len(flipped)/2] ^= 0x40
	badCRC := append([]byte(nil), ours...)
	badCRC[len(badCRC)-6] ^= 1
	corrupt := map[string][]byte{
		"empty":                 nil,
		"not gzip":              []byte("PGDMP this is a raw archive"),
		"truncated":             ours[:len(ours)*2/3],
		"a flipped byte":        flipped,
		"a wrong checksum":      badCRC,
		"cut inside the header": ours[:5],
	}
	for name, gz := range corrupt {
		t.Run("corrupt: "+name, func(t *testing.T) {
			r, err := gzipx.NewReader(bytes.NewReader(gz))
			if err == nil {
				_, err = io.Copy(io.Discard, r)
			}
			if !errors.Is(err, gzipx.ErrCorrupt) {
				t.Fatalf("got %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("a failing store is not corruption", func(t *testing.T) {
		storeErr := errors.New("connection reset")
		r, err := gzipx.NewReader(io.MultiReader(bytes.NewReader(ours[:len(ours)/2]), &failing{storeErr}))
		if err == nil {
			_, err = io.Copy(io.Discard, r)
		}
		if !errors.Is(err, storeErr) || errors.Is(err, gzipx.ErrCorrupt) {
			t.Fatalf("got %v, want the store's error and not ErrCorrupt", err)
		}
	})
}

type failing struct{ err error }

func (f *failing) Read([]byte) (int, error) { return 0, f.err }

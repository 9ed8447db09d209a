package gzipx

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"errors"
	"io"
	"math/rand/v2"
	"os/exec"
	"strings"
	"testing"
)

// corpus is compressible text with long-range repetition and some noise.
func corpus(n int, seed byte) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{seed}))
	words := strings.Fields("João Conceição AÇÃO São Paulo Florianópolis pedido nota fiscal 1234 cliente entrega recepção Ltda")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		if r.IntN(7) == 0 {
			b.WriteByte(byte(r.IntN(256)))
		}
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

// impls are the writers this build has: the standard library's always, libdeflate's
// with cgo.
func impls() []string {
	if implLibdeflate == "" {
		return []string{implFlate}
	}
	return []string{implFlate, implLibdeflate}
}

func compress(t testing.TB, impl string, data []byte, level, workers, block, chunk int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := newWriter(&out, level, workers, block, impl)
	if err != nil {
		t.Fatal(err)
	}
	for p := data; len(p) > 0; {
		k := min(chunk, len(p))
		if _, err := w.Write(p[:k]); err != nil {
			t.Fatal(err)
		}
		p = p[k:]
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func TestRoundTrip(t *testing.T) {
	tests := map[string]struct {
		size, level, workers, block, chunk int
	}{
		"empty input":                        {0, 6, 2, 1 << 16, 100},
		"less than a block":                  {1000, 6, 2, 1 << 16, 100},
		"exactly one block":                  {1 << 16, 6, 2, 1 << 16, 1 << 16},
		"many blocks, odd writes":            {3<<20 + 17, 6, 3, 1 << 18, 7777},
		"blocks smaller than the dictionary": {200 << 10, 6, 2, 10 << 10, 999},
		"one worker":                         {1 << 20, 6, 1, 1 << 17, 4096},
		"store only":                         {1 << 20, 0, 2, 1 << 17, 4096},
		"huffman only":                       {1 << 20, flate.HuffmanOnly, 2, 1 << 17, 4096},
		"best compression":                   {1 << 20, 9, 2, 1 << 17, 4096},
	}
	for name, tc := range tests {
		for _, impl := range impls() {
			if tc.level == flate.HuffmanOnly && impl != implFlate {
				continue // libdeflate has no Huffman-only mode
			}
			t.Run(impl+"/"+name, func(t *testing.T) {
				data := corpus(tc.size, 1)
				gz := compress(t, impl, data, tc.level, tc.workers, tc.block, tc.chunk)
				r, err := gzip.NewReader(bytes.NewReader(gz))
				if err != nil {
					t.Fatal(err)
				}
				// The standard library's writer makes one member; libdeflate's, one per block.
				r.Multistream(impl != implFlate)
				got, err := io.ReadAll(r)
				if err != nil {
					t.Fatalf("reading back: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatalf("round trip differs: %d bytes in, %d out", len(data), len(got))
				}
			})
		}
	}
}

// TestRatioMatchesOneStream: the dictionaries keep the ratio within 0.5 % of a single
// stream of the same level.
func TestRatioMatchesOneStream(t *testing.T) {
	data := corpus(8<<20, 2)
	var one bytes.Buffer
	w, _ := gzip.NewWriterLevel(&one, 6)
	_, _ = w.Write(data)
	_ = w.Close()
	par := compress(t, implFlate, data, 6, 4, flateBlockSize, 64<<10)
	if ratio := float64(len(par)) / float64(one.Len()); ratio > 1.005 {
		t.Errorf("parallel output %d bytes is %.4f× one stream's %d", len(par), ratio, one.Len())
	}
}

// TestGunzipReadsIt: the system's gunzip (what the operations page restores with)
// accepts the output.
func TestGunzipReadsIt(t *testing.T) {
	if _, err := exec.LookPath("gunzip"); err != nil {
		t.Fatal("gunzip is needed: it is how backups are restored by hand")
	}
	data := corpus(2<<20+3, 3)
	for _, impl := range impls() {
		cmd := exec.Command("gunzip", "-c")
		cmd.Stdin = bytes.NewReader(compress(t, impl, data, 6, 2, 1<<18, 5000))
		got, err := cmd.Output()
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: gunzip: %v, %d bytes (want %d)", impl, err, len(got), len(data))
		}
	}
}

type failingWriter struct{ after int }

func (f *failingWriter) Write(p []byte) (int, error) {
	if f.after -= len(p); f.after < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

func TestWriteErrorsSurface(t *testing.T) {
	for _, impl := range impls() {
		w, err := newWriter(&failingWriter{after: 50 << 10}, 6, 2, 1<<16, impl)
		if err != nil {
			t.Fatal(err)
		}
		data := corpus(4<<20, 4)
		for p := data; len(p) > 0 && err == nil; p = p[min(len(p), 8192):] {
			_, err = w.Write(p[:min(len(p), 8192)])
		}
		if cerr := w.Close(); err == nil && cerr == nil {
			t.Fatalf("%s: an output error was swallowed", impl)
		}
	}
}

func FuzzRoundTrip(f *testing.F) {
	f.Add([]byte("AÇÃO João"), uint8(6), uint16(100))
	f.Fuzz(func(t *testing.T, data []byte, level uint8, block uint16) {
		lvl := int(level%11) - 1
		if lvl == -1 {
			lvl = flate.HuffmanOnly
		}
		for _, impl := range impls() {
			if lvl == flate.HuffmanOnly && impl != implFlate {
				continue
			}
			gz := compress(t, impl, data, lvl, 2, int(block)+1, 13)
			r, err := gzip.NewReader(bytes.NewReader(gz))
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(r)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("%s: round trip: %v", impl, err)
			}
		}
	})
}

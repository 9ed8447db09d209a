package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/google/go-cmp/cmp"

	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// driver is one store under test against its real server.
type driver struct {
	// open returns a fresh, empty store (a new bucket or directory).
	open func(t *testing.T) Store
	// openLarge opens a fresh store for the large round trip, when it needs other
	// options than the defaults.
	openLarge func(t *testing.T) Store
	// leftovers lists what an aborted write left behind outside the object namespace
	// (temporary files, pending multipart uploads).
	leftovers func(t *testing.T, s Store) []string
	// unreachable are URLs whose store cannot answer.
	unreachable func(t *testing.T) []string
}

func drivers() map[string]driver {
	return map[string]driver{
		"file": {
			open: func(t *testing.T) Store { return mustOpen(t, "file://"+t.TempDir()+"/volume-root", true) },
			leftovers: func(t *testing.T, s Store) []string {
				var left []string
				_ = filepath.WalkDir(s.(*fileStore).root, func(p string, d os.DirEntry, err error) error {
					if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
						left = append(left, p)
					}
					return nil
				})
				return left
			},
			unreachable: func(t *testing.T) []string {
				return []string{"file://" + t.TempDir() + "/volume-not-mounted"}
			},
		},
		"gcs": {
			open: func(t *testing.T) Store { return mustOpen(t, testenv.StartGCS(t).NewBucket(t), false) },
			// fake-gcs-server rehashes the whole upload on every chunk (quadratic in the
			// number of chunks), so the large round trip uses 32 MiB chunks to finish in
			// about a minute (one chunk is buffered: 32 MiB stays within the memory
			// bound); smaller tests use the driver's default 16 MiB.
			openLarge: func(t *testing.T) Store {
				return mustOpen(t, testenv.StartGCS(t).NewBucket(t)+"&chunk_size_mib=32", false)
			},
			// Resumable upload sessions never appear as objects; nothing else to see.
			leftovers: func(t *testing.T, s Store) []string { return nil },
			unreachable: func(t *testing.T) []string {
				g := testenv.StartGCS(t)
				return []string{
					fmt.Sprintf("gs://no-such-bucket-%d?endpoint=%s&anonymous=true", time.Now().UnixNano(), g.Endpoint),
					fmt.Sprintf("gs://some-bucket?endpoint=http://127.0.0.1:%d&anonymous=true", testenv.FreePort(t)),
				}
			},
		},
		"s3": {
			open: func(t *testing.T) Store { return mustOpen(t, testenv.StartS3(t).NewBucket(t), false) },
			leftovers: func(t *testing.T, s Store) []string {
				st := s.(*s3Store)
				out, err := testenv.StartS3(t).Client().ListMultipartUploads(context.Background(), &s3.ListMultipartUploadsInput{Bucket: aws.String(st.loc.Bucket)})
				if err != nil {
					t.Fatalf("listing multipart uploads: %v", err)
				}
				var left []string
				for _, u := range out.Uploads {
					left = append(left, "pending multipart upload of "+aws.ToString(u.Key))
				}
				return left
			},
			unreachable: func(t *testing.T) []string {
				s := testenv.StartS3(t)
				return []string{
					fmt.Sprintf("s3://no-such-bucket-%d?endpoint=%s&region=us-east-1", time.Now().UnixNano(), s.Endpoint),
					fmt.Sprintf("s3://some-bucket?endpoint=http://127.0.0.1:%d&region=us-east-1", testenv.FreePort(t)),
				}
			},
		},
	}
}

func mustOpen(t *testing.T, url string, mkdir bool) Store {
	t.Helper()
	if mkdir {
		if err := os.MkdirAll(strings.TrimPrefix(url, "file://"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	s, err := Open(context.Background(), url)
	if err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	for name, d := range drivers() {
		t.Run(name, func(t *testing.T) {
			t.Run("round trip of a large stream with bounded memory", func(t *testing.T) { testRoundTrip(t, name, d) })
			t.Run("small object, metadata and stat", func(t *testing.T) { testSmall(t, d) })
			t.Run("cancelled upload leaves nothing", func(t *testing.T) { testCancelledUpload(t, d) })
			t.Run("failed overwrite keeps the old object", func(t *testing.T) { testFailedOverwrite(t, d) })
			t.Run("only a clean io.EOF commits", func(t *testing.T) { testOnlyCleanEOFCommits(t, d) })
			t.Run("missing object is ErrNotFound", func(t *testing.T) { testMissing(t, d) })
			t.Run("unreachable store is not ErrNotFound", func(t *testing.T) { testUnreachable(t, d) })
			t.Run("list under a prefix", func(t *testing.T) { testList(t, d) })
			t.Run("copy and delete", func(t *testing.T) { testCopyDelete(t, d) })
			t.Run("invalid keys are refused", func(t *testing.T) { testInvalidKeys(t, d) })
		})
	}
}

// roundTripBytes is 1 GiB unless SMARTBACKUP_TEST_ROUNDTRIP_MIB says otherwise.
func roundTripBytes() int64 {
	if n, err := strconv.Atoi(os.Getenv("SMARTBACKUP_TEST_ROUNDTRIP_MIB")); err == nil && n > 0 {
		return int64(n) << 20
	}
	return 1 << 30
}

// maxRSS is the memory bound of a large transfer.
const maxRSS = 128 << 20

func testRoundTrip(t *testing.T, name string, d driver) {
	open := d.open
	if d.openLarge != nil {
		open = d.openLarge
	}
	s := open(t)
	ctx := t.Context()
	size := roundTripBytes()
	resetPeakRSS(t)

	start := time.Now()
	gen := newGenerator(size, 1)
	info, err := s.Put(ctx, "ns/big.dump.gz", gen, PutOptions{ContentType: "application/gzip"})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	writeDur := time.Since(start)
	if info.Size != size {
		t.Fatalf("Put reported size %d, want %d", info.Size, size)
	}
	want := gen.sum()

	start = time.Now()
	rc, info, err := s.Open(ctx, "ns/big.dump.gz")
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	h := sha256.New()
	n, err := io.Copy(h, rc)
	_ = rc.Close()
	if err != nil {
		t.Fatalf("reading back: %v", err)
	}
	readDur := time.Since(start)
	if n != size || info.Size != size {
		t.Fatalf("read %d bytes, Open said %d, want %d", n, info.Size, size)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != want {
		t.Fatalf("sha256 read back %s, wrote %s", got, want)
	}
	peak := peakRSS(t)
	mib := float64(size) / (1 << 20)
	t.Logf("METRIC storage driver=%s bytes=%d write_MiBps=%.0f read_MiBps=%.0f peak_rss_MiB=%.1f",
		name, size, mib/writeDur.Seconds(), mib/readDur.Seconds(), float64(peak)/(1<<20))
	if peak > maxRSS {
		t.Errorf("peak RSS %d MiB over the %d MiB bound", peak>>20, maxRSS>>20)
	}
}

func testSmall(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	md := map[string]string{"sha256": strings.Repeat("ab", 32), "source-namespace": "cliente-prod"}
	before := time.Now().Add(-time.Minute)
	info, err := s.Put(ctx, "ns/small.json", strings.NewReader(`{"a":1}`), PutOptions{ContentType: "application/json", Metadata: md})
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	got, err := s.Stat(ctx, "ns/small.json")
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if got.Key != "ns/small.json" || got.Size != 7 || got.Modified.Before(before) {
		t.Errorf("Stat = %+v", got)
	}
	if diff := cmp.Diff(md, got.Metadata); diff != "" {
		t.Errorf("metadata (-want +got):\n%s", diff)
	}
	if info.Size != got.Size {
		t.Errorf("Put said size %d, Stat %d", info.Size, got.Size)
	}
	if b := readAll(t, s, "ns/small.json"); string(b) != `{"a":1}` {
		t.Errorf("content %q", b)
	}
	// An empty object is a valid object.
	if _, err := s.Put(ctx, "ns/empty", strings.NewReader(""), PutOptions{}); err != nil {
		t.Fatalf("Put empty: %v", err)
	}
	if info, err := s.Stat(ctx, "ns/empty"); err != nil || info.Size != 0 {
		t.Errorf("Stat empty = %+v, %v", info, err)
	}
}

func testCancelledUpload(t *testing.T, d driver) {
	s := d.open(t)
	ctx, cancel := context.WithCancel(t.Context())
	// Feed more than a part/chunk, check nothing is visible, then cancel mid-stream.
	fed := make(chan struct{})
	r := &stallingReader{src: newGenerator(1<<40, 2), after: 40 << 20, reached: fed, ctx: ctx}
	done := make(chan error, 1)
	go func() {
		_, err := s.Put(ctx, "ns/partial.dump.gz", r, PutOptions{})
		done <- err
	}()
	select {
	case <-fed:
	case err := <-done:
		t.Fatalf("Put ended before the stall: %v", err)
	}
	if _, err := s.Stat(t.Context(), "ns/partial.dump.gz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("mid-upload Stat = %v, want ErrNotFound", err)
	}
	if l, err := s.List(t.Context(), ""); err != nil || len(l) != 0 {
		t.Errorf("mid-upload List = %v, %v; want nothing", l, err)
	}
	cancel()
	if err := <-done; err == nil {
		t.Fatal("Put of a cancelled upload succeeded")
	}
	assertAbsent(t, d, s, "ns/partial.dump.gz")
}

func testFailedOverwrite(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "ns/latest", strings.NewReader("good backup"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("pg_dump was killed")
	_, err := s.Put(ctx, "ns/latest", io.MultiReader(io.LimitReader(newGenerator(1<<40, 3), 30<<20), errReader{boom}), PutOptions{})
	if !errors.Is(err, boom) {
		t.Fatalf("Put = %v, want the reader's error", err)
	}
	if b := readAll(t, s, "ns/latest"); string(b) != "good backup" {
		t.Fatalf("after a failed overwrite the object holds %d bytes, want the old content", len(b))
	}
	if left := d.leftovers(t, s); len(left) > 0 {
		t.Errorf("leftovers after a failed write: %v", left)
	}
}

// testOnlyCleanEOFCommits: a source that ends with anything but exactly io.EOF (a
// truncated stream's io.ErrUnexpectedEOF, an error wrapping io.EOF, an error given with
// the last bytes) fails the write, whether the stream is shorter than one part or spans
// several, and the object written before stays whole.
func testOnlyCleanEOFCommits(t *testing.T, d driver) {
	ends := map[string]error{
		"io.ErrUnexpectedEOF":             io.ErrUnexpectedEOF,
		"an error wrapping io.EOF":        fmt.Errorf("reading the source: %w", io.EOF),
		"an error wrapping ErrUnexpected": fmt.Errorf("gunzip: %w", io.ErrUnexpectedEOF),
	}
	sizes := map[string]int64{"less than one part": 1 << 10, "several parts": 40 << 20}
	s := d.open(t)
	ctx := t.Context()
	for endName, end := range ends {
		for sizeName, size := range sizes {
			for _, withData := range []bool{false, true} {
				t.Run(fmt.Sprintf("%s after %s, with the last bytes=%v", endName, sizeName, withData), func(t *testing.T) {
					key := "ns/" + strings.NewReplacer(" ", "-", ".", "-").Replace(strings.ToLower(endName+"-"+sizeName)) + ".dump.gz"
					if _, err := s.Put(ctx, key, strings.NewReader("good backup"), PutOptions{}); err != nil {
						t.Fatal(err)
					}
					r := &endingReader{src: newGenerator(size, 4), end: end, withData: withData}
					if _, err := s.Put(ctx, key, r, PutOptions{}); !errors.Is(err, end) {
						t.Fatalf("Put = %v, want the source's error %v", err, end)
					}
					if b := readAll(t, s, key); string(b) != "good backup" {
						t.Fatalf("after a source that failed with %v the object holds %d bytes, want the old content", end, len(b))
					}
					if left := d.leftovers(t, s); len(left) > 0 {
						t.Errorf("leftovers after a failed write: %v", left)
					}
				})
			}
		}
	}
	// And a clean io.EOF, given with the last bytes, commits everything.
	r := &endingReader{src: newGenerator(40<<20, 5), end: io.EOF, withData: true}
	info, err := s.Put(ctx, "ns/clean.dump.gz", r, PutOptions{})
	if err != nil || info.Size != 40<<20 {
		t.Fatalf("Put of a clean stream = %+v, %v", info, err)
	}
}

func testMissing(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	if _, err := s.Put(ctx, "ns/other", strings.NewReader("x"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"ns/database_latest.dump.gz", "nobody/database_latest.dump.gz", "ns/other/below"} {
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
		}
		if _, _, err := s.Open(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, ErrNotFound) {
			t.Errorf("Delete(%q) = %v, want ErrNotFound", key, err)
		}
		if _, err := s.Copy(ctx, key, "ns/copy"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Copy(%q) = %v, want ErrNotFound", key, err)
		}
	}
	if l, err := s.List(ctx, "nobody/"); err != nil || len(l) != 0 {
		t.Errorf("List of an empty prefix = %v, %v; want nothing, no error", l, err)
	}
}

func testUnreachable(t *testing.T, d driver) {
	for _, url := range d.unreachable(t) {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		s, err := Open(ctx, url)
		if err != nil {
			cancel()
			t.Fatalf("Open(%s) should defer errors to the first call: %v", url, err)
		}
		key := "ns/database_latest.dump.gz"
		if _, err := s.Stat(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: Stat = %v, want an error that is not ErrNotFound", url, err)
		}
		if _, _, err := s.Open(ctx, key); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("%s: Open = %v, want an error that is not ErrNotFound", url, err)
		}
		if _, err := s.List(ctx, "ns/"); err == nil {
			t.Errorf("%s: List succeeded on an unreachable store", url)
		}
		if _, err := s.Put(ctx, key, strings.NewReader("x"), PutOptions{}); err == nil {
			t.Errorf("%s: Put succeeded on an unreachable store", url)
		}
		_ = s.Close()
		cancel()
	}
}

func testList(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	keys := []string{"prod/database_20261120T210000Z.dump.gz", "prod/database_20261121T210000Z.dump.gz", "prod/database_latest.dump.gz", "prod-b/x", "homolog/y", "top"}
	for _, k := range keys {
		if _, err := s.Put(ctx, k, strings.NewReader(k), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	tests := map[string]struct {
		prefix string
		want   []string
	}{
		"a namespace":            {"prod/", keys[:3]},
		"a key prefix":           {"prod/database_2026112", keys[:2]},
		"a prefix without slash": {"prod", []string{"prod-b/x", keys[0], keys[1], keys[2]}},
		"everything":             {"", []string{"homolog/y", "prod-b/x", keys[0], keys[1], keys[2], "top"}},
		"nothing":                {"staging/", nil},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			l, err := s.List(ctx, tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range l {
				got = append(got, o.Key)
				if o.Size != int64(len(o.Key)) {
					t.Errorf("%s: size %d, want %d", o.Key, o.Size, len(o.Key))
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("List(%q) (-want +got):\n%s", tc.prefix, diff)
			}
		})
	}
}

func testCopyDelete(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	md := map[string]string{"sha256": "0123"}
	if _, err := s.Put(ctx, "prod/database_20261124T210000Z.dump.gz", strings.NewReader("new"), PutOptions{Metadata: md}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, "prod/database_latest.dump.gz", strings.NewReader("old"), PutOptions{}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Copy(ctx, "prod/database_20261124T210000Z.dump.gz", "prod/database_latest.dump.gz")
	if err != nil {
		t.Fatalf("Copy: %v", err)
	}
	if info.Key != "prod/database_latest.dump.gz" || info.Size != 3 {
		t.Errorf("Copy returned %+v", info)
	}
	if b := readAll(t, s, "prod/database_latest.dump.gz"); string(b) != "new" {
		t.Errorf("copy holds %q", b)
	}
	if got, _ := s.Stat(ctx, "prod/database_latest.dump.gz"); got.Metadata["sha256"] != "0123" {
		t.Errorf("copy lost the metadata: %v", got.Metadata)
	}
	// Copying twice is harmless.
	if _, err := s.Copy(ctx, "prod/database_20261124T210000Z.dump.gz", "prod/database_latest.dump.gz"); err != nil {
		t.Fatalf("second Copy: %v", err)
	}
	if err := s.Delete(ctx, "prod/database_20261124T210000Z.dump.gz"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "prod/database_20261124T210000Z.dump.gz"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Stat after Delete = %v", err)
	}
	if b := readAll(t, s, "prod/database_latest.dump.gz"); string(b) != "new" {
		t.Errorf("deleting the source changed the copy: %q", b)
	}
	if l, _ := s.List(ctx, ""); len(l) != 1 {
		t.Errorf("List after Delete = %v (leftovers of the copy?)", l)
	}
}

// TestS3MultipartCopy forces the copy path used above 5 GiB on a smaller object.
func TestS3MultipartCopy(t *testing.T) {
	s := drivers()["s3"].open(t).(*s3Store)
	s.copyPartSize = 16 << 20
	ctx := t.Context()
	gen := newGenerator(50<<20+12345, 4)
	if _, err := s.Put(ctx, "a/src", gen, PutOptions{Metadata: map[string]string{"k": "v"}}); err != nil {
		t.Fatal(err)
	}
	info, err := s.Copy(ctx, "a/src", "a/dst")
	if err != nil {
		t.Fatalf("multipart Copy: %v", err)
	}
	if info.Size != 50<<20+12345 || info.Metadata["k"] != "v" {
		t.Errorf("copy = %+v", info)
	}
	h := sha256.New()
	rc, _, err := s.Open(ctx, "a/dst")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if _, err := io.Copy(h, rc); err != nil {
		t.Fatal(err)
	}
	if hex.EncodeToString(h.Sum(nil)) != gen.sum() {
		t.Error("multipart copy differs from its source")
	}
}

func testInvalidKeys(t *testing.T, d driver) {
	s := d.open(t)
	ctx := t.Context()
	for _, key := range []string{"", "/abs", "a/../b", "../escape", "a//b", "a/", tempPrefix + "x", "a/\x00b"} {
		if _, err := s.Put(ctx, key, strings.NewReader("x"), PutOptions{}); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.Stat(ctx, key); !errors.Is(err, ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := s.Put(ctx, "ns/x", strings.NewReader("x"), PutOptions{Metadata: map[string]string{"Bad Key": "v"}}); err == nil {
		t.Error("Put accepted a metadata key stores cannot keep")
	}
}

func assertAbsent(t *testing.T, d driver, s Store, key string) {
	t.Helper()
	// Stores may take a moment to abort in the background (the abort runs with its
	// own context): poll briefly.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := s.Stat(context.Background(), key)
		l, lerr := s.List(context.Background(), "")
		left := d.leftovers(t, s)
		if errors.Is(err, ErrNotFound) && lerr == nil && len(l) == 0 && len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an aborted write: Stat=%v, List=%v (%v), leftovers=%v", err, l, lerr, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readAll(t *testing.T, s Store, key string) []byte {
	t.Helper()
	rc, _, err := s.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("reading %q: %v", key, err)
	}
	return b
}

// generator streams n pseudo-random (incompressible) bytes and hashes them on the way.
type generator struct {
	left int64
	rng  *rand.ChaCha8
	h    hashWriter
}

type hashWriter interface {
	io.Writer
	Sum([]byte) []byte
}

func newGenerator(n int64, seed byte) *generator {
	var s [32]byte
	s[0] = seed
	return &generator{left: n, rng: rand.NewChaCha8(s), h: sha256.New()}
}

func (g *generator) Read(p []byte) (int, error) {
	if g.left == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	_, _ = g.rng.Read(p)
	_, _ = g.h.Write(p)
	g.left -= int64(len(p))
	return len(p), nil
}

func (g *generator) sum() string { return hex.EncodeToString(g.h.Sum(nil)) }

// stallingReader passes `after` bytes, signals, then blocks until its context ends.
type stallingReader struct {
	src     io.Reader
	after   int64
	read    int64
	reached chan struct{}
	ctx     context.Context
}

func (r *stallingReader) Read(p []byte) (int, error) {
	if r.read >= r.after {
		if r.reached != nil {
			close(r.reached)
			r.reached = nil
		}
		<-r.ctx.Done()
		return 0, r.ctx.Err()
	}
	if int64(len(p)) > r.after-r.read {
		p = p[:r.after-r.read]
	}
	n, err := r.src.Read(p)
	r.read += int64(n)
	return n, err
}

// endingReader streams src, then ends with end: on a read of its own, or (withData)
// on the read that returns the last bytes.
type endingReader struct {
	src      *generator
	end      error
	withData bool
}

func (r *endingReader) Read(p []byte) (int, error) {
	n, err := r.src.Read(p)
	if err == io.EOF || (r.withData && r.src.left == 0) {
		return n, r.end
	}
	return n, err
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// resetPeakRSS returns freed memory to the kernel, then resets the kernel's high-water
// mark of this process (Linux ≥ 4.0), so the peak measured next is the next test's.
func resetPeakRSS(t *testing.T) {
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Logf("cannot reset peak RSS: %v", err)
	}
}

func peakRSS(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatalf("reading peak RSS: %v", err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if v, ok := bytes.CutPrefix(line, []byte("VmHWM:")); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(string(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// TestS3ReusesPartBuffers: uploads one after the other share their part buffers, so a
// backup's dump and the manifests after it allocate them once (each small Put took a
// fresh 32 MiB before, which the heap grew by up to the soft memory limit).
func TestS3ReusesPartBuffers(t *testing.T) {
	s := drivers()["s3"].open(t).(*s3Store)
	ctx := t.Context()
	put := func(key string, n int64) {
		if _, err := s.Put(ctx, key, newGenerator(n, 5), PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("a/warm", 20<<20) // multipart: two buffers now free
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i := range 6 {
		put("a/manifest-"+strconv.Itoa(i), 300)
	}
	put("a/big", 40<<20)
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("6 small uploads and a 40 MiB one allocated %d MiB; their part buffers should be reused", got>>20)
	}
}

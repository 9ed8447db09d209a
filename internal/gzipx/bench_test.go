//go:build bench

package gzipx_test

// The compression benchmark: CPU-seconds per GB of archive and size against the
// operations page's pipeline (`pg_dump -Fc -Z6 | gzip`), and decode CPU per GB, on the
// ERP fixture and on a Protheus-like database (blank-padded char(n) columns), both
// on a real PostgreSQL 15:
//
//	go test -tags bench -count=1 -timeout 60m -run TestCompression -v ./internal/gzipx/
//
// SMARTBACKUP_BENCH_CUSTOMERS scales the ERP fixture (default 250000: a ~390 MB -Z0
// archive), SMARTBACKUP_BENCH_PROTHEUS_ROWS the Protheus-like one (default 400000).
// CPU is getrusage's (user+system), robust to the machine's load; each figure is the
// median of SMARTBACKUP_BENCH_RUNS (default 3).

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/pgzip"

	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return n
	}
	return def
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func procCPU(c *exec.Cmd) time.Duration {
	return c.ProcessState.UserTime() + c.ProcessState.SystemTime()
}

func median(xs []float64) float64 {
	xs = slices.Clone(xs)
	slices.Sort(xs)
	return xs[len(xs)/2]
}

// archives dumps src's database twice: -Z0 (what cronbackup compresses) and the page's
// pipeline, and returns their paths with the CPU of the page's compression (pg_dump
// -Z6's over pg_dump -Z0's, plus gzip's).
type archives struct {
	name, raw, page string
	rawSize         int64
	pageEncoderCPU  []float64 // seconds
	dumpZ0CPU       []float64
}

func dumpArchives(t *testing.T, src *fixture.Source, name string, runs int) archives {
	dump, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", src.PG.Major)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := archives{name: name, raw: filepath.Join(dir, "z0.dump"), page: filepath.Join(dir, "page.dump.gz")}
	pgdump := func(z string) *exec.Cmd {
		c := exec.Command(dump.Path, "-Fc", "-Z"+z, "--no-owner", "--no-acl", "--encoding", "WIN1252", src.Database)
		c.Env = src.PG.Env(src.Database)
		return c
	}
	for range runs {
		c := pgdump("0")
		out, err := os.Create(a.raw)
		if err != nil {
			t.Fatal(err)
		}
		c.Stdout = out
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		_ = out.Close()
		z0 := procCPU(c).Seconds()
		a.dumpZ0CPU = append(a.dumpZ0CPU, z0)

		d := pgdump("6")
		g := exec.Command("gzip", "-6")
		pr, pw := io.Pipe()
		d.Stdout = pw
		g.Stdin = pr
		gout, err := os.Create(a.page)
		if err != nil {
			t.Fatal(err)
		}
		g.Stdout = gout
		if err := g.Start(); err != nil {
			t.Fatal(err)
		}
		if err := d.Run(); err != nil {
			t.Fatal(err)
		}
		_ = pw.Close()
		if err := g.Wait(); err != nil {
			t.Fatal(err)
		}
		_ = gout.Close()
		a.pageEncoderCPU = append(a.pageEncoderCPU, procCPU(d).Seconds()-z0+procCPU(g).Seconds())
	}
	st, err := os.Stat(a.raw)
	if err != nil {
		t.Fatal(err)
	}
	a.rawSize = st.Size()
	return a
}

func fileSize(t *testing.T, path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

type encoder struct {
	name string
	run  func(in io.Reader, out io.Writer) error
}

func writerEncoder(name string, open func(io.Writer) (*gzipx.Writer, error)) encoder {
	return encoder{name, func(in io.Reader, out io.Writer) error {
		w, err := open(out)
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, in); err != nil {
			return err
		}
		return w.Close()
	}}
}

func libdeflateEncoder(level, workers, memberSize int) encoder {
	name := fmt.Sprintf("libdeflate %d, %d MiB members, %d workers", level, memberSize>>20, workers)
	if level == gzipx.DefaultLevel && memberSize == gzipx.MemberSize {
		name = "gzipx default: " + name
	}
	return writerEncoder(name, func(w io.Writer) (*gzipx.Writer, error) {
		return gzipx.NewLibdeflateWriter(w, level, workers, memberSize)
	})
}

type decoder struct {
	name string
	open func(io.Reader) (io.Reader, error)
}

var decoders = []decoder{
	{"compress/gzip", func(r io.Reader) (io.Reader, error) { return gzip.NewReader(r) }},
	{"klauspost/compress/gzip", func(r io.Reader) (io.Reader, error) { return kgzip.NewReader(r) }},
	{"klauspost/pgzip (1 MiB × 4)", func(r io.Reader) (io.Reader, error) { return pgzip.NewReaderN(r, 1<<20, 4) }},
	{"gzipx.NewReader", func(r io.Reader) (io.Reader, error) { return gzipx.NewReader(r) }},
}

func TestCompression(t *testing.T) {
	runs := envInt("SMARTBACKUP_BENCH_RUNS", 3)
	workers := envInt("SMARTBACKUP_BENCH_WORKERS", 2)
	var report bytes.Buffer
	backups = bytes.Buffer{}
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&report, "load average at start: %s", load)
	fmt.Fprintf(&report, "\n| fixture | encoder | CPU s/GB | ratio vs page CPU | size vs page |\n|---|---|---|---|---|\n")

	erp := fixture.NewSource(t, 15, "gzbench_erp", fixture.Size{Customers: envInt("SMARTBACKUP_BENCH_CUSTOMERS", 250_000)})
	prot := fixture.NewSource(t, 15, "gzbench_prot", fixture.Protheus{Tables: 2, Rows: envInt("SMARTBACKUP_BENCH_PROTHEUS_ROWS", 400_000)})
	encoders := []encoder{writerEncoder(fmt.Sprintf("before: compress/flate 6, primed 1 MiB blocks, %d workers", workers),
		func(w io.Writer) (*gzipx.Writer, error) { return gzipx.NewFlateWriter(w, 6, workers) })}
	for _, lvl := range []int{5, 6, 7, 8} {
		encoders = append(encoders, libdeflateEncoder(lvl, workers, gzipx.MemberSize))
	}
	for _, ms := range []int{1 << 20, 4 << 20, 8 << 20} {
		encoders = append(encoders, libdeflateEncoder(gzipx.DefaultLevel, workers, ms))
	}
	var decodeInputs []string
	for _, src := range []struct {
		name string
		s    *fixture.Source
	}{{"ERP", erp}, {"Protheus-like", prot}} {
		a := dumpArchives(t, src.s, src.name, runs)
		gb := float64(a.rawSize) / 1e9
		page := fileSize(t, a.page)
		pageCPU := median(a.pageEncoderCPU)
		t.Logf("%s: -Z0 archive %d bytes, page's object %d bytes, page's compression %.2fs CPU (pg_dump -Z0 %.2fs)",
			src.name, a.rawSize, page, pageCPU, median(a.dumpZ0CPU))
		fmt.Fprintf(&report, "| %s (%d MB -Z0) | the page (pg_dump -Z6 + gzip -6; pg_dump -Z0's CPU subtracted) | %.1f | 1.00 | 1.000 |\n",
			src.name, a.rawSize/1e6, pageCPU/gb)
		for _, e := range encoders {
			out := filepath.Join(t.TempDir(), "out.gz")
			var cpus []float64
			for range runs {
				in, err := os.Open(a.raw)
				if err != nil {
					t.Fatal(err)
				}
				o, err := os.Create(out)
				if err != nil {
					t.Fatal(err)
				}
				c0 := selfCPU()
				if err := e.run(in, o); err != nil {
					t.Fatal(err)
				}
				cpus = append(cpus, (selfCPU() - c0).Seconds())
				_ = in.Close()
				_ = o.Close()
			}
			size := fileSize(t, out)
			fmt.Fprintf(&report, "| %s | %s | %.1f | %.2f | %.3f |\n", src.name, e.name, median(cpus)/gb, median(cpus)/pageCPU, float64(size)/float64(page))
			if strings.HasPrefix(e.name, "gzipx default") {
				decodeInputs = append(decodeInputs, out+"|"+src.name+", gzipx default")
				kept := filepath.Join(t.TempDir(), "default.gz")
				if err := os.Rename(out, kept); err != nil {
					t.Fatal(err)
				}
				decodeInputs[len(decodeInputs)-1] = kept + "|" + src.name + ", gzipx default"
			}
		}
		decodeInputs = append(decodeInputs, a.page+"|"+src.name+", the page's object (its content: a -Z6 archive)")
		backupRun(t, src.name, src.s, a, runs)
	}
	report.Write(backups.Bytes())
	fmt.Fprintf(&report, "\n| object | decoder | CPU s/GB (uncompressed) | wall s/GB |\n|---|---|---|---|\n")
	for _, in := range decodeInputs {
		path, label, _ := strings.Cut(in, "|")
		for _, d := range decoders {
			var cpus, walls []float64
			var n int64
			for range runs {
				f, err := os.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				c0, w0 := selfCPU(), time.Now()
				r, err := d.open(f)
				if err != nil {
					t.Fatal(err)
				}
				n, err = io.Copy(io.Discard, r)
				if err != nil {
					t.Fatalf("%s on %s: %v", d.name, label, err)
				}
				cpus = append(cpus, (selfCPU() - c0).Seconds())
				walls = append(walls, time.Since(w0).Seconds())
				_ = f.Close()
			}
			gb := float64(n) / 1e9
			fmt.Fprintf(&report, "| %s | %s | %.2f | %.2f |\n", label, d.name, median(cpus)/gb, median(walls)/gb)
		}
	}
	load, _ = os.ReadFile("/proc/loadavg")
	fmt.Fprintf(&report, "\nload average at end: %s", load)
	t.Log("\n" + report.String())
	if p := os.Getenv("SMARTBACKUP_BENCH_REPORT"); p != "" {
		if err := os.WriteFile(p, report.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var backups bytes.Buffer

// backupRun runs the real cronbackup binary (this build: cgo, libdeflate) against src
// into a volume and reports its whole process's CPU, wall and peak RSS.
func backupRun(t *testing.T, name string, src *fixture.Source, a archives, runs int) {
	bin := testenv.Build(t, "cronbackup")
	if backups.Len() == 0 {
		fmt.Fprintf(&backups, "\n| fixture | backup | CPU s (with pg_dump) | wall s | peak RSS MiB | object bytes |\n|---|---|---|---|---|---|\n")
	}
	var page []float64
	for i := range a.pageEncoderCPU {
		page = append(page, a.pageEncoderCPU[i]+a.dumpZ0CPU[i])
	}
	fmt.Fprintf(&backups, "| %s | the page (pg_dump -Z6 \\| gzip -6) | %.2f | | | %d |\n", name, median(page), fileSize(t, a.page))
	for _, v := range []struct{ name, level string }{{"GZIP_LEVEL=auto", "auto"}, {"GZIP_LEVEL=6", "6"}} {
		var cpus, walls, rss []float64
		var size int64
		for range runs {
			dir := t.TempDir()
			c := exec.Command(bin, "backup")
			c.Env = append(os.Environ(), "DATABASE_ENDPOINT="+src.PG.Host, "DATABASE_PORT="+strconv.Itoa(src.PG.Port),
				"DATABASE_USER="+src.User, "DATABASE_PASSWORD="+src.Password, "DATABASE_CODEPAGE=WIN1252",
				"BACKUP_STORAGE_URL=file://"+dir, "NAMESPACE=bench-prod", "PROGRESS_INTERVAL=1h", "GZIP_LEVEL="+v.level,
				"GZIP_THREADS=2")
			var stderr bytes.Buffer
			c.Stderr = &stderr
			w0 := time.Now()
			if err := c.Run(); err != nil {
				t.Fatalf("cronbackup backup: %v\n%s", err, stderr.Bytes())
			}
			walls = append(walls, time.Since(w0).Seconds())
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			// The process's CPU and its waited-for child's, pg_dump.
			cpus = append(cpus, time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
			rss = append(rss, float64(ru.Maxrss)/1024)
			m, _ := filepath.Glob(filepath.Join(dir, "bench-prod", "database_2*.dump.gz"))
			if len(m) != 1 {
				t.Fatalf("backup objects: %v", m)
			}
			size = fileSize(t, m[0])
		}
		fmt.Fprintf(&backups, "| %s | %s | %.2f | %.2f | %.1f | %d |\n", name, v.name, median(cpus), median(walls), median(rss), size)
	}
}

// TestBackupRSS compares the whole backup's peak RSS with this build's gzip layer and
// with the build without cgo (the standard library's writer), on the ERP fixture:
//
//	go test -tags bench -count=1 -run TestBackupRSS -v ./internal/gzipx/
func TestBackupRSS(t *testing.T) {
	src := fixture.NewSource(t, 15, "gzbench_rss", fixture.Size{Customers: envInt("SMARTBACKUP_BENCH_CUSTOMERS", 150_000)})
	nocgo := filepath.Join(t.TempDir(), "cronbackup-nocgo")
	b := exec.Command("go", "build", "-o", nocgo, "./cronbackup")
	b.Dir = testenv.RepoRoot()
	b.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := b.CombinedOutput(); err != nil {
		t.Fatalf("building without cgo: %v\n%s", err, out)
	}
	for _, bin := range []string{testenv.Build(t, "cronbackup"), nocgo} {
		for _, level := range []string{"auto", "6"} {
			c := exec.Command(bin, "backup")
			c.Env = append(os.Environ(), "DATABASE_ENDPOINT="+src.PG.Host, "DATABASE_PORT="+strconv.Itoa(src.PG.Port),
				"DATABASE_USER="+src.User, "DATABASE_PASSWORD="+src.Password, "DATABASE_CODEPAGE=WIN1252",
				"BACKUP_STORAGE_URL=file://"+t.TempDir(), "NAMESPACE=bench-prod", "PROGRESS_INTERVAL=1h",
				"GZIP_LEVEL="+level, "GZIP_THREADS=2")
			out, err := c.CombinedOutput()
			if err != nil {
				t.Fatalf("cronbackup backup: %v\n%s", err, out)
			}
			ru := c.ProcessState.SysUsage().(*syscall.Rusage)
			impl := "?"
			if i := bytes.Index(out, []byte(`"gzip":"`)); i >= 0 {
				impl = string(out[i+8 : i+8+bytes.IndexByte(out[i+8:], '"')])
			}
			t.Logf("%s GZIP_LEVEL=%s: peak RSS %.1f MiB, CPU %.2fs", impl, level, float64(ru.Maxrss)/1024,
				time.Duration(ru.Utime.Nano()+ru.Stime.Nano()).Seconds())
		}
	}
}

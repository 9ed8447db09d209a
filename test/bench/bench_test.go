//go:build bench

// Package bench measures smartbackup against the baselines it must beat, on one
// machine in one run: `make bench` (not part of `make test`). It prints one line per
// metric as `name: ours=… baseline=… ratio=…` and a Markdown table, also written to
// test/bench/results.md.
//
// Knobs (environment): SMARTBACKUP_BENCH_CUSTOMERS (fixture scale, default 700000 ≈ 1 GB
// on disk), SMARTBACKUP_BENCH_LARGE (scale of the memory check's second database,
// default 4× that, ≈ 4 GB; 0 skips it), SMARTBACKUP_BENCH_RUNS (timed repetitions,
// default 3; medians are reported), SMARTBACKUP_BENCH_PARTS (comma list of data,
// memory, admission, protheus; default all: "data" is backup, restore and the init fast
// path on the ERP fixture, "protheus" backup and restore on a Protheus-shaped database
// of SMARTBACKUP_BENCH_PROTHEUS_TABLES tables, default 3000, and
// SMARTBACKUP_BENCH_PROTHEUS_ROWS rows in its big tables, default 1600000).
package bench

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// sample is one measured run of a command.
type sample struct {
	wall   time.Duration
	cpu    time.Duration // user+system of the process and its reaped children
	maxRSS int64         // bytes, the largest single process of the run
	size   int64         // output bytes, when there is an output
}

// runCmd runs a command and measures it with wait4's rusage (which covers the
// children it reaped: pg_dump under cronbackup, the pipeline under bash).
func runCmd(t *testing.T, env []string, name string, args ...string) sample {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	wall := time.Since(start)
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, tail(out))
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	return sample{wall: wall, cpu: cpu, maxRSS: ru.Maxrss << 10}
}

func tail(b []byte) string {
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return string(b)
}

// median of each field independently.
func median(ss []sample) sample {
	pick := func(f func(sample) float64) float64 {
		v := make([]float64, len(ss))
		for i, s := range ss {
			v[i] = f(s)
		}
		sort.Float64s(v)
		return v[len(v)/2]
	}
	return sample{
		wall:   time.Duration(pick(func(s sample) float64 { return float64(s.wall) })),
		cpu:    time.Duration(pick(func(s sample) float64 { return float64(s.cpu) })),
		maxRSS: int64(pick(func(s sample) float64 { return float64(s.maxRSS) })),
		size:   int64(pick(func(s sample) float64 { return float64(s.size) })),
	}
}

// report collects the lines and the table.
type report struct {
	lines []string
	rows  [][]string
}

func (r *report) metric(name string, ours, baseline float64, unit string, goal string) {
	ratio := ours / baseline
	if baseline == 0 {
		ratio = 0
		if ours != 0 {
			ratio = math.Inf(1)
		}
	}
	line := fmt.Sprintf("%s: ours=%s baseline=%s ratio=%.2f", name, fmtUnit(ours, unit), fmtUnit(baseline, unit), ratio)
	fmt.Println(line)
	r.lines = append(r.lines, line)
	r.rows = append(r.rows, []string{name, fmtUnit(ours, unit), fmtUnit(baseline, unit), fmt.Sprintf("%.2f", ratio), goal})
}

func (r *report) value(name string, ours float64, unit, goal string) {
	line := fmt.Sprintf("%s: ours=%s", name, fmtUnit(ours, unit))
	fmt.Println(line)
	r.lines = append(r.lines, line)
	r.rows = append(r.rows, []string{name, fmtUnit(ours, unit), "", "", goal})
}

func fmtUnit(v float64, unit string) string {
	switch unit {
	case "s":
		return fmt.Sprintf("%.2fs", v)
	case "ms":
		return fmt.Sprintf("%.1fms", v)
	case "MiB":
		return fmt.Sprintf("%.1fMiB", v)
	case "B":
		return fmt.Sprintf("%.0fB", v)
	}
	return fmt.Sprintf("%g%s", v, unit)
}

func (r *report) markdown() string {
	var b strings.Builder
	b.WriteString("| metric | ours | baseline | ratio | goal |\n|---|---|---|---|---|\n")
	for _, row := range r.rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
	return b.String()
}

// bench is the shared set-up of one run.
type bench struct {
	t          *testing.T
	pg         *testenv.Postgres
	src        *fixture.Source // the fixture the data parts measure
	label      string          // its name in the metrics
	protheus   string          // the Protheus-shaped fixture, when measured
	s3         *testenv.S3
	cronbackup string
	initres    string
	runs       int
	rep        *report
}

func TestBenchmarks(t *testing.T) {
	// The servers run with the durability customers' servers have, unless
	// SMARTBACKUP_TEST_PG_DURABLE=0 asks for the tests' settings (fsync off).
	if os.Getenv(testenv.DurableEnv) == "" {
		t.Setenv(testenv.DurableEnv, "1")
	}
	customers := envInt("SMARTBACKUP_BENCH_CUSTOMERS", 700_000)
	large := envInt("SMARTBACKUP_BENCH_LARGE", 4*customers)
	b := &bench{t: t, runs: max(envInt("SMARTBACKUP_BENCH_RUNS", 3), 1), rep: &report{}}
	parts := os.Getenv("SMARTBACKUP_BENCH_PARTS")
	want := func(p string) bool { return parts == "" || strings.Contains(","+parts+",", ","+p+",") }
	var dbBytes int64
	if want("data") || want("memory") || want("protheus") {
		b.pg = testenv.StartPostgres(t, 12)
		b.s3 = testenv.StartS3(t)
		b.cronbackup = testenv.Build(t, "cronbackup")
		b.initres = testenv.Build(t, "initrestore")
	}
	if want("data") || want("memory") {
		start := time.Now()
		b.src = fixture.NewSource(t, 12, "bench_erp", fixture.Size{Customers: customers})
		_ = b.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT pg_database_size($1)", b.src.Database).Scan(&dbBytes)
		fmt.Printf("bench: fixture of %d customers, %d MiB on disk, generated in %s (PostgreSQL %d, %d runs each)\n",
			customers, dbBytes>>20, time.Since(start).Round(time.Second), b.pg.Major, b.runs)
	}
	if want("data") {
		b.label = "ERP"
		objects := b.backups()
		b.restores(objects)
		b.fastPath(objects)
	}
	if want("memory") && large > 0 {
		b.memory(large)
	}
	if want("protheus") {
		shape := fixture.Protheus{Tables: envInt("SMARTBACKUP_BENCH_PROTHEUS_TABLES", 3000), Rows: envInt("SMARTBACKUP_BENCH_PROTHEUS_ROWS", 1_600_000)}
		start := time.Now()
		b.src = fixture.NewSource(t, 12, "bench_protheus", shape)
		var size int64
		_ = b.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT pg_database_size($1)", b.src.Database).Scan(&size)
		fmt.Printf("bench: Protheus-shaped fixture of %d tables (%d rows in sc6010), %d MiB on disk, generated in %s\n",
			shape.Tables, shape.Rows, size>>20, time.Since(start).Round(time.Second))
		b.label = fmt.Sprintf("Protheus %d tables", shape.Tables)
		b.protheus = fmt.Sprintf(", Protheus-shaped %d tables (%d MiB)", shape.Tables, size>>20)
		b.restores(b.backups())
	}
	if want("admission") {
		b.admission()
	}

	md := fmt.Sprintf("Fixtures: ERP %d customers (%d MiB on disk)%s; PostgreSQL 12 (durable: %s), MinIO on loopback, %d runs each (medians), %s.\n\n%s",
		customers, dbBytes>>20, b.protheus, os.Getenv(testenv.DurableEnv), b.runs, time.Now().UTC().Format("2006-01-02"), b.rep.markdown())
	fmt.Println()
	fmt.Print(md)
	if err := os.WriteFile(filepath.Join(testenv.RepoRoot(), "test", "bench", "results.md"), []byte(md), 0o644); err != nil {
		t.Fatal(err)
	}
}

// backupEnv is cronbackup's environment for the bench database into bucket.
func (b *bench) backupEnv(src *fixture.Source, bucket string, extra ...string) []string {
	return append(append(os.Environ(),
		"DATABASE_ENDPOINT="+src.PG.Host, "DATABASE_PORT="+strconv.Itoa(src.PG.Port), "DATABASE_USER="+src.User,
		"DATABASE_PASSWORD="+src.Password, "DATABASE_CODEPAGE=WIN1252", "BACKUP_STORAGE_URL="+bucket,
		"NAMESPACE=bench-prod", "BACKUP_KEEP_DAILY=30", "PROGRESS_INTERVAL=1h"), extra...)
}

// latestSize is the size of the backup a run promoted.
func (b *bench) latestSize(bucket string) int64 {
	st := b.store(bucket)
	defer st.Close()
	info, err := st.Stat(b.t.Context(), layout.LatestKey("bench-prod"))
	if err != nil {
		b.t.Fatal(err)
	}
	return info.Size
}

func (b *bench) store(url string) storage.Store {
	st, err := storage.Open(context.Background(), url)
	if err != nil {
		b.t.Fatal(err)
	}
	return st
}

// variant is one way to make the .dump.gz.
type variant struct {
	name string
	env  []string
}

// variants[0] is the default; the restore benchmarks use its object and the page's.
var variants = []variant{
	{"cronbackup default (-Z0 compacted inside, parallel gzip auto outside)", nil},
	{"cronbackup (page's -Z6 inside, Huffman-only gzip outside)", []string{"DUMP_COMPRESSION=6"}},
	{"cronbackup (page's -Z6 inside, parallel gzip -6 outside)", []string{"DUMP_COMPRESSION=6", "GZIP_LEVEL=6"}},
}

// backups measures the page's pipeline and each cronbackup variant; it returns a
// bucket URL per variant holding its latest backup, for the restore benchmarks.
func (b *bench) backups() map[string]string {
	t := b.t
	// Baseline: the operations page's literal pipeline to a file, then an upload of
	// that file to the same S3 server with the same client library.
	// The contenders take turns, run by run, so a drift of the machine (page cache,
	// writeback, another process) weighs on all of them alike.
	baseBucket := b.s3.NewBucket(t)
	buckets := map[string]string{}
	for _, v := range variants {
		buckets[v.name] = b.s3.NewBucket(t)
	}
	var base []sample
	runs := make([][]sample, len(variants))
	for range b.runs {
		out := filepath.Join(t.TempDir(), "database_latest.dump.gz")
		page := b.src.PageCommand(t, out)
		s := runCmd(t, page.Env, page.Path, page.Args[1:]...)
		up := b.upload(baseBucket, out)
		_ = os.Remove(out)
		s.wall += up.wall
		s.cpu += up.cpu
		s.size = up.size
		base = append(base, s)
		for i, v := range variants {
			s, _ := runSampled(t, b.backupEnv(b.src, buckets[v.name], v.env...), b.cronbackup, "backup")
			s.size = b.latestSize(buckets[v.name])
			runs[i] = append(runs[i], s)
		}
		time.Sleep(1100 * time.Millisecond) // one backup per second: names are timestamps
	}
	bm := median(base)
	fmt.Printf("bench: baseline backup wall=%s cpu=%s size=%d\n", bm.wall.Round(time.Millisecond), bm.cpu.Round(time.Millisecond), bm.size)
	for i, v := range variants {
		m := median(runs[i])
		prefix := fmt.Sprintf("%s backup[%s]", b.label, v.name)
		b.rep.metric(prefix+" wall", m.wall.Seconds(), bm.wall.Seconds(), "s", "")
		b.rep.metric(prefix+" cpu", m.cpu.Seconds(), bm.cpu.Seconds(), "s", goalIf(i == 0, "≤ 0.50"))
		b.rep.metric(prefix+" size", float64(m.size), float64(bm.size), "B", goalIf(i == 0, "≤ 1.02"))
		b.rep.value(prefix+" peak RSS (cronbackup)", float64(m.maxRSS)/(1<<20), "MiB", "≤ 128")
	}
	buckets["baseline"] = baseBucket
	return buckets
}

func goalIf(ok bool, g string) string {
	if ok {
		return g
	}
	return ""
}

// upload puts a file into bucket as bench-prod/database_latest.dump.gz and measures it
// (wall and this process's CPU).
func (b *bench) upload(bucket, path string) sample {
	st := b.store(bucket)
	defer st.Close()
	f, err := os.Open(path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	var before, after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	info, err := st.Put(b.t.Context(), layout.LatestKey("bench-prod"), f, storage.PutOptions{})
	if err != nil {
		b.t.Fatal(err)
	}
	wall := time.Since(start)
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	return sample{wall: wall, cpu: cpu, size: info.Size}
}

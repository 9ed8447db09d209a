//go:build bench

package bench

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
)

// restoreEnv is initrestore's environment restoring bench-prod's latest from bucket
// into db.
func (b *bench) restoreEnv(bucket, db string, extra ...string) []string {
	return append(append(os.Environ(),
		"DATABASE_ENDPOINT="+b.pg.Host, "DATABASE_PORT="+strconv.Itoa(b.pg.Port), "DATABASE_NAME="+db,
		"DATABASE_USER=bench_app", "DATABASE_PASSWORD=bench-app-pw", "DATABASE_ADMIN_USER="+b.pg.User,
		"DATABASE_ADMIN_PASSWORD="+b.pg.Password, "DATABASE_CODEPAGE=WIN1252", "DATABASE_EXTENSIONS=pg_trgm,unaccent",
		"BACKUP_STORAGE_URL="+bucket, "NAMESPACE=bench-hml", "RESTORE_SOURCE_NAMESPACE=bench-prod",
		"ENVIRONMENT=homologation", "PROGRESS_INTERVAL=1h"), extra...)
}

func (b *bench) dropDB(db string) {
	conn := b.pg.Connect(b.t, "postgres")
	for _, n := range []string{db, db + "__restoring"} {
		_, _ = conn.Exec(b.t.Context(), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", n)
		if _, err := conn.Exec(b.t.Context(), "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()); err != nil {
			b.t.Fatal(err)
		}
	}
}

func (b *bench) checkContent(db string) {
	sum, err := b.src.Shape.Summarize(b.t.Context(), b.pg.Connect(b.t, db))
	if err != nil {
		b.t.Fatal(err)
	}
	if d := b.src.Summary.Diff(sum, 5); len(d) > 0 {
		b.t.Fatalf("restored %s differs from the source (source vs restored): %s", db, strings.Join(d, "; "))
	}
}

// restores measures initrestore against the naive sequence and the local reference.
func (b *bench) restores(buckets map[string]string) {
	t := b.t
	restoreBin, err := pg.FindClient(pg.DefaultClientRoot, "pg_restore", b.pg.Major)
	if err != nil {
		t.Fatal(err)
	}
	// Physical reference: pg_restore -j2 of a local, uncompressed archive that pg_dump
	// wrote to a file (so its table of contents has the data offsets -j seeks to).
	local := filepath.Join(t.TempDir(), "reference.dump")
	dumpBin, err := pg.FindClient(pg.DefaultClientRoot, "pg_dump", b.pg.Major)
	if err != nil {
		t.Fatal(err)
	}
	runCmd(t, b.src.PG.Env(b.src.Database), dumpBin.Path, "-Fc", "-Z0", "--no-owner", "--no-acl", "-f", local)
	objects := []struct{ label, bucket string }{
		{"page's object", buckets["baseline"]},
		{"default object (-Z0 inside)", buckets[variants[0].name]},
	}
	modes := []struct {
		name string
		env  []string
	}{
		{"spooled", []string{"RESTORE_SCRATCH_DIR=" + t.TempDir()}}, // RESTORE_JOBS by default: twice the CPUs
		{"streamed", nil},
	}
	// The contenders take turns, run by run (see backups).
	var ref []sample
	naive := make([][]sample, len(objects))
	ours := make([][][]sample, len(objects))
	for o := range objects {
		ours[o] = make([][]sample, len(modes))
	}
	for i := range b.runs {
		db := fmt.Sprintf("bench_ref_%d", i)
		b.pg.Exec(t, "postgres", "CREATE DATABASE "+db+" ENCODING 'WIN1252' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'")
		ref = append(ref, runCmd(t, b.pg.Env(db), restoreBin.Path, "--no-owner", "--no-acl", "--exit-on-error", "-j2", "-d", db, local))
		b.dropDB(db)
		for o, obj := range objects {
			// Naive: download, gunzip, pg_restore -j1.
			db := fmt.Sprintf("bench_naive_%d", i)
			dl := filepath.Join(t.TempDir(), "latest.dump.gz")
			start := time.Now()
			b.download(obj.bucket, dl)
			dlWall := time.Since(start)
			s := runCmd(t, append(b.pg.Env(db), "DB="+db), "bash", "-o", "pipefail", "-c",
				`psql -q -d postgres -c "CREATE DATABASE $DB ENCODING 'WIN1252' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'" && gunzip -c "$1" | "$2" --no-owner --no-acl --exit-on-error -j1 -d "$DB"`,
				"_", dl, restoreBin.Path)
			s.wall += dlWall
			naive[o] = append(naive[o], s)
			_ = os.Remove(dl)
			if i == 0 {
				b.checkContent(db)
			}
			b.dropDB(db)
			for m, mode := range modes {
				db := fmt.Sprintf("bench_ours_%d", i)
				s, out := runSampled(t, b.restoreEnv(obj.bucket, db, mode.env...), b.initres)
				ours[o][m] = append(ours[o][m], s)
				b.keepLog(fmt.Sprintf("restore-%s-%d-%d-%d", strings.ReplaceAll(b.label, " ", "_"), i, o, m), out)
				if i == 0 {
					b.checkContent(db)
				}
				b.dropDB(db)
			}
		}
	}
	rm := median(ref)
	for o, obj := range objects {
		nm := median(naive[o])
		for m, mode := range modes {
			om := median(ours[o][m])
			name := fmt.Sprintf("%s restore[initrestore %s, %s]", b.label, mode.name, obj.label)
			goal := ""
			if o == 1 && m == 0 && strings.HasPrefix(b.label, "Protheus") {
				goal = "≤ 0.80" // the default object, restored as production does (spooled)
			}
			b.rep.metric(name+" wall vs naive", om.wall.Seconds(), nm.wall.Seconds(), "s", goal)
			b.rep.metric(name+" CPU (initrestore and pg_restore)", om.cpu.Seconds(), nm.cpu.Seconds(), "s", "")
			b.rep.metric(name+" wall vs local pg_restore -j2", om.wall.Seconds(), rm.wall.Seconds(), "s", "")
			b.rep.value(name+" peak RSS (initrestore)", float64(om.maxRSS)/(1<<20), "MiB", "≤ 128")
		}
	}
}

// keepLog writes a run's output to SMARTBACKUP_BENCH_LOGS/name.log when that is set.
func (b *bench) keepLog(name, out string) {
	if dir := os.Getenv("SMARTBACKUP_BENCH_LOGS"); dir != "" {
		_ = os.WriteFile(filepath.Join(dir, name+".log"), []byte(out), 0o644)
	}
}

// download fetches bench-prod's latest into path.
func (b *bench) download(bucket, path string) {
	st := b.store(bucket)
	defer st.Close()
	rc, _, err := st.Open(b.t.Context(), layout.LatestKey("bench-prod"))
	if err != nil {
		b.t.Fatal(err)
	}
	defer rc.Close()
	f, err := os.Create(path)
	if err != nil {
		b.t.Fatal(err)
	}
	defer f.Close()
	if _, err := io.Copy(f, rc); err != nil {
		b.t.Fatal(err)
	}
}

// runSampled runs our binary and samples its own peak RSS (VmHWM) every 20 ms, apart
// from its children (pg_dump, pg_restore); rusage gives wall and CPU of the tree.
func runSampled(t interface {
	Helper()
	Fatalf(string, ...any)
}, env []string, bin string, args ...string) (sample, string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", bin, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var peak int64
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("%s: %v\n%s", bin, err, tail(out.Bytes()))
			}
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			return sample{wall: time.Since(start), cpu: time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), maxRSS: peak}, out.String()
		case <-tick.C:
			if hwm := vmHWM(cmd.Process.Pid); hwm > peak {
				peak = hwm
			}
		}
	}
}

func vmHWM(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(v, "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// fastPath times initrestore on an existing database against `true`.
func (b *bench) fastPath(buckets map[string]string) {
	t := b.t
	db := "bench_fast"
	env := b.restoreEnv(buckets[variants[0].name], db)
	runCmd(t, env, b.initres) // restores once
	const n = 21
	var ours, base []sample
	for range n {
		ours = append(ours, runCmd(t, env, b.initres))
		base = append(base, runCmd(t, env, "true"))
	}
	om, bm := median(ours), median(base)
	b.rep.metric("init fast path wall (process start, 1 connection, 1 query)", float64(om.wall.Microseconds())/1000, float64(bm.wall.Microseconds())/1000, "ms", "≤ 150ms")
	b.rep.metric("init fast path CPU", float64(om.cpu.Microseconds())/1000, float64(bm.cpu.Microseconds())/1000, "ms", "")
	b.dropDB(db)
}

// memory checks that backup and restore memory does not grow with the database.
func (b *bench) memory(customers int) {
	t := b.t
	start := time.Now()
	big := fixture.NewSource(t, 12, "bench_erp_large", fixture.Size{Customers: customers})
	var size int64
	_ = b.pg.Connect(t, "postgres").QueryRow(t.Context(), "SELECT pg_database_size($1)", big.Database).Scan(&size)
	fmt.Printf("bench: large fixture %d MiB in %s\n", size>>20, time.Since(start).Round(time.Second))
	small := b.memoryOf(b.src)
	large := b.memoryOf(big)
	b.rep.metric(fmt.Sprintf("backup peak RSS (cronbackup), %d MiB database vs 1x", size>>20), float64(large[0])/(1<<20), float64(small[0])/(1<<20), "MiB", "≤ 128, flat")
	b.rep.metric(fmt.Sprintf("restore peak RSS (initrestore), %d MiB database vs 1x", size>>20), float64(large[1])/(1<<20), float64(small[1])/(1<<20), "MiB", "≤ 128, flat")
}

// memoryOf backs src up with the default settings and restores it, spooled, returning
// both peak RSS.
func (b *bench) memoryOf(src *fixture.Source) [2]int64 {
	bucket := b.s3.NewBucket(b.t)
	bs, _ := runSampled(b.t, b.backupEnv(src, bucket), b.cronbackup, "backup")
	db := "bench_mem"
	rs, _ := runSampled(b.t, b.restoreEnv(bucket, db, "RESTORE_SCRATCH_DIR="+b.t.TempDir()), b.initres)
	b.dropDB(db)
	return [2]int64{bs.maxRSS, rs.maxRSS}
}

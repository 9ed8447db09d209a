package backup_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// logLines is a logger that keeps its lines, for tests that look for one.
type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logger() logr.Logger {
	return funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, args)
	}, funcr.Options{})
}

func (l *logLines) count(substr string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.lines {
		if strings.Contains(s, substr) {
			n++
		}
	}
	return n
}

// slotConfig loads a backup configuration of database db reached at addr (the server
// or a proxy in front of it) as the superuser, with n slots.
func slotConfig(t *testing.T, pg *testenv.Postgres, addr, db, storeURL, ns string, n int, wait string) backup.Config {
	t.Helper()
	host, port, _ := net.SplitHostPort(addr)
	for k, v := range map[string]string{
		"DATABASE_ENDPOINT": host, "DATABASE_PORT": port, "DATABASE_USER": pg.User, "DATABASE_PASSWORD": pg.Password,
		"DATABASE_NAME": db, "DATABASE_CODEPAGE": "UTF8", "BACKUP_STORAGE_URL": storeURL, "NAMESPACE": ns,
		"DATABASE_WAIT_TIMEOUT": "10s", "BACKUP_MAX_CONCURRENT_PER_SERVER": strconv.Itoa(n),
		"BACKUP_SLOT_WAIT_TIMEOUT": wait, "PROGRESS_INTERVAL": "1s", "GZIP_THREADS": "1",
	} {
		t.Setenv(k, v)
	}
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	return cfg
}

// TestAtMostNDumpsPerServer: ten backups of ten databases of one server start at once
// with N=2: pg_stat_activity, sampled every 20 ms, never shows more than two dumps, the
// waiting ones log that they wait, and all ten succeed. The control: the same ten
// without slots overlap beyond two (so the sampling can see it).
func TestAtMostNDumpsPerServer(t *testing.T) {
	defer backup.SetSlotPoll(100 * time.Millisecond)()
	pg := testenv.StartPostgres(t, 15)
	var dbs []string
	for i := range 10 {
		db := fmt.Sprintf("%s_%d", strings.ReplaceAll(testenv.RandomName("slots_"), "-", "_"), i)
		pg.CreateDatabase(t, db, "UTF8")
		pg.Exec(t, db, "CREATE TABLE movimento AS SELECT g AS id, md5(g::text) AS hash FROM generate_series(1, 60000) g")
		dbs = append(dbs, db)
	}
	// A slow link makes each dump last about a second, long enough to be sampled.
	addr := testenv.StartThrottlingProxy(t, net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), 3<<20)

	run := func(t *testing.T, n int) (peak int, waiting int) {
		sampler := pg.Connect(t, "postgres")
		store := "file://" + t.TempDir()
		var cfgs []backup.Config
		for i, db := range dbs {
			cfgs = append(cfgs, slotConfig(t, pg, addr, db, store, fmt.Sprintf("cliente-%d-prod", i), n, "2m"))
		}
		logs := &logLines{}
		ctx, cancel := context.WithCancel(t.Context())
		sampled := make(chan int)
		go func() {
			peak, samples := 0, 0
			for ctx.Err() == nil {
				var c int
				if err := sampler.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
					WHERE application_name = 'smartbackup-cronbackup' AND datname = ANY($1) AND xact_start IS NOT NULL`, dbs).Scan(&c); err == nil {
					peak = max(peak, c)
					samples++
				}
				time.Sleep(20 * time.Millisecond)
			}
			if samples < 10 {
				t.Errorf("only %d samples of pg_stat_activity", samples)
			}
			sampled <- peak
		}()
		var wg sync.WaitGroup
		errs := make([]error, len(cfgs))
		start := time.Now()
		for i, cfg := range cfgs {
			wg.Go(func() { _, errs[i] = backup.Run(ctx, logs.logger().WithValues("db", i), cfg) })
		}
		wg.Wait()
		elapsed := time.Since(start)
		cancel()
		peak = <-sampled
		for i, err := range errs {
			if err != nil {
				t.Errorf("backup %d failed: %v", i, err)
			}
		}
		t.Logf("METRIC slots n=%d backups=%d peak_dumps=%d waiting_log_lines=%d seconds=%.1f", n, len(cfgs), peak, logs.count("waiting for a dump slot"), elapsed.Seconds())
		return peak, logs.count("waiting for a dump slot")
	}

	t.Run("two slots: never more than two dumps, all succeed", func(t *testing.T) {
		peak, waiting := run(t, 2)
		if peak > 2 {
			t.Errorf("pg_stat_activity showed %d dumps at once, want at most 2", peak)
		}
		if peak < 2 {
			t.Errorf("pg_stat_activity never showed 2 dumps at once (peak %d): the sampling cannot see the limit", peak)
		}
		if waiting == 0 {
			t.Error("no backup logged that it waits for a slot")
		}
	})
	t.Run("the control: without slots the same backups overlap beyond two", func(t *testing.T) {
		if peak, _ := run(t, 0); peak <= 2 {
			t.Errorf("without slots the peak was %d: the test could not see a limit being broken", peak)
		}
	})
}

// holdSlot takes dump slot number from a psql process, as another backup would, and
// returns the process once the server shows the lock granted.
func holdSlot(t *testing.T, pg *testenv.Postgres, number int) *exec.Cmd {
	t.Helper()
	psql := filepath.Join(testenv.ServerBinDir(pg.Major), "psql")
	cmd := exec.Command(psql, "-X", "-q", "-h", pg.Host, "-p", strconv.Itoa(pg.Port), "-U", pg.User, "-d", "postgres",
		"-v", "ON_ERROR_STOP=1")
	cmd.Env = append(os.Environ(), "PGPASSWORD="+pg.Password, "PGAPPNAME=slot-holder")
	// The session then idles, as a backup's slot session does during its dump (a
	// backend busy in a query would notice its client's death only at the query's end).
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); _ = stdin.Close() })
	if _, err := fmt.Fprintf(stdin, "SELECT pg_advisory_lock(%d, %d);\n", backup.SlotLockClass, number); err != nil {
		t.Fatal(err)
	}
	conn := pg.Connect(t, "postgres")
	deadline := time.Now().Add(20 * time.Second)
	for {
		var held bool
		if err := conn.QueryRow(t.Context(), `SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a USING (pid)
			WHERE a.application_name = 'slot-holder' AND l.locktype = 'advisory' AND l.granted)`).Scan(&held); err != nil {
			t.Fatal(err)
		}
		if held {
			return cmd
		}
		if time.Now().After(deadline) {
			t.Fatal("the psql holder never got its slot")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlotWaitGivesUp: with the only slot held, a backup logs that it waits and, after
// BACKUP_SLOT_WAIT_TIMEOUT, fails with its own exit code, having written nothing.
func TestSlotWaitGivesUp(t *testing.T) {
	defer backup.SetSlotPoll(100 * time.Millisecond)()
	pg := testenv.StartPostgres(t, 15)
	db := strings.ReplaceAll(testenv.RandomName("slotwait_"), "-", "_")
	pg.CreateDatabase(t, db, "UTF8")
	pg.Exec(t, db, "CREATE TABLE t AS SELECT 1 AS id")
	holdSlot(t, pg, 0)
	dir := t.TempDir()
	cfg := slotConfig(t, pg, net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), db, "file://"+dir, "cliente-prod", 1, "1500ms")
	logs := &logLines{}
	start := time.Now()
	_, err := backup.Run(t.Context(), logs.logger(), cfg)
	if code := exitcode.Of(err, -1); code != backup.ExitSlotWait {
		t.Fatalf("Run = %v (exit code %d), want exit code %d", err, code, backup.ExitSlotWait)
	}
	if waited := time.Since(start); waited < 1500*time.Millisecond || waited > 20*time.Second {
		t.Errorf("gave up after %s, want about 1.5s", waited)
	}
	if !strings.Contains(err.Error(), "BACKUP_SLOT_WAIT_TIMEOUT") || logs.count("waiting for a dump slot") == 0 {
		t.Errorf("error %q / %d waiting lines: want the variable named and progress logged", err, logs.count("waiting for a dump slot"))
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("the store holds %d entries after a backup that never dumped", len(entries))
	}
}

// TestSlotReleasedWhenTheJobDies: the slot of a process killed with SIGKILL (no chance
// to release anything) comes free: the waiting backup takes it and succeeds.
func TestSlotReleasedWhenTheJobDies(t *testing.T) {
	defer backup.SetSlotPoll(100 * time.Millisecond)()
	pg := testenv.StartPostgres(t, 15)
	db := strings.ReplaceAll(testenv.RandomName("slotdie_"), "-", "_")
	pg.CreateDatabase(t, db, "UTF8")
	pg.Exec(t, db, "CREATE TABLE t AS SELECT 1 AS id")
	holder := holdSlot(t, pg, 0)
	cfg := slotConfig(t, pg, net.JoinHostPort(pg.Host, strconv.Itoa(pg.Port)), db, "file://"+t.TempDir(), "cliente-prod", 1, "1m")
	logs := &logLines{}
	done := make(chan error, 1)
	go func() { _, err := backup.Run(t.Context(), logs.logger(), cfg); done <- err }()
	deadline := time.Now().Add(30 * time.Second)
	for logs.count("waiting for a dump slot") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the backup never waited for the held slot")
		}
		time.Sleep(50 * time.Millisecond)
	}
	killed := time.Now()
	if err := holder.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("backup after the holder died: %v", err)
		}
		t.Logf("METRIC slot_release seconds_after_kill=%.2f", time.Since(killed).Seconds())
	case <-time.After(30 * time.Second):
		t.Fatal("the slot of a killed holder never came free")
	}
}

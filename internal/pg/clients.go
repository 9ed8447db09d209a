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
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgconn"
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
// child only (never an argument, never logged), with PGCONNECT_TIMEOUT, the same TLS
// policy as the pgx connections (PGSSLMODE, PGSSLROOTCERT) and without inherited PG*
// variables that could redirect it.
func (c Conn) Env() []string {
	env := []string{}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PGHOST="+c.Host, "PGPORT="+strconv.Itoa(c.Port), "PGUSER="+c.User,
		"PGDATABASE="+c.Database, "PGPASSWORD="+c.Password, "PGCONNECT_TIMEOUT=10",
		"PGAPPNAME="+c.AppName, "PGSSLMODE="+c.sslMode())
	if c.SSLRootCert != "" {
		env = append(env, "PGSSLROOTCERT="+c.SSLRootCert)
	}
	return env
}

// LogLines streams a client's stderr into the log until r ends, one entry per kept
// line, and always reads r to its end: a client blocked writing to a pipe nobody reads
// would hang its parent (and the restore lock) forever. Lines of any length are read;
// only their head is looked at.
//
// pg_dump and pg_restore --verbose print object names and progress, but a failing
// statement brings the server's message with it, and that can quote customer data
// (`DETAIL:  Key (cpf)=(111.222.333-44) is duplicated.`, `CONTEXT:  COPY …`,
// `Command was: …` with the statement text). ClientLine decides what is logged.
//
// Progress lines (Progress) are logged at V(1) and counted at V(0): a restore of 3,000
// tables prints 56,000 of them, which cost the init container a second of CPU to log
// beside the restore they describe; errors, warnings and the TOC entry a failure names
// stay at V(0).
//
// The output is read at most every readPace (pacedReader): each progress line is a
// write(2) of its own, and reading them as they come woke the init container once per
// archive entry.
func LogLines(log logr.Logger, tool string, r io.Reader) {
	br := bufio.NewReaderSize(&pacedReader{r: r, pace: readPace}, 64<<10)
	verbose := log.V(1)
	withheld, progress := 0, 0
	for {
		line, err := readLine(br)
		if line != "" || err == nil {
			switch {
			case Progress(tool, line):
				progress++
				if verbose.Enabled() {
					if kept, ok := ClientLine(tool, line); ok {
						verbose.Info("client output", "tool", tool, "line", kept)
					}
				}
			default:
				if kept, ok := ClientLine(tool, line); ok {
					log.Info("client output", "tool", tool, "line", kept)
				} else {
					withheld++
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Info("client output unreadable; discarding the rest", "tool", tool, "error", err.Error())
			}
			break
		}
	}
	// Whatever happened above, the writer must never block on a full pipe.
	_, _ = io.Copy(io.Discard, r)
	if progress > 0 {
		log.Info("client progress lines (logged at verbosity 1)", "tool", tool, "lines", progress)
	}
	if withheld > 0 {
		log.Info("client output lines withheld (they may quote data)", "tool", tool, "lines", withheld)
	}
}

// Progress reports whether line is one of the messages --verbose adds ("creating TABLE
// …", "processing item …", "finished item …", "dumping contents of table …"): the
// client's own prefix, and nothing that reports a problem or places one (an error,
// warning or fatal message, its detail or hint, "while PROCESSING TOC:", "from TOC
// entry …"). A progress line naming a table called "errors" counts as a problem: the
// rule errs towards showing.
func Progress(tool, line string) bool {
	rest, ok := strings.CutPrefix(line, tool+": ")
	if !ok {
		return false
	}
	for _, p := range []string{"while ", "from TOC entry", "detail", "hint", "DETAIL", "HINT"} {
		if strings.HasPrefix(rest, p) {
			return false
		}
	}
	lower := strings.ToLower(rest)
	for _, w := range []string{"error", "warning", "fatal", "fail", "could not", "abort"} {
		if strings.Contains(lower, w) {
			return false
		}
	}
	return true
}

// maxLineHead is how much of a line is kept; the rest of a longer line is skipped.
const maxLineHead = 4 << 10

// readLine returns the head of the next line (without its newline), skipping the rest
// of a line longer than the reader's buffer.
func readLine(br *bufio.Reader) (string, error) {
	chunk, err := br.ReadSlice('\n')
	head := string(chunk[:min(len(chunk), maxLineHead)])
	for errors.Is(err, bufio.ErrBufferFull) {
		_, err = br.ReadSlice('\n')
	}
	return strings.TrimRight(head, "\r\n"), err
}

var (
	// quotedAfterColon is a value the server quotes after a colon
	// (`invalid input syntax for type integer: "abc"`); identifiers follow a noun
	// (`index "clientes_cpf"`), never a colon.
	// The server does not escape quotes inside a value, so everything to the end of
	// the line goes.
	quotedAfterColon = regexp.MustCompile(`(:|near) +".*`)
	// singleQuoted is a literal (to the end of the line when it does not close).
	singleQuoted = regexp.MustCompile(`'(?:[^']|'')*(?:'|$)`)
)

// RedactValues replaces what a server message quotes (a value after a colon or
// "near", a single-quoted literal) by "…", keeping the object names it cites.
func RedactValues(msg string) string {
	msg = quotedAfterColon.ReplaceAllString(msg, `$1 "…"`)
	return singleQuoted.ReplaceAllString(msg, "'…'")
}

// RedactServerError hides what a server error quotes: its message is redacted as
// RedactValues does, and its DETAIL, HINT, WHERE and statement position are never
// shown (errors.As still finds the *pgconn.PgError, for its code).
func RedactServerError(err error) error {
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) {
		return err
	}
	return &redactedError{pg: pgErr}
}

type redactedError struct{ pg *pgconn.PgError }

func (e *redactedError) Error() string {
	return fmt.Sprintf("%s: %s (SQLSTATE %s)", e.pg.Severity, RedactValues(e.pg.Message), e.pg.Code)
}

func (e *redactedError) Unwrap() error { return e.pg }

// ClientLine is what the log may show of one line of pg_dump's or pg_restore's stderr,
// and whether to log it at all. The rule:
//   - only lines the client itself starts with "<tool>: " are logged; every other line
//     continues a server message (DETAIL:, HINT:, CONTEXT:, QUERY:, STATEMENT:, LINE n:,
//     the caret line) or the text of a statement (Command was: …) and is withheld;
//   - "<tool>: detail: " and "<tool>: hint: " lines are withheld, except the server's
//     error message that pg_dump prints as a detail;
//   - "Command was: …" is cut off wherever it starts;
//   - in what is kept, a double-quoted string after a colon or after "near" (to the
//     end of the line), and any single-quoted literal, is replaced by "…": error lines
//     keep their object names
//     (`could not create unique index "clientes_cpf"`) and lose the values they quote;
//   - a line is kept to its first 1000 bytes.
func ClientLine(tool, line string) (string, bool) {
	rest, ok := strings.CutPrefix(line, tool+": ")
	if !ok {
		return "", false
	}
	for _, p := range []string{"detail: ", "hint: ", "DETAIL: ", "HINT: "} {
		if strings.HasPrefix(rest, p) && !strings.Contains(rest, "Error message from server:") {
			return "", false
		}
	}
	if i := strings.Index(rest, "Command was:"); i >= 0 {
		rest = strings.TrimSpace(rest[:i])
	}
	rest = RedactValues(rest)
	if len(rest) > 1000 {
		rest = strings.ToValidUTF8(rest[:1000], "") + "…"
	}
	return tool + ": " + rest, true
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

// readPace is the least time between two reads of a client's output. pg_restore
// --verbose writes each progress line with a write(2) of its own: read as they came,
// the 30,000 lines of a 3,000-table staged restore woke initrestore as many times, and
// the wake-ups (scheduler, poller, a pipe read each) cost it about a CPU-second that the
// database server, on the same cores, needed. Paced, the lines gather in the pipe (64
// KiB: seconds of progress lines even at thousands a second) and one read takes them
// all; a failure's lines reach the log at most readPace later.
const readPace = 20 * time.Millisecond

// pacedReader reads r at most once every pace, unless the last read filled its buffer
// (more is waiting: a long error message is read at once).
type pacedReader struct {
	r    io.Reader
	pace time.Duration
	last time.Time
	full bool
}

func (p *pacedReader) Read(b []byte) (int, error) {
	if wait := p.pace - time.Since(p.last); wait > 0 && !p.full {
		time.Sleep(wait)
	}
	n, err := p.r.Read(b)
	p.last, p.full = time.Now(), n == len(b)
	return n, err
}

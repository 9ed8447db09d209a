package pg_test

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"

	"github.com/smartbackup/smartbackup/internal/pg"
)

// TestClientLine: what pg_restore and pg_dump (12 and 15) print around a failing
// statement, and what the log may show of it.
func TestClientLine(t *testing.T) {
	tests := map[string]struct {
		tool, line string
		want       string // "" = withheld
	}{
		"a progress line is kept": {
			tool: "pg_restore", line: `pg_restore: creating TABLE "public.clientes"`, want: `pg_restore: creating TABLE "public.clientes"`},
		"an error naming an index is kept": {
			tool: "pg_restore", line: `pg_restore: error: could not execute query: ERROR:  could not create unique index "clientes_cpf"`,
			want: `pg_restore: error: could not execute query: ERROR:  could not create unique index "clientes_cpf"`},
		"the TOC entry line is kept": {
			tool: "pg_restore", line: `pg_restore: from TOC entry 3207; 1259 16420 INDEX clientes_cpf app`, want: `pg_restore: from TOC entry 3207; 1259 16420 INDEX clientes_cpf app`},
		"the server's DETAIL is withheld": {
			tool: "pg_restore", line: `DETAIL:  Key (cpf)=(111.222.333-44) is duplicated.`},
		"the statement text is withheld": {
			tool: "pg_restore", line: `Command was: CREATE UNIQUE INDEX clientes_cpf ON public.clientes USING btree (cpf);`},
		"a statement's continuation line is withheld": {
			tool: "pg_restore", line: `    'Maria da Conceição', '111.222.333-44');`},
		"CONTEXT is withheld": {
			tool: "pg_restore", line: `CONTEXT:  COPY clientes, line 1, column id: "Maria"`},
		"a value an error quotes is redacted": {
			tool: "pg_restore", line: `pg_restore: error: COPY failed for table "clientes": ERROR:  invalid input syntax for type integer: "111.222.333-44"`,
			want: `pg_restore: error: COPY failed for table "clientes": ERROR:  invalid input syntax for type integer: "…"`},
		"a token near a syntax error is redacted": {
			tool: "pg_restore", line: `pg_restore: error: could not execute query: ERROR:  syntax error at or near "Maria"`,
			want: `pg_restore: error: could not execute query: ERROR:  syntax error at or near "…"`},
		"a single-quoted literal is redacted": {
			tool: "pg_restore", line: `pg_restore: error: could not execute query: ERROR:  x 'Maria d''Ávila' y`,
			want: `pg_restore: error: could not execute query: ERROR:  x '…' y`},
		"Command was on the tool's own line is cut": {
			tool: "pg_dump", line: `pg_dump: error: query failed: ERROR:  permission denied for table clientes Command was: SELECT 'x'`,
			want: `pg_dump: error: query failed: ERROR:  permission denied for table clientes`},
		"pg_dump's detail lines are withheld": {
			tool: "pg_dump", line: `pg_dump: detail: Command was: COPY public.clientes (id, cpf) TO stdout;`},
		"pg_dump's server error detail is kept, redacted": {
			tool: "pg_dump", line: `pg_dump: detail: Error message from server: ERROR:  invalid input syntax for type integer: "111"`,
			want: `pg_dump: detail: Error message from server: ERROR:  invalid input syntax for type integer: "…"`},
		"another tool's prefix is not ours": {
			tool: "pg_dump", line: `pg_restore: creating TABLE "public.x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got, ok := pg.ClientLine(tc.tool, tc.line)
			if tc.want == "" {
				if ok {
					t.Fatalf("logged %q, want it withheld", got)
				}
				return
			}
			if !ok || got != tc.want {
				t.Fatalf("ClientLine = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
}

// TestLogLinesReadsEverything: a line far longer than any buffer neither stops the
// reader nor reaches the log, and what follows it is still read (the writer never
// blocks).
func TestLogLinesReadsEverything(t *testing.T) {
	huge := "Command was: COMMENT ON TABLE x IS '" + strings.Repeat("Maria da Conceição ", 3<<20/20) + "';"
	in := "pg_restore: creating TABLE \"public.x\"\n" + huge + "\n" + "pg_restore: error: could not execute query: ERROR:  bad: \"Maria\"\n" + strings.Repeat("DETAIL: Maria\n", 1000) + "pg_restore: last line"
	var buf bytes.Buffer
	var mu sync.Mutex
	log := funcr.NewJSON(func(obj string) { mu.Lock(); buf.WriteString(obj + "\n"); mu.Unlock() }, funcr.Options{Verbosity: 1})
	pr, pw := io.Pipe()
	written := make(chan error, 1)
	go func() {
		_, err := io.WriteString(pw, in)
		_ = pw.Close()
		written <- err
	}()
	done := make(chan struct{})
	go func() { pg.LogLines(log, "pg_restore", pr); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("LogLines did not read its input to the end")
	}
	if err := <-written; err != nil {
		t.Fatalf("the writer failed: %v", err)
	}
	out := buf.String()
	if strings.Contains(out, "Maria") {
		t.Errorf("the log carries data:\n%.2000s", out)
	}
	for _, want := range []string{`creating TABLE \"public.x\"`, `pg_restore: last line`, `ERROR:  bad: \"…\"`, `"lines":1001`} {
		if !strings.Contains(out, want) {
			t.Errorf("the log lacks %s:\n%.2000s", want, out)
		}
	}
}

// countingReader counts the reads of r.
type countingReader struct {
	r     io.Reader
	reads int
}

func (c *countingReader) Read(b []byte) (int, error) {
	c.reads++
	return c.r.Read(b)
}

// TestLogLinesReadsInBatches: a client writing its progress a line at a time (as
// pg_restore --verbose does, a write(2) per line) is read a batch of lines at a time,
// not woken for every line; every line is still counted.
func TestLogLinesReadsInBatches(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	const lines = 400
	go func() {
		defer pw.Close()
		for i := range lines {
			if _, err := fmt.Fprintf(pw, "pg_restore: finished item %d TABLE DATA t%d\n", i, i); err != nil {
				return
			}
			time.Sleep(500 * time.Microsecond)
		}
	}()
	var buf bytes.Buffer
	log := funcr.NewJSON(func(obj string) { buf.WriteString(obj + "\n") }, funcr.Options{})
	r := &countingReader{r: pr}
	start := time.Now()
	pg.LogLines(log, "pg_restore", r)
	took := time.Since(start)
	_ = pr.Close()
	if !strings.Contains(buf.String(), fmt.Sprintf(`"lines":%d`, lines)) {
		t.Errorf("not every progress line was counted:\n%s", buf.String())
	}
	// Read as they come, the lines took a read each (about 400 in 0.2 to 0.5 s);
	// paced, one read per ReadPace of the time the writer took, however slow the
	// machine makes it, and the one that finds the end.
	if most := int(took/pg.ReadPace) + 2; r.reads > most {
		t.Errorf("%d lines written one by one in %s took %d reads; want them read in batches (at most %d)", lines, took, r.reads, most)
	}
}

// TestProgress: what pg_restore and pg_dump (12 and 15) print with --verbose, and
// which of it is progress, logged at V(1) only.
func TestProgress(t *testing.T) {
	progress := []string{
		`pg_restore: connecting to database for restore`,
		`pg_restore: creating TABLE "public.sa1010"`,
		`pg_restore: processing data for table "public.sa1010"`,
		`pg_restore: creating INDEX "public.sa1010_1"`,
		`pg_restore: processing item 3207 INDEX sa1010_1`,
		`pg_restore: launching item 3207 INDEX sa1010_1`,
		`pg_restore: finished item 3207 INDEX sa1010_1`,
		`pg_restore: entering main parallel loop`,
		`pg_restore: finished main parallel loop`,
		`pg_dump: last built-in OID is 16383`,
		`pg_dump: reading extensions`,
		`pg_dump: dumping contents of table "public.sa1010"`,
	}
	shown := []string{
		`pg_restore: while PROCESSING TOC:`,
		`pg_restore: from TOC entry 3207; 1259 16420 INDEX sa1010_1 app`,
		`pg_restore: error: could not execute query: ERROR:  could not create unique index "sa1010_1"`,
		`pg_restore: warning: errors ignored on restore: 1`,
		`pg_restore: detail: Command was: CREATE INDEX x`,
		`pg_dump: error: Dumping the contents of table "sa1010" failed: PQgetResult() failed.`,
		`pg_dump: detail: Error message from server: ERROR:  canceling statement`,
		`pg_dump: fatal: could not connect`,
		`pg_restore: creating TABLE "public.log_errors"`,
		`DETAIL:  Key (cpf)=(111.222.333-44) is duplicated.`,
	}
	for _, l := range progress {
		tool, _, _ := strings.Cut(l, ":")
		if !pg.Progress(tool, l) {
			t.Errorf("%q is not progress", l)
		}
	}
	for _, l := range shown {
		if pg.Progress("pg_restore", l) && pg.Progress("pg_dump", l) {
			t.Errorf("%q is progress", l)
		}
	}
}

// TestLogLinesProgressAtVerbosity1: at verbosity 0 the progress lines are counted, not
// logged; errors and the TOC entry a failure names still are.
func TestLogLinesProgressAtVerbosity1(t *testing.T) {
	in := "pg_restore: creating TABLE \"public.x\"\npg_restore: finished item 7 TABLE x\n" +
		"pg_restore: while PROCESSING TOC:\npg_restore: from TOC entry 7; 1259 1 TABLE x app\n" +
		"pg_restore: error: could not execute query: ERROR:  bad\n"
	for v, want := range map[int]struct{ has, lacks []string }{
		0: {has: []string{`"lines":2`, `from TOC entry 7`, `ERROR:  bad`, `while PROCESSING TOC`}, lacks: []string{`creating TABLE`, `finished item`}},
		1: {has: []string{`"lines":2`, `creating TABLE`, `finished item 7`, `from TOC entry 7`, `ERROR:  bad`}},
	} {
		var buf bytes.Buffer
		log := funcr.NewJSON(func(obj string) { buf.WriteString(obj + "\n") }, funcr.Options{Verbosity: v})
		pg.LogLines(log, "pg_restore", strings.NewReader(in))
		out := buf.String()
		for _, s := range want.has {
			if !strings.Contains(out, s) {
				t.Errorf("verbosity %d: the log lacks %s:\n%s", v, s, out)
			}
		}
		for _, s := range want.lacks {
			if strings.Contains(out, s) {
				t.Errorf("verbosity %d: the log has %s:\n%s", v, s, out)
			}
		}
	}
}

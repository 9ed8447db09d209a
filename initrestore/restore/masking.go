package restore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// ErrMaskingMasksNothing: the masking file has no statement that changes data.
var ErrMaskingMasksNothing = errors.New("masking SQL has no statement that changes data")

// dataChanging are the statements that count as masking, by their first keyword;
// ALTER and DROP count only with TABLE (ALTER TABLE … DROP COLUMN, DROP TABLE). A
// WITH counts when it contains one of the first four.
var dataChanging = map[string]bool{"UPDATE": true, "DELETE": true, "INSERT": true, "MERGE": true,
	"TRUNCATE": true, "DO": true, "CALL": true}

// CheckMasking is the "masking must mask" rule, a lexical check: with comments,
// string literals, quoted identifiers and dollar-quoted bodies removed, the file must
// hold at least one statement that starts with UPDATE, DELETE, INSERT, MERGE,
// TRUNCATE, ALTER TABLE, DROP TABLE, DO or CALL, or a WITH … containing UPDATE,
// DELETE, INSERT or MERGE. A file of SELECTs does not count, even one calling a
// function that masks: the check cannot tell such a function from pg_sleep (wrap
// the call in DO or CALL). The check cannot prove the masking complete; it refuses
// the empty or commented-out file, or one left with only queries.
func CheckMasking(sql string) error {
	stmts := sqlStatements(sql)
	if len(stmts) == 0 {
		return fmt.Errorf("%w: the file is empty (or only comments)", ErrMaskingMasksNothing)
	}
	for _, words := range stmts {
		first := words[0]
		switch {
		case dataChanging[first]:
			return nil
		case (first == "ALTER" || first == "DROP") && len(words) > 1 && words[1] == "TABLE":
			return nil
		case first == "WITH":
			for _, w := range words {
				if w == "UPDATE" || w == "DELETE" || w == "INSERT" || w == "MERGE" {
					return nil
				}
			}
		}
	}
	return fmt.Errorf("%w: %d statements, none an UPDATE, DELETE, INSERT, MERGE, TRUNCATE, ALTER TABLE, DROP TABLE, DO or CALL", ErrMaskingMasksNothing, len(stmts))
}

// sqlStatements splits SQL into statements, each the list of its bare words in upper
// case (keywords and unquoted names); comments, literals, quoted identifiers and
// dollar-quoted bodies are dropped. Empty statements are left out.
func sqlStatements(sql string) [][]string {
	var out [][]string
	var cur []string
	end := func() {
		if len(cur) > 0 {
			out = append(out, cur)
			cur = nil
		}
	}
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ';':
			end()
			i++
		case strings.HasPrefix(sql[i:], "--"):
			i = afterLineComment(sql, i)
		case strings.HasPrefix(sql[i:], "/*"):
			i = afterBlockComment(sql, i)
		case c == '\'' || c == '"':
			i, _ = quoted(sql, i)
			if c == '"' {
				cur = append(cur, `"`) // a name, never a keyword
			}
		case c == '$' && (i == 0 || !isSQLWord(sql[i-1])):
			var body bool
			i, _, body = dollarQuoted(sql, i)
			if body {
				cur = append(cur, "$") // a body, never a keyword
			}
		case isSQLWord(c):
			j := afterWord(sql, i)
			cur = append(cur, strings.ToUpper(sql[i:j]))
			i = j
		default:
			i++
		}
	}
	return appendLast(out, cur)
}

// isSQLWord tells whether c can be part of a bare word (a keyword or unquoted name).
func isSQLWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '$' || c >= 0x80
}

// afterWord is where the bare word starting at sql[i] ends.
func afterWord(sql string, i int) int {
	for i < len(sql) && isSQLWord(sql[i]) {
		i++
	}
	return i
}

// afterLineComment is where the "--" comment at sql[i] ends: after its newline, or
// len(sql).
func afterLineComment(sql string, i int) int {
	j := strings.IndexByte(sql[i:], '\n')
	if j < 0 {
		return len(sql)
	}
	return i + j + 1
}

// afterBlockComment is where the block comment opening at sql[i] ends (they nest), or
// len(sql) when it never closes.
func afterBlockComment(sql string, i int) int {
	depth := 0
	for i < len(sql) {
		switch {
		case strings.HasPrefix(sql[i:], "/*"):
			depth++
			i += 2
		case strings.HasPrefix(sql[i:], "*/"):
			depth--
			i += 2
			if depth == 0 {
				return i
			}
		default:
			i++
		}
	}
	return i
}

// quoted reads the literal ('…', E'…' with backslash escapes) or quoted name ("…")
// opening at sql[i]: where it ends, and its content unescaped.
func quoted(sql string, i int) (int, string) {
	q := sql[i]
	backslash := q == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !isSQLWord(sql[i-2]))
	var content strings.Builder
	for i++; i < len(sql); i++ {
		switch {
		case backslash && sql[i] == '\\' && i+1 < len(sql):
			i++
			content.WriteByte(sql[i])
		case sql[i] == q && i+1 < len(sql) && sql[i+1] == q:
			i++
			content.WriteByte(q)
		case sql[i] == q:
			return i + 1, content.String()
		default:
			content.WriteByte(sql[i])
		}
	}
	return len(sql), content.String()
}

// dollarQuoted reads what starts with the "$" at sql[i]: a dollar-quoted body
// ($$…$$, $tag$…$tag$; body is true, content its text, up to the end when it never
// closes) or a parameter ($1; body is false). It returns where that ends.
func dollarQuoted(sql string, i int) (end int, content string, body bool) {
	j := i + 1
	for j < len(sql) && isSQLWord(sql[j]) && sql[j] != '$' {
		j++
	}
	if j >= len(sql) || sql[j] != '$' || j > i+1 && sql[i+1] >= '0' && sql[i+1] <= '9' {
		return j, "", false
	}
	tag := sql[i : j+1]
	k := strings.Index(sql[j+1:], tag)
	if k < 0 {
		return len(sql), sql[j+1:], true
	}
	return j + 1 + k + len(tag), sql[j+1 : j+1+k], true
}

func appendLast(out [][]string, cur []string) [][]string {
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// largeObjectWords are the names whose mention says the masking file deals with the
// restored large objects: the server's functions that change or remove an existing
// one, and the catalogs that list them (a file keeping large objects that hold no
// personal data names the catalog in a query, which says so on purpose). Functions
// that only make new ones (lo_from_bytea, lo_create, lo_import) do not count: a
// masking that points a column at a new large object leaves the old one behind,
// readable, unless it also unlinks it.
var largeObjectWords = map[string]bool{"LO_UNLINK": true, "LO_PUT": true, "LO_TRUNCATE": true, "LO_TRUNCATE64": true,
	"LOWRITE": true, "PG_LARGEOBJECT": true, "PG_LARGEOBJECT_METADATA": true}

// MentionsLargeObjects tells whether a masking file names a function that changes or
// removes large objects, or their catalogs, outside comments. Unlike CheckMasking it
// reads into string literals and dollar-quoted bodies, the SQL of a DO block or of
// dynamic SQL, and reads them the same way (their comments do not count either); a
// quoted name counts as the name.
func MentionsLargeObjects(sql string) bool {
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case strings.HasPrefix(sql[i:], "--"):
			i = afterLineComment(sql, i)
		case strings.HasPrefix(sql[i:], "/*"):
			i = afterBlockComment(sql, i)
		case c == '\'' || c == '"':
			var content string
			i, content = quoted(sql, i)
			if c == '"' && largeObjectWords[strings.ToUpper(content)] || c == '\'' && MentionsLargeObjects(content) {
				return true
			}
		case c == '$' && (i == 0 || !isSQLWord(sql[i-1])):
			var content string
			var body bool
			i, content, body = dollarQuoted(sql, i)
			if body && MentionsLargeObjects(content) {
				return true
			}
		case isSQLWord(c):
			j := afterWord(sql, i)
			if largeObjectWords[strings.ToUpper(sql[i:j])] {
				return true
			}
			i = j
		default:
			i++
		}
	}
	return false
}

// checkLargeObjects fails closed when the masked database holds large objects and the
// masking file never deals with them: a large object is data (a fiscal document's XML,
// a scanned contract), the masking's UPDATEs of tables do not reach it, and the
// application role owns and reads it.
func (r *run) checkLargeObjects(ctx context.Context, conn *pgx.Conn, sql string) error {
	var n int64
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_catalog.pg_largeobject_metadata").Scan(&n); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("counting the large objects after the masking: %w", pg.RedactServerError(err)))
	}
	if n == 0 {
		return nil
	}
	if MentionsLargeObjects(sql) {
		r.log.Info("large objects left to the masking SQL", "largeObjects", n)
		return nil
	}
	r.log.Info("large objects the masking SQL does not deal with", "largeObjects", n)
	return exitcode.Wrap(ExitRestore, fmt.Errorf("not swapping in: the database holds %d large objects and the masking SQL %q names no function "+
		"that changes or removes one, nor their catalogs (large objects are data the table UPDATEs do not reach): remove them (lo_unlink), "+
		"overwrite them (lo_put, lo_truncate), or, when they hold no personal data, say so with a query of pg_largeobject_metadata", n, r.cfg.MaskingSQL))
}

// readMasking reads the masking file and applies the rule.
func readMasking(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("reading RESTORE_MASKING_SQL: %w", err)
	}
	if err := CheckMasking(string(b)); err != nil {
		return "", fmt.Errorf("RESTORE_MASKING_SQL %q: %w", path, err)
	}
	return string(b), nil
}

// mask runs the masking SQL inside the restored database, before anything reads it
// (ANALYZE included: statistics would copy unmasked values into pg_statistic). It runs
// as one implicit transaction: all of it or none, as the application role logged in as
// the restorer; conn, the administrator's, then counts the large objects left.
func (r *run) mask(ctx context.Context, conn *pgx.Conn) error {
	sql, err := readMasking(r.cfg.MaskingSQL)
	if err != nil {
		return exitcode.Wrap(ExitConfig, err)
	}
	start := time.Now()
	r.log.Info("masking started", "file", r.cfg.MaskingSQL, "bytes", len(sql))
	// As the application role, logged in as the restorer: the masking's UPDATEs fire
	// production's triggers and call its functions, which must not run with the
	// administrator's rights.
	restorer, err := r.asRestorer(ctx)
	if err != nil {
		return err
	}
	defer restorer.Close(context.WithoutCancel(ctx))
	// Every row, whatever production's row security: a table that forces it on its
	// owner is unforced for the masking (and forced again just before the swap, once
	// the statistics are checked: forceRowSecurityAgain), and row_security=off makes a
	// statement that a policy would still narrow fail instead.
	r.forced, err = pg.UnforceRowSecurity(ctx, restorer)
	if err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	// The file is UTF-8 (a ConfigMap's text): a session in the database's encoding
	// (WIN1252) stored its 'São Paulo' as 'SÃ£o Paulo'.
	if _, err := restorer.Exec(ctx, "SET row_security = off; SET client_encoding = 'UTF8'"); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("turning row security off for the masking: %w", pg.RedactServerError(err)))
	}
	if _, err := restorer.Exec(ctx, sql); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("running the masking SQL %q: %w", r.cfg.MaskingSQL, pg.RedactServerError(err)))
	}
	r.log.Info("masking done", "file", r.cfg.MaskingSQL, "duration", time.Since(start).Round(time.Millisecond).String())
	return r.checkLargeObjects(ctx, conn, sql)
}

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
	isWord := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '$' || c >= 0x80
	}
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
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return appendLast(out, cur)
			}
			i += j + 1
		case strings.HasPrefix(sql[i:], "/*"):
			i = afterBlockComment(sql, i)
		case c == '\'' || c == '"':
			backslash := c == '\'' && i > 0 && (sql[i-1] == 'E' || sql[i-1] == 'e') && (i == 1 || !isWord(sql[i-2]))
			i++
			for i < len(sql) {
				if backslash && sql[i] == '\\' {
					i += 2
					continue
				}
				if sql[i] == c {
					if i+1 < len(sql) && sql[i+1] == c {
						i += 2
						continue
					}
					i++
					break
				}
				i++
			}
			if c == '"' {
				cur = append(cur, `"`) // a name, never a keyword
			}
		case c == '$' && (i == 0 || !isWord(sql[i-1])):
			j := i + 1
			for j < len(sql) && isWord(sql[j]) && sql[j] != '$' {
				j++
			}
			if j < len(sql) && sql[j] == '$' && (j == i+1 || !(sql[i+1] >= '0' && sql[i+1] <= '9')) {
				tag := sql[i : j+1]
				k := strings.Index(sql[j+1:], tag)
				if k < 0 {
					return appendLast(out, cur)
				}
				i = j + 1 + k + len(tag)
				cur = append(cur, "$") // a body, never a keyword
			} else {
				i = j // a parameter ($1)
			}
		case isWord(c):
			j := i
			for j < len(sql) && isWord(sql[j]) {
				j++
			}
			cur = append(cur, strings.ToUpper(sql[i:j]))
			i = j
		default:
			i++
		}
	}
	return appendLast(out, cur)
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

func appendLast(out [][]string, cur []string) [][]string {
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// largeObjectWords are the names whose mention says the masking file deals with large
// objects: the server's functions that write or remove one, and the catalogs that list
// them (a file keeping large objects that hold no personal data names the catalog in a
// query, which says so on purpose).
var largeObjectWords = map[string]bool{"LO_UNLINK": true, "LO_PUT": true, "LO_TRUNCATE": true, "LO_TRUNCATE64": true,
	"LO_FROM_BYTEA": true, "LO_CREATE": true, "LO_CREAT": true, "LO_IMPORT": true, "LOWRITE": true,
	"PG_LARGEOBJECT": true, "PG_LARGEOBJECT_METADATA": true}

// MentionsLargeObjects tells whether a masking file names a function that writes or
// removes large objects, or the catalogs of large objects, outside comments. Unlike
// CheckMasking it reads the words of string literals, quoted names and dollar-quoted
// bodies too: a DO block or dynamic SQL is where such calls usually are.
func MentionsLargeObjects(sql string) bool {
	isWord := func(c byte) bool {
		return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	for i := 0; i < len(sql); {
		switch {
		case strings.HasPrefix(sql[i:], "--"):
			j := strings.IndexByte(sql[i:], '\n')
			if j < 0 {
				return false
			}
			i += j + 1
		case strings.HasPrefix(sql[i:], "/*"):
			i = afterBlockComment(sql, i)
		case sql[i] == '\'':
			// A literal: its words count (dynamic SQL), a "--" in it is no comment.
			j := i + 1
			for j < len(sql) && (sql[j] != '\'' || j+1 < len(sql) && sql[j+1] == '\'') {
				if sql[j] == '\'' {
					j++
				}
				j++
			}
			if mentionsIn(sql[i+1:min(j, len(sql))], isWord) {
				return true
			}
			i = j + 1
		case isWord(sql[i]):
			j := i
			for j < len(sql) && isWord(sql[j]) {
				j++
			}
			if mentionsIn(sql[i:j], isWord) {
				return true
			}
			i = j
		default:
			i++
		}
	}
	return false
}

// mentionsIn tells whether text has one of largeObjectWords as a word.
func mentionsIn(text string, isWord func(byte) bool) bool {
	for i := 0; i < len(text); {
		if !isWord(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isWord(text[j]) {
			j++
		}
		if largeObjectWords[strings.ToUpper(text[i:j])] {
			return true
		}
		i = j
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
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("counting the large objects after the masking: %w", err))
	}
	if n == 0 {
		return nil
	}
	if MentionsLargeObjects(sql) {
		r.log.Info("large objects left to the masking SQL", "largeObjects", n)
		return nil
	}
	r.log.Info("large objects the masking SQL does not deal with", "largeObjects", n)
	return exitcode.Wrap(ExitRestore, fmt.Errorf("not swapping in: the database holds %d large objects and the masking SQL %q names no large-object "+
		"function or catalog (large objects are data the table UPDATEs do not reach): mask them (lo_put, lo_from_bytea), remove them "+
		"(lo_unlink), or, when they hold no personal data, say so with a query of pg_largeobject_metadata", n, r.cfg.MaskingSQL))
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
// as one implicit transaction: all of it or none.
func (r *run) mask(ctx context.Context, conn *pgx.Conn) error {
	sql, err := readMasking(r.cfg.MaskingSQL)
	if err != nil {
		return exitcode.Wrap(ExitConfig, err)
	}
	start := time.Now()
	r.log.Info("masking started", "file", r.cfg.MaskingSQL, "bytes", len(sql))
	if _, err := conn.Exec(ctx, sql); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("running the masking SQL %q: %w", r.cfg.MaskingSQL, pg.RedactServerError(err)))
	}
	r.log.Info("masking done", "file", r.cfg.MaskingSQL, "duration", time.Since(start).Round(time.Millisecond).String())
	return r.checkLargeObjects(ctx, conn, sql)
}

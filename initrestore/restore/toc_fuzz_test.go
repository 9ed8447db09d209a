package restore_test

import (
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/initrestore/restore"
)

// lines splits s as a pg_restore --list is read: one line per "\n", the last one
// without it too.
func lines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

// FuzzPlanTOC: the list comes from an archive out of the bucket. Whatever it holds,
// every line is either kept for pg_restore, in order, or named in Skipped: nothing is
// lost without a word (a lost line would be a table silently not restored).
func FuzzPlanTOC(f *testing.F) {
	f.Add(";\n; Archive created at 2026-11-30\n2; 3079 16385 EXTENSION - pg_trgm \n3; 0 0 COMMENT - EXTENSION pg_trgm \n4; 2615 2200 SCHEMA - public postgres\n5; 0 0 COMMENT - SCHEMA public postgres\n210; 1259 16386 TABLE public nota erp\n3001; 0 16386 TABLE DATA public nota erp\n")
	f.Add("1; 3079 13000 EXTENSION - plpgsql \n2;x\n\n")
	f.Fuzz(func(t *testing.T, list string) {
		if strings.Contains(list, "\r") {
			return // pg_restore writes "\n" only; a scanner drops a "\r" before it
		}
		p := restore.PlanTOC(list)
		in, kept := lines(list), lines(p.List)
		if len(kept)+len(p.Skipped) != len(in) {
			t.Fatalf("%d lines in, %d kept + %d skipped", len(in), len(kept), len(p.Skipped))
		}
		j := 0
		for _, l := range in {
			if j < len(kept) && kept[j] == l {
				j++
			}
		}
		if j != len(kept) {
			t.Fatalf("kept lines are not the input's, in order: %q", kept)
		}
		for _, d := range lines(p.Definitions) {
			if !strings.Contains(list, d+"\n") && !strings.HasSuffix(list, d) {
				t.Fatalf("a definitions line %q is not an input line", d)
			}
		}
	})
}

// A line longer than any bufio.Scanner buffer (a hostile archive's tag) must not end
// the list there: the entries after it would not be restored, and nothing would say so.
func TestPlanTOCKeepsTheLinesAfterAHugeOne(t *testing.T) {
	list := "1; 1259 16386 TABLE public " + strings.Repeat("n", 2<<20) + " erp\n3001; 0 16386 TABLE DATA public nota erp\n"
	p := restore.PlanTOC(list)
	if !strings.HasSuffix(p.List, "3001; 0 16386 TABLE DATA public nota erp\n") || len(p.List) != len(list) {
		t.Fatalf("the list lost its lines after the long one: %d bytes of %d kept", len(p.List), len(list))
	}
}

// FuzzParseDefinitions: the administrator runs what ParseDefinitions returns, so each
// statement must be exactly one COMMENT ON SCHEMA public with a single literal, taken
// whole from the archive's SQL. The literal may span lines (pg_dump writes a comment's
// newlines as they are; the fuzzer's 3c408531381ac8b2 is one): it is still one literal.
func FuzzParseDefinitions(f *testing.F) {
	f.Add("CREATE EXTENSION IF NOT EXISTS pg_trgm WITH SCHEMA public;\nCOMMENT ON SCHEMA public IS 'standard public schema';\n")
	f.Add("CREATE EXTENSION IF NOT EXISTS \"uuid-ossp\" WITH SCHEMA \"Ext\"\"s\";\nCOMMENT ON SCHEMA public IS 'it''s; DROP TABLE x; --';\n")
	f.Fuzz(func(t *testing.T, sql string) {
		d := restore.ParseDefinitions(sql)
		for _, st := range d.AdminStatements {
			lit, ok := strings.CutPrefix(st.SQL, "COMMENT ON SCHEMA public IS '")
			if !ok || !strings.HasSuffix(lit, "';") {
				t.Fatalf("administrator statement %q is not one COMMENT ON SCHEMA public", st.SQL)
			}
			if body := strings.ReplaceAll(strings.TrimSuffix(lit, "';"), "''", ""); strings.Contains(body, "'") {
				t.Fatalf("administrator statement %q ends its literal early", st.SQL)
			}
			if !strings.Contains(sql, st.SQL) {
				t.Fatalf("administrator statement %q is not in the archive's SQL", st.SQL)
			}
		}
		for ext, schema := range d.ExtensionSchemas {
			if ext == "" || schema == "" {
				t.Fatalf("empty extension or schema name: %q in %q", ext, schema)
			}
		}
	})
}

// FuzzCheckMasking: the masking file is the administrator's; no file panics, the
// decision is a pure function of the file, and words inside comments, literals and
// quoted names never count: adding them to a refused file leaves it refused.
func FuzzCheckMasking(f *testing.F) {
	f.Add("UPDATE cliente SET cpf = md5(cpf);")
	f.Add("-- UPDATE cliente\nSELECT 1; /* DELETE */ SELECT 'INSERT';")
	f.Add("DO $$BEGIN UPDATE t SET a = 1; END$$; WITH x AS (DELETE FROM t RETURNING *) SELECT 1")
	f.Add("ALTER TABLE cliente DROP COLUMN cpf; \"UPDATE\"")
	f.Fuzz(func(t *testing.T, sql string) {
		err := restore.CheckMasking(sql)
		if again := restore.CheckMasking(sql); (err == nil) != (again == nil) {
			t.Fatalf("two answers for one file: %v, %v", err, again)
		}
		if err == nil {
			return
		}
		for _, hidden := range []string{"\n-- UPDATE t SET a = 1\n", "\n/* DELETE FROM t */\n", "\n;SELECT 'TRUNCATE t';\n"} {
			if strings.Contains(sql, "/*") || strings.Contains(sql, "$") || strings.Count(sql, "'")%2 == 1 || strings.Count(sql, "\"")%2 == 1 {
				return // an open comment, literal or dollar quote may swallow or be closed by what follows
			}
			if restore.CheckMasking(sql+hidden) == nil {
				t.Fatalf("a refused file is accepted once %q is appended", hidden)
			}
		}
	})
}

// FuzzMentionsLargeObjects: a comment never makes a file mention large objects (an open
// literal or body takes it in, and reads it as a comment too), and a call appended
// always does (unless a block comment or a quoted name, which takes it in as a name, is
// left open).
func FuzzMentionsLargeObjects(f *testing.F) {
	f.Add("UPDATE cliente SET cpf = md5(cpf);")
	f.Add("DO $$ BEGIN PERFORM lo_unlink(oid) FROM pg_largeobject_metadata; END $$")
	f.Add("/* lo_put /* nested */ x */ -- lo_unlink\nSELECT 'a''b'")
	f.Add("SELECT $$it's$$, 'x'")
	f.Add("UPDATE p SET n = $q$D'Ávila$q$; SELECT E'\\'' || 'x'")
	f.Fuzz(func(t *testing.T, sql string) {
		got := restore.MentionsLargeObjects(sql)
		if got != restore.MentionsLargeObjects(sql) {
			t.Fatal("two answers for one file")
		}
		if !got && restore.MentionsLargeObjects(sql+"\n-- lo_unlink(1)\n/* lo_put */") {
			t.Fatal("a comment made the file mention large objects")
		}
		if !strings.Contains(sql, "/*") && !strings.Contains(sql, `"`) && !restore.MentionsLargeObjects(sql+"\nSELECT lo_unlink(1);") {
			t.Fatal("an appended lo_unlink call is not seen")
		}
	})
}

package restore

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// archiveInput is what pg_restore reads a table of contents from: the spooled file, or
// the head of the object, opened anew for each look (the TOC heads the archive).
type archiveInput struct {
	path string
	head func(ctx context.Context) (io.Reader, func(), error)
}

// readArchive runs pg_restore (no connection) with args on the archive and returns
// its standard output.
func (r *run) readArchive(ctx context.Context, client pg.Client, in archiveInput, what string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, client.Path, args...)
	if in.path != "" {
		cmd.Args = append(cmd.Args, in.path)
	} else {
		rd, done, err := in.head(ctx)
		if err != nil {
			return nil, err
		}
		defer done()
		// pg_restore stops reading after the table of contents; a plain Reader (no
		// WriteTo) lets exec treat the broken pipe as the normal end it is.
		cmd.Stdin = struct{ io.Reader }{rd}
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, exitcode.Wrap(ExitVerify, fmt.Errorf("%s: %w", what, pg.ExitError("pg_restore", err)))
	}
	return out, nil
}

// toc reads the archive's table of contents and prepares what the application role's
// pg_restore cannot do itself: the extensions, each in the schema the archive names
// (that schema created first), and the entries on objects every new database already
// has (the public schema's comment), applied by the administrator. It returns the
// list of entries left for pg_restore: its text, and the path of the file holding it.
func (r *run) toc(ctx context.Context, client pg.Client, in archiveInput) (text, path string, err error) {
	out, err := r.readArchive(ctx, client, in, "listing the archive", "--list")
	if err != nil {
		return "", "", err
	}
	if missing := missingExtensions(string(out), r.cfg.Extensions); len(missing) > 0 {
		return "", "", exitcode.Wrapf(ExitRestore, "the backup uses extensions %v that DATABASE_EXTENSIONS does not list (annotation smartbackup.io/database-extensions); the application role cannot create them", missing)
	}
	plan := PlanTOC(string(out))
	var defs Definitions
	if plan.Definitions != "" {
		defsList, err := r.writeList(plan.Definitions)
		if err != nil {
			return "", "", err
		}
		sql, err := r.readArchive(ctx, client, in, "reading the archive's extension and schema entries",
			"--file=-", "--no-owner", "--no-acl", "--use-list="+defsList)
		_ = os.Remove(defsList)
		if err != nil {
			return "", "", err
		}
		defs = ParseDefinitions(string(sql))
	}
	if plan.Policies != "" {
		if err := r.readPolicies(ctx, client, in, plan); err != nil {
			return "", "", err
		}
	}
	created, err := r.createExtensions(ctx, defs.ExtensionSchemas)
	if err != nil {
		return "", "", err
	}
	list, dropped := WithoutSchemas(plan.List, created)
	for _, d := range dropped {
		plan.Skipped = append(plan.Skipped, d+" (created beforehand for its extension)")
	}
	if len(plan.Skipped) > 0 {
		r.log.Info("archive entries not restored by the application role", "entries", plan.Skipped)
	}
	if err := r.applyAsAdmin(ctx, defs.AdminStatements); err != nil {
		return "", "", err
	}
	path, err = r.writeList(list)
	return list, path, err
}

// readPolicies reads the SQL of the plan's policies, for applyPolicies.
func (r *run) readPolicies(ctx context.Context, client pg.Client, in archiveInput, plan TOCPlan) error {
	list, err := r.writeList(plan.Policies)
	if err != nil {
		return err
	}
	defer os.Remove(list)
	sql, err := r.readArchive(ctx, client, in, "reading the archive's policies", "--file=-", "--no-owner", "--no-acl", "--use-list="+list)
	if err != nil {
		return err
	}
	if r.policies, err = ParsePolicies(string(sql)); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	r.policyOwner = plan.PolicyOwner
	// The statements are in the dump's encoding, which pg_restore states; they are run
	// in it (applyPolicies).
	r.policyEncoding = "UTF8"
	if m := clientEncodingRE.FindSubmatch(sql); m != nil {
		r.policyEncoding = string(m[1])
	}
	return nil
}

// clientEncodingRE is the encoding pg_restore --file=- says its output is in: the
// dump's (cronbackup dumps in DATABASE_CODEPAGE).
var clientEncodingRE = regexp.MustCompile(`(?m)^SET client_encoding = '([A-Za-z0-9_]+)';$`)

// writeList writes a pg_restore --use-list file.
func (r *run) writeList(list string) (string, error) {
	dir := r.cfg.ScratchDir
	if dir == "" {
		dir = os.TempDir()
	}
	f, err := os.CreateTemp(dir, "toc-*.list")
	if err != nil {
		return "", exitcode.Wrap(ExitRestore, fmt.Errorf("writing the restore list: %w", err))
	}
	defer f.Close()
	if _, err := f.WriteString(list); err != nil {
		return "", exitcode.Wrap(ExitRestore, fmt.Errorf("writing the restore list: %w", err))
	}
	return f.Name(), f.Close()
}

// applyAsAdmin runs the archive's statements on objects the application role does not
// own (COMMENT ON SCHEMA public) as the administrator. One the administrator may not
// run either (PostgreSQL 12's public belongs to the bootstrap superuser) is skipped
// with a log line: a comment is not worth a failed restore.
func (r *run) applyAsAdmin(ctx context.Context, stmts []AdminStatement) error {
	if len(stmts) == 0 {
		return nil
	}
	conn, err := r.cfg.admin(r.cfg.Database + tempSuffix).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// The statements run with the simple query protocol and were checked as literals
	// with standard-conforming quoting, as pg_dump writes them: a session where
	// backslashes escape quotes (a server or role default) would let a comment end its
	// literal early and run what follows as the administrator.
	if _, err := conn.Exec(ctx, "SET standard_conforming_strings = on"); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("setting standard_conforming_strings for the administrator's statements: %w", pg.RedactServerError(err)))
	}
	for _, st := range stmts {
		if _, err := conn.Exec(ctx, st.SQL); err != nil {
			r.log.Info("archive entry skipped: the administrator may not apply it either", "entry", st.Entry, "error", pg.RedactServerError(err).Error())
			continue
		}
		r.log.Info("archive entry applied by the administrator", "entry", st.Entry)
	}
	return nil
}

// TOCPlan sorts the entries of a pg_restore --list.
type TOCPlan struct {
	// List is what pg_restore restores as the application role.
	List string
	// Definitions lists the entries whose SQL the administrator reads: the
	// extensions (for their schemas) and the public schema's comment.
	Definitions string
	// Skipped names the entries left out of List, with why.
	Skipped []string
	// Policies lists the row-level security policies and their comments, created
	// after the load with this server's roles (applyPolicies); PolicyOwner is the
	// owner the archive names for them, production's application role.
	Policies, PolicyOwner string
}

// tocEntry is the description part of a --list line ("EXTENSION - pg_trgm ",
// "COMMENT - SCHEMA public postgres"), or "" for a comment line.
func tocEntry(line string) string {
	if strings.HasPrefix(line, ";") {
		return ""
	}
	// "2; 3079 16385 EXTENSION - pg_trgm "
	f := strings.SplitN(line, " ", 4)
	if len(f) < 4 || !strings.HasSuffix(f[0], ";") {
		return ""
	}
	return f[3]
}

// PlanTOC decides, entry by entry, who restores what:
//   - EXTENSION entries: the administrator creates DATABASE_EXTENSIONS beforehand, in
//     the schema the entry names; the entry goes to Definitions;
//   - comments on extensions: the extension's own comment stays;
//   - the public schema's entry: every new database has it;
//   - the public schema's comment: the application role does not own public (the
//     bootstrap superuser does on PostgreSQL 12, the database owner, still the
//     administrator, on 15): the administrator applies it;
//   - event triggers, publications and subscriptions, with their comments and security
//     labels: not restored (pg.LeftOutOfCopies);
//   - row-level security policies and their comments: created after the load, with
//     this server's roles (Policies).
func PlanTOC(list string) TOCPlan {
	var keep, defs, policies strings.Builder
	var p TOCPlan
	// Not a bufio.Scanner: a line longer than its buffer would end the list there, and
	// every entry after it would silently not be restored.
	for line := range strings.Lines(list) {
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		e := tocEntry(line)
		switch {
		case strings.HasPrefix(e, "COMMENT - EXTENSION "):
			p.Skipped = append(p.Skipped, strings.TrimSpace(e)+" (the extension's own comment stays)")
		case strings.HasPrefix(e, "EXTENSION - "):
			if !strings.HasPrefix(e, "EXTENSION - plpgsql ") {
				defs.WriteString(line + "\n")
			}
			p.Skipped = append(p.Skipped, strings.TrimSpace(e)+" (created by the administrator)")
		case strings.HasPrefix(e, "SCHEMA - public "):
			p.Skipped = append(p.Skipped, "SCHEMA public (every new database has it)")
		case strings.HasPrefix(e, "COMMENT - SCHEMA public "):
			defs.WriteString(line + "\n")
			p.Skipped = append(p.Skipped, "COMMENT SCHEMA public (applied by the administrator)")
		case isPolicy(e):
			policies.WriteString(line + "\n")
			if f := strings.Fields(e); f[0] == "POLICY" {
				p.PolicyOwner = f[len(f)-1]
			}
		default:
			if why, left := pg.LeftOutOfCopies(e); left {
				p.Skipped = append(p.Skipped, strings.TrimSpace(e)+" ("+why+")")
				continue
			}
			keep.WriteString(line + "\n")
		}
	}
	p.List, p.Definitions, p.Policies = keep.String(), defs.String(), policies.String()
	return p
}

// isPolicy tells whether the --list description e is a policy's ("POLICY public
// pessoas leitura owner") or a comment on one ("COMMENT public POLICY leitura ON
// pessoas owner").
func isPolicy(e string) bool {
	f := strings.Fields(e)
	return len(f) > 1 && f[0] == "POLICY" || len(f) > 2 && f[0] == "COMMENT" && f[2] == "POLICY"
}

// WithoutSchemas drops the SCHEMA entries of the schemas created beforehand.
func WithoutSchemas(list string, schemas map[string]bool) (string, []string) {
	if len(schemas) == 0 {
		return list, nil
	}
	var b strings.Builder
	var dropped []string
	for _, line := range strings.SplitAfter(list, "\n") {
		e := tocEntry(line)
		if name, ok := strings.CutPrefix(e, "SCHEMA - "); ok {
			if f := strings.Fields(name); len(f) > 0 && schemas[f[0]] {
				dropped = append(dropped, "SCHEMA "+f[0])
				continue
			}
		}
		b.WriteString(line)
	}
	return b.String(), dropped
}

// Definitions is what the administrator takes from the archive's SQL.
type Definitions struct {
	// ExtensionSchemas maps an extension to the schema the archive creates it in.
	ExtensionSchemas map[string]string
	// AdminStatements are statements on objects the application role does not own.
	AdminStatements []AdminStatement
}

// AdminStatement is one statement of the archive the administrator runs.
type AdminStatement struct {
	Entry string
	SQL   string
}

const identPattern = `("(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)`

var (
	createExtensionRE = regexp.MustCompile(`(?m)^CREATE EXTENSION IF NOT EXISTS ` + identPattern + ` WITH SCHEMA ` + identPattern + `;$`)
	// A comment pg_dump wrote: one literal, nothing after it.
	commentPublicRE = regexp.MustCompile(`(?m)^COMMENT ON SCHEMA public IS '(?:[^']|'')*';$`)
)

// ParseDefinitions reads the SQL pg_restore --file=- prints for the Definitions
// entries. Only statements of the exact shapes pg_dump writes are taken: the
// administrator runs nothing else from an archive.
func ParseDefinitions(sql string) Definitions {
	d := Definitions{ExtensionSchemas: map[string]string{}}
	for _, m := range createExtensionRE.FindAllStringSubmatch(sql, -1) {
		d.ExtensionSchemas[unquoteIdent(m[1])] = unquoteIdent(m[2])
	}
	for _, m := range commentPublicRE.FindAllString(sql, -1) {
		d.AdminStatements = append(d.AdminStatements, AdminStatement{Entry: "COMMENT SCHEMA public", SQL: m})
	}
	return d
}

func unquoteIdent(s string) string {
	if strings.HasPrefix(s, `"`) {
		return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	return strings.ToLower(s)
}

// missingExtensions lists the extensions an archive creates that are not in allowed
// (plpgsql is always there).
func missingExtensions(list string, allowed []string) []string {
	ok := map[string]bool{"plpgsql": true}
	for _, e := range allowed {
		ok[e] = true
	}
	var missing []string
	for _, line := range strings.Split(list, "\n") {
		// "2; 3079 16385 EXTENSION - pg_trgm "
		f := strings.Fields(line)
		if len(f) >= 6 && !strings.HasPrefix(line, ";") && f[3] == "EXTENSION" && f[4] == "-" && !ok[f[5]] {
			missing = append(missing, f[5])
		}
	}
	return missing
}

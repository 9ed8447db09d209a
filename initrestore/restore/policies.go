package restore

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// Row-level security policies name roles (CREATE POLICY … TO relatorios, erp_prod),
// and roles belong to the server, not to the dump: production's do not exist where
// a copy is restored, and pg_restore failed on the first policy naming one ("role …
// does not exist"). So the archive's policies (and their comments) are taken out of
// pg_restore's list and created after the load, as the application role, with their
// roles mapped: production's application role (the owner of the archive's objects)
// becomes this one; a role this server does not have is dropped from the list, which
// changes nothing (no session can have it); a policy left with no role at all
// applies to no one and is left out, with a log line.

// Policy is one policy statement of the archive: a CREATE POLICY and its roles, or a
// COMMENT ON POLICY.
type Policy struct {
	// Key names the policy and its table as the statement writes them
	// (`leitura ON public.pessoas`), the same in its CREATE and its COMMENT.
	Key string
	// Create: a CREATE POLICY; Roles are those of its TO clause, unquoted (none: the
	// policy is PUBLIC's).
	Create bool
	Roles  []string
	// head and tail are the statement before and after its roles.
	head, tail string
	SQL        string
}

// ParsePolicies reads the SQL pg_restore --file=- prints for the archive's POLICY
// and COMMENT - POLICY entries: statements of the shapes pg_dump writes (other
// statements, the session settings at the top, are skipped). A policy statement of
// another shape is an error: a policy lost would widen or narrow access unseen.
func ParsePolicies(sql string) ([]Policy, error) {
	var out []Policy
	for i, st := range rawStatements(sql) {
		p, ok := parsePolicy(st)
		switch {
		case ok:
			out = append(out, p)
		case strings.HasPrefix(st, "CREATE POLICY ") || strings.HasPrefix(st, "COMMENT ON POLICY "):
			return nil, fmt.Errorf("statement %d of the archive's policies is not of the shape pg_dump writes", i+1)
		}
	}
	return out, nil
}

// parsePolicy parses `CREATE POLICY name ON schema.table[ AS RESTRICTIVE][ FOR cmd][
// TO role, …]…` or `COMMENT ON POLICY name ON schema.table IS …`.
func parsePolicy(st string) (Policy, bool) {
	p := Policy{SQL: st}
	var rest string
	switch {
	case strings.HasPrefix(st, "CREATE POLICY "):
		p.Create, rest = true, st[len("CREATE POLICY "):]
	case strings.HasPrefix(st, "COMMENT ON POLICY "):
		rest = st[len("COMMENT ON POLICY "):]
	default:
		return p, false
	}
	i, ok := afterIdent(rest, 0)
	if !ok || !strings.HasPrefix(rest[i:], " ON ") {
		return p, false
	}
	if i, ok = afterIdent(rest, i+len(" ON ")); !ok || i >= len(rest) || rest[i] != '.' {
		return p, false
	}
	if i, ok = afterIdent(rest, i+1); !ok {
		return p, false
	}
	p.Key = rest[:i]
	if !p.Create {
		return p, strings.HasPrefix(rest[i:], " IS ")
	}
	for _, opt := range []string{" AS RESTRICTIVE", " AS PERMISSIVE"} {
		if strings.HasPrefix(rest[i:], opt) {
			i += len(opt)
		}
	}
	if strings.HasPrefix(rest[i:], " FOR ") {
		i = afterWord(rest, i+len(" FOR "))
	}
	offset := len(st) - len(rest)
	if !strings.HasPrefix(rest[i:], " TO ") {
		p.head = st
		return p, true
	}
	p.head = st[:offset+i]
	i += len(" TO ")
	for {
		end, ok := afterIdent(rest, i)
		if !ok || end < len(rest) && rest[end] != ' ' && rest[end] != ',' {
			return p, false
		}
		p.Roles = append(p.Roles, unquoteIdent(rest[i:end]))
		i = end
		if !strings.HasPrefix(rest[i:], ", ") {
			break
		}
		i += len(", ")
	}
	p.tail = st[offset+i:]
	return p, true
}

// afterIdent is where the identifier at s[i] ends (a quoted name, or a bare word),
// and false when there is none.
func afterIdent(s string, i int) (int, bool) {
	switch {
	case i >= len(s):
		return i, false
	case s[i] == '"':
		end, _ := quoted(s, i)
		return end, end > i+2 && s[end-1] == '"'
	case isSQLWord(s[i]) && s[i] != '$' && (s[i] < '0' || s[i] > '9'):
		return afterWord(s, i), true
	}
	return i, false
}

// WithRoles is the CREATE POLICY with roles in its TO clause instead.
func (p Policy) WithRoles(roles []string) string {
	if len(p.Roles) == 0 {
		return p.SQL
	}
	quoted := make([]string, len(roles))
	for i, r := range roles {
		quoted[i] = pg.Quote(r)
	}
	return p.head + " TO " + strings.Join(quoted, ", ") + p.tail
}

// rawStatements splits SQL into its statements, each trimmed and without its
// semicolon, comments between statements dropped; literals, quoted names and
// dollar-quoted bodies are read whole, so a ';' inside one does not split.
func rawStatements(sql string) []string {
	var out []string
	start := -1
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == ';':
			if start >= 0 {
				out = append(out, strings.TrimSpace(sql[start:i]))
			}
			start = -1
			i++
			continue
		case strings.HasPrefix(sql[i:], "--"):
			i = afterLineComment(sql, i)
			continue
		case strings.HasPrefix(sql[i:], "/*"):
			i = afterBlockComment(sql, i)
			continue
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
			continue
		}
		if start < 0 {
			start = i
		}
		switch {
		case c == '\'' || c == '"':
			i, _ = quoted(sql, i)
		case c == '$' && (i == 0 || !isSQLWord(sql[i-1])):
			i, _, _ = dollarQuoted(sql, i)
		default:
			i++
		}
	}
	if start >= 0 {
		if s := strings.TrimSpace(sql[start:]); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// MapPolicyRoles is the statements that create the policies (and their comments) on
// this server: owner, production's application role, becomes app; a role not in
// exists is dropped from a policy's list; a policy left with none, and its comment,
// are left out and named in leftOut.
func MapPolicyRoles(policies []Policy, owner, app string, exists map[string]bool) (stmts, leftOut []string) {
	out := map[string]bool{}
	for _, p := range policies {
		if !p.Create {
			if !out[p.Key] {
				stmts = append(stmts, p.SQL)
			}
			continue
		}
		if len(p.Roles) == 0 {
			stmts = append(stmts, p.SQL)
			continue
		}
		var roles []string
		for _, r := range p.Roles {
			if r == owner {
				r = app
			}
			if (r == app || exists[r]) && !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
		if len(roles) == 0 {
			out[p.Key] = true
			leftOut = append(leftOut, p.Key)
			continue
		}
		stmts = append(stmts, p.WithRoles(roles))
	}
	return stmts, leftOut
}

// applyPolicies creates the archive's policies read by toc, their roles mapped
// (MapPolicyRoles), as the application role logged in as the restorer, in one
// transaction.
func (r *run) applyPolicies(ctx context.Context) error {
	if len(r.policies) == 0 {
		return nil
	}
	var named []string
	for _, p := range r.policies {
		named = append(named, p.Roles...)
	}
	rows, _ := r.admin.Query(ctx, "SELECT rolname FROM pg_catalog.pg_roles WHERE rolname = ANY ($1)", named)
	found, err := pgx.CollectRows(rows, pgx.RowTo[string])
	exists := map[string]bool{}
	for _, name := range found {
		exists[name] = true
	}
	if err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("looking up the roles the archive's policies name: %w", pg.RedactServerError(err)))
	}
	stmts, leftOut := MapPolicyRoles(r.policies, r.policyOwner, r.cfg.User, exists)
	if len(leftOut) > 0 {
		r.log.Info("policies left out: none of their roles is on this server", "policies", leftOut)
	}
	if len(stmts) == 0 {
		return nil
	}
	conn, err := r.asRestorer(ctx)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// Read as pg_dump wrote them: in the dump's encoding, with standard-conforming
	// literals (a session where backslashes escape would change '\d' in an
	// expression), names qualified.
	set := "SET client_encoding = '" + r.policyEncoding + "'; SET standard_conforming_strings = on; SET search_path = ''; "
	if _, err := conn.Exec(ctx, set+strings.Join(stmts, ";\n")); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("creating the archive's policies: %w", pg.RedactServerError(err)))
	}
	r.log.Info("policies created with this server's roles", "statements", len(stmts), "applicationRole", r.cfg.User, "productionRole", r.policyOwner)
	return nil
}

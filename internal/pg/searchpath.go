package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// pg_restore runs every session with an empty search_path, and pg_dump names every
// object in a definition with its schema. A function's body is not a definition: SQL
// in it runs as written, at each call. So production's
//
//	CREATE FUNCTION f_unaccent(text) RETURNS text IMMUTABLE LANGUAGE sql
//	  AS $$ SELECT unaccent('unaccent', $1) $$;
//	CREATE INDEX ON clientes (f_unaccent(nome));
//
// (the usual accent-insensitive search of a Portuguese database) does not restore:
// building the index calls f_unaccent, and unaccent is nowhere on an empty path.
// pg_restore fails the same way on a generated column, a CHECK constraint or a
// materialized view that calls such a function.
//
// A restored copy therefore restores in two steps: first the definitions that depend
// on no table (schemas, types, functions), then, with each of those functions pinned
// to the search path the application's own sessions use (ALTER FUNCTION … SET
// search_path), everything else. The pins come off before anyone sees the database,
// so its functions are production's, as dumped.

// EarlyDefinitions is the dump ids of the pre-data entries of toc that depend on no
// table, directly or through other entries (schemas, types, domains, functions,
// sequences, and the comments on them), in the archive's order; nil when no function
// is among them, as then nothing is to be pinned between the two steps.
func EarlyDefinitions(toc []TOCEntry) []int {
	pos := make(map[int]int, len(toc))
	for i, e := range toc {
		pos[e.ID] = i
	}
	early := make([]bool, len(toc))
	section := SectionPreData
	for i, e := range toc {
		if e.Section != SectionNone {
			section = e.Section
		}
		early[i] = section == SectionPreData && e.Desc != "TABLE"
	}
	// An entry depending on one that is not early is not early either. Dependencies
	// point backwards in pg_dump's order; loop until settled in case one does not.
	for changed := true; changed; {
		changed = false
		for i, e := range toc {
			if !early[i] {
				continue
			}
			for _, d := range e.Deps {
				if j, ok := pos[d]; ok && !early[j] {
					early[i], changed = false, true
					break
				}
			}
		}
	}
	var ids []int
	functions := false
	for i, e := range toc {
		if early[i] {
			ids = append(ids, e.ID)
			functions = functions || e.Desc == "FUNCTION"
		}
	}
	if !functions {
		return nil
	}
	return ids
}

// Pinned is the functions PinSearchPaths pinned, for UnpinSearchPaths.
type Pinned struct {
	OIDs []uint32
	Path string // the search path they were pinned to
}

// pinnableQuery lists the functions to pin: those of the current user, outside the
// system schemas and extensions, in a language whose code can name objects, that do
// not set search_path themselves. Their signatures come out schema-qualified (the
// caller empties search_path first).
const pinnableQuery = `SELECT p.oid, p.oid::regprocedure::text FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang
WHERE p.prokind = 'f' AND p.proowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND l.lanname NOT IN ('internal', 'c')
AND NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\_path=%')
AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')
ORDER BY p.oid`

// sessionSearchPath is the search path role's own sessions start with: its ALTER ROLE
// setting, or else the server's (as conn's session has it: a session of a role with no
// setting of its own, that has not changed it). A setting for one
// database is not looked at: the restored database is a new one.
func sessionSearchPath(ctx context.Context, conn *pgx.Conn, role string) (string, error) {
	var path string
	// Every name qualified: the session's search path is the one asked about.
	err := conn.QueryRow(ctx, `SELECT coalesce((SELECT pg_catalog.substr(s, 13) FROM pg_catalog.pg_roles r CROSS JOIN pg_catalog.unnest(r.rolconfig) s
WHERE r.rolname OPERATOR(pg_catalog.=) $1 AND s OPERATOR(pg_catalog.~~) 'search\_path=%' LIMIT 1), pg_catalog.current_setting('search_path'))`, role).Scan(&path)
	if err != nil {
		return "", fmt.Errorf("reading the search path of role %q: %w", role, RedactServerError(err))
	}
	return path, nil
}

// PinSearchPaths pins the current user's functions (see pinnableQuery) to the search
// path role's sessions start with, in one transaction, and returns what it pinned. It
// leaves the session's search_path empty.
func PinSearchPaths(ctx context.Context, conn *pgx.Conn, role string) (Pinned, error) {
	path, err := sessionSearchPath(ctx, conn, role)
	if err != nil {
		return Pinned{}, err
	}
	if _, err := conn.Exec(ctx, "SET search_path = ''"); err != nil {
		return Pinned{}, fmt.Errorf("pinning functions' search paths: %w", RedactServerError(err))
	}
	rows, _ := conn.Query(ctx, pinnableQuery)
	var oids []uint32
	var stmts strings.Builder
	var oid uint32
	var signature string
	_, err = pgx.ForEachRow(rows, []any{&oid, &signature}, func() error {
		oids = append(oids, oid)
		fmt.Fprintf(&stmts, "ALTER FUNCTION %s SET search_path FROM CURRENT;\n", signature)
		return nil
	})
	if err != nil {
		return Pinned{}, fmt.Errorf("listing the functions to pin: %w", RedactServerError(err))
	}
	if len(oids) == 0 {
		return Pinned{Path: path}, nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_catalog.set_config('search_path', $1, false)", path); err != nil {
		return Pinned{}, fmt.Errorf("setting the search path %q to pin: %w", path, RedactServerError(err))
	}
	// One simple query: one implicit transaction, all pinned or none.
	if _, err := conn.Exec(ctx, stmts.String()+"SET search_path = ''"); err != nil {
		return Pinned{}, fmt.Errorf("pinning %d functions' search paths: %w", len(oids), RedactServerError(err))
	}
	return Pinned{OIDs: oids, Path: path}, nil
}

// UnpinSearchPaths takes the pins of p off, in one transaction: each function is as
// it was dumped. A function dropped since is skipped.
func UnpinSearchPaths(ctx context.Context, conn *pgx.Conn, p Pinned) error {
	if len(p.OIDs) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, "SET search_path = ''"); err != nil {
		return fmt.Errorf("unpinning functions' search paths: %w", RedactServerError(err))
	}
	rows, _ := conn.Query(ctx, "SELECT format('ALTER FUNCTION %s RESET search_path;', oid::regprocedure) FROM pg_proc WHERE oid = ANY ($1::oid[])", p.OIDs)
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("listing the pinned functions: %w", RedactServerError(err))
	}
	if len(stmts) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, strings.Join(stmts, "\n")); err != nil {
		return fmt.Errorf("unpinning %d functions' search paths: %w", len(stmts), RedactServerError(err))
	}
	return nil
}

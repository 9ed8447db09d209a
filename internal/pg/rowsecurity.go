package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// UnforceRowSecurity turns FORCE ROW LEVEL SECURITY off on the current user's tables
// that have it, so that the owner's statements see and change every row and run no
// policy (a masking that updated only the rows a policy shows would leave the others
// unmasked), and returns those tables for ForceRowSecurity.
func UnforceRowSecurity(ctx context.Context, conn *pgx.Conn) ([]uint32, error) {
	rows, _ := conn.Query(ctx, `SELECT c.oid FROM pg_catalog.pg_class c
WHERE c.relforcerowsecurity AND c.relowner OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) current_user)`)
	tables, err := pgx.CollectRows(rows, pgx.RowTo[uint32])
	if err == nil {
		err = alterRowSecurity(ctx, conn, tables, "NO FORCE")
	}
	if err != nil {
		return nil, fmt.Errorf("turning off forced row security: %w", RedactServerError(err))
	}
	return tables, nil
}

// ForceRowSecurity turns FORCE ROW LEVEL SECURITY back on for tables (those dropped
// since are skipped).
func ForceRowSecurity(ctx context.Context, conn *pgx.Conn, tables []uint32) error {
	if err := alterRowSecurity(ctx, conn, tables, "FORCE"); err != nil {
		return fmt.Errorf("forcing row security again: %w", RedactServerError(err))
	}
	return nil
}

// alterRowSecurity runs ALTER TABLE … how ROW LEVEL SECURITY on the tables that still
// exist, in one transaction; the names come out schema-qualified (the session's
// search path is emptied first).
func alterRowSecurity(ctx context.Context, conn *pgx.Conn, tables []uint32, how string) error {
	if len(tables) == 0 {
		return nil
	}
	if _, err := conn.Exec(ctx, "SET search_path = ''"); err != nil {
		return err
	}
	rows, _ := conn.Query(ctx, `SELECT pg_catalog.format('ALTER TABLE %s `+how+` ROW LEVEL SECURITY;', oid::pg_catalog.regclass)
FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.oid[])`, tables)
	stmts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err == nil && len(stmts) > 0 {
		_, err = conn.Exec(ctx, strings.Join(stmts, "\n"))
	}
	if _, rerr := conn.Exec(ctx, "RESET search_path"); err == nil {
		err = rerr
	}
	return err
}

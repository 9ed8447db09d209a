package pg

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Utility runs a statement that takes no parameters (CREATE DATABASE, ALTER ROLE…),
// built by the server's format() from the template (%I identifiers, %L literals), so
// no name or value is ever spliced into SQL by hand.
func Utility(ctx context.Context, conn *pgx.Conn, template string, args ...string) error {
	var stmt string
	if err := conn.QueryRow(ctx, "SELECT format($1::text, VARIADIC $2::text[])", template, args).Scan(&stmt); err != nil {
		return fmt.Errorf("building %q: %w", firstWords(template), err)
	}
	if _, err := conn.Exec(ctx, stmt); err != nil {
		return fmt.Errorf("running %q: %w", firstWords(template), err)
	}
	return nil
}

// firstWords names a statement in errors without its arguments (a password verifier).
func firstWords(template string) string {
	f := strings.Fields(template)
	return strings.Join(f[:min(3, len(f))], " ")
}

package pg

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// A run role is a login role made for one run of a binary that restores production's
// archive (initrestore's restorer, verify's verifier), for the code of production's
// database to run as. pg_restore evaluates production's functions (a CHECK constraint
// or a generated column at each row, an index expression, a materialized view's
// query), and a function runs with the rights of the session that calls it. In a
// session the administrator logged in to, SET ROLE is no boundary: the function can
// RESET ROLE. A run role logs in itself, may connect to one database only, inherits
// nothing, and has a random password that lives in the process only.

// RunRoleName is the run role's name for key (a database's name): the same in every
// run, so that the next run finds a killed run's, and distinct per key on a server.
func RunRoleName(prefix, key string) string {
	sum := sha256.Sum256([]byte(key))
	return prefix + hex.EncodeToString(sum[:8])
}

// CreateRunRole creates the login role name, NOINHERIT, a member of memberOf when set
// (so that it may SET ROLE to it), allowed to connect to database db, and returns its
// random password. The statement carries a SCRAM verifier, not the password.
func CreateRunRole(ctx context.Context, conn *pgx.Conn, name, db, memberOf string) (string, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("making the password of role %q: %w", name, err)
	}
	password := base64.RawURLEncoding.EncodeToString(secret)
	verifier, err := ScramVerifier(password)
	if err != nil {
		return "", err
	}
	// VALID UNTIL: a killed run's role, whose password nobody knows, expires anyway
	// (a run logs in again at each pg_restore it starts: a week is room enough).
	create := "CREATE ROLE %I LOGIN NOINHERIT PASSWORD %L VALID UNTIL %L"
	args := []string{name, verifier, time.Now().Add(7 * 24 * time.Hour).UTC().Format(time.RFC3339)}
	if memberOf != "" {
		create += " IN ROLE %I"
		args = append(args, memberOf)
	}
	if err := Utility(ctx, conn, create, args...); err != nil {
		return "", fmt.Errorf("creating role %q: %w", name, err)
	}
	if err := Utility(ctx, conn, "GRANT CONNECT ON DATABASE %I TO %I", db, name); err != nil {
		return "", fmt.Errorf("letting role %q connect to %q: %w", name, db, err)
	}
	return password, nil
}

// DropRunRole drops the run role name when it exists, ending its sessions and taking
// back its CONNECT on database db first (when db exists), and tells whether it did.
// Objects the role owns in db block the drop unless db is dropped first.
func DropRunRole(ctx context.Context, conn *pgx.Conn, name, db string) (bool, error) {
	var exists, dbExists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1), EXISTS (SELECT 1 FROM pg_database WHERE datname = $2)",
		name, db).Scan(&exists, &dbExists); err != nil {
		return false, fmt.Errorf("looking up role %q: %w", name, RedactServerError(err))
	}
	if !exists {
		return false, nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", name); err != nil {
		return false, fmt.Errorf("ending the sessions of role %q: %w", name, RedactServerError(err))
	}
	// Its grants on databases: db's, and any other's (a database renamed since).
	rows, _ := conn.Query(ctx, `SELECT d.datname FROM pg_catalog.pg_database d CROSS JOIN pg_catalog.aclexplode(d.datacl) a
WHERE a.grantee OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) $1)`, name)
	granted, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("listing the databases role %q may use: %w", name, RedactServerError(err))
	}
	if dbExists && !slices.Contains(granted, db) {
		granted = append(granted, db)
	}
	for _, d := range granted {
		if err := Utility(ctx, conn, "REVOKE ALL ON DATABASE %I FROM %I", d, name); err != nil {
			return false, fmt.Errorf("closing %q to role %q: %w", d, name, err)
		}
	}
	if err := Utility(ctx, conn, "DROP ROLE %I", name); err != nil {
		return false, fmt.Errorf("dropping role %q: %w", name, err)
	}
	return true, nil
}

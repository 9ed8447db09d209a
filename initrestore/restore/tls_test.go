package restore_test

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/go-logr/logr/testr"
	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/fixture"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// tlsSource is the ERP fixture on the TLS-only server, owned by its application role.
func tlsSource(t *testing.T, p *testenv.Postgres) *fixture.Source {
	t.Helper()
	name := testenv.RandomName("tls_erp_")
	s := &fixture.Source{PG: p, Database: name, User: name, Password: "senha-ç-" + name}
	p.CreateRole(t, s.User, s.Password)
	p.Exec(t, "postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s ENCODING 'WIN1252' TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'", name, name))
	t.Cleanup(func() {
		conn, err := pgx.Connect(t.Context(), p.URL("postgres"))
		if err == nil {
			_, _ = conn.Exec(t.Context(), "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize())
			_, _ = conn.Exec(t.Context(), "DROP ROLE IF EXISTS "+pgx.Identifier{name}.Sanitize())
			_ = conn.Close(t.Context())
		}
	})
	conn := p.Connect(t, name)
	if _, err := conn.Exec(t.Context(), "CREATE EXTENSION IF NOT EXISTS pg_trgm; CREATE EXTENSION IF NOT EXISTS unaccent; SET ROLE "+s.User); err != nil {
		t.Fatal(err)
	}
	if err := fixture.Create(t.Context(), conn, fixture.Tiny); err != nil {
		t.Fatal(err)
	}
	sum, err := fixture.Summarize(t.Context(), conn)
	if err != nil {
		t.Fatal(err)
	}
	s.Summary = sum
	_ = conn.Close(t.Context())
	return s
}

// backupTLS runs cronbackup backup in-process with the given TLS settings.
func backupTLS(t *testing.T, src *fixture.Source, storeURL, ns string, tlsEnv map[string]string) error {
	t.Helper()
	for _, k := range contract.Names {
		if v, ok := os.LookupEnv(k); ok {
			t.Setenv(k, v)
			os.Unsetenv(k)
		}
	}
	env := map[string]string{
		"DATABASE_ENDPOINT": src.PG.Host, "DATABASE_PORT": strconv.Itoa(src.PG.Port), "DATABASE_USER": src.User,
		"DATABASE_PASSWORD": src.Password, "DATABASE_NAME": src.Database, "DATABASE_CODEPAGE": "WIN1252",
		"BACKUP_STORAGE_URL": storeURL, "NAMESPACE": ns, "DATABASE_WAIT_TIMEOUT": "20s",
	}
	for k, v := range tlsEnv {
		env[k] = v
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	defer func() {
		for k := range env {
			os.Unsetenv(k)
		}
	}()
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	_, err = backup.Run(t.Context(), testr.New(t), cfg)
	return err
}

// TestTLSOnlyServer: against a PostgreSQL 15 that rejects clear text (ssl=on,
// `hostnossl … reject`), cronbackup and initrestore back up and restore with the
// default sslmode (prefer), with require and with verify-full and the right CA; a wrong
// CA is a TLS error and disable is a pg_hba.conf rejection, both exit 3, never
// "authentication failed", and neither creates anything.
func TestTLSOnlyServer(t *testing.T) {
	p := testenv.StartPostgresTLS(t, 15)
	src := tlsSource(t, p)
	wrongCA := testenv.OtherCA(t)
	ok := map[string]map[string]string{
		"the default (prefer)":         nil,
		"require":                      {"DATABASE_SSLMODE": "require"},
		"verify-full and the right CA": {"DATABASE_SSLMODE": "verify-full", "DATABASE_SSLROOTCERT": p.CAFile},
	}
	for name, tlsEnv := range ok {
		t.Run(name, func(t *testing.T) {
			url := "file://" + t.TempDir()
			if err := backupTLS(t, src, url, prodNS, tlsEnv); err != nil {
				t.Fatalf("backup: %v", err)
			}
			tg := newTarget(t, p, url, "cliente-hml", prodNS)
			res, _, err := tg.run(t, tlsEnv)
			if err != nil {
				t.Fatalf("restore: %v", err)
			}
			if res.Outcome != restore.OutcomeRestored {
				t.Fatalf("outcome %q, want %q", res.Outcome, restore.OutcomeRestored)
			}
			tg.checkRestored(t, src.Summary)
		})
	}

	// A store with a good backup, for the failures below.
	url := "file://" + t.TempDir()
	if err := backupTLS(t, src, url, prodNS, nil); err != nil {
		t.Fatalf("backup: %v", err)
	}
	bin := testenv.Build(t, "initrestore")
	fails := map[string]struct {
		tlsEnv  map[string]string
		want    error
		message string
	}{
		"verify-full and a wrong CA": {
			tlsEnv: map[string]string{"DATABASE_SSLMODE": "verify-full", "DATABASE_SSLROOTCERT": wrongCA},
			want:   pg.ErrTLS, message: "certificate does not verify against the CA file"},
		"disable": {
			tlsEnv: map[string]string{"DATABASE_SSLMODE": "disable"},
			want:   pg.ErrHBA, message: "pg_hba.conf rejects this connection"},
	}
	for name, tc := range fails {
		t.Run(name, func(t *testing.T) {
			err := backupTLS(t, src, "file://"+t.TempDir(), prodNS, tc.tlsEnv)
			if !errors.Is(err, tc.want) || errors.Is(err, pg.ErrAuth) || exitcode.Of(err, -1) != backup.ExitDatabase {
				t.Errorf("backup: exit %d, %v; want exit %d and %q", exitcode.Of(err, -1), err, backup.ExitDatabase, tc.want)
			}
			if err != nil && !strings.Contains(err.Error(), tc.message) {
				t.Errorf("backup error %q does not say %q", err, tc.message)
			}
			tg := newTarget(t, p, url, "cliente-hml", prodNS)
			out, code := runBinary(t, bin, tg.env, tc.tlsEnv)
			if code != restore.ExitDatabase || !strings.Contains(out, tc.message) || strings.Contains(out, "authentication failed") {
				t.Errorf("initrestore: exit %d, want %d with %q and without \"authentication failed\":\n%s", code, restore.ExitDatabase, tc.message, out)
			}
			if dbs := tg.databases(t); len(dbs) != 0 {
				t.Errorf("databases after a failed connection: %v", dbs)
			}
		})
	}

	t.Run("a wrong password stays an authentication failure", func(t *testing.T) {
		tg := newTarget(t, p, url, "cliente-hml", prodNS)
		out, code := runBinary(t, bin, tg.env, map[string]string{"DATABASE_ADMIN_PASSWORD": "wrong"})
		if code != restore.ExitDatabase || !strings.Contains(out, "authentication failed") || strings.Contains(out, "pg_hba.conf rejects this") {
			t.Errorf("initrestore: exit %d, want %d with \"authentication failed\":\n%s", code, restore.ExitDatabase, out)
		}
	})

	t.Run("a bad DATABASE_SSLMODE is a configuration error", func(t *testing.T) {
		tg := newTarget(t, p, url, "cliente-hml", prodNS)
		for _, extra := range []map[string]string{
			{"DATABASE_SSLMODE": "on"},
			{"DATABASE_SSLMODE": "verify-full"},
			{"DATABASE_SSLMODE": "require", "DATABASE_SSLROOTCERT": "/nonexistent/ca.crt"},
		} {
			out, code := runBinary(t, bin, tg.env, extra)
			wantVar := "DATABASE_SSLMODE"
			if extra["DATABASE_SSLMODE"] != "on" {
				wantVar = "DATABASE_SSLROOTCERT"
			}
			if code != restore.ExitConfig || !strings.Contains(out, wantVar) {
				t.Errorf("%v: exit %d, want %d naming %s:\n%s", extra, code, restore.ExitConfig, wantVar, out)
			}
		}
	})
}

package pg_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestCheckTLS(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ca := testenv.OtherCA(t)
	tests := map[string]struct {
		mode, rootCert string
		wantErr        string // "" = valid
	}{
		"the default":                      {},
		"every libpq mode without a CA":    {mode: "require"},
		"allow":                            {mode: "allow"},
		"disable":                          {mode: "disable"},
		"verify-full with a CA":            {mode: "verify-full", rootCert: ca},
		"verify-ca with a CA":              {mode: "verify-ca", rootCert: ca},
		"prefer with a CA":                 {mode: "prefer", rootCert: ca},
		"an unknown mode names the var":    {mode: "on", wantErr: "DATABASE_SSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full"},
		"modes are case-sensitive":         {mode: "Require", wantErr: "DATABASE_SSLMODE"},
		"verify-full needs a CA":           {mode: "verify-full", wantErr: "DATABASE_SSLROOTCERT is required when DATABASE_SSLMODE is verify-full"},
		"verify-ca needs a CA":             {mode: "verify-ca", wantErr: "DATABASE_SSLROOTCERT is required"},
		"a missing CA file names the var":  {mode: "require", rootCert: filepath.Join(dir, "absent.crt"), wantErr: "DATABASE_SSLROOTCERT: reading the CA file"},
		"a CA file without PEM is refused": {mode: "verify-full", rootCert: notPEM, wantErr: "DATABASE_SSLROOTCERT: the CA file"},
		"a CA file is checked in any mode": {mode: "disable", rootCert: notPEM, wantErr: "holds no PEM certificate"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			err := pg.CheckTLS(tc.mode, tc.rootCert)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("CheckTLS(%q, %q) = %v, want nil", tc.mode, tc.rootCert, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("CheckTLS(%q, %q) = %v, want an error containing %q", tc.mode, tc.rootCert, err, tc.wantErr)
			}
		})
	}
}

// TestClientEnvCarriesTLSPolicy: the children get the same sslmode and CA as the pgx
// connections, in their environment (never as arguments), and no inherited PGSSL*.
func TestClientEnvCarriesTLSPolicy(t *testing.T) {
	t.Setenv("PGSSLMODE", "disable")
	t.Setenv("PGSSLROOTCERT", "/inherited/ca.crt")
	tests := map[string]struct {
		conn pg.Conn
		want []string
	}{
		"the default is prefer":    {conn: pg.Conn{}, want: []string{"PGSSLMODE=prefer"}},
		"a mode without a CA":      {conn: pg.Conn{SSLMode: "require"}, want: []string{"PGSSLMODE=require"}},
		"a mode and its CA":        {conn: pg.Conn{SSLMode: "verify-full", SSLRootCert: "/etc/ca/ca.crt"}, want: []string{"PGSSLMODE=verify-full", "PGSSLROOTCERT=/etc/ca/ca.crt"}},
		"disable is passed as set": {conn: pg.Conn{SSLMode: "disable"}, want: []string{"PGSSLMODE=disable"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			var got []string
			for _, kv := range tc.conn.Env() {
				if strings.HasPrefix(kv, "PGSSL") {
					got = append(got, kv)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("PGSSL* of the child = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	hbaNoEntry := &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `no pg_hba.conf entry for host "10.0.0.7", user "app", database "erp", no encryption`}
	hbaReject := &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `pg_hba.conf rejects connection for host "127.0.0.1", user "app", database "erp", no encryption`}
	hbaTranslated := &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `nenhuma entrada no pg_hba.conf para máquina "10.0.0.7", usuário "app", banco de dados "erp", sem criptografia`}
	password := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: `password authentication failed for user "app"`}
	noLogin := &pgconn.PgError{Severity: "FATAL", Code: "28000", Message: `role "app" is not permitted to log in`}
	tests := map[string]struct {
		err  error
		want error // nil = left unclassified
	}{
		"no pg_hba.conf entry is a pg_hba rejection":         {err: hbaNoEntry, want: pg.ErrHBA},
		"a reject rule is a pg_hba rejection":                {err: hbaReject, want: pg.ErrHBA},
		"a translated message still names pg_hba.conf":       {err: hbaTranslated, want: pg.ErrHBA},
		"a wrong password is an authentication failure":      {err: password, want: pg.ErrAuth},
		"a role without LOGIN is an authentication failure":  {err: noLogin, want: pg.ErrAuth},
		"prefer's two attempts: the password wins":           {err: errors.Join(fmt.Errorf("tls error: %w", errors.New("server refused TLS connection")), password), want: pg.ErrAuth},
		"allow's two attempts: the password wins over hba":   {err: errors.Join(hbaReject, password), want: pg.ErrAuth},
		"prefer against a plain server rejecting clear text": {err: errors.Join(errors.New("server refused TLS connection"), hbaNoEntry), want: pg.ErrHBA},
		"require against a server without TLS":               {err: fmt.Errorf("tls error: %w", errors.New("server refused TLS connection")), want: pg.ErrTLS},
		"anything else stays as it is":                       {err: errors.New("dial tcp 127.0.0.1:5432: connect: connection refused")},
	}
	all := []error{pg.ErrAuth, pg.ErrHBA, pg.ErrTLS}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := pg.Classify(tc.err)
			for _, sentinel := range all {
				if is := errors.Is(got, sentinel); is != (sentinel == tc.want) {
					t.Errorf("errors.Is(classify(err), %q) = %v; err: %v", sentinel, is, got)
				}
			}
			var pgErr *pgconn.PgError
			if errors.As(tc.err, &pgErr) && !errors.As(got, &pgErr) {
				t.Errorf("the *pgconn.PgError is no longer in the chain: %v", got)
			}
		})
	}
}

// tlsCase is one connection policy against a server, and what it must give.
type tlsCase struct {
	mode, ca, host, password string
	want                     error // nil = connects
	wantTLS                  bool  // the session is encrypted
}

// TestTLSPolicyAgainstTLSOnlyServer: against a server that rejects clear text
// (hostnossl … reject), every mode does what libpq does; the pgx connection and psql
// with Conn.Env agree on each; a pg_hba.conf rejection and a certificate failure each
// get their own error, never "authentication failed".
func TestTLSPolicyAgainstTLSOnlyServer(t *testing.T) {
	p := testenv.StartPostgresTLS(t, 15)
	wrong := testenv.OtherCA(t)
	tests := map[string]tlsCase{
		"the default (prefer) uses TLS":                    {wantTLS: true},
		"allow falls back to TLS":                          {mode: "allow", wantTLS: true},
		"require":                                          {mode: "require", wantTLS: true},
		"verify-ca with the right CA":                      {mode: "verify-ca", ca: p.CAFile, wantTLS: true},
		"verify-full with the right CA, by IP":             {mode: "verify-full", ca: p.CAFile, wantTLS: true},
		"verify-full with the right CA, by name":           {mode: "verify-full", ca: p.CAFile, host: "localhost", wantTLS: true},
		"prefer with the right CA":                         {mode: "prefer", ca: p.CAFile, wantTLS: true},
		"disable gets the pg_hba message":                  {mode: "disable", want: pg.ErrHBA},
		"verify-full with a wrong CA is a TLS error":       {mode: "verify-full", ca: wrong, want: pg.ErrTLS},
		"verify-ca with a wrong CA is a TLS error":         {mode: "verify-ca", ca: wrong, want: pg.ErrTLS},
		"require with a wrong CA verifies, as libpq":       {mode: "require", ca: wrong, want: pg.ErrTLS},
		"prefer with a wrong CA: TLS error, not pg_hba":    {mode: "prefer", ca: wrong, want: pg.ErrTLS},
		"a wrong password stays an authentication failure": {password: "wrong", want: pg.ErrAuth},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { checkPolicy(t, p, tc) })
	}
}

// TestTLSPolicyAgainstPlainServer: the default still reaches a server without TLS;
// modes that need TLS fail at once with a TLS error.
func TestTLSPolicyAgainstPlainServer(t *testing.T) {
	p := testenv.StartPostgres(t, 15)
	tests := map[string]tlsCase{
		"the default (prefer) falls back to clear text": {},
		"disable":                    {mode: "disable"},
		"allow":                      {mode: "allow"},
		"require is a TLS error":     {mode: "require", want: pg.ErrTLS},
		"verify-full is a TLS error": {mode: "verify-full", ca: testenv.OtherCA(t), want: pg.ErrTLS},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) { checkPolicy(t, p, tc) })
	}
}

func checkPolicy(t *testing.T, p *testenv.Postgres, tc tlsCase) {
	t.Helper()
	c := pg.Conn{Host: p.Host, Port: p.Port, User: p.User, Password: p.Password, Database: "postgres",
		AppName: "tls-test", SSLMode: tc.mode, SSLRootCert: tc.ca}
	if tc.host != "" {
		c.Host = tc.host
	}
	if tc.password != "" {
		c.Password = tc.password
	}
	ctx := t.Context()
	start := time.Now()
	conn, err := pg.WaitConnect(ctx, logr.Discard(), c, 30*time.Second)
	elapsed := time.Since(start)
	var psqlOut string
	var psqlErr error
	if psql, ferr := pg.FindClient(pg.DefaultClientRoot, "psql", 15); ferr == nil {
		cmd := pg.CommandContext(ctx, psql, c, "-XAtc", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
		b, e := cmd.CombinedOutput()
		psqlOut, psqlErr = strings.TrimSpace(string(b)), e
	} else {
		t.Fatalf("psql: %v", ferr)
	}
	if tc.want == nil {
		if err != nil {
			t.Fatalf("pgx: %v", err)
		}
		defer conn.Close(context.Background())
		var ssl bool
		if err := conn.QueryRow(ctx, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
			t.Fatal(err)
		}
		if ssl != tc.wantTLS {
			t.Errorf("pgx session encrypted = %v, want %v", ssl, tc.wantTLS)
		}
		wantOut := map[bool]string{true: "t", false: "f"}[tc.wantTLS]
		if psqlErr != nil || psqlOut != wantOut {
			t.Errorf("psql with the same policy: %v, output %q; want %q", psqlErr, psqlOut, wantOut)
		}
		return
	}
	if err == nil {
		conn.Close(context.Background())
		t.Fatalf("pgx connected, want %q", tc.want)
	}
	for _, sentinel := range []error{pg.ErrAuth, pg.ErrHBA, pg.ErrTLS} {
		if errors.Is(err, sentinel) != (sentinel == tc.want) {
			t.Errorf("errors.Is(err, %q) = %v; err: %v", sentinel, errors.Is(err, sentinel), err)
		}
	}
	if tc.want != pg.ErrAuth && strings.Contains(err.Error(), "authentication failed") {
		t.Errorf("the error says \"authentication failed\": %v", err)
	}
	if elapsed > 15*time.Second {
		t.Errorf("the wait took %s: a %q error must end it at once", elapsed, tc.want)
	}
	var ee *exec.ExitError
	if !errors.As(psqlErr, &ee) {
		t.Errorf("psql with the same policy: %v, output %q; want it to fail as pgx did", psqlErr, psqlOut)
	}
	t.Logf("pgx: %v\npsql: %s", err, psqlOut)
}

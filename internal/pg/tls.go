package pg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smartbackup/smartbackup/internal/contract"
)

// TLS follows libpq's sslmode and sslrootcert, so the binaries' own (pgx) connections
// and their pg_dump, pg_restore and psql children behave alike:
//
//	disable      clear text only
//	allow        clear text, then TLS if the server rejects clear text
//	prefer       TLS, then clear text if TLS fails (the default)
//	require      TLS only
//	verify-ca    TLS only, the server's chain verified against the CA file
//	verify-full  as verify-ca, and the certificate must name the host
//
// As in libpq, a CA file given with allow, prefer or require also verifies the chain of
// every TLS attempt (require then behaves as verify-ca; prefer falls back to clear text
// when the verification fails).

// ErrHBA reports that the server's pg_hba.conf rejects the connection (SQLSTATE 28000):
// often a server that accepts only TLS, reached with DATABASE_SSLMODE=disable, or a
// client address the administrator has not allowed. Retrying will not help.
var ErrHBA = errors.New("the server's pg_hba.conf rejects this connection (a server that accepts only TLS rejects clear text: check DATABASE_SSLMODE)")

// ErrTLS reports that TLS could not be established: the server refused it, or its
// certificate did not verify against the CA file. Retrying will not help.
var ErrTLS = errors.New("TLS to the server failed")

// CheckTLS validates a DATABASE_SSLMODE and DATABASE_SSLROOTCERT pair; the error names
// the variable. An empty mode is the default, prefer.
func CheckTLS(mode, rootCert string) error {
	if mode == "" {
		mode = contract.DefaultSSLMode
	}
	if !contract.ValidSSLMode(mode) {
		return fmt.Errorf("%s must be one of %s, not %q", contract.EnvDatabaseSSLMode, strings.Join(contract.SSLModes, ", "), mode)
	}
	if rootCert == "" {
		if contract.SSLModeNeedsCA(mode) {
			return fmt.Errorf("%s is required when %s is %s", contract.EnvDatabaseSSLRootCert, contract.EnvDatabaseSSLMode, mode)
		}
		return nil
	}
	if _, err := loadCA(rootCert); err != nil {
		return fmt.Errorf("%s: %w", contract.EnvDatabaseSSLRootCert, err)
	}
	return nil
}

func loadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("the CA file %q holds no PEM certificate", path)
	}
	return pool, nil
}

func (c Conn) sslMode() string {
	if c.SSLMode == "" {
		return contract.DefaultSSLMode
	}
	return c.SSLMode
}

// tlsAttempts are the TLS configurations to try in order, nil meaning clear text.
func (c Conn) tlsAttempts() ([]*tls.Config, error) {
	mode := c.sslMode()
	if err := CheckTLS(mode, c.SSLRootCert); err != nil {
		return nil, err
	}
	if mode == contract.SSLModeDisable {
		return []*tls.Config{nil}, nil
	}
	var roots *x509.CertPool
	if c.SSLRootCert != "" {
		var err error
		if roots, err = loadCA(c.SSLRootCert); err != nil {
			return nil, err
		}
	}
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if net.ParseIP(c.Host) == nil {
		t.ServerName = c.Host // SNI, as libpq's sslsni=1
	}
	if roots != nil {
		// crypto/tls's own verification always checks the host name; verify-ca must
		// not, so the chain (and for verify-full the name) is checked here.
		host := ""
		if mode == contract.SSLModeVerifyFull {
			host = c.Host
		}
		t.InsecureSkipVerify = true
		t.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, roots, host, c.SSLRootCert)
		}
	} else {
		// Without a CA file (allow, prefer, require) the traffic is encrypted but the
		// server is not authenticated, as with libpq.
		t.InsecureSkipVerify = true
	}
	switch mode {
	case contract.SSLModeAllow:
		return []*tls.Config{nil, t}, nil
	case contract.SSLModePrefer:
		return []*tls.Config{t, nil}, nil
	default:
		return []*tls.Config{t}, nil
	}
}

// certError is a server certificate that failed verification.
type certError struct {
	caFile string
	err    error
}

func (e *certError) Error() string {
	return fmt.Sprintf("the server's certificate does not verify against the CA file %q: %v", e.caFile, e.err)
}

func (e *certError) Unwrap() error { return e.err }

func verifyChain(raw [][]byte, roots *x509.CertPool, host, caFile string) error {
	if len(raw) == 0 {
		return &certError{caFile, errors.New("the server sent no certificate")}
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, b := range raw {
		cert, err := x509.ParseCertificate(b)
		if err != nil {
			return &certError{caFile, fmt.Errorf("parsing the server's certificate: %w", err)}
		}
		certs[i] = cert
	}
	opts := x509.VerifyOptions{Roots: roots, Intermediates: x509.NewCertPool(), DNSName: host}
	for _, cert := range certs[1:] {
		opts.Intermediates.AddCert(cert)
	}
	if _, err := certs[0].Verify(opts); err != nil {
		return &certError{caFile, err}
	}
	return nil
}

// classify turns a pgx connection error into ErrAuth, ErrHBA or ErrTLS (keeping the
// chain, so errors.As still finds a *pgconn.PgError). pgx joins the error of every
// attempt (prefer: TLS, then clear text), so the whole tree is read: a password
// rejection wins (the server got as far as the credentials), then a certificate
// failure (the cause of a clear-text fallback that pg_hba.conf then rejects), then the
// pg_hba.conf rejection.
func classify(err error) error {
	var auth, hba, other28000, cert, refused bool
	walk(err, func(e error) {
		switch e := e.(type) {
		case *pgconn.PgError:
			switch {
			case e.Code == "28P01":
				auth = true
			// The message is translated with lc_messages, the file name is not.
			case e.Code == "28000" && strings.Contains(e.Message, "pg_hba.conf"):
				hba = true
			case e.Code == "28000":
				other28000 = true
			}
		case *certError:
			cert = true
		default:
			// pgconn's startTLS: the server answered 'N' to SSLRequest (ssl=off).
			if e.Error() == "server refused TLS connection" {
				refused = true
			}
		}
	})
	switch {
	case auth:
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case cert:
		return fmt.Errorf("%w: %w", ErrTLS, err)
	case hba:
		return fmt.Errorf("%w: %w", ErrHBA, err)
	case other28000:
		return fmt.Errorf("%w: %w", ErrAuth, err)
	case refused:
		return fmt.Errorf("%w: the server does not accept TLS (check %s): %w", ErrTLS, contract.EnvDatabaseSSLMode, err)
	}
	return err
}

// walk calls f on every error of err's tree (Unwrap() error and Unwrap() []error).
func walk(err error, f func(error)) {
	if err == nil {
		return
	}
	f(err)
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		walk(u.Unwrap(), f)
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			walk(e, f)
		}
	}
}

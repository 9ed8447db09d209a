package contract

import "regexp"

// The rules every binary applies to the values it passes to another, so the webhook
// never injects what initrestore or cronbackup would refuse.
var (
	codepageRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{1,30}$`)
	localeRE   = regexp.MustCompile(`^[A-Za-z0-9_.@-]{1,64}$`)
)

// ValidCodepage reports whether s looks like a PostgreSQL encoding name (WIN1252, UTF8,
// LATIN1, SQL_ASCII…): DATABASE_CODEPAGE.
func ValidCodepage(s string) bool { return codepageRE.MatchString(s) }

// ValidLocale reports whether s looks like a locale name (pt_BR.CP1252, C):
// DATABASE_LOCALE.
func ValidLocale(s string) bool { return localeRE.MatchString(s) }

// Names initrestore gives the databases around a restore; no real database may carry
// them.
const (
	// TempDatabaseSuffix names the database being restored; it never serves dbaccess.
	TempDatabaseSuffix = "__restoring"
	// PreviousDatabaseInfix names the database a forced restore replaces, until the swap.
	PreviousDatabaseInfix = "__previous_"
)

// SSL modes: libpq's sslmode values, in increasing order of protection (DATABASE_SSLMODE).
const (
	SSLModeDisable    = "disable"
	SSLModeAllow      = "allow"
	SSLModePrefer     = "prefer"
	SSLModeRequire    = "require"
	SSLModeVerifyCA   = "verify-ca"
	SSLModeVerifyFull = "verify-full"
	// DefaultSSLMode is libpq's default: TLS when the server offers it, clear text
	// otherwise.
	DefaultSSLMode = SSLModePrefer
)

// SSLModes lists the accepted DATABASE_SSLMODE values.
var SSLModes = []string{SSLModeDisable, SSLModeAllow, SSLModePrefer, SSLModeRequire, SSLModeVerifyCA, SSLModeVerifyFull}

// ValidSSLMode reports whether s is one of SSLModes.
func ValidSSLMode(s string) bool {
	for _, m := range SSLModes {
		if s == m {
			return true
		}
	}
	return false
}

// SSLModeNeedsCA reports whether mode verifies the server against a CA file, which
// must then be given (DATABASE_SSLROOTCERT).
func SSLModeNeedsCA(mode string) bool { return mode == SSLModeVerifyCA || mode == SSLModeVerifyFull }

package backup_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/test/testenv"
)

// TestTLSConfig: DATABASE_SSLMODE and DATABASE_SSLROOTCERT are read, defaulted to
// prefer, validated (the error names the variable) and reach the dump's connection.
// The dump against a TLS-only server is in initrestore's TestTLSOnlyServer.
func TestTLSConfig(t *testing.T) {
	base := map[string]string{
		"DATABASE_ENDPOINT": "db", "DATABASE_USER": "u", "DATABASE_PASSWORD": "p", "DATABASE_CODEPAGE": "WIN1252",
		"BACKUP_STORAGE_URL": "gs://bucket", "NAMESPACE": "ns",
	}
	ca := testenv.OtherCA(t)
	tests := map[string]struct {
		set      map[string]string
		wantMode string // "" = a configuration error naming wantName
		wantName string
	}{
		"the default is prefer":         {wantMode: "prefer"},
		"verify-full with its CA":       {set: map[string]string{"DATABASE_SSLMODE": "verify-full", "DATABASE_SSLROOTCERT": ca}, wantMode: "verify-full"},
		"an unknown mode":               {set: map[string]string{"DATABASE_SSLMODE": "true"}, wantName: "DATABASE_SSLMODE"},
		"verify-full without a CA":      {set: map[string]string{"DATABASE_SSLMODE": "verify-full"}, wantName: "DATABASE_SSLROOTCERT"},
		"a CA file that does not exist": {set: map[string]string{"DATABASE_SSLMODE": "require", "DATABASE_SSLROOTCERT": filepath.Join(t.TempDir(), "ca.crt")}, wantName: "DATABASE_SSLROOTCERT"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for _, k := range []string{"DATABASE_SSLMODE", "DATABASE_SSLROOTCERT"} {
				t.Setenv(k, "")
				os.Unsetenv(k)
			}
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range tc.set {
				t.Setenv(k, v)
			}
			cfg, err := backup.LoadConfig()
			if tc.wantMode == "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantName) {
					t.Fatalf("LoadConfig = %v, want an error naming %s", err, tc.wantName)
				}
				return
			}
			if err != nil || cfg.SSLMode != tc.wantMode || cfg.SSLRootCert != tc.set["DATABASE_SSLROOTCERT"] {
				t.Fatalf("cfg.SSLMode %q, SSLRootCert %q, %v; want %q", cfg.SSLMode, cfg.SSLRootCert, err, tc.wantMode)
			}
		})
	}
}

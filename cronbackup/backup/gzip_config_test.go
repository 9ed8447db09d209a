package backup_test

import (
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/internal/gzipx"
)

// TestGzipLevel: GZIP_LEVEL=auto is the gzip layer's measured default over an
// uncompressed archive and Huffman coding only over one pg_dump compressed; a number
// is taken as it is; anything else names the variable.
func TestGzipLevel(t *testing.T) {
	tests := map[string]struct {
		level, dumpCompression string
		want                   int
		wantErr                bool
	}{
		"auto over an uncompressed archive": {"auto", "0", gzipx.DefaultLevel, false},
		"auto over the page's -Z6 archive":  {"auto", "6", gzipx.HuffmanOnly, false},
		"a level set":                       {"5", "0", 5, false},
		"Huffman only set":                  {"-2", "0", gzipx.HuffmanOnly, false},
		"a level out of range":              {"10", "0", 0, true},
		"not a level":                       {"fast", "0", 0, true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range map[string]string{
				"DATABASE_ENDPOINT": "db", "DATABASE_USER": "u", "DATABASE_PASSWORD": "p", "DATABASE_CODEPAGE": "WIN1252",
				"BACKUP_STORAGE_URL": "file:///backup", "NAMESPACE": "cliente-prod",
				"GZIP_LEVEL": tc.level, "DUMP_COMPRESSION": tc.dumpCompression,
			} {
				t.Setenv(k, v)
			}
			cfg, err := backup.LoadConfig()
			if tc.wantErr {
				if err == nil || !strings.Contains(err.Error(), "GZIP_LEVEL") {
					t.Fatalf("LoadConfig = %v, want an error naming GZIP_LEVEL", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if int(cfg.GzipLevel) != tc.want {
				t.Errorf("GzipLevel = %d, want %d", cfg.GzipLevel, tc.want)
			}
		})
	}
}

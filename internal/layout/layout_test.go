package layout

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestKeys(t *testing.T) {
	at := time.Date(2026, 11, 24, 21, 0, 0, 0, time.FixedZone("BRT", -3*3600))
	tests := map[string]struct{ got, want string }{
		"latest":          {LatestKey("cliente-prod"), "cliente-prod/database_latest.dump.gz"},
		"latest manifest": {LatestManifestKey("cliente-prod"), "cliente-prod/database_latest.manifest.json"},
		"a backup in UTC": {BackupKey("cliente-prod", at), "cliente-prod/database_20261125T000000Z.dump.gz"},
		"its manifest":    {ManifestKey(BackupKey("cliente-prod", at)), "cliente-prod/database_20261125T000000Z.manifest.json"},
	}
	for name, tc := range tests {
		if tc.got != tc.want {
			t.Errorf("%s: %q, want %q", name, tc.got, tc.want)
		}
	}
}

func TestParseBackupKey(t *testing.T) {
	tests := map[string]struct {
		key  string
		ok   bool
		want time.Time
	}{
		"a backup":               {"ns/database_20261124T210000Z.dump.gz", true, time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)},
		"the latest copy":        {"ns/database_latest.dump.gz", false, time.Time{}},
		"a manifest":             {"ns/database_20261124T210000Z.manifest.json", false, time.Time{}},
		"no namespace":           {"database_20261124T210000Z.dump.gz", false, time.Time{}},
		"a nested key":           {"a/b/database_20261124T210000Z.dump.gz", false, time.Time{}},
		"an impossible date":     {"ns/database_20261324T210000Z.dump.gz", false, time.Time{}},
		"an invalid namespace":   {"NS_/database_20261124T210000Z.dump.gz", false, time.Time{}},
		"a temporary shell file": {"ns/database_20261124T210000Z.dump.gz.tmp", false, time.Time{}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			b, ok := ParseBackupKey(tc.key)
			if ok != tc.ok || !b.Time.Equal(tc.want) {
				t.Fatalf("ParseBackupKey(%q) = %+v, %v", tc.key, b, ok)
			}
			if ok && BackupKey(b.Namespace, b.Time) != tc.key {
				t.Fatalf("BackupKey does not round-trip %q", tc.key)
			}
		})
	}
}

func TestManifestRoundTrip(t *testing.T) {
	m := Manifest{
		Version: ManifestVersion, Namespace: "cliente-prod", Object: "cliente-prod/database_20261124T210000Z.dump.gz",
		Size: 1234, SHA256: strings.Repeat("0a", 32), Database: "cliente", Encoding: "WIN1252",
		Format: "pg_dump -Fc -Z6 | gzip -6", ServerVersion: "12.22", DumpVersion: "15.18",
		StartedAt: time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC), FinishedAt: time.Date(2026, 11, 24, 21, 3, 0, 0, time.UTC),
		ArchiveEntries: 42, Tool: "cronbackup",
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseManifest(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(m, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

func TestParseManifestRejects(t *testing.T) {
	good := `{"version":1,"namespace":"ns","object":"ns/database_20261124T210000Z.dump.gz","size":10,"sha256":"` + strings.Repeat("a", 64) + `"}`
	if _, err := ParseManifest([]byte(good)); err != nil {
		t.Fatalf("a good manifest: %v", err)
	}
	tests := map[string]string{
		"not JSON":           `{`,
		"a future version":   strings.Replace(good, `"version":1`, `"version":9`, 1),
		"an upper-case hash": strings.Replace(good, strings.Repeat("a", 64), strings.Repeat("A", 64), 1),
		"a short hash":       strings.Replace(good, strings.Repeat("a", 64), "abc", 1),
		"a zero size":        strings.Replace(good, `"size":10`, `"size":0`, 1),
		"a foreign object":   strings.Replace(good, `ns/database_20261124T210000Z.dump.gz`, `../etc/passwd`, 1),
		"no namespace":       strings.Replace(good, `"namespace":"ns"`, `"namespace":""`, 1),
	}
	for name, in := range tests {
		if _, err := ParseManifest([]byte(in)); !errors.Is(err, ErrBadManifest) {
			t.Errorf("%s: err = %v, want ErrBadManifest", name, err)
		}
	}
}

// FuzzParseManifest: manifests come from a bucket; any bytes give a manifest or
// ErrBadManifest, never a panic, and an accepted manifest names a backup key.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"namespace":"ns","object":"ns/database_20261124T210000Z.dump.gz","size":10,"sha256":"` + strings.Repeat("a", 64) + `"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseManifest(b)
		if err != nil {
			if !errors.Is(err, ErrBadManifest) {
				t.Fatalf("error %v is not ErrBadManifest", err)
			}
			return
		}
		if _, ok := ParseBackupKey(m.Object); !ok {
			t.Fatalf("accepted object %q", m.Object)
		}
	})
}

func FuzzParseBackupKey(f *testing.F) {
	f.Add("ns/database_20261124T210000Z.dump.gz")
	f.Fuzz(func(t *testing.T, key string) {
		b, ok := ParseBackupKey(key)
		if ok && BackupKey(b.Namespace, b.Time) != key {
			t.Fatalf("%q parsed but renders as %q", key, BackupKey(b.Namespace, b.Time))
		}
	})
}

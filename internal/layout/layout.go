// Package layout is the one definition of where backups live in a store, shared by
// cronbackup (which writes them), initrestore (which reads them) and the operator
// scripts. For a namespace NS:
//
//	NS/database_20261124T210000Z.dump.gz        one immutable object per backup (UTC start time)
//	NS/database_20261124T210000Z.manifest.json  its manifest (sha256, size, versions, times)
//	NS/database_latest.dump.gz                  a copy of the newest good backup: the name of the operations page
//	NS/database_latest.manifest.json            the manifest of that copy
//	NS/database_20261124T210000Z.verify.json    the result of its latest `cronbackup verify` (figures only)
//
// The objects are gzip streams of a pg_dump custom-format archive, the format of the
// operations page's pipeline, so `gunzip | pg_restore` works on every one of them.
package layout

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

const (
	// LatestObject is the name the operations page gives the newest backup.
	LatestObject = "database_latest.dump.gz"
	// LatestManifest describes LatestObject.
	LatestManifest = "database_latest.manifest.json"
	// DumpSuffix ends every backup object's name.
	DumpSuffix = ".dump.gz"
	// ManifestSuffix ends every manifest's name.
	ManifestSuffix = ".manifest.json"
	// VerifySuffix ends every verification result's name.
	VerifySuffix = ".verify.json"
	// TimeFormat is the UTC timestamp inside backup names.
	TimeFormat = "20060102T150405Z"
)

var (
	// namespaceRE is a Kubernetes namespace name (RFC 1123 label).
	namespaceRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	backupRE    = regexp.MustCompile(`^database_(\d{8}T\d{6}Z)\.dump\.gz$`)
)

// ValidNamespace reports whether ns is a Kubernetes namespace name, the only namespace
// names that may appear in keys.
func ValidNamespace(ns string) error {
	if !namespaceRE.MatchString(ns) {
		return fmt.Errorf("namespace %q is not a Kubernetes namespace name", ns)
	}
	return nil
}

// LatestKey is NS/database_latest.dump.gz.
func LatestKey(ns string) string { return ns + "/" + LatestObject }

// LatestManifestKey is NS/database_latest.manifest.json.
func LatestManifestKey(ns string) string { return ns + "/" + LatestManifest }

// BackupKey is the immutable object of the backup that started at t.
func BackupKey(ns string, t time.Time) string {
	return ns + "/database_" + t.UTC().Format(TimeFormat) + DumpSuffix
}

// ManifestKey is the manifest beside a backup object.
func ManifestKey(backupKey string) string {
	return strings.TrimSuffix(backupKey, DumpSuffix) + ManifestSuffix
}

// VerifyKey is the verification result beside a backup object.
func VerifyKey(backupKey string) string {
	return strings.TrimSuffix(backupKey, DumpSuffix) + VerifySuffix
}

// Backup is a parsed immutable backup key.
type Backup struct {
	Namespace string
	Key       string
	Time      time.Time
}

// ParseBackupKey recognises NS/database_<time>.dump.gz (and not the latest copy).
func ParseBackupKey(key string) (Backup, bool) {
	ns, name, ok := strings.Cut(key, "/")
	if !ok || ValidNamespace(ns) != nil {
		return Backup{}, false
	}
	m := backupRE.FindStringSubmatch(name)
	if m == nil {
		return Backup{}, false
	}
	t, err := time.Parse(TimeFormat, m[1])
	if err != nil {
		return Backup{}, false
	}
	return Backup{Namespace: ns, Key: key, Time: t}, true
}

// ManifestVersion is the manifest format written by this code.
const ManifestVersion = 1

// Manifest describes one backup object. It is written after the object and before the
// object is promoted to latest, so a manifest always describes a complete object.
type Manifest struct {
	Version   int    `json:"version"`
	Namespace string `json:"namespace"`
	// Object is the immutable object this manifest describes.
	Object string `json:"object"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	// ArchiveSize is the size of the archive inside the gzip layer: what a restore
	// that spools it needs on disk.
	ArchiveSize int64 `json:"archiveSize,omitempty"`
	// Database and Encoding are the dumped database and its server encoding.
	Database string `json:"database"`
	Encoding string `json:"encoding"`
	// Format says how the object is built, e.g. "pg_dump -Fc -Z6 | gzip -6".
	Format        string    `json:"format"`
	ServerVersion string    `json:"serverVersion"`
	DumpVersion   string    `json:"pgDumpVersion"`
	StartedAt     time.Time `json:"startedAt"`
	FinishedAt    time.Time `json:"finishedAt"`
	// ArchiveEntries is the number of entries in the archive's table of contents.
	ArchiveEntries int    `json:"archiveEntries"`
	Tool           string `json:"tool"`
	// Tables is the number of TABLE entries in the archive's table of contents, and
	// Rows the rows of each table's data in the archive (RowsMethod says how they were
	// counted); both absent in manifests written before cronbackup recorded them.
	Tables     int         `json:"tables,omitempty"`
	Rows       []TableRows `json:"rows,omitempty"`
	RowsMethod string      `json:"rowsMethod,omitempty"`
}

// RowsExact is the RowsMethod of counts taken from the dumped archive stream: the lines
// of each table's COPY data, exactly the rows a restore loads.
const RowsExact = "exact: COPY lines of each table's data in the dumped archive"

// TableRows is one table's row count. Names only: no row's content.
type TableRows struct {
	Schema string `json:"schema"`
	Table  string `json:"table"`
	Rows   int64  `json:"rows"`
}

// Marshal renders the manifest as indented JSON.
func (m Manifest) Marshal() ([]byte, error) {
	return json.MarshalIndent(m, "", "  ")
}

// ErrBadManifest reports a manifest that cannot be trusted.
var ErrBadManifest = errors.New("invalid manifest")

// ParseManifest reads and checks a manifest.
func ParseManifest(b []byte) (Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&m); err != nil {
		return Manifest{}, fmt.Errorf("%w: %v", ErrBadManifest, err)
	}
	switch {
	case m.Version < 1 || m.Version > ManifestVersion:
		return Manifest{}, fmt.Errorf("%w: version %d is not supported", ErrBadManifest, m.Version)
	case len(m.SHA256) != 64 || strings.Trim(m.SHA256, "0123456789abcdef") != "":
		return Manifest{}, fmt.Errorf("%w: sha256 %q is not 64 lower-case hex digits", ErrBadManifest, m.SHA256)
	case m.Size <= 0:
		return Manifest{}, fmt.Errorf("%w: size %d", ErrBadManifest, m.Size)
	case ValidNamespace(m.Namespace) != nil:
		return Manifest{}, fmt.Errorf("%w: namespace %q", ErrBadManifest, m.Namespace)
	}
	if b, ok := ParseBackupKey(m.Object); !ok || b.Namespace != m.Namespace {
		return Manifest{}, fmt.Errorf("%w: object %q is not a backup key of namespace %q", ErrBadManifest, m.Object, m.Namespace)
	}
	return m, nil
}

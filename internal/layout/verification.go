package layout

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Verdicts of a verification.
const (
	VerdictPassed = "passed"
	VerdictFailed = "failed"
)

// VerificationVersion is the verify.json format written by this code.
const VerificationVersion = 1

// Verification is NS/database_<ts>.verify.json: what a verification found, in figures and
// names only.
type Verification struct {
	Version   int    `json:"version"`
	Verdict   string `json:"verdict"`
	Namespace string `json:"namespace"`
	Object    string `json:"object"`
	SHA256    string `json:"sha256"`
	// BackupTime is when the verified backup started.
	BackupTime time.Time `json:"backupTime"`
	// Server is the verification server (host:port) and ScratchDatabase the database
	// the backup was restored into there, dropped since (ScratchDropped).
	Server          string    `json:"server"`
	ScratchDatabase string    `json:"scratchDatabase"`
	ScratchDropped  bool      `json:"scratchDropped"`
	PgRestore       string    `json:"pgRestore"`
	StartedAt       time.Time `json:"startedAt"`
	FinishedAt      time.Time `json:"finishedAt"`
	DurationSeconds float64   `json:"durationSeconds"`
	// Failures says what did not verify, empty when the verdict is passed.
	Failures []string            `json:"failures,omitempty"`
	Figures  VerificationFigures `json:"figures"`
}

// VerificationFigures are the verification's counts and sizes.
type VerificationFigures struct {
	ObjectBytes   int64 `json:"objectBytes"`
	ArchiveBytes  int64 `json:"archiveBytes"`
	DatabaseBytes int64 `json:"databaseBytes"`
	// ArchiveEntries: the manifest's and the downloaded archive's.
	ManifestEntries int `json:"manifestEntries"`
	ArchiveEntries  int `json:"archiveEntries"`
	// Tables: the manifest's and the restored database's.
	ManifestTables int `json:"manifestTables"`
	RestoredTables int `json:"restoredTables"`
	// TablesChecked is how many tables' rows were counted, ManifestRows and
	// RestoredRows their totals; RowsMethod is how the backup counted.
	TablesChecked int    `json:"tablesChecked"`
	ManifestRows  int64  `json:"manifestRows"`
	RestoredRows  int64  `json:"restoredRows"`
	RowsMethod    string `json:"rowsMethod,omitempty"`
	// Mismatches are the tables whose restored rows differ from the recorded ones.
	Mismatches []Mismatch `json:"mismatches,omitempty"`
}

// Mismatch is one table whose rows differ: recorded at backup time, found in the
// downloaded archive, and restored (-1: the table is missing).
type Mismatch struct {
	Schema    string `json:"schema"`
	Table     string `json:"table"`
	Recorded  int64  `json:"recorded"`
	InArchive int64  `json:"inArchive"`
	Restored  int64  `json:"restored"`
}

// ErrBadVerification reports a verification result that cannot be trusted.
var ErrBadVerification = errors.New("invalid verification result")

// ParseVerification reads and checks a verification result (at most a few KiB of JSON
// written by `cronbackup verify`; the store is outside input).
func ParseVerification(b []byte) (Verification, error) {
	var v Verification
	if err := json.NewDecoder(bytes.NewReader(b)).Decode(&v); err != nil {
		return Verification{}, fmt.Errorf("%w: %v", ErrBadVerification, err)
	}
	switch {
	case v.Version < 1 || v.Version > VerificationVersion:
		return Verification{}, fmt.Errorf("%w: version %d is not supported", ErrBadVerification, v.Version)
	case v.Verdict != VerdictPassed && v.Verdict != VerdictFailed:
		return Verification{}, fmt.Errorf("%w: verdict %q is neither %s nor %s", ErrBadVerification, v.Verdict, VerdictPassed, VerdictFailed)
	case ValidNamespace(v.Namespace) != nil:
		return Verification{}, fmt.Errorf("%w: namespace %q", ErrBadVerification, v.Namespace)
	case v.FinishedAt.IsZero():
		return Verification{}, fmt.Errorf("%w: no finishedAt", ErrBadVerification)
	}
	if bk, ok := ParseBackupKey(v.Object); !ok || bk.Namespace != v.Namespace {
		return Verification{}, fmt.Errorf("%w: object %q is not a backup key of namespace %q", ErrBadVerification, v.Object, v.Namespace)
	}
	return v, nil
}

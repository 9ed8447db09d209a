package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"
)

// Summary is the one line initrestore and `cronbackup backup` write to their
// container's termination message, so that `kubectl describe pod` shows a run's outcome
// and the webhook turns it into an Event and metrics. It carries no data: an outcome,
// the object restored or written (a key of the namespace's own layout), its sha256,
// the duration and the exit code with its fixed meaning, never an error's text.
type Summary struct {
	// Kind is SummaryRestore or SummaryBackup.
	Kind string `json:"kind"`
	// Outcome: a restore's "restored", "exists", "created-empty" or "failed"; a
	// backup's "succeeded" or "failed".
	Outcome string  `json:"outcome"`
	Object  string  `json:"object,omitempty"`
	SHA256  string  `json:"sha256,omitempty"`
	Seconds float64 `json:"seconds"`
	// Bytes is the size of the object written (a backup's) or restored.
	Bytes    int64 `json:"bytes,omitempty"`
	ExitCode int   `json:"exitCode"`
	// Reason is the exit code's meaning, from a fixed list (ExitMeaning).
	Reason string `json:"reason,omitempty"`
}

// Reasons of the Events the webhook records on a pod from its Summary.
const (
	EventRestored      = "SmartbackupRestored"
	EventRestoreFailed = "SmartbackupRestoreFailed"
	EventBackedUp      = "SmartbackupBackedUp"
	EventBackupFailed  = "SmartbackupBackupFailed"
)

// Summary kinds and outcomes.
const (
	SummaryRestore   = "restore"
	SummaryBackup    = "backup"
	OutcomeFailed    = "failed"
	OutcomeSucceeded = "succeeded"
)

// TerminationMessagePath is where a container's termination message is written (the
// kubelet's default); EnvTerminationMessagePath overrides it (tests).
const (
	TerminationMessagePath    = "/dev/termination-log"
	EnvTerminationMessagePath = "TERMINATION_MESSAGE_PATH"
)

// maxSummary is the kubelet's limit on a termination message.
const maxSummary = 4096

var (
	summaryOutcomes = map[string][]string{
		SummaryRestore: {"restored", "exists", "created-empty", OutcomeFailed},
		SummaryBackup:  {OutcomeSucceeded, OutcomeFailed},
	}
	sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)
	// reasonRE: the fixed meanings are short plain sentences.
	reasonRE = regexp.MustCompile(`^[a-zA-Z0-9 ,;:()'/_.-]{0,200}$`)
	// objectRE: a key of the layout, NS/database_<...>.dump.gz.
	objectRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?/[A-Za-z0-9_.-]{1,200}$`)
)

// ExitMeaning is the fixed, data-free meaning of a restore's or a backup's exit code.
func ExitMeaning(kind string, code int) string {
	common := map[int]string{0: "", 1: "unexpected failure", 2: "configuration error", 3: "database unreachable or refused",
		5: "storage unreachable or forbidden", 6: "backup failed verification"}
	if m, ok := common[code]; ok {
		return m
	}
	switch {
	case kind == SummaryRestore && code == 4:
		return "pg_restore failed"
	case kind == SummaryRestore && code == 8:
		return "no backup to restore"
	case kind == SummaryBackup && code == 4:
		return "pg_dump failed"
	case kind == SummaryBackup && code == 7:
		return "retention failed after the backup"
	case kind == SummaryBackup && code == 8:
		return "no dump slot came free"
	}
	return "see the exit codes in the README"
}

// Line is s as one JSON line.
func (s Summary) Line() string {
	b, _ := json.Marshal(s) // no type here fails to marshal
	return string(b)
}

// ParseSummary reads a termination message: one Summary, every field checked, or an
// error (a message from another program, or a tampered one, never reaches an Event).
func ParseSummary(msg string) (Summary, error) {
	if len(msg) > maxSummary {
		return Summary{}, fmt.Errorf("summary of %d bytes, more than %d", len(msg), maxSummary)
	}
	dec := json.NewDecoder(strings.NewReader(strings.TrimSpace(msg)))
	dec.DisallowUnknownFields()
	var s Summary
	if err := dec.Decode(&s); err != nil {
		return Summary{}, errors.New("not a smartbackup summary")
	}
	if dec.More() {
		return Summary{}, errors.New("more than one summary")
	}
	outcomes, ok := summaryOutcomes[s.Kind]
	switch {
	case !ok:
		return Summary{}, fmt.Errorf("unknown summary kind %q", s.Kind)
	case !containsString(outcomes, s.Outcome):
		return Summary{}, fmt.Errorf("unknown %s outcome", s.Kind)
	case s.Object != "" && !objectRE.MatchString(s.Object):
		return Summary{}, errors.New("summary object is not a backup key")
	case s.SHA256 != "" && !sha256RE.MatchString(s.SHA256):
		return Summary{}, errors.New("summary sha256 is not a sha256")
	case s.Seconds < 0 || s.Seconds > 30*24*3600 || s.Seconds != s.Seconds:
		return Summary{}, errors.New("summary duration out of range")
	case s.Bytes < 0 || (s.Bytes > 0 && s.Object == ""):
		return Summary{}, errors.New("summary size out of range, or without its object")
	case s.ExitCode < 0 || s.ExitCode > 255 || (s.ExitCode == 0) != (s.Outcome != OutcomeFailed):
		return Summary{}, errors.New("summary exit code does not match its outcome")
	case !reasonRE.MatchString(s.Reason):
		return Summary{}, errors.New("summary reason has unexpected characters")
	}
	return s, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// WriteSummary writes s as the container's termination message. Outside a pod (no
// such file's directory) it does nothing and reports why.
func WriteSummary(s Summary) error {
	p := os.Getenv(EnvTerminationMessagePath)
	if p == "" {
		p = TerminationMessagePath
	}
	var b bytes.Buffer
	b.WriteString(s.Line())
	b.WriteByte('\n')
	if err := os.WriteFile(p, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("writing the termination message: %w", err)
	}
	return nil
}

// SummaryDuration is d in seconds, rounded to milliseconds.
func SummaryDuration(d time.Duration) float64 { return d.Round(time.Millisecond).Seconds() }

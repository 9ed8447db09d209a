package restore

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Record is what a restore leaves in the database's comment (COMMENT ON DATABASE): it
// says what the database was restored from, and which forced-restore request it
// applied, so a request is applied once and not on every pod restart.
type Record struct {
	// Object and SHA256 identify the restored backup ("" for an empty database).
	Object string `json:"object,omitempty"`
	SHA256 string `json:"sha256,omitempty"`
	// SourceNamespace is whose backup it was.
	SourceNamespace string `json:"sourceNamespace,omitempty"`
	// BackupTime is when the backup started; RestoredAt when it was swapped in.
	BackupTime time.Time `json:"backupTime,omitzero"`
	RestoredAt time.Time `json:"restoredAt"`
	// RequestID is the forced-restore request applied, if any.
	RequestID string `json:"requestId,omitempty"`
	// Empty says the database was created empty (no backup existed).
	Empty bool `json:"empty,omitempty"`
	// Pod restored it.
	Pod string `json:"pod,omitempty"`
}

// recordPrefix marks our comments; any other comment is left to its owner.
const recordPrefix = "smartbackup:"

// String renders the comment.
func (r Record) String() string {
	b, _ := json.Marshal(r)
	return recordPrefix + string(b)
}

// errNoRecord: the database carries no comment of ours (made by hand, or by the
// operations page's old process).
var errNoRecord = errors.New("no smartbackup record")

// ParseRecord reads a database comment. It comes from the database, which an
// application with owner rights could change: anything unparseable is "no record".
func ParseRecord(comment string) (Record, error) {
	rest, ok := strings.CutPrefix(comment, recordPrefix)
	if !ok {
		return Record{}, errNoRecord
	}
	if len(rest) > 8192 {
		return Record{}, fmt.Errorf("%w: comment of %d bytes", errNoRecord, len(rest))
	}
	var r Record
	if err := json.Unmarshal([]byte(rest), &r); err != nil {
		return Record{}, fmt.Errorf("%w: %v", errNoRecord, err)
	}
	return r, nil
}

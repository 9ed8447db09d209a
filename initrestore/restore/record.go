package restore

import (
	"context"
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

// appliedTable records the forced-restore requests applied, in the server's
// maintenance database, owned by the administrator: dropping or replacing the
// database cannot erase it, and the application role has no right on it. The
// database's comment carries the id too (for the page's tools), but the table decides.
const appliedTable = "smartbackup_applied_requests"

// ensureAppliedTable creates the table if needed, and refuses one the administrator
// does not own (on PostgreSQL 12 any role may create tables in the maintenance
// database's public schema: a table planted there would let its author mark requests
// as applied).
func (r *run) ensureAppliedTable(ctx context.Context) error {
	_, err := r.admin.Exec(ctx, `CREATE TABLE IF NOT EXISTS public.`+appliedTable+` (
		database   text NOT NULL,
		request_id text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now(),
		pod        text,
		PRIMARY KEY (database, request_id))`)
	if err != nil {
		return fmt.Errorf("creating public.%s in the maintenance database (DATABASE_ADMIN_USER needs CREATE on its schema public): %w", appliedTable, err)
	}
	if _, err := r.admin.Exec(ctx, `REVOKE ALL ON public.`+appliedTable+` FROM PUBLIC`); err != nil {
		return fmt.Errorf("closing public.%s to other roles: %w", appliedTable, err)
	}
	if ok, err := r.appliedTableIsOurs(ctx); err != nil || !ok {
		return fmt.Errorf("public.%s in the maintenance database is not owned by %q: refusing to trust it (%v)", appliedTable, r.cfg.AdminUser, err)
	}
	return nil
}

// appliedTableIsOurs: the table exists and belongs to the administrator.
func (r *run) appliedTableIsOurs(ctx context.Context) (bool, error) {
	var ours bool
	err := r.admin.QueryRow(ctx, `SELECT coalesce((SELECT relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user)
		FROM pg_class WHERE oid = to_regclass('public.`+appliedTable+`')), false)`).Scan(&ours)
	return ours, err
}

// requestApplied tells whether the request id was applied to the database, from the
// table (none yet: not applied).
func (r *run) requestApplied(ctx context.Context, id string) (bool, error) {
	ours, err := r.appliedTableIsOurs(ctx)
	if err != nil || !ours {
		return false, err
	}
	var applied bool
	err = r.admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM public.`+appliedTable+` WHERE database = $1 AND request_id = $2)`,
		r.cfg.Database, id).Scan(&applied)
	return applied, err
}

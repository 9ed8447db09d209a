// Package restore is initrestore: it guarantees the database exists before dbaccess
// boots. The run reads as the operations page does, with the checks the page lacks:
//
//  1. wait for the server (bounded; unreachable is a failure, never "missing");
//  2. fast path: the database exists and no new restore request → done;
//  3. lock (an advisory lock per database: concurrent pods restore once);
//  4. find the latest backup and its manifest ("no such object" and "store unreachable"
//     are different outcomes);
//  5. prepare: the application role (password from env), stale replaced databases
//     dropped, a temporary database in the right encoding that only the administrator
//     may open, the extensions in the schemas the archive names;
//  6. restore into it, verify the sha256, mask when asked, then ANALYZE (statistics
//     copy values: they must see masked data only);
//  7. swap it in under the real name atomically, hand it to the application role,
//     recording what was restored and the request applied.
//
// At no moment does a database with the real name exist half-restored: a killed run
// leaves only the temporary database, which the application role cannot open and the
// next run drops and redoes.
package restore

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes of initrestore (documented in the README).
const (
	ExitUnexpected = 1
	ExitConfig     = 2
	ExitDatabase   = 3
	ExitRestore    = 4
	ExitStorage    = 5
	ExitVerify     = 6
	ExitNoBackup   = 8
)

const (
	// tempSuffix names the database being restored; it never serves dbaccess.
	tempSuffix = contract.TempDatabaseSuffix
	// previousInfix names the database a forced restore replaces, until the swap.
	previousInfix = contract.PreviousDatabaseInfix
)

// Outcome says what a run did.
type Outcome string

// Outcomes of a run.
const (
	OutcomeExists   Outcome = "exists"
	OutcomeRestored Outcome = "restored"
	OutcomeEmpty    Outcome = "created-empty"
)

// Result is a run's summary.
type Result struct {
	Outcome  Outcome
	Reason   string
	Record   Record
	Duration time.Duration
}

// Run performs one init-container run.
func Run(ctx context.Context, log logr.Logger, cfg Config) (Result, error) {
	start := time.Now()
	r := &run{cfg: cfg, log: log.WithValues("database", cfg.Database)}

	// 1. Wait for the server.
	admin, err := pg.WaitConnect(ctx, r.log, cfg.admin("postgres"), cfg.WaitTimeout)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	r.admin = admin

	// 2. Fast path.
	st, err := r.inspect(ctx)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}
	act := Decide(cfg, st)
	if act.Kind == ActionNone {
		return Result{Outcome: OutcomeExists, Reason: act.Reason, Record: st.Record, Duration: time.Since(start)}, nil
	}

	// 3. Lock, then look again: another pod may have restored meanwhile.
	if err := r.lock(ctx); err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}
	defer r.unlock(ctx)
	if st, err = r.inspect(ctx); err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}
	if act = Decide(cfg, st); act.Kind == ActionNone {
		return Result{Outcome: OutcomeExists, Reason: act.Reason + " (after waiting for another restore)", Record: st.Record, Duration: time.Since(start)}, nil
	}
	r.log.Info("restore needed", "reason", act.Reason, "sourceNamespace", act.SourceNamespace)

	// 4. Find the backup.
	store, err := storage.Open(ctx, cfg.StorageURL)
	if errors.Is(err, storage.ErrInvalidURL) {
		return Result{}, exitcode.Wrap(ExitConfig, err)
	}
	if err != nil { // unreachable, or no cloud credential: exit 5 in every binary
		return Result{}, exitcode.Wrap(ExitStorage, err)
	}
	defer store.Close()
	r.store = store
	ref, err := r.findBackup(ctx, act.SourceNamespace)
	if errors.Is(err, errNoBackup) {
		if OnMissing(cfg, act, st) != missingCreateEmpty {
			return Result{}, exitcode.Wrap(ExitNoBackup, fmt.Errorf("%w (RESTORE_ON_MISSING_BACKUP=%s, %s)", err, cfg.OnMissingBackup, act.Reason))
		}
		rec, err := r.createEmpty(ctx, st)
		if err != nil {
			return Result{}, err
		}
		return Result{Outcome: OutcomeEmpty, Reason: act.Reason + "; no backup", Record: rec, Duration: time.Since(start)}, nil
	}
	if err != nil {
		return Result{}, err
	}

	// 5-7. Prepare, restore, swap.
	rec, err := r.restore(ctx, st, act, ref)
	if err != nil {
		return Result{}, err
	}
	return Result{Outcome: OutcomeRestored, Reason: act.Reason, Record: rec, Duration: time.Since(start)}, nil
}

type run struct {
	cfg   Config
	log   logr.Logger
	admin *pgx.Conn
	store storage.Store
	// analyzed: the tables analyzeEarly has analyzed.
	analyzed analyzedSet
	// pinned: the functions pinSearchPaths pinned, until unpinSearchPaths.
	pinned pg.Pinned
	// restorerPassword: the restorer's (restorer.go), from createRestorer to
	// dropRestorer.
	restorerPassword string
	// policies and policyOwner: the archive's policies, read by toc, created by
	// applyPolicies.
	policies                    []Policy
	policyOwner, policyEncoding string
	// forced: the tables the masking unforced row security on, until
	// forceRowSecurityAgain.
	forced []uint32
}

// State is what the server says about the target database.
type State struct {
	Exists bool
	// HasRecord tells whether the database carries a smartbackup record.
	HasRecord bool
	Record    Record
	// TempExists: a temporary database from an interrupted run is there.
	TempExists bool
	// RequestApplied: RESTORE_REQUEST_ID is recorded as applied to this database in
	// the administrator's table (it outlives the database).
	RequestApplied bool
}

// inspect reads the target's existence and record in one query on the maintenance
// connection: the fast path costs this one round trip.
func (r *run) inspect(ctx context.Context) (State, error) {
	rows, err := r.admin.Query(ctx,
		`SELECT datname, coalesce(shobj_description(oid, 'pg_database'), '') FROM pg_database WHERE datname IN ($1, $2)`,
		r.cfg.Database, r.cfg.Database+tempSuffix)
	if err != nil {
		return State{}, fmt.Errorf("looking up database %q: %w", r.cfg.Database, err)
	}
	var st State
	for rows.Next() {
		var name, comment string
		if err := rows.Scan(&name, &comment); err != nil {
			return State{}, err
		}
		if name != r.cfg.Database {
			st.TempExists = true
			continue
		}
		st.Exists = true
		if rec, err := ParseRecord(comment); err == nil {
			st.HasRecord, st.Record = true, rec
		}
	}
	if err := rows.Err(); err != nil {
		return State{}, fmt.Errorf("looking up database %q: %w", r.cfg.Database, err)
	}
	if r.cfg.RequestID != "" {
		if st.RequestApplied, err = r.requestApplied(ctx, r.cfg.RequestID); err != nil {
			return State{}, fmt.Errorf("looking up applied restore requests: %w", err)
		}
	}
	return st, nil
}

// ActionKind is what a run must do.
type ActionKind int

// Actions.
const (
	ActionNone ActionKind = iota
	ActionRestore
)

// Action is the decision of a run, with its reason for the log.
type Action struct {
	Kind            ActionKind
	Reason          string
	SourceNamespace string
	// Forced: a restore request replaces an existing database.
	Forced bool
}

// Decide is the run's policy, in one place: restore when the database is missing, or
// when a restore request has not been applied yet; restore from the production
// source unless a request not yet applied asks for this environment's own latest
// backup. An applied request changes nothing any more: a database dropped afterwards
// comes back from production's latest, as the operations page says.
func Decide(cfg Config, st State) Action {
	applied := cfg.RequestID != "" && (st.RequestApplied || st.Exists && st.Record.RequestID == cfg.RequestID)
	source := cfg.SourceNamespace
	if cfg.RequestID != "" && cfg.RequestSource == contract.RequestSourceOwn && !applied {
		source = cfg.Namespace
	}
	switch {
	case !st.Exists && applied:
		return Action{Kind: ActionRestore, Reason: fmt.Sprintf("database missing (restore request %q already applied)", cfg.RequestID), SourceNamespace: source}
	case !st.Exists:
		return Action{Kind: ActionRestore, Reason: "database missing", SourceNamespace: source}
	case cfg.RequestID == "":
		return Action{Kind: ActionNone, Reason: "database exists"}
	case applied:
		return Action{Kind: ActionNone, Reason: "database exists; restore request already applied"}
	default:
		return Action{Kind: ActionRestore, Forced: true, SourceNamespace: source,
			Reason: fmt.Sprintf("restore request %q differs from the applied %q", cfg.RequestID, st.Record.RequestID)}
	}
}

type missingPolicy int

const (
	missingFail missingPolicy = iota
	missingCreateEmpty
)

// OnMissing decides what a missing backup means: an empty database for a brand-new
// customer when RESTORE_ON_MISSING_BACKUP=empty, and a failure otherwise. A forced
// restore never replaces a database with an empty one.
func OnMissing(cfg Config, act Action, st State) missingPolicy {
	if act.Forced || st.Exists || cfg.OnMissingBackup != contract.OnMissingEmpty {
		return missingFail
	}
	return missingCreateEmpty
}

// lockKey is the advisory lock of a database name, the same in every pod.
func lockKey(database string) int64 {
	h := sha256.Sum256([]byte("smartbackup/initrestore/" + database))
	return int64(binary.BigEndian.Uint64(h[:8]))
}

// unlock releases the restore lock before the connection closes: the server frees a
// closed session's locks only once its backend has exited, a moment after the process
// has, and a pod started right after (or a test) would find the lock still held.
// Failing, it leaves the release to the connection's end.
func (r *run) unlock(ctx context.Context) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := r.admin.Exec(ctx, "SELECT pg_advisory_unlock($1)", lockKey(r.cfg.Database)); err != nil {
		r.log.Info("restore lock not released explicitly; the connection's end releases it", "error", err.Error())
	}
}

// lock takes the database's advisory lock for the rest of the session (the process);
// unlock releases it before the process ends, and the end of the connection does if
// the process is killed.
func (r *run) lock(ctx context.Context) error {
	key := lockKey(r.cfg.Database)
	start := time.Now()
	lastLog := start
	for {
		var ok bool
		if err := r.admin.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", key).Scan(&ok); err != nil {
			return fmt.Errorf("taking the restore lock: %w", err)
		}
		if ok {
			if waited := time.Since(start); waited > time.Second {
				r.log.Info("restore lock taken", "waited", waited.Round(time.Second).String())
			}
			return nil
		}
		if time.Since(lastLog) > 30*time.Second || lastLog == start {
			r.log.Info("waiting for another pod's restore", "waited", time.Since(start).Round(time.Second).String())
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for the restore lock: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

package restore

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// swap puts the temporary database in place under the real name, with its record, in
// one transaction: the renames, the hand-over to the application role, the comment and
// the applied request commit together or not at all. A forced
// restore first renames the current database to a dated name, in the same transaction,
// and drops it once the new one is in place.
func (r *run) swap(ctx context.Context, st State, rec Record) error {
	temp := r.cfg.Database + tempSuffix
	previous := ""
	if st.Exists {
		previous = r.cfg.Database + previousInfix + time.Now().UTC().Format("20060102T150405")
	}
	for _, db := range []string{temp, r.cfg.Database} {
		if err := r.terminate(ctx, db); err != nil {
			return exitcode.Wrap(ExitRestore, err)
		}
	}
	tx, err := r.admin.Begin(ctx)
	if err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("starting the swap: %w", err))
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	conn := tx.Conn()
	// The restore's sessions did not wait for their WAL flushes
	// (RestoreSessionOptions); this commit does, whatever the server's default, so
	// the restored database is durable once it carries the real name.
	if _, err := conn.Exec(ctx, "SET LOCAL synchronous_commit TO on"); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("starting the swap: %w", err))
	}
	if previous != "" {
		if err := utility(ctx, conn, "ALTER DATABASE %I RENAME TO %I", r.cfg.Database, previous); err != nil {
			return exitcode.Wrap(ExitRestore, fmt.Errorf("setting the current database aside: %w", err))
		}
	}
	if err := utility(ctx, conn, "ALTER DATABASE %I RENAME TO %I", temp, r.cfg.Database); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("swapping in the restored database: %w", err))
	}
	if err := r.handOver(ctx, conn); err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	if err := utility(ctx, conn, "COMMENT ON DATABASE %I IS %L", r.cfg.Database, rec.String()); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("recording the restore: %w", err))
	}
	if rec.RequestID != "" {
		if _, err := conn.Exec(ctx, `INSERT INTO public.`+appliedTable+` (database, request_id, pod) VALUES ($1, $2, $3)
			ON CONFLICT (database, request_id) DO NOTHING`, r.cfg.Database, rec.RequestID, r.cfg.PodName); err != nil {
			return exitcode.Wrap(ExitRestore, fmt.Errorf("recording request %q as applied: %w", rec.RequestID, err))
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("committing the swap: %w", err))
	}
	if previous != "" {
		if err := r.dropDatabase(ctx, previous); err != nil {
			// The new database is in place; the old one only takes space.
			r.log.Error(err, "could not drop the replaced database; drop it by hand", "previous", previous)
		} else {
			r.log.Info("replaced database dropped", "previous", previous)
		}
	}
	return nil
}

// handOver gives the swapped-in database to the application role and opens it as a
// new database is open (CONNECT and TEMPORARY for PUBLIC), inside the swap's
// transaction: before it, only the administrator could connect.
func (r *run) handOver(ctx context.Context, conn *pgx.Conn) error {
	if err := utility(ctx, conn, "ALTER DATABASE %I OWNER TO %I", r.cfg.Database, r.cfg.User); err != nil {
		return fmt.Errorf("handing the restored database to %q: %w", r.cfg.User, err)
	}
	if err := utility(ctx, conn, "GRANT CONNECT, TEMPORARY ON DATABASE %I TO PUBLIC", r.cfg.Database); err != nil {
		return fmt.Errorf("opening the restored database: %w", err)
	}
	return nil
}

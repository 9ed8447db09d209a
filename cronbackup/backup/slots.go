package backup

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smartbackup/smartbackup/internal/exitcode"
)

// ExitSlotWait: no dump slot on the database server came free within
// BACKUP_SLOT_WAIT_TIMEOUT (nothing was dumped, written or pruned).
const ExitSlotWait = 8

// SlotLockClass is the first key of the advisory locks that are the dump slots (the
// second is the slot number, 0 to N-1): "smbk" as a 32-bit integer. Advisory locks live
// per database, so every backup of a server takes its slots on one maintenance
// database (BACKUP_SLOT_DATABASE, postgres by default), whichever database it dumps.
const SlotLockClass int32 = 0x736d626b

// slotPoll is how often a waiting backup tries the slots again (plus jitter).
var slotPoll = 2 * time.Second

// slot is a held dump slot: a session on the maintenance database holding one advisory
// lock. The server releases the lock when the session ends, however it ends: a
// release, the process killed, its pod deleted (the kernel closes the socket), or the
// network gone (the server's TCP keepalive ends the session).
type slot struct {
	conn   *pgx.Conn
	number int
}

// release ends the session, and with it the lock. Safe on a nil slot (no limit).
func (s *slot) release(ctx context.Context) {
	if s == nil || s.conn == nil {
		return
	}
	_ = s.conn.Close(context.WithoutCancel(ctx))
}

// acquireSlot waits until one of the server's MaxConcurrentPerServer dump slots is free
// and takes it, logging progress while it waits; after SlotWaitTimeout it gives up
// (ExitSlotWait). With no limit configured it returns a nil slot at once.
func (r *run) acquireSlot(ctx context.Context) (*slot, error) {
	n := r.cfg.MaxConcurrentPerServer
	if n <= 0 {
		return nil, nil
	}
	c := r.cfg.conn()
	c.Database, c.AppName = r.cfg.SlotDatabase, "smartbackup-slot"
	conn, err := c.Connect(ctx)
	if err != nil {
		return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("connecting to the maintenance database %q for dump slots (BACKUP_SLOT_DATABASE): %w", r.cfg.SlotDatabase, err))
	}
	start := time.Now()
	deadline := start.Add(r.cfg.SlotWaitTimeout)
	lastLog := start
	for attempt := 1; ; attempt++ {
		// Start at a random slot so that waiting backups do not all queue on slot 0.
		first := rand.IntN(n)
		for i := range n {
			number := (first + i) % n
			var got bool
			if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1, $2)", SlotLockClass, int32(number)).Scan(&got); err != nil {
				_ = conn.Close(context.WithoutCancel(ctx))
				if ctx.Err() != nil {
					return nil, exitcode.Wrap(ExitSlotWait, fmt.Errorf("waiting for a dump slot: %w", ctx.Err()))
				}
				return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("taking dump slot %d: %w", number, err))
			}
			if got {
				r.log.Info("dump slot taken", "slot", number, "slots", n, "waited", time.Since(start).Round(time.Millisecond).String(), "attempts", attempt)
				return &slot{conn: conn, number: number}, nil
			}
		}
		now := time.Now()
		if !now.Before(deadline) {
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, exitcode.Wrapf(ExitSlotWait, "no dump slot of %d on the server came free in %s (BACKUP_SLOT_WAIT_TIMEOUT): nothing was dumped", n, r.cfg.SlotWaitTimeout)
		}
		if attempt == 1 || now.Sub(lastLog) >= r.cfg.ProgressInterval {
			var held int
			// Visible to any role: how many of the slots are held, by whom is not shown.
			_ = conn.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = $1::int8::oid AND objsubid = 2 AND objid < $2::int8::oid",
				int64(uint32(SlotLockClass)), int64(n)).Scan(&held)
			r.log.Info("waiting for a dump slot", "slots", n, "held", held, "waited", now.Sub(start).Round(time.Second).String(),
				"giveUpIn", deadline.Sub(now).Round(time.Second).String(), "attempts", attempt)
			lastLog = now
		}
		delay := slotPoll + time.Duration(rand.Int64N(int64(slotPoll)/2+1))
		select {
		case <-ctx.Done():
			_ = conn.Close(context.WithoutCancel(ctx))
			return nil, exitcode.Wrap(ExitSlotWait, fmt.Errorf("waiting for a dump slot: %w", ctx.Err()))
		case <-time.After(min(delay, time.Until(deadline)+time.Millisecond)):
		}
	}
}

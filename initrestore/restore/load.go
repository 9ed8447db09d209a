package restore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/pg"
)

// restore prepares the temporary database, loads the backup into it, verifies it, and
// swaps it in.
func (r *run) restore(ctx context.Context, st State, act Action, ref backupRef) (Record, error) {
	start := time.Now()
	hdr, err := r.readHeader(ctx, ref)
	if err != nil {
		return Record{}, err
	}
	dumpMajor, _ := strconv.Atoi(strings.SplitN(hdr.DumpVersion, ".", 2)[0])
	client, err := pg.FindClient(r.cfg.ClientRoot, "pg_restore", max(r.serverMajor(), dumpMajor))
	if err != nil {
		return Record{}, exitcode.Wrap(ExitRestore, err)
	}
	r.log.Info("backup found", "object", ref.key, "bytes", ref.size, "manifest", ref.manifest != nil,
		"dumpedBy", hdr.DumpVersion, "dumpedFrom", hdr.ServerVersion, "pgRestore", client.Path)

	if err := r.prepare(ctx, st); err != nil {
		return Record{}, err
	}
	temp := r.cfg.Database + tempSuffix
	// Whatever fails from here leaves only the temporary database: drop it now (the
	// next run would anyway).
	ok := false
	defer func() {
		if !ok {
			if err := r.dropDatabase(context.WithoutCancel(ctx), temp); err != nil {
				r.log.Error(err, "could not drop the temporary database; the next run will", "temporary", temp)
			}
			if err := r.dropRestorer(context.WithoutCancel(ctx)); err != nil {
				r.log.Error(err, "could not drop the restorer; the next run will")
			}
		}
	}()
	// The restorer only for a restore: an empty database (createEmpty) runs no
	// production code.
	if err := r.createRestorer(ctx, temp); err != nil {
		return Record{}, exitcode.Wrap(ExitRestore, err)
	}

	if err := r.load(ctx, client, ref); err != nil {
		return Record{}, err
	}
	if err := r.applyPolicies(ctx); err != nil {
		return Record{}, err
	}
	conn, err := r.cfg.admin(temp).Connect(ctx)
	if err != nil {
		return Record{}, exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if afterLoad != nil {
		if err := afterLoad(ctx, conn); err != nil {
			return Record{}, err
		}
	}
	// Masking first: ANALYZE copies sampled values into pg_statistic.
	if r.cfg.MaskingSQL != "" {
		if err := r.mask(ctx, conn); err != nil {
			return Record{}, err
		}
	}
	// ANALYZE computes: no more connections than cores.
	if err := r.analyze(ctx, conn, min(r.cfg.Jobs, runtime.GOMAXPROCS(0))); err != nil {
		return Record{}, err
	}
	_ = conn.Close(ctx)
	if r.cfg.MaskingSQL != "" {
		if err := r.checkStatistics(ctx); err != nil {
			return Record{}, err
		}
	}
	if err := r.forceRowSecurityAgain(ctx); err != nil {
		return Record{}, err
	}
	if err := r.unpinSearchPaths(ctx); err != nil {
		return Record{}, err
	}
	if err := r.dropRestorer(ctx); err != nil {
		return Record{}, exitcode.Wrap(ExitRestore, err)
	}

	rec := Record{Object: ref.key, SourceNamespace: act.SourceNamespace, RestoredAt: time.Now().UTC(),
		RequestID: r.cfg.RequestID, Pod: r.cfg.PodName}
	if m := ref.manifest; m != nil {
		rec.Object, rec.SHA256, rec.BackupTime = m.Object, m.SHA256, m.StartedAt
	}
	if err := r.swap(ctx, st, rec); err != nil {
		return Record{}, err
	}
	ok = true
	r.log.Info("restore complete", "object", rec.Object, "sha256", rec.SHA256, "backupTime", rec.BackupTime,
		"restoredAt", rec.RestoredAt, "sourceNamespace", rec.SourceNamespace, "namespace", r.cfg.Namespace,
		"pod", r.cfg.PodName, "requestId", rec.RequestID, "forced", act.Forced, "duration", time.Since(start).Round(time.Millisecond).String())
	return rec, nil
}

// readHeader reads the archive header at the head of the object (a few KiB).
func (r *run) readHeader(ctx context.Context, ref backupRef) (pg.ArchiveHeader, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rc, _, err := r.store.Open(ctx, ref.key)
	if err != nil {
		return pg.ArchiveHeader{}, exitcode.Wrap(ExitStorage, fmt.Errorf("opening %q: %w", ref.key, err))
	}
	defer rc.Close()
	gz, err := gzipx.NewReader(rc)
	if err != nil {
		return pg.ArchiveHeader{}, exitcode.Wrap(ExitVerify, fmt.Errorf("%q is not a gzip stream: %w", ref.key, err))
	}
	defer gz.Close()
	hdr, err := pg.ReadArchiveHeader(gz)
	if err != nil {
		return pg.ArchiveHeader{}, exitcode.Wrap(ExitVerify, fmt.Errorf("reading %q: %w", ref.key, err))
	}
	if m := ref.manifest; m != nil && hdr.Database != m.Database {
		return pg.ArchiveHeader{}, exitcode.Wrapf(ExitVerify, "archive %q is of database %q, its manifest says %q", ref.key, hdr.Database, m.Database)
	}
	return hdr, nil
}

// load restores the object into the temporary database: spooled to the scratch
// directory and restored with parallel workers when one is configured (falling back
// to streaming when it fills up), streamed into a single pg_restore otherwise.
func (r *run) load(ctx context.Context, client pg.Client, ref backupRef) error {
	var archive int64
	if ref.manifest != nil {
		archive = ref.manifest.ArchiveSize
	}
	spool, why := SpoolDecision(r.cfg.ScratchDir, archive, freeBytes(r.cfg.ScratchDir), int64(r.cfg.ScratchMax))
	r.log.Info("restore mode chosen", "spooled", spool, "why", why, "jobs", r.cfg.Jobs)
	if spool {
		err := r.loadSpooled(ctx, client, ref)
		if !errors.Is(err, errNoSpace) {
			return err
		}
		r.log.Info("scratch directory filled up; restoring from the stream instead", "scratchDir", r.cfg.ScratchDir)
	}
	return r.loadStreamed(ctx, client, ref)
}

// spoolMargin is room kept free beside a spooled archive (the TOC list, pg_restore's
// temporary files).
const spoolMargin = 64 << 20

// SpoolDecision says whether to spool the archive to the scratch directory (and
// restore with parallel workers) or to stream it. Spooling needs the archive's size,
// which manifests record: exceeding an emptyDir's sizeLimit gets the pod evicted, so
// an archive of unknown size is never spooled.
func SpoolDecision(scratchDir string, archiveSize, free, limit int64) (bool, string) {
	need := archiveSize + spoolMargin
	switch {
	case scratchDir == "":
		return false, "no RESTORE_SCRATCH_DIR"
	case archiveSize <= 0:
		return false, "archive size unknown (no manifest, or one without archiveSize)"
	case limit > 0 && need > limit:
		return false, fmt.Sprintf("archive of %d MiB exceeds RESTORE_SCRATCH_MAX", archiveSize>>20)
	case free >= 0 && need > free:
		return false, fmt.Sprintf("archive of %d MiB exceeds the %d MiB free in RESTORE_SCRATCH_DIR", archiveSize>>20, free>>20)
	}
	return true, fmt.Sprintf("archive of %d MiB fits the scratch directory", archiveSize>>20)
}

// freeBytes is the space available in dir, or -1 when unknown.
func freeBytes(dir string) int64 {
	if dir == "" {
		return -1
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * st.Bsize
}

var errNoSpace = errors.New("scratch directory full")

func (r *run) loadSpooled(ctx context.Context, client pg.Client, ref backupRef) error {
	f, err := os.CreateTemp(r.cfg.ScratchDir, "archive-*.dump")
	if err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("creating a file in RESTORE_SCRATCH_DIR: %w", err))
	}
	defer os.Remove(f.Name())
	err = r.download(ctx, ref, f)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if errors.Is(err, syscall.ENOSPC) {
		return errNoSpace
	}
	if err != nil {
		return err
	}
	r.index(f.Name())
	text, list, err := r.toc(ctx, client, archiveInput{path: f.Name()})
	if err != nil {
		return err
	}
	defer os.Remove(list)
	var walLevel string
	if err := r.admin.QueryRow(ctx, "SHOW wal_level").Scan(&walLevel); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("reading the server's wal_level: %w", err))
	}
	listed := map[int]bool{}
	for _, id := range ListIDs(text) {
		listed[id] = true
	}
	toc, size := r.readTOC(f.Name())
	plan := PlanSpooled(toc, listed, size, r.cfg.Jobs, walLevel == "minimal")
	r.log.Info("restore planned", "stages", describe(plan))
	for _, stage := range plan {
		g, gctx := errgroup.WithContext(ctx)
		for _, run := range stage {
			g.Go(func() error {
				if err := r.restoreRun(gctx, client, text, list, f.Name(), run); err != nil {
					return err
				}
				if len(run.Tables) > 0 && r.cfg.MaskingSQL == "" {
					return r.analyzeEarly(gctx, run.Tables, run.Jobs)
				}
				return nil
			})
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if slices.ContainsFunc(stage, func(run RestoreRun) bool { return run.PinAfter }) {
			if err := r.pinSearchPaths(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// readTOC reads the spooled archive's table of contents, and its size; nil when it
// cannot (that costs only speed: PlanSpooled then plans without it).
func (r *run) readTOC(archive string) ([]pg.TOCEntry, int64) {
	f, err := os.Open(archive)
	if err == nil {
		defer f.Close()
		var st os.FileInfo
		if st, err = f.Stat(); err == nil {
			var toc []pg.TOCEntry
			if toc, err = pg.ReadTOC(f); err == nil {
				return toc, st.Size()
			}
		}
	}
	r.log.Info("table of contents not read; restoring without splitting the tables", "error", err.Error())
	return nil, 0
}

// restoreRun is one run of a plan: pg_restore of the whole list (at path list, text
// its content), or of the entries the run names.
// its stage in all.
func (r *run) restoreRun(ctx context.Context, client pg.Client, text, list, archive string, run RestoreRun) error {
	if run.IDs != nil {
		path, err := r.writeList(SubList(text, run.IDs))
		if err != nil {
			return err
		}
		defer os.Remove(path)
		list = path
	}
	return r.pgRestore(ctx, client, list, archive, nil, run)
}

// index writes the data offsets pg_dump could not write into a piped archive, so the
// parallel pg_restore seeks to each table instead of scanning (measured: -j2 from an
// indexed archive 7.4 s, from the same archive unindexed 11.5 s, streamed 11.2 s).
// A failure only costs speed.
func (r *run) index(path string) {
	start := time.Now()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		var n int
		n, err = pg.IndexArchive(f)
		_ = f.Close()
		if err == nil {
			r.log.Info("archive indexed for a parallel restore", "entries", n, "duration", time.Since(start).Round(time.Millisecond).String())
			return
		}
	}
	r.log.Info("archive not indexed; pg_restore will scan it", "error", err.Error())
}

// head opens the object anew and returns its decompressed stream, to be read as far
// as its head (the table of contents), and what ends the download.
func (r *run) head(ref backupRef) func(ctx context.Context) (io.Reader, func(), error) {
	return func(ctx context.Context) (io.Reader, func(), error) {
		hctx, cancel := context.WithCancel(ctx)
		rc, _, err := r.store.Open(hctx, ref.key)
		if err != nil {
			cancel()
			return nil, nil, exitcode.Wrap(ExitStorage, fmt.Errorf("opening %q: %w", ref.key, err))
		}
		gz, err := gzipx.NewReader(rc)
		if err != nil {
			cancel()
			_ = rc.Close()
			return nil, nil, exitcode.Wrap(ExitVerify, fmt.Errorf("%q is not a gzip stream: %w", ref.key, err))
		}
		return gz, func() { cancel(); _ = gz.Close(); _ = rc.Close() }, nil
	}
}

func (r *run) loadStreamed(ctx context.Context, client pg.Client, ref backupRef) error {
	// The table of contents heads the archive: reading it reads only the head.
	head := r.head(ref)
	text, list, err := r.toc(ctx, client, archiveInput{head: head})
	if err != nil {
		return err
	}
	if early, rest := r.splitStreamed(ctx, head, text); early != nil {
		// The definitions that depend on no table come from the head alone; then the
		// functions are pinned, and the stream restores the rest.
		if err := r.restoreHead(ctx, client, head, SubList(text, early)); err != nil {
			_ = os.Remove(list)
			return err
		}
		if err := r.pinSearchPaths(ctx); err != nil {
			_ = os.Remove(list)
			return err
		}
		restList, err := r.writeList(SubList(text, rest))
		_ = os.Remove(list)
		if err != nil {
			return err
		}
		list = restList
	}

	pr, pw := io.Pipe()
	downloaded := make(chan error, 1)
	go func() {
		err := r.download(ctx, ref, pw)
		_ = pw.CloseWithError(err)
		downloaded <- err
	}()
	rerr := r.pgRestore(ctx, client, list, "", pr, RestoreRun{Name: "archive", Jobs: 1})
	_ = os.Remove(list)
	_ = pr.CloseWithError(errors.New("pg_restore ended"))
	derr := <-downloaded
	// A corrupt or mismatching object explains a failed pg_restore better than
	// pg_restore's own complaint about a truncated archive.
	if derr != nil && exitcode.Of(derr, 0) == ExitVerify {
		return derr
	}
	if rerr != nil {
		return rerr
	}
	return derr
}

// splitStreamed is SplitEarly of the archive whose head opens, with the restore list
// text; nil when the table of contents cannot be read (a restore in one run, as
// before, that costs only the pins).
func (r *run) splitStreamed(ctx context.Context, head func(context.Context) (io.Reader, func(), error), text string) (early, rest []int) {
	rd, done, err := head(ctx)
	if err == nil {
		var toc []pg.TOCEntry
		toc, err = pg.ReadTOC(rd)
		done()
		if err == nil {
			listed := map[int]bool{}
			for _, id := range ListIDs(text) {
				listed[id] = true
			}
			return SplitEarly(toc, listed)
		}
	}
	r.log.Info("table of contents not read; restoring in one run", "error", err.Error())
	return nil, nil
}

// restoreHead restores the entries of list (definitions only: they need no data) from
// the head of the object.
func (r *run) restoreHead(ctx context.Context, client pg.Client, head func(context.Context) (io.Reader, func(), error), list string) error {
	path, err := r.writeList(list)
	if err != nil {
		return err
	}
	defer os.Remove(path)
	rd, done, err := head(ctx)
	if err != nil {
		return err
	}
	defer done()
	// pg_restore stops reading after the table of contents: a plain Reader (no
	// WriteTo) lets exec treat the broken pipe as the normal end it is.
	return r.pgRestore(ctx, client, path, "", struct{ io.Reader }{rd}, RestoreRun{Name: "functions and types", Jobs: 1})
}

// RestoreArgs are pg_restore's arguments: no owners, grants or tablespaces from the
// dump (the target server may lack production's tablespaces, and the application role
// may not create in them), objects created by the application role, stop at the first
// error. The database is a plain name (validated: it cannot be read as a connection
// string); host, user and password come from the environment.
func RestoreArgs(database, role, list, archive string, run RestoreRun) []string {
	args := []string{"--dbname=" + database, "--no-owner", "--no-acl", "--no-tablespaces", "--exit-on-error", "--verbose", "--role=" + role, "--use-list=" + list}
	// --section narrows --use-list (an entry of no section, a comment or an ACL, goes
	// with the entry before it).
	for _, s := range run.Sections {
		args = append(args, "--section="+s)
	}
	if run.Jobs > 1 {
		args = append(args, "--jobs="+strconv.Itoa(run.Jobs))
	}
	if archive != "" {
		args = append(args, archive)
	}
	return args
}

// RestoreSessionOptions are PGOPTIONS for pg_restore's sessions.
//
// synchronous_commit=off: a restore commits once per archive entry (a Protheus company
// of 3,000 tables is 15,000 commits), and each would wait for its WAL flush. Nothing
// is lost by not waiting: the temporary database is invisible until the swap, whose
// commit is synchronous (swap sets it) and so flushes every record before it; a crash
// before that leaves only the temporary database, which the next run drops.
//
// No parallel workers (max_parallel_maintenance_workers, PostgreSQL 11 and later, for
// index builds; max_parallel_workers_per_gather for a materialized view's query): a
// parallel worker needs CONNECT on the database for the role it acts as, and the
// application role has none on the temporary database until the swap (only the
// restorer may connect; see restorer.go). With several connections (--jobs, or runs
// side by side) the index builds run side by side anyway, one per connection, and the
// server's own parallel builds on top would start more processes than there are cores
// and slow them all (measured on 2 cores, 1 GB: 6.8 s instead of 7.3 s); a single
// connection (streamed, or RESTORE_JOBS=1) builds each index in one process.
func RestoreSessionOptions(serverMajor int) string {
	opts := "-c synchronous_commit=off -c max_parallel_workers_per_gather=0"
	if serverMajor >= 11 {
		opts += " -c max_parallel_maintenance_workers=0"
	}
	return opts
}

// pgRestore runs pg_restore, logged in as the restorer.
func (r *run) pgRestore(ctx context.Context, client pg.Client, list, archive string, stdin io.Reader, run RestoreRun) error {
	conn := r.restorerConn()
	cmd := pg.CommandContext(ctx, client, conn, RestoreArgs(conn.Database, r.cfg.User, list, archive, run)...)
	cmd.Env = append(cmd.Env, "PGOPTIONS="+RestoreSessionOptions(r.serverMajor()))
	cmd.Stdin = stdin
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return exitcode.Wrap(ExitRestore, err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return exitcode.Wrap(ExitRestore, fmt.Errorf("starting pg_restore: %w", err))
	}
	r.log.Info("pg_restore started", "run", run.Name, "jobs", run.Jobs, "sections", run.Sections, "spooled", archive != "")
	pg.LogLines(r.log, "pg_restore", stderr)
	if err := cmd.Wait(); err != nil {
		return exitcode.Wrap(ExitRestore, pg.ExitError("pg_restore", err))
	}
	r.log.Info("pg_restore finished", "run", run.Name, "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

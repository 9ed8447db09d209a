// Package verify is `cronbackup verify`: the weekly proof that a namespace's latest
// backup restores. A sha256 and a header check say the object is what was written;
// only a restore says it holds the data. The run:
//
//  1. connect as the admin to the verification server's maintenance database;
//  2. find the latest backup by initrestore's rule (internal/catalog), with its manifest;
//  3. drop a scratch database <db>__verify a killed run left, then create it anew,
//     owned by the admin, CONNECT revoked from PUBLIC: no application role can open it;
//     and the verifier, a login role of the run (verifier.go);
//  4. stream the object, checked against the manifest's size and sha256, into
//     pg_restore --exit-on-error, counting the archive on the way: the schemas and
//     extensions as the admin, the rest as the verifier (lists.go);
//  5. compare with what the backup recorded: pg_restore's exit, the table-of-contents
//     entries, the number of tables and every table's rows (exact counts of the dumped
//     stream, see cronbackup backup);
//  6. drop the scratch database and the verifier, on success, on failure and on
//     cancellation alike;
//  7. write NS/database_<ts>.verify.json beside the backup: verdict, duration and
//     figures, never a row's content.
//
// The data never leaves the verification server: it flows from the store into
// pg_restore, and back out only as counts.
package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/smartbackup/smartbackup/internal/catalog"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/progress"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes of cronbackup verify (documented in the README; 2, 3, 5 and 6 mean what
// they mean for every cronbackup command).
const (
	ExitUnexpected = 1
	ExitConfig     = 2
	ExitDatabase   = 3
	ExitStorage    = catalog.ExitStorage
	ExitVerify     = catalog.ExitVerify
	// ExitFailed: the backup did not verify (it does not restore, or not to what it
	// recorded); the result file says why.
	ExitFailed = 9
	// ExitNoBackup: the namespace has no backup to verify.
	ExitNoBackup = 10
)

// The verification result's format is layout's (NS/database_<ts>.verify.json), read
// by the operator tools too.
type (
	Result   = layout.Verification
	Figures  = layout.VerificationFigures
	Mismatch = layout.Mismatch
)

// Verdicts of a result.
const (
	VerdictPassed = layout.VerdictPassed
	VerdictFailed = layout.VerdictFailed
)

// ResultVersion is the verify.json format written by this code.
const ResultVersion = layout.VerificationVersion

// openStore opens the backup store (tests wrap it).
var openStore = storage.Open

// beforeRestore and afterRestore, when set by a test, run with the scratch database
// created, before pg_restore starts and after it succeeded.
var beforeRestore, afterRestore func(scratch string)

// Run verifies the namespace's latest backup. A verification that ran returns its
// Result (also written to the store); when it failed, the error carries ExitFailed.
func Run(ctx context.Context, log logr.Logger, cfg Config) (Result, error) {
	start := time.Now()
	store, err := openStore(ctx, cfg.StorageURL)
	if err != nil {
		if errors.Is(err, storage.ErrInvalidURL) {
			return Result{}, exitcode.Wrap(ExitConfig, err)
		}
		return Result{}, exitcode.Wrap(ExitStorage, err)
	}
	defer store.Close()
	r := &run{cfg: cfg, log: log, store: store}

	// 1. The verification server.
	admin, err := pg.WaitConnect(ctx, log, cfg.admin(cfg.MaintenanceDatabase), cfg.WaitTimeout)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}
	major, version, err := pg.ServerMajor(ctx, admin)
	_ = admin.Close(context.WithoutCancel(ctx))
	if err != nil {
		return Result{}, exitcode.Wrap(ExitDatabase, err)
	}

	// 2. The latest backup.
	ref, err := catalog.Find(ctx, log, store, cfg.Namespace)
	if errors.Is(err, catalog.ErrNoBackup) {
		return Result{}, exitcode.Wrap(ExitNoBackup, err)
	}
	if err != nil {
		return Result{}, err
	}
	m := ref.Manifest
	if m == nil {
		return Result{}, exitcode.Wrapf(ExitVerify, "%q has no manifest (made by the shell pipeline?): nothing to verify it against", ref.Key)
	}
	if !identRE.MatchString(m.Database) {
		return Result{}, exitcode.Wrapf(ExitVerify, "manifest of %q names database %q, not a plain database name", ref.Key, m.Database)
	}
	dumpMajor, _ := strconv.Atoi(strings.SplitN(m.DumpVersion, ".", 2)[0])
	client, err := pg.FindClient(cfg.ClientRoot, "pg_restore", max(major, dumpMajor))
	if err != nil {
		return Result{}, exitcode.Wrap(ExitUnexpected, err)
	}
	res := Result{Version: ResultVersion, Namespace: cfg.Namespace, Object: m.Object, SHA256: m.SHA256, BackupTime: m.StartedAt,
		Server: net.JoinHostPort(cfg.VerifyEndpoint, strconv.Itoa(cfg.VerifyPort)), ScratchDatabase: m.Database + contract.VerifyDatabaseSuffix,
		PgRestore: client.Path, StartedAt: start.UTC()}
	res.Figures = Figures{ObjectBytes: m.Size, ManifestEntries: m.ArchiveEntries, ManifestTables: m.Tables, RowsMethod: m.RowsMethod}
	for _, t := range m.Rows {
		res.Figures.ManifestRows += t.Rows
	}
	log.Info("verification starting", "object", m.Object, "backupTime", m.StartedAt, "server", res.Server, "serverVersion", version,
		"scratch", res.ScratchDatabase, "pgRestore", client.Path, "namespace", cfg.Namespace)

	// 3. A fresh scratch database, dropped whatever happens from here.
	scratch := res.ScratchDatabase
	if err := r.dropScratch(ctx, scratch, "stale"); err != nil {
		return Result{}, err
	}
	if err := r.dropVerifier(ctx, scratch); err != nil {
		return Result{}, err
	}
	dropped := false
	defer func() {
		if !dropped {
			_ = r.dropScratch(ctx, scratch, "after the verification")
			_ = r.dropVerifier(ctx, scratch)
		}
	}()
	if err := r.createScratch(ctx, scratch, m.Encoding); err != nil {
		return Result{}, err
	}
	if err := r.createVerifier(ctx, scratch); err != nil {
		return Result{}, err
	}

	// 4-5. Restore and compare.
	failures, err := r.restoreAndCheck(ctx, client, ref, scratch, &res.Figures)
	if err != nil {
		return Result{}, err
	}

	// 6. Drop.
	if err := r.dropScratch(ctx, scratch, "after the verification"); err != nil {
		log.Error(err, "could not drop the scratch database; the next verification will", "scratch", scratch)
	} else if err := r.dropVerifier(ctx, scratch); err != nil {
		log.Error(err, "could not drop the verifier; the next verification will", "scratch", scratch)
	} else {
		dropped = true
	}
	res.ScratchDropped = dropped

	// 7. The result, beside the backup.
	res.Failures = failures
	res.Verdict = VerdictPassed
	if len(failures) > 0 {
		res.Verdict = VerdictFailed
	}
	res.FinishedAt = time.Now().UTC()
	res.DurationSeconds = time.Since(start).Round(time.Millisecond).Seconds()
	if err := r.writeResult(ctx, res); err != nil {
		return res, err
	}
	if len(failures) > 0 {
		return res, exitcode.Wrapf(ExitFailed, "backup %q did not verify: %s", m.Object, strings.Join(failures, "; "))
	}
	return res, nil
}

type run struct {
	cfg   Config
	log   logr.Logger
	store storage.Store
	// verifierPassword: the verifier's (verifier.go), from createVerifier on.
	verifierPassword string
}

// dropTimeout bounds the drop of the scratch database, also after a cancellation.
const dropTimeout = time.Minute

// dropScratch ends every session on the scratch database and drops it, on a fresh
// connection that outlives a cancelled run (best effort after SIGTERM).
func (r *run) dropScratch(ctx context.Context, name, why string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	conn, err := r.cfg.admin(r.cfg.MaintenanceDatabase).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("connecting to drop %q: %w", name, err))
	}
	defer conn.Close(ctx)
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", name).Scan(&exists); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("looking for %q: %w", name, err))
	}
	if !exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", name); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("ending sessions on %q: %w", name, err))
	}
	if err := pg.Utility(ctx, conn, "DROP DATABASE IF EXISTS %I", name); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("dropping %q: %w", name, err))
	}
	r.log.Info("scratch database dropped", "scratch", name, "when", why)
	return nil
}

// createScratch creates the scratch database in the backup's encoding, owned by the
// admin (its creator), with CONNECT revoked from PUBLIC: no application role can
// open it, only the admin and superusers.
func (r *run) createScratch(ctx context.Context, name, encoding string) error {
	conn, err := r.cfg.admin(r.cfg.MaintenanceDatabase).Connect(ctx)
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if encoding == "" {
		encoding = "UTF8"
	}
	if err := pg.Utility(ctx, conn, "CREATE DATABASE %I ENCODING %L TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C'", name, encoding); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("creating the scratch database %q in %s: %w", name, encoding, err))
	}
	if err := pg.Utility(ctx, conn, "REVOKE ALL ON DATABASE %I FROM PUBLIC", name); err != nil {
		return exitcode.Wrap(ExitDatabase, fmt.Errorf("closing %q to every other role: %w", name, err))
	}
	r.log.Info("scratch database created", "scratch", name, "encoding", encoding, "owner", r.cfg.AdminUser)
	return nil
}

// RestoreArgs are pg_restore's arguments: into the scratch database (as the verifier,
// or the admin for the schemas and extensions, the connection from the environment),
// no owners, grants or tablespaces from the dump (the verifying server need not have
// production's), stop at the first error, the archive on standard input.
func RestoreArgs(database string) []string {
	return []string{"--dbname=" + database, "--no-owner", "--no-acl", "--no-tablespaces", "--exit-on-error", "--verbose"}
}

// restoreAndCheck streams the backup into pg_restore and compares the restored
// database with the manifest. Failures are what did not verify; err is a run that
// could not judge (the store or the server unreachable).
func (r *run) restoreAndCheck(ctx context.Context, client pg.Client, ref catalog.Ref, scratch string, fig *Figures) ([]string, error) {
	m := ref.Manifest
	if beforeRestore != nil {
		beforeRestore(scratch)
	}
	pr, pw := io.Pipe()
	cr, cw := io.Pipe()
	type countResult struct {
		c   pg.ArchiveContents
		err error
	}
	counted := make(chan countResult, 1)
	go func() {
		c, err := pg.ReadArchiveContents(cr)
		_, _ = io.Copy(io.Discard, cr)
		counted <- countResult{c, err}
	}()
	raw := progress.NewCounter()
	downloaded := make(chan error, 1)
	go func() {
		err := catalog.Download(ctx, r.log, r.store, ref, io.MultiWriter(pw, cw, raw), r.cfg.ProgressInterval)
		_ = pw.CloseWithError(errOr(err, io.EOF))
		_ = cw.CloseWithError(errOr(err, io.EOF))
		downloaded <- err
	}()
	// The table of contents heads the archive: read first (and replayed to pg_restore),
	// it says what to leave out as a restored copy does, and what to restore first.
	var head bytes.Buffer
	lists, lerr := r.restoreLists(io.TeeReader(pr, &head), scratch)
	defer lists.remove()
	// pg_restore may stop reading early (it failed): the rest still goes to the
	// counter and the hash, so the object is judged whole.
	var rerr error
	fromHead := func() io.Reader { return struct{ io.Reader }{bytes.NewReader(head.Bytes())} }
	if lerr == nil && lists.admin != "" {
		// The schemas and extensions, as the admin, from the head alone (they hold no
		// production code); the verifier may then create in the schemas.
		if rerr = r.pgRestore(ctx, client, scratch, lists.admin, fromHead(), true); rerr == nil {
			lerr = r.grantSchemas(ctx, scratch, lists.schemas)
		}
	}
	if lerr == nil && rerr == nil && lists.early != "" {
		// The definitions that depend on no table, from the head alone; then the
		// functions' search paths are pinned, as initrestore does.
		if rerr = r.pgRestore(ctx, client, scratch, lists.early, fromHead(), false); rerr == nil {
			lerr = r.pinSearchPaths(ctx, scratch)
		}
	}
	if lerr == nil && rerr == nil {
		rerr = r.pgRestore(ctx, client, scratch, lists.rest, struct{ io.Reader }{io.MultiReader(&head, pr)}, false)
	}
	_, _ = io.Copy(io.Discard, pr)
	derr := <-downloaded
	count := <-counted
	if lerr != nil {
		return nil, lerr // this machine's fault, not the backup's
	}
	fig.ArchiveBytes = raw.Bytes()

	var failures []string
	switch {
	case derr != nil && exitcode.Of(derr, 0) == ExitVerify:
		// The object is corrupt or is not what its manifest says.
		return append(failures, "the object does not match its manifest: "+derr.Error()), nil
	case derr != nil:
		if ctx.Err() != nil {
			return nil, exitcode.Wrap(ExitStorage, fmt.Errorf("verification cancelled: %w", ctx.Err()))
		}
		return nil, derr
	case rerr != nil:
		if ctx.Err() != nil {
			return nil, exitcode.Wrap(ExitUnexpected, fmt.Errorf("verification cancelled: %w", ctx.Err()))
		}
		failures = append(failures, "pg_restore failed: "+rerr.Error())
	}
	var inArchive map[string]int64
	switch {
	case count.err == nil:
		fig.ArchiveEntries = count.c.Header.Entries
		inArchive = map[string]int64{}
		for _, d := range count.c.Data {
			inArchive[d.Schema+"\x00"+d.Table] = d.Rows
		}
	case errors.Is(count.err, pg.ErrRowsUnknown):
		fig.ArchiveEntries = count.c.Header.Entries
	default:
		failures = append(failures, "the archive cannot be read: "+count.err.Error())
	}
	if fig.ArchiveEntries != m.ArchiveEntries && count.err == nil {
		failures = append(failures, fmt.Sprintf("the archive has %d table-of-contents entries, the manifest records %d", fig.ArchiveEntries, m.ArchiveEntries))
	}
	if rerr != nil {
		return failures, nil
	}
	if afterRestore != nil {
		afterRestore(scratch)
	}
	more, err := r.compare(ctx, scratch, m, inArchive, fig)
	if err != nil {
		return nil, err
	}
	return append(failures, more...), nil
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

// pinSearchPaths pins the verifier's functions restored so far in the scratch
// database to the search path its sessions start with (pg.PinSearchPaths). The
// scratch database is dropped after the count, pins and all.
func (r *run) pinSearchPaths(ctx context.Context, scratch string) error {
	conn, err := r.asVerifier(ctx, scratch, nil)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	p, err := pg.PinSearchPaths(ctx, conn, verifierName(scratch))
	if err != nil {
		return exitcode.Wrap(ExitDatabase, err)
	}
	r.log.Info("functions pinned to the search path for the restore", "functions", len(p.OIDs), "searchPath", p.Path)
	return nil
}

// pgRestore runs pg_restore of list (everything when empty), logged in as the
// verifier, or as the admin when asAdmin.
func (r *run) pgRestore(ctx context.Context, client pg.Client, scratch, list string, stdin io.Reader, asAdmin bool) error {
	conn := r.verifierConn(scratch)
	if asAdmin {
		conn = r.cfg.admin(scratch)
	}
	args := RestoreArgs(scratch)
	if list != "" {
		args = append(args, "--use-list="+list)
	}
	cmd := pg.CommandContext(ctx, client, conn, args...)
	cmd.Stdin = stdin
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting pg_restore: %w", err)
	}
	r.log.Info("pg_restore started", "scratch", scratch, "as", conn.User)
	pg.LogLines(r.log, "pg_restore", stderr)
	if err := cmd.Wait(); err != nil {
		return pg.ExitError("pg_restore", err)
	}
	r.log.Info("pg_restore finished", "duration", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// tablesQuery counts the restored tables as pg_dump lists them: ordinary and
// partitioned tables outside the system schemas, not those an extension creates.
const tablesQuery = `SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\_toast%'
AND n.nspname NOT LIKE 'pg\_temp\_%' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

// compare counts the restored database's tables and every recorded table's rows, as
// the verifier (their owner: row security does not apply once no table forces it on
// its owner), and returns what differs from the manifest.
func (r *run) compare(ctx context.Context, scratch string, m *layout.Manifest, inArchive map[string]int64, fig *Figures) ([]string, error) {
	// In pg_catalog only: production's functions in public must not answer for the
	// built-ins the count calls.
	conn, err := r.asVerifier(ctx, scratch, map[string]string{"search_path": "pg_catalog"})
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := pg.UnforceRowSecurity(ctx, conn); err != nil {
		return nil, exitcode.Wrap(ExitDatabase, err)
	}
	if err := conn.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&fig.DatabaseBytes); err != nil {
		return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("reading the scratch database's size: %w", pg.RedactServerError(err)))
	}
	if err := conn.QueryRow(ctx, tablesQuery).Scan(&fig.RestoredTables); err != nil {
		return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("counting the restored tables: %w", pg.RedactServerError(err)))
	}
	var failures []string
	if m.RowsMethod == "" {
		failures = append(failures, "the manifest records no row counts (a backup by an older cronbackup, or of a compression this build cannot read): the rows cannot be checked")
		return failures, nil
	}
	if fig.RestoredTables != m.Tables {
		failures = append(failures, fmt.Sprintf("%d tables restored, the manifest records %d", fig.RestoredTables, m.Tables))
	}
	for _, t := range m.Rows {
		var exists bool
		if err := conn.QueryRow(ctx, "SELECT to_regclass(format('%I.%I', $1::text, $2::text)) IS NOT NULL", t.Schema, t.Table).Scan(&exists); err != nil {
			return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("looking for table %q: %w", t.Schema+"."+t.Table, pg.RedactServerError(err)))
		}
		restored := int64(-1)
		if exists {
			// ONLY: the rows of this table's own data entry, not its children's.
			q := "SELECT count(*) FROM ONLY " + pg.Quote(t.Schema) + "." + pg.Quote(t.Table)
			if err := conn.QueryRow(ctx, q).Scan(&restored); err != nil {
				return nil, exitcode.Wrap(ExitDatabase, fmt.Errorf("counting the rows of %q: %w", t.Schema+"."+t.Table, pg.RedactServerError(err)))
			}
			fig.RestoredRows += restored
		}
		fig.TablesChecked++
		archived, ok := inArchive[t.Schema+"\x00"+t.Table]
		if !ok {
			archived = -1
		}
		if restored != t.Rows {
			fig.Mismatches = append(fig.Mismatches, Mismatch{Schema: t.Schema, Table: t.Table, Recorded: t.Rows, InArchive: archived, Restored: restored})
		}
	}
	if n := len(fig.Mismatches); n > 0 {
		names := make([]string, 0, min(n, 5))
		for _, mm := range fig.Mismatches[:min(n, 5)] {
			names = append(names, fmt.Sprintf("%s.%s (%d recorded, %d restored)", mm.Schema, mm.Table, mm.Recorded, mm.Restored))
		}
		failures = append(failures, fmt.Sprintf("%d of %d tables restored with other row counts than recorded: %s", n, len(m.Rows), strings.Join(names, ", ")))
	}
	r.log.Info("restored database counted", "tables", fig.RestoredTables, "tablesChecked", fig.TablesChecked,
		"rows", fig.RestoredRows, "mismatches", len(fig.Mismatches), "databaseBytes", fig.DatabaseBytes)
	return failures, nil
}

// writeResult puts the result beside the backup (a store write is atomic: complete
// or absent).
func (r *run) writeResult(ctx context.Context, res Result) error {
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return exitcode.Wrap(ExitUnexpected, err)
	}
	key := layout.VerifyKey(res.Object)
	if _, err := r.store.Put(ctx, key, bytes.NewReader(b), storage.PutOptions{ContentType: "application/json"}); err != nil {
		return exitcode.Wrap(ExitStorage, fmt.Errorf("writing the verification result %q: %w", key, err))
	}
	r.log.Info("verification result written", "result", key, "verdict", res.Verdict)
	return nil
}

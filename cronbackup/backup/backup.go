// Package backup is `cronbackup backup`: the 21:00 dump of one database to the backup
// store. It reads as the operations page does, plus the checks the page lacks:
//
//  1. connect (bounded wait) and read the server's version and encoding;
//  2. choose a pg_dump whose major is at least the server's;
//  3. dump with the page's flags through a gzip layer straight into the store, hashing
//     and counting on the way, under an immutable timestamped name;
//  4. verify the archive (custom format, a non-empty table of contents, the right
//     database, the whole stream readable) before the upload is allowed to complete,
//     counting each table's rows on the way for `cronbackup verify`;
//  5. write the manifest;
//  6. only then promote the object to database_latest.dump.gz (server-side copy);
//  7. apply retention, never touching the newest backup.
//
// Any failure before 6 leaves database_latest.dump.gz as it was and deletes nothing.
package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/gzipx"
	"github.com/smartbackup/smartbackup/internal/layout"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/internal/progress"
	"github.com/smartbackup/smartbackup/internal/storage"
)

// Exit codes of cronbackup (documented in the README).
const (
	ExitConfig          = 2
	ExitDatabase        = 3
	ExitDump            = 4
	ExitStorage         = 5
	ExitVerify          = 6
	ExitRetention       = 7
	ExitUnexpected      = 1
	contentTypeDump     = "application/gzip"
	contentTypeManifest = "application/json"
)

// Result is what a successful run produced.
type Result struct {
	Manifest layout.Manifest
	Pruned   []string
	Duration time.Duration
}

// openStore opens the backup store; tests wrap it to stop a run after a given write.
var openStore = storage.Open

// Run performs one backup.
func Run(ctx context.Context, log logr.Logger, cfg Config) (Result, error) {
	start := time.Now()
	store, err := openStore(ctx, cfg.StorageURL)
	if err != nil {
		// A URL that cannot be used is configuration; a store that cannot be reached
		// or a missing cloud credential is a storage failure, in every binary.
		if errors.Is(err, storage.ErrInvalidURL) {
			return Result{}, exitcode.Wrap(ExitConfig, err)
		}
		return Result{}, exitcode.Wrap(ExitStorage, err)
	}
	defer store.Close()
	r := &run{cfg: cfg, log: log, store: store}

	server, err := r.inspectServer(ctx)
	if err != nil {
		return Result{}, err
	}
	client, err := pg.FindClient(cfg.ClientRoot, "pg_dump", server.major)
	if err != nil {
		return Result{}, exitcode.Wrap(ExitDump, err)
	}
	// At most BACKUP_MAX_CONCURRENT_PER_SERVER dumps from one server at once.
	slot, err := r.acquireSlot(ctx)
	if err != nil {
		return Result{}, err
	}
	log.Info("dump starting", "database", cfg.Database, "server", server.version, "pgDump", client.Path,
		"store", store.String(), "namespace", cfg.Namespace)

	m, err := r.dump(ctx, client, server)
	slot.release(ctx)
	if err != nil {
		return Result{}, err
	}
	if err := r.writeManifest(ctx, layout.ManifestKey(m.Object), m); err != nil {
		return Result{}, err
	}
	if err := r.promote(ctx, m); err != nil {
		return Result{}, err
	}
	pruned, err := r.prune(ctx, m)
	res := Result{Manifest: m, Pruned: pruned, Duration: time.Since(start)}
	if err != nil {
		return res, exitcode.Wrap(ExitRetention, err)
	}
	return res, nil
}

type run struct {
	cfg   Config
	log   logr.Logger
	store storage.Store
}

type serverInfo struct {
	major    int
	version  string
	encoding string
}

// inspectServer connects once to learn what pg_dump must match.
func (r *run) inspectServer(ctx context.Context) (serverInfo, error) {
	// Its own application name: in pg_stat_activity, smartbackup-cronbackup is the dump
	// (what the dump slots bound), not this look before the slot is taken.
	c := r.cfg.conn()
	c.AppName = "smartbackup-inspect"
	conn, err := pg.WaitConnect(ctx, r.log, c, r.cfg.WaitTimeout)
	if err != nil {
		return serverInfo{}, exitcode.Wrap(ExitDatabase, err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	major, version, err := pg.ServerMajor(ctx, conn)
	if err != nil {
		return serverInfo{}, exitcode.Wrap(ExitDatabase, err)
	}
	var enc string
	if err := conn.QueryRow(ctx, "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()").Scan(&enc); err != nil {
		return serverInfo{}, exitcode.Wrap(ExitDatabase, fmt.Errorf("reading the database encoding: %w", err))
	}
	if !strings.EqualFold(enc, r.cfg.Codepage) {
		r.log.Info("database encoding differs from DATABASE_CODEPAGE; dumping in DATABASE_CODEPAGE as the page does",
			"databaseEncoding", enc, "codepage", r.cfg.Codepage)
	}
	return serverInfo{major: major, version: version, encoding: enc}, nil
}

// DumpArgs are pg_dump's arguments: the operations page's flags. The connection comes
// from the environment (PGHOST, PGDATABASE…, PGPASSWORD), never from an argument.
func DumpArgs(compression int, codepage string) []string {
	return []string{"-Fc", fmt.Sprintf("-Z%d", compression), "--no-owner", "--no-acl", "--verbose", "--encoding", codepage}
}

// dump streams pg_dump | gzip into the store under a new immutable key and returns the
// manifest of what was written. The upload completes only after pg_dump succeeded and
// the archive was verified; otherwise it is aborted and nothing is left.
func (r *run) dump(ctx context.Context, client pg.Client, server serverInfo) (layout.Manifest, error) {
	started := time.Now().UTC().Truncate(time.Second)
	key := layout.BackupKey(r.cfg.Namespace, started)
	if _, err := r.store.Stat(ctx, key); err == nil {
		return layout.Manifest{}, exitcode.Wrapf(ExitStorage, "backup %q already exists: another run started this second", key)
	} else if !errors.Is(err, storage.ErrNotFound) {
		return layout.Manifest{}, exitcode.Wrap(ExitStorage, fmt.Errorf("checking %q: %w", key, err))
	}

	dctx, cancelDump := context.WithCancel(ctx)
	defer cancelDump()
	cmd := pg.CommandContext(dctx, client, r.cfg.conn(), DumpArgs(r.cfg.DumpCompression, r.cfg.Codepage)...)
	if err := pg.BufferStdout(ctx, cmd); err != nil {
		// Correct either way; without it pg_dump's 4 KiB writes cost CPU.
		r.log.Info("pg_dump writes in stdio blocks of 4 KiB", "reason", err.Error())
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return layout.Manifest{}, exitcode.Wrap(ExitDump, err)
	}
	if err := pg.WidenPipe(stdout); err != nil {
		r.log.Info("pg_dump's pipe keeps its size", "reason", err.Error())
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return layout.Manifest{}, exitcode.Wrap(ExitDump, err)
	}
	if err := cmd.Start(); err != nil {
		return layout.Manifest{}, exitcode.Wrap(ExitDump, fmt.Errorf("starting pg_dump: %w", err))
	}
	logged := make(chan struct{})
	go func() { pg.LogLines(r.log, "pg_dump", stderr); close(logged) }()

	// Upload: the store reads from the pipe until we close it, with nil to commit or
	// with an error to abort.
	pr, pw := io.Pipe()
	type putResult struct {
		info storage.ObjectInfo
		err  error
	}
	uploaded := make(chan putResult, 1)
	uctx, cancelUpload := context.WithCancel(ctx)
	defer cancelUpload()
	go func() {
		info, err := r.store.Put(uctx, key, pr, storage.PutOptions{ContentType: contentTypeDump})
		_ = pr.CloseWithError(fmt.Errorf("upload ended: %w", errOr(err, io.ErrClosedPipe)))
		uploaded <- putResult{info, err}
	}()

	hash := sha256.New()
	written := progress.NewCounter()
	raw := progress.NewCounter()
	gz, err := gzipx.NewWriter(io.MultiWriter(pw, hash, written), int(r.cfg.GzipLevel), r.cfg.GzipThreads)
	if err != nil {
		return layout.Manifest{}, exitcode.Wrap(ExitConfig, err)
	}
	pctx, stopProgress := context.WithCancel(ctx)
	go progress.Report(pctx, r.log, "dump progress", raw, 0, r.cfg.ProgressInterval)
	head := &headCapture{limit: 64 << 10}
	// The archive on its way to the store is compacted (its rows' chunks merged: the
	// same archive, a smaller stream to compress) and its rows counted per table
	// (figures only: nothing of the data is kept), for `cronbackup verify` to check a
	// restore against.
	count, countErr := pg.CompactArchive(io.MultiWriter(gz, raw), io.TeeReader(stdout, head))
	var copyErr error // the upload side's failure, told apart from a fault in the archive
	if errors.Is(countErr, pg.ErrWrite) {
		copyErr = countErr
		cancelDump() // the upload side failed: stop pg_dump
	} else if countErr != nil {
		_, _ = io.Copy(io.Discard, stdout) // let pg_dump finish: its exit explains more
	}
	<-logged
	waitErr := cmd.Wait()
	stopProgress()

	abort := func(code int, err error) (layout.Manifest, error) {
		_ = pw.CloseWithError(err)
		_ = gz.Close() // stops its workers; its writes fail on the closed pipe
		cancelUpload()
		res := <-uploaded
		if res.err == nil {
			// Cannot happen with a pipe closed with an error; refuse loudly anyway.
			return layout.Manifest{}, exitcode.Wrapf(ExitUnexpected, "upload of %q completed after an abort", key)
		}
		return layout.Manifest{}, exitcode.Wrap(code, err)
	}
	switch {
	case copyErr != nil:
		_ = gz.Close() // stops its workers; the upload has ended
		res := <-uploaded
		return layout.Manifest{}, exitcode.Wrap(ExitStorage, fmt.Errorf("uploading %q: %w", key, errOr(res.err, copyErr)))
	case waitErr != nil:
		return abort(ExitDump, pg.ExitError("pg_dump", waitErr))
	}
	if err := gz.Close(); err != nil {
		return abort(ExitStorage, fmt.Errorf("finishing the gzip stream: %w", err))
	}
	hdr, err := pg.ReadArchiveHeader(head.reader())
	if err != nil {
		return abort(ExitVerify, fmt.Errorf("verifying the dump: %w", err))
	}
	if hdr.Database != r.cfg.Database {
		return abort(ExitVerify, fmt.Errorf("verifying the dump: archive is of database %q, want %q", hdr.Database, r.cfg.Database))
	}
	var rows []layout.TableRows
	rowsMethod := layout.RowsExact
	switch {
	case errors.Is(countErr, pg.ErrRowsUnknown):
		// A compression this build cannot read: a good backup whose rows a
		// verification cannot check.
		r.log.Info("row counts not recorded", "reason", countErr.Error())
		rowsMethod = ""
	case countErr != nil:
		return abort(ExitVerify, fmt.Errorf("verifying the dump: %w", countErr))
	case count.Header.Entries != hdr.Entries:
		return abort(ExitVerify, fmt.Errorf("verifying the dump: %d table-of-contents entries counted, the header says %d", count.Header.Entries, hdr.Entries))
	default:
		for _, d := range count.Data {
			if d.Rows < 0 {
				return abort(ExitVerify, fmt.Errorf("verifying the dump: table %q has a data entry without data", d.Schema+"."+d.Table))
			}
			rows = append(rows, layout.TableRows{Schema: d.Schema, Table: d.Table, Rows: d.Rows})
		}
	}
	_ = pw.Close()
	res := <-uploaded
	if res.err != nil {
		return layout.Manifest{}, exitcode.Wrap(ExitStorage, res.err)
	}
	if res.info.Size != written.Bytes() {
		return layout.Manifest{}, exitcode.Wrapf(ExitStorage, "store reports %d bytes for %q, %d were written", res.info.Size, key, written.Bytes())
	}
	m := layout.Manifest{
		Version:        layout.ManifestVersion,
		Namespace:      r.cfg.Namespace,
		Object:         key,
		Size:           written.Bytes(),
		ArchiveSize:    raw.Bytes(),
		SHA256:         hex.EncodeToString(hash.Sum(nil)),
		Database:       r.cfg.Database,
		Encoding:       server.encoding,
		Format:         fmt.Sprintf("pg_dump -Fc -Z%d --encoding %s | gzip (level %d)", r.cfg.DumpCompression, r.cfg.Codepage, r.cfg.GzipLevel),
		ServerVersion:  server.version,
		DumpVersion:    hdr.DumpVersion,
		StartedAt:      started,
		FinishedAt:     time.Now().UTC(),
		ArchiveEntries: hdr.Entries,
		Tool:           "cronbackup",
		Tables:         count.Tables,
		Rows:           rows,
		RowsMethod:     rowsMethod,
	}
	if rowsMethod == "" {
		m.Tables = 0
	}
	var total int64
	for _, t := range rows {
		total += t.Rows
	}
	r.log.Info("dump uploaded", "object", key, "archiveBytes", raw.Bytes(), "objectBytes", m.Size,
		"sha256", m.SHA256, "tocEntries", hdr.Entries, "archiveVersion", hdr.Version,
		"tables", m.Tables, "tablesWithData", len(rows), "rows", total,
		"gzip", gz.Implementation(), "gzipLevel", int(r.cfg.GzipLevel))
	return m, nil
}

func errOr(err, fallback error) error {
	if err != nil {
		return err
	}
	return fallback
}

func (r *run) writeManifest(ctx context.Context, key string, m layout.Manifest) error {
	b, err := m.Marshal()
	if err != nil {
		return exitcode.Wrap(ExitUnexpected, err)
	}
	if _, err := r.store.Put(ctx, key, bytes.NewReader(b), storage.PutOptions{ContentType: contentTypeManifest}); err != nil {
		return exitcode.Wrap(ExitStorage, fmt.Errorf("writing manifest %q: %w", key, err))
	}
	return nil
}

// promote makes the new backup the latest: the object first (a server-side copy), then
// its manifest. The writes of a run come in an order where a crash between any two
// leaves a restorable store: the immutable object, its manifest, the latest copy, the
// latest manifest, then retention's deletes. initrestore reads the immutable object the
// latest manifest names (or, when that pair is broken, the newest immutable backup with
// a complete manifest), so a crash before the latest manifest restores the previous
// backup and one after it the new one; database_latest.dump.gz is only for the page's
// tools.
func (r *run) promote(ctx context.Context, m layout.Manifest) error {
	latest := layout.LatestKey(r.cfg.Namespace)
	if _, err := r.store.Copy(ctx, m.Object, latest); err != nil {
		return exitcode.Wrap(ExitStorage, fmt.Errorf("promoting %q: %w", m.Object, err))
	}
	if err := r.writeManifest(ctx, layout.LatestManifestKey(r.cfg.Namespace), m); err != nil {
		return err
	}
	r.log.Info("backup promoted", "latest", latest, "object", m.Object)
	return nil
}

// prune applies retention to this namespace's backups after a successful promote.
func (r *run) prune(ctx context.Context, newest layout.Manifest) ([]string, error) {
	loc, _ := time.LoadLocation(r.cfg.Timezone) // validated in Config
	objs, err := r.store.List(ctx, r.cfg.Namespace+"/")
	if err != nil {
		return nil, fmt.Errorf("listing backups for retention: %w", err)
	}
	var backups []layout.Backup
	for _, o := range objs {
		if b, ok := layout.ParseBackupKey(o.Key); ok {
			backups = append(backups, b)
		}
	}
	_, drop := layout.Retain(backups, layout.Policy{Daily: r.cfg.KeepDaily, Weekly: r.cfg.KeepWeekly, Monthly: r.cfg.KeepMonthly, Location: loc})
	// The backup the latest manifest names now is what restores read: an overlapping
	// run may have promoted another than ours; never delete it.
	named := r.latestNamed(ctx)
	var pruned []string
	for _, b := range drop {
		if b.Key == newest.Object {
			return pruned, fmt.Errorf("retention selected the newest backup %q: refusing", b.Key)
		}
		if b.Key == named {
			r.log.Info("backup kept: the latest manifest names it", "object", b.Key)
			continue
		}
		for _, key := range []string{b.Key, layout.ManifestKey(b.Key)} {
			if err := r.store.Delete(ctx, key); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return pruned, fmt.Errorf("deleting %q: %w", key, err)
			}
		}
		pruned = append(pruned, b.Key)
		r.log.Info("backup pruned", "object", b.Key, "backupTime", b.Time)
	}
	removed, err := storage.RemoveStaleTemp(ctx, r.store, r.cfg.Namespace+"/", storage.StaleTempAge)
	for _, f := range removed {
		r.log.Info("stale temporary file of an interrupted write removed", "file", f, "olderThan", storage.StaleTempAge.String())
	}
	if err != nil {
		return pruned, err
	}
	return pruned, nil
}

// latestNamed is the object the latest manifest names now, or "" when it cannot be
// read (then only the newest-backup rule protects).
func (r *run) latestNamed(ctx context.Context) string {
	rc, _, err := r.store.Open(ctx, layout.LatestManifestKey(r.cfg.Namespace))
	if err != nil {
		return ""
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, 1<<20))
	if err != nil {
		return ""
	}
	m, err := layout.ParseManifest(b)
	if err != nil {
		return ""
	}
	return m.Object
}

// headCapture keeps the first bytes written to it: the archive header and TOC count.
type headCapture struct {
	buf   []byte
	limit int
}

func (h *headCapture) Write(p []byte) (int, error) {
	if room := h.limit - len(h.buf); room > 0 {
		h.buf = append(h.buf, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (h *headCapture) reader() io.Reader { return bytes.NewReader(h.buf) }

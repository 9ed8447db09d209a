// Command cronbackup is the image of the backup CronJobs:
//
//	cronbackup [backup]   the 21:00 dump of one database (see package backup)
//	cronbackup sync       the 06:00 copy of the cluster volume to Rubrik (see package sync)
//	cronbackup status URL per namespace, the latest backup's time, size and sha256 (manifests only)
//	cronbackup verify     the weekly restore of the latest backup into a scratch database (see package verify)
//	cronbackup provision URL NS…  makes each namespace's directory of a file:/// volume and its marker
//
// Configuration comes from the environment; the README lists it with the exit codes.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"
	_ "time/tzdata" // BACKUP_TIMEZONE works in a minimal image

	"github.com/go-logr/logr"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/cronbackup/status"
	"github.com/smartbackup/smartbackup/cronbackup/sync"
	"github.com/smartbackup/smartbackup/cronbackup/verify"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/logging"
	"github.com/smartbackup/smartbackup/internal/storage"
)

func main() {
	logging.LimitMemory()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string) int {
	cmd := "backup"
	if len(args) > 0 {
		cmd = args[0]
	}
	log := logging.FromEnv("cronbackup").WithValues("command", cmd)
	switch cmd {
	case "backup":
		start := time.Now()
		// The outcome, without data, as the container's termination message (the
		// webhook makes an Event and metrics of it).
		summarize := func(s contract.Summary) {
			s.Kind, s.Seconds = contract.SummaryBackup, contract.SummaryDuration(time.Since(start))
			s.Outcome = contract.OutcomeSucceeded
			if s.ExitCode != 0 {
				s.Outcome, s.Reason = contract.OutcomeFailed, contract.ExitMeaning(contract.SummaryBackup, s.ExitCode)
			}
			if err := contract.WriteSummary(s); err != nil {
				log.V(1).Info("no termination message written", "error", err.Error())
			}
		}
		cfg, err := backup.LoadConfig()
		if err != nil {
			log.Error(err, "configuration error")
			summarize(contract.Summary{ExitCode: backup.ExitConfig})
			return backup.ExitConfig
		}
		res, err := backup.Run(ctx, log, cfg)
		if err != nil {
			code := exitcode.Of(err, backup.ExitUnexpected)
			log.Error(err, "backup failed", "exitCode", code)
			summarize(contract.Summary{ExitCode: code})
			return code
		}
		m := res.Manifest
		log.Info("backup complete", "object", m.Object, "bytes", m.Size, "sha256", m.SHA256,
			"duration", res.Duration.Round(1e6).String(), "pruned", len(res.Pruned), "namespace", m.Namespace)
		summarize(contract.Summary{Object: m.Object, SHA256: m.SHA256, Bytes: m.Size})
		return 0
	case "sync":
		cfg, err := sync.LoadConfig()
		if err != nil {
			log.Error(err, "configuration error")
			return sync.ExitConfig
		}
		res, err := sync.Run(ctx, log, cfg)
		if err != nil {
			code := exitcode.Of(err, 1)
			log.Error(err, "sync failed", "exitCode", code, "copied", res.Copied, "skipped", res.Skipped)
			return code
		}
		log.Info("sync complete", "copied", res.Copied, "skipped", res.Skipped, "bytes", res.Bytes, "pruned", res.Pruned)
		return 0
	case "status":
		return runStatus(ctx, log, args[1:])
	case "verify":
		cfg, err := verify.LoadConfig()
		if err != nil {
			log.Error(err, "configuration error")
			return verify.ExitConfig
		}
		res, err := verify.Run(ctx, log, cfg)
		if err != nil {
			code := exitcode.Of(err, verify.ExitUnexpected)
			log.Error(err, "verification failed", "exitCode", code, "object", res.Object, "verdict", res.Verdict)
			return code
		}
		f := res.Figures
		log.Info("backup verified", "object", res.Object, "verdict", res.Verdict, "tables", f.RestoredTables,
			"rows", f.RestoredRows, "databaseBytes", f.DatabaseBytes, "durationSeconds", res.DurationSeconds, "namespace", res.Namespace)
		return 0
	case "provision":
		return runProvision(log, args[1:])
	case "help", "-h", "--help":
		fmt.Println("usage: cronbackup [backup|sync|status [--json] STORAGE_URL|provision file:///VOLUME NAMESPACE...]; configuration from the environment, see README.md")
		return 0
	default:
		log.Error(fmt.Errorf("unknown command %q", cmd), "usage: cronbackup [backup|sync|status|provision]")
		return backup.ExitConfig
	}
}

func runStatus(ctx context.Context, log logr.Logger, args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print one JSON object per namespace")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		log.Error(errors.New("usage: cronbackup status [--json] STORAGE_URL"), "configuration error")
		return backup.ExitConfig
	}
	st, err := storage.Open(ctx, fs.Arg(0))
	if errors.Is(err, storage.ErrInvalidURL) {
		log.Error(err, "configuration error")
		return backup.ExitConfig
	}
	if err != nil { // unreachable, or no cloud credential: exit 5 like every command
		log.Error(err, "status failed")
		return backup.ExitStorage
	}
	defer st.Close()
	rows, err := status.Collect(ctx, st)
	if err != nil {
		log.Error(err, "status failed")
		return backup.ExitStorage
	}
	if err := status.Print(os.Stdout, rows, *asJSON, time.Now()); err != nil {
		return backup.ExitUnexpected
	}
	return 0
}

// runProvision makes each namespace's directory of the SmartERP volume and writes the
// marker naming it (storage.MarkNamespace), so that the namespace's own volume, rooted
// there, reads as provisioned. The webhook's reconciler runs it as a Job in its own
// namespace, with the whole volume mounted.
func runProvision(log logr.Logger, args []string) int {
	if len(args) < 2 {
		log.Error(errors.New("usage: cronbackup provision file:///VOLUME NAMESPACE [NAMESPACE…]"), "configuration error")
		return backup.ExitConfig
	}
	loc, err := storage.ParseURL(args[0])
	if err != nil || loc.Scheme != "file" {
		log.Error(fmt.Errorf("provision needs a file:/// volume: %w", err), "configuration error")
		return backup.ExitConfig
	}
	for _, ns := range args[1:] {
		if err := storage.MarkNamespace(loc.Prefix, ns); err != nil {
			log.Error(err, "provisioning failed", "namespace", ns)
			return backup.ExitStorage
		}
		log.Info("namespace directory provisioned", "namespace", ns)
	}
	return 0
}

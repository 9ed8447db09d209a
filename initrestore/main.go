// Command initrestore is the init container of dbaccess pods: it makes sure the
// database exists, restoring the latest backup when it does not, before dbaccess
// boots. Configuration comes from the environment the webhook injects; the README
// lists it with the exit codes.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/smartbackup/smartbackup/initrestore/restore"
	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/exitcode"
	"github.com/smartbackup/smartbackup/internal/logging"
)

func main() {
	logging.LimitMemory()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx)
	stop()
	os.Exit(code)
}

func run(ctx context.Context) int {
	start := time.Now()
	log := logging.FromEnv("initrestore")
	// The outcome, without data, as the container's termination message: kubectl
	// describe pod shows it, and the webhook makes an Event and metrics of it.
	summarize := func(s contract.Summary) {
		s.Kind, s.Seconds = contract.SummaryRestore, contract.SummaryDuration(time.Since(start))
		if s.ExitCode != 0 {
			s.Outcome, s.Reason = contract.OutcomeFailed, contract.ExitMeaning(contract.SummaryRestore, s.ExitCode)
		}
		if err := contract.WriteSummary(s); err != nil {
			log.V(1).Info("no termination message written", "error", err.Error())
		}
	}
	cfg, err := restore.LoadConfig()
	if err != nil {
		log.Error(err, "configuration error")
		summarize(contract.Summary{ExitCode: restore.ExitConfig})
		return restore.ExitConfig
	}
	log = log.WithValues("namespace", cfg.Namespace, "pod", cfg.PodName)
	res, err := restore.Run(ctx, log, cfg)
	if err != nil {
		code := exitcode.Of(err, restore.ExitUnexpected)
		log.Error(err, "initrestore failed", "exitCode", code)
		summarize(contract.Summary{ExitCode: code})
		return code
	}
	log.Info("initrestore complete", "outcome", res.Outcome, "reason", res.Reason,
		"restoredFrom", res.Record.Object, "sha256", res.Record.SHA256, "duration", res.Duration.Round(time.Millisecond).String())
	summarize(contract.Summary{Outcome: string(res.Outcome), Object: res.Record.Object, SHA256: res.Record.SHA256})
	return 0
}

// Command kubectl-smartbackup is the operators' kubectl plugin (krew naming: run it as
// `kubectl smartbackup …` once it is on PATH): status, history, forced restores,
// verifications and backups of the namespaces that opted in. See package cli.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/smartbackup/smartbackup/kubectl-smartbackup/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

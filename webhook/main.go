// Command webhook is smartbackup's mutating admission webhook: it injects the restore
// init container and the backup env into dbaccess pods of enabled namespaces and keeps
// their nightly backup CronJobs. Configuration is SMARTBACKUP_* environment variables
// (see webhook/config); it runs in the cluster with its service account, or against
// $KUBECONFIG.
//
// Exit codes: 0 stopped by a signal, 1 runtime failure, 2 invalid configuration,
// 3 no cluster configuration (neither in-cluster nor a kubeconfig).
package main

import (
	"os"
	// The time zone database, so SMARTBACKUP_TIME_ZONE validates in an image without
	// /usr/share/zoneinfo (the Dockerfile's is FROM scratch).
	_ "time/tzdata"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/smartbackup/smartbackup/webhook/app"
	"github.com/smartbackup/smartbackup/webhook/config"
)

// Exit codes (documented in the README).
const (
	exitFailure = 1
	exitConfig  = 2
	exitCluster = 3
)

func main() {
	cfg, err := config.Load()
	verbosity := 0
	if err == nil {
		verbosity = cfg.LogVerbosity
	}
	// JSON lines on stderr; V(n) lines appear from LOG_VERBOSITY n.
	log := zap.New(zap.UseDevMode(false), zap.Level(zapcore.Level(-verbosity)), zap.StacktraceLevel(zapcore.DPanicLevel)).WithName(app.Name)
	ctrl.SetLogger(log)
	if err != nil {
		log.Error(err, "invalid configuration")
		os.Exit(exitConfig)
	}
	restConfig, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "no cluster configuration")
		os.Exit(exitCluster)
	}
	w, err := app.New(cfg, restConfig, app.Options{})
	if err == nil {
		err = w.Run(ctrl.SetupSignalHandler())
	}
	if err != nil {
		log.Error(err, "webhook failed")
		os.Exit(exitFailure)
	}
}

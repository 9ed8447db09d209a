package cronjobs

import (
	"context"
	"fmt"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// ComponentVerify labels the verification CronJob.
const ComponentVerify = "verify"

// Verify is the weekly verification CronJob of the namespace s describes: `cronbackup
// verify` with the backup's env and volumes (namespaceEnv, namespaceVolumes), the
// admin role of the namespace's Secret instead of the application role, against
// server ("" for the namespace's own database server), at VerifySchedule.
func Verify(s inject.Settings, server string, cfg *config.Config) *batchv1.CronJob {
	labels := map[string]string{
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelAppName:   "smartbackup",
		LabelComponent:          ComponentVerify,
		contract.LabelProduct:   s.Product,
	}
	env := namespaceEnv(s, contract.EnvDatabaseAdminUser, contract.EnvDatabaseAdminPassword)
	if server != "" {
		host, port, _ := config.SplitServer(server) // validated by VerifyServer
		env = append(env, corev1.EnvVar{Name: contract.EnvVerifyDatabaseEndpoint, Value: host})
		if port != 0 {
			env = append(env, corev1.EnvVar{Name: contract.EnvVerifyDatabasePort, Value: strconv.Itoa(port)})
		}
	}
	env = append(env, inject.TLSEnv(s)...)
	mounts, volumes := namespaceVolumes(s, cfg)
	return cronJob(contract.VerifyCronJobName, s.Namespace, VerifySchedule(s.Namespace, cfg), labels, "verify", env, mounts, volumes, cfg)
}

// VerifySchedule is a namespace's weekly verification start: on VERIFY_WEEKDAY (the
// day VERIFY_WINDOW starts), at the minute of the window a hash of the namespace's
// name gives (Preferred: uniform over the window, the same forever), so that the
// verifications of a fleet do not start together, nor during the backup window.
func VerifySchedule(ns string, cfg *config.Config) string {
	w, _ := config.ParseWindow(cfg.VerifyWindow) // validated in Config
	t := w.Start + Preferred(ns, w.Minutes)
	day := (cfg.VerifyWeekday + t/(24*60)) % 7
	t %= 24 * 60
	return fmt.Sprintf("%d %d * * %d", t%60, t/60, day)
}

// VerifyServer is the namespace's verification server: its annotation
// smartbackup.io/verify-endpoint, else the operator's VERIFY_SERVER, else "" (the
// namespace's own server). A malformed annotation is an error naming it.
func VerifyServer(ns inject.Namespace, cfg *config.Config) (string, error) {
	v, ok := ns.Annotations[contract.AnnotationVerifyEndpoint]
	if !ok {
		return cfg.VerifyServer, nil
	}
	if _, _, err := config.SplitServer(v); err != nil {
		return "", fmt.Errorf("namespace %q: annotation %s=%q: %w", ns.Name, contract.AnnotationVerifyEndpoint, v, err)
	}
	return v, nil
}

// reconcileVerify applies the namespace's verify CronJob, or deletes it when
// VERIFY_ENABLED is false.
func (r *Reconciler) reconcileVerify(ctx context.Context, s inject.Settings, server string) error {
	if !r.Config.VerifyEnabled {
		_, err := r.delete(ctx, s.Namespace, contract.VerifyCronJobName)
		return err
	}
	return r.apply(ctx, Verify(s, server, r.Config))
}

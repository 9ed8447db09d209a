// Package cronjobs keeps the backup CronJobs: the nightly backup in every enabled
// namespace (the operations page's 21:00 dump) and, when configured, the 06:00 copy of
// the SmartERP volume to Rubrik in the operator's namespace. The builders are pure;
// the Reconciler applies them with server-side apply and removes a namespace's CronJob
// when it opts out.
package cronjobs

import (
	"path"
	"strconv"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// Component label values.
const (
	ComponentBackup = "backup"
	ComponentSync   = "sync"
	// LabelComponent is the standard component label.
	LabelComponent = "app.kubernetes.io/component"
	// VolumeSyncTarget is the sync target's volume when SYNC_TARGET_URL is file://.
	VolumeSyncTarget = "smartbackup-sync-target"
)

// Backup is the nightly backup CronJob of the namespace s describes: `cronbackup backup`
// with the same database settings and storage URL its dbaccess pods get, at p's
// schedule (placed: see Spread) with p's retention and dump slots.
func Backup(s inject.Settings, p Plan, cfg *config.Config) *batchv1.CronJob {
	labels := map[string]string{
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelAppName:   "smartbackup",
		LabelComponent:          ComponentBackup,
		contract.LabelProduct:   s.Product,
	}
	env := namespaceEnv(s, contract.EnvDatabaseUser, contract.EnvDatabasePassword)
	env = append(env,
		// Retention sorts backups into days in the zone the CronJob runs in.
		corev1.EnvVar{Name: contract.EnvBackupTimezone, Value: cfg.TimeZone},
		corev1.EnvVar{Name: contract.EnvBackupKeepDaily, Value: strconv.Itoa(p.KeepDaily)},
		corev1.EnvVar{Name: contract.EnvBackupKeepWeekly, Value: strconv.Itoa(p.KeepWeekly)},
		corev1.EnvVar{Name: contract.EnvBackupKeepMonthly, Value: strconv.Itoa(p.KeepMonthly)},
		corev1.EnvVar{Name: contract.EnvBackupMaxConcurrentPerServer, Value: strconv.Itoa(p.MaxConcurrentPerServer)},
		corev1.EnvVar{Name: contract.EnvBackupSlotWaitTimeout, Value: cfg.BackupSlotWait.String()},
	)
	env = append(env, inject.TLSEnv(s)...)
	mounts, volumes := namespaceVolumes(s, cfg)
	cj := cronJob(contract.BackupCronJobName, s.Namespace, p.Schedule, labels, "backup", env, mounts, volumes, cfg)
	// Where the schedule comes from, for whoever reads the CronJob (and for the next
	// webhook's Spread: a window start is kept while the window is the same).
	cj.Annotations = map[string]string{contract.AnnotationScheduleSource: p.Source}
	if p.Source == contract.ScheduleSourceWindow {
		cj.Annotations[contract.AnnotationBackupWindow] = p.Window.String()
	}
	return cj
}

// namespaceEnv is the environment every CronJob of a namespace starts from: its
// database settings, the keys of its Secret a job connects with (secretKeys: the
// application role for the backup, the admin role for the verification), its storage
// URL and its namespace.
func namespaceEnv(s inject.Settings, secretKeys ...string) []corev1.EnvVar {
	env := inject.DatabaseEnv(s)
	env = append(env, inject.SecretEnvVars(s.SecretName, secretKeys...)...)
	return append(env,
		corev1.EnvVar{Name: contract.EnvBackupStorageURL, Value: s.StorageURL},
		inject.FieldEnv(contract.EnvNamespace, "metadata.namespace"),
	)
}

// namespaceVolumes are the volumes, and their mounts, of every CronJob of a namespace:
// its database CA, and its backups when they are on a volume (file://).
func namespaceVolumes(s inject.Settings, cfg *config.Config) ([]corev1.VolumeMount, []corev1.Volume) {
	var mounts []corev1.VolumeMount
	var volumes []corev1.Volume
	if v, m, ok := inject.DatabaseCAVolume(s); ok {
		mounts = append(mounts, m)
		volumes = append(volumes, v)
	}
	if s.StoragePath != "" {
		// Only the namespace's own directory of the volume, where its backups go.
		v := inject.BackupVolume(false, false)
		mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: path.Join(s.StoragePath, s.Namespace)})
		volumes = append(volumes, v)
	}
	return mounts, volumes
}

// Sync is the 06:00 CronJob that copies the SmartERP volume to SyncTargetURL, or nil
// when no sync is configured.
func Sync(cfg *config.Config) *batchv1.CronJob {
	dir, err := config.StoragePath(cfg.StorageURLSmartERP)
	if cfg.SyncTargetURL == "" || err != nil || dir == "" {
		return nil
	}
	labels := map[string]string{
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelAppName:   "smartbackup",
		LabelComponent:          ComponentSync,
		contract.LabelProduct:   contract.ProductSmartERP,
	}
	env := []corev1.EnvVar{
		{Name: contract.EnvSyncSourceURL, Value: cfg.StorageURLSmartERP},
		{Name: contract.EnvSyncTargetURL, Value: cfg.SyncTargetURL},
		{Name: contract.EnvBackupTimezone, Value: cfg.TimeZone},
		inject.FieldEnv(contract.EnvNamespace, "metadata.namespace"),
	}
	if cfg.SyncKeepDaily > 0 {
		env = append(env, corev1.EnvVar{Name: contract.EnvSyncKeepDaily, Value: strconv.Itoa(cfg.SyncKeepDaily)},
			corev1.EnvVar{Name: contract.EnvSyncKeepWeekly, Value: strconv.Itoa(cfg.SyncKeepWeekly)},
			corev1.EnvVar{Name: contract.EnvSyncKeepMonthly, Value: strconv.Itoa(cfg.SyncKeepMonthly)})
	}
	// The whole volume, read-only: the sync copies every namespace's backups.
	mounts := []corev1.VolumeMount{{Name: inject.VolumeBackups, MountPath: dir, ReadOnly: true}}
	volumes := []corev1.Volume{WholeVolume(cfg)}
	if target, _ := config.StoragePath(cfg.SyncTargetURL); target != "" {
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeSyncTarget, MountPath: target})
		volumes = append(volumes, corev1.Volume{Name: VolumeSyncTarget, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: cfg.SyncTargetClaim},
		}})
	}
	return cronJob(contract.SyncCronJobName, cfg.SyncNamespace, cfg.SyncSchedule, labels, "sync", env, mounts, volumes, cfg)
}

func cronJob(name, namespace, schedule string, labels map[string]string, command string, env []corev1.EnvVar,
	mounts []corev1.VolumeMount, volumes []corev1.Volume, cfg *config.Config) *batchv1.CronJob {
	tmp := cfg.TmpSize.Quantity
	mounts = append([]corev1.VolumeMount{{Name: inject.VolumeTmp, MountPath: "/tmp"}}, mounts...)
	volumes = append([]corev1.Volume{{Name: inject.VolumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmp}}}}, volumes...)
	tz := cfg.TimeZone
	return &batchv1.CronJob{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: labels},
		Spec: batchv1.CronJobSpec{
			Schedule: schedule,
			// Explicit, so that the webhook owns the field: a namespace that stops
			// being enabled gets its CronJob suspended, and enabled again, resumed.
			Suspend:                    new(false),
			TimeZone:                   &tz,
			ConcurrencyPolicy:          batchv1.ForbidConcurrent,
			StartingDeadlineSeconds:    new(int64(cfg.StartingDeadline.Seconds())),
			SuccessfulJobsHistoryLimit: new(cfg.SuccessfulJobsHistory),
			FailedJobsHistoryLimit:     new(cfg.FailedJobsHistory),
			JobTemplate: batchv1.JobTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: batchv1.JobSpec{
					ActiveDeadlineSeconds: new(int64(cfg.ActiveDeadline.Seconds())),
					BackoffLimit:          new(cfg.BackoffLimit),
					Template: corev1.PodTemplateSpec{
						ObjectMeta: metav1.ObjectMeta{Labels: labels},
						Spec: jobPodSpec(corev1.Container{
							Name:                     command,
							Args:                     []string{command},
							Env:                      env,
							Resources:                inject.Resources(cfg.BackupCPURequest, cfg.BackupMemoryRequest, cfg.BackupCPULimit, cfg.BackupMemoryLimit),
							VolumeMounts:             mounts,
							TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
						}, volumes, true, cfg),
					},
				},
			},
		},
	}
}

// jobPodSpec is the pod of every Job the webhook makes, around one cronbackup
// container c: never restarted in place, no API token (cronbackup never calls the
// Kubernetes API; cloud identities such as Workload Identity or IRSA do not need it),
// non-root with the runtime's seccomp profile. fsGroup gives the pod's volumes the
// group: not for the whole backup volume, which the kubelet would chown recursively.
func jobPodSpec(c corev1.Container, volumes []corev1.Volume, fsGroup bool, cfg *config.Config) corev1.PodSpec {
	c.Image, c.ImagePullPolicy, c.SecurityContext = cfg.CronBackupImage, cfg.ImagePullPolicy, inject.SecurityContext(cfg)
	sc := &corev1.PodSecurityContext{
		RunAsNonRoot:   new(true),
		RunAsUser:      new(cfg.RunAsUser),
		RunAsGroup:     new(cfg.RunAsGroup),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if fsGroup {
		sc.FSGroup = new(cfg.RunAsGroup)
	}
	return corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		ServiceAccountName:           cfg.BackupServiceAccount,
		AutomountServiceAccountToken: new(false),
		SecurityContext:              sc,
		Containers:                   []corev1.Container{c},
		Volumes:                      volumes,
	}
}

// WholeVolume is the whole backup volume (VOLUME_CLAIM), mounted only in the operator's
// namespace: by the 06:00 sync, read-only, and by the provisioning Jobs.
func WholeVolume(cfg *config.Config) corev1.Volume {
	return corev1.Volume{Name: inject.VolumeBackups, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: cfg.VolumeClaim},
	}}
}

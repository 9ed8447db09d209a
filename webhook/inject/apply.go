package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"path"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
)

// Version is the injector's version, the prefix of the status annotation's value. Bump
// it when the shape of the injection changes.
const Version = "v1"

// Volumes the webhook adds to a pod. The names are reserved: a pod's own volume of the
// same name is replaced.
const (
	// VolumeScratch is the restore's spool directory (RESTORE_SCRATCH_DIR).
	VolumeScratch = "smartbackup-scratch"
	// VolumeTmp is /tmp of the init container, whose root filesystem is read-only.
	VolumeTmp = "smartbackup-tmp"
	// VolumeBackups is the cluster backup volume, mounted when the storage is file://.
	VolumeBackups = "smartbackup-backups"
	// VolumeMasking is the masking SQL's ConfigMap.
	VolumeMasking = "smartbackup-masking"
)

// injection is everything Apply adds to a pod.
type injection struct {
	Version string
	Init    corev1.Container
	Volumes []corev1.Volume
	// Env is added to the dbaccess container, each variable only when the container
	// does not set it already.
	Env []corev1.EnvVar
}

// Apply injects the restore init container and the backup env into pod and returns
// true, or returns false and leaves pod untouched when it already carries exactly this
// injection (the status annotation matches and the init container is intact), so
// Apply(Apply(p)) changes nothing. A pod carrying a stale or edited injection (a copied
// manifest, another namespace's settings) is injected afresh.
func Apply(pod *corev1.Pod, s Settings, cfg *config.Config) bool {
	in := build(s, cfg)
	status := in.status()
	if in.present(pod, status) {
		return false
	}

	// 1. Remove any earlier injection: the reserved init container and volumes.
	pod.Spec.InitContainers = slices.DeleteFunc(pod.Spec.InitContainers, func(c corev1.Container) bool {
		return c.Name == contract.InitContainerName
	})
	pod.Spec.Volumes = slices.DeleteFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return v.Name == VolumeScratch || v.Name == VolumeTmp || v.Name == VolumeBackups || v.Name == VolumeMasking
	})

	// 2. The restore runs first, before any other init container, so that whatever
	// they do finds the database.
	pod.Spec.InitContainers = slices.Insert(pod.Spec.InitContainers, 0, in.Init)
	pod.Spec.Volumes = append(pod.Spec.Volumes, in.Volumes...)

	// 3. The backup env on the dbaccess container, never overriding its own.
	if c := dbaccessContainer(pod, cfg); c != nil {
		for _, e := range in.Env {
			if !slices.ContainsFunc(c.Env, func(have corev1.EnvVar) bool { return have.Name == e.Name }) {
				c.Env = append(c.Env, e)
			}
		}
	}

	// 4. The status annotation.
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[contract.AnnotationInjected] = status
	return true
}

// Injected reports whether pod carries exactly the injection s and cfg describe.
func Injected(pod *corev1.Pod, s Settings, cfg *config.Config) bool {
	in := build(s, cfg)
	return in.present(pod, in.status())
}

// present reports whether pod carries in, whose status annotation is status.
func (in injection) present(pod *corev1.Pod, status string) bool {
	if pod.Annotations[contract.AnnotationInjected] != status {
		return false
	}
	i := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == contract.InitContainerName })
	if i < 0 {
		return false
	}
	c := pod.Spec.InitContainers[i]
	// Image, env and mounts are what decide which backup is restored where. The
	// apiserver may default other fields after the first pass, so they are not compared.
	if c.Image != in.Init.Image || !apiequality.Semantic.DeepEqual(c.Env, in.Init.Env) ||
		!apiequality.Semantic.DeepEqual(c.VolumeMounts, in.Init.VolumeMounts) {
		return false
	}
	for _, v := range in.Volumes {
		if !slices.ContainsFunc(pod.Spec.Volumes, func(have corev1.Volume) bool { return have.Name == v.Name }) {
			return false
		}
	}
	return true
}

// Status is the value of the status annotation for s and cfg: the injector's version
// and a hash of what is injected.
func Status(s Settings, cfg *config.Config) string { return build(s, cfg).status() }

func (in injection) status() string {
	b, err := json.Marshal(in)
	if err != nil {
		// Containers and volumes always marshal; keep a stable value regardless.
		return Version
	}
	sum := sha256.Sum256(b)
	return Version + "-" + hex.EncodeToString(sum[:8])
}

// dbaccessContainer is the container named by the configuration, or the first.
func dbaccessContainer(pod *corev1.Pod, cfg *config.Config) *corev1.Container {
	if len(pod.Spec.Containers) == 0 {
		return nil
	}
	if cfg.DBAccessContainer != "" {
		for i := range pod.Spec.Containers {
			if pod.Spec.Containers[i].Name == cfg.DBAccessContainer {
				return &pod.Spec.Containers[i]
			}
		}
	}
	return &pod.Spec.Containers[0]
}

func build(s Settings, cfg *config.Config) injection {
	env := []corev1.EnvVar{
		value(contract.EnvEnvironment, s.Environment),
	}
	env = append(env, DatabaseEnv(s)...)
	env = append(env,
		value(contract.EnvDatabaseLocale, s.Locale),
		value(contract.EnvDatabaseExtensions, s.Extensions),
	)
	// Secrets (contract.Secrets) only by reference to the namespace's Secret.
	env = append(env, SecretEnvVars(s.SecretName, contract.Secrets...)...)
	env = append(env,
		value(contract.EnvBackupStorageURL, s.StorageURL),
		value(contract.EnvRestoreSourceNamespace, s.RestoreSource),
		value(contract.EnvRestoreOnMissingBackup, s.OnMissingBackup),
		value(contract.EnvRestoreRequestID, s.RequestID),
		value(contract.EnvRestoreRequestSource, s.RequestSource),
		value(contract.EnvRestoreScratchDir, contract.ScratchDir),
		// The restore streams an archive that would not fit instead of spooling it:
		// filling an emptyDir past its sizeLimit gets the pod evicted. In bytes: any
		// quantity the operator writes (20Gi, 20e9, 1P) reaches initrestore parseable.
		value(contract.EnvRestoreScratchMax, strconv.FormatInt(cfg.ScratchSize.Value(), 10)),
		value(contract.EnvRestoreMaskingSQL, maskingPath(s)),
		FieldEnv(contract.EnvNamespace, "metadata.namespace"),
		FieldEnv(contract.EnvPodName, "metadata.name"),
	)
	env = slices.DeleteFunc(env, func(e corev1.EnvVar) bool { return e.Value == "" && e.ValueFrom == nil })

	mounts := []corev1.VolumeMount{
		{Name: VolumeScratch, MountPath: contract.ScratchDir},
		{Name: VolumeTmp, MountPath: "/tmp"},
	}
	scratch, tmp := cfg.ScratchSize.Quantity, cfg.TmpSize.Quantity
	volumes := []corev1.Volume{
		{Name: VolumeScratch, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &scratch}}},
		{Name: VolumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &tmp}}},
	}
	if s.StoragePath != "" {
		// Only the source's and the namespace's own subdirectories of the shared
		// volume are visible, read-only: the restore never writes backups.
		for _, ns := range uniq(s.RestoreSource, s.Namespace) {
			mounts = append(mounts, corev1.VolumeMount{Name: VolumeBackups, MountPath: path.Join(s.StoragePath, ns), SubPath: ns, ReadOnly: true})
		}
		volumes = append(volumes, BackupVolume(cfg))
	}
	if s.MaskingConfigMap != "" {
		// Not optional: without its masking file the restore must not run.
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeMasking, MountPath: contract.MaskingDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: VolumeMasking, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.MaskingConfigMap},
			Items:                []corev1.KeyToPath{{Key: contract.MaskingKey, Path: contract.MaskingKey}},
		}}})
	}

	return injection{
		Version: Version,
		Init: corev1.Container{
			Name:                     contract.InitContainerName,
			Image:                    cfg.InitRestoreImage,
			ImagePullPolicy:          cfg.ImagePullPolicy,
			Env:                      env,
			Resources:                Resources(cfg.RestoreCPURequest, cfg.RestoreMemoryRequest, cfg.RestoreCPULimit, cfg.RestoreMemoryLimit),
			VolumeMounts:             mounts,
			SecurityContext:          SecurityContext(cfg),
			TerminationMessagePath:   corev1.TerminationMessagePathDefault,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		},
		Volumes: volumes,
		// The database's name too: one dbaccess Deployment serves every environment,
		// each namespace saying which database is its own.
		Env: append(DatabaseEnv(s),
			value(contract.EnvBackupStorageURL, s.StorageURL),
			FieldEnv(contract.EnvNamespace, "metadata.namespace"),
		),
	}
}

func maskingPath(s Settings) string {
	if s.MaskingConfigMap == "" {
		return ""
	}
	return path.Join(contract.MaskingDir, contract.MaskingKey)
}

func uniq(a, b string) []string {
	if a == b {
		return []string{a}
	}
	return []string{a, b}
}

func value(name, v string) corev1.EnvVar { return corev1.EnvVar{Name: name, Value: v} }

// DatabaseEnv is DATABASE_ENDPOINT, DATABASE_PORT, DATABASE_NAME (when set) and
// DATABASE_CODEPAGE of s, shared by the init container and the backup CronJob.
func DatabaseEnv(s Settings) []corev1.EnvVar {
	env := []corev1.EnvVar{
		value(contract.EnvDatabaseEndpoint, s.Endpoint),
		value(contract.EnvDatabasePort, strconv.Itoa(s.Port)),
	}
	if s.DatabaseName != "" {
		env = append(env, value(contract.EnvDatabaseName, s.DatabaseName))
	}
	return append(env, value(contract.EnvDatabaseCodepage, s.Codepage))
}

// SecretEnvVars references each name as the key of the same name in secret: the values
// never pass through the webhook, the pod spec or its logs.
func SecretEnvVars(secret string, names ...string) []corev1.EnvVar {
	out := make([]corev1.EnvVar, 0, len(names))
	for _, n := range names {
		out = append(out, corev1.EnvVar{Name: n, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: n},
		}})
	}
	return out
}

// FieldEnv is name from the downward API. The apiVersion is explicit so the apiserver's
// defaulting does not change the container after injection.
func FieldEnv(name, fieldPath string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: fieldPath},
	}}
}

// Resources is a container's requests and limits.
func Resources(cpuReq, memReq, cpuLim, memLim config.Quantity) corev1.ResourceRequirements {
	return corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: cpuReq.Quantity, corev1.ResourceMemory: memReq.Quantity},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: cpuLim.Quantity, corev1.ResourceMemory: memLim.Quantity},
	}
}

// SecurityContext is the restrictive container security context of everything the
// webhook runs: non-root, read-only root filesystem, no privilege escalation, no
// capabilities, the runtime's default seccomp profile (Pod Security "restricted").
func SecurityContext(cfg *config.Config) *corev1.SecurityContext {
	return &corev1.SecurityContext{
		RunAsNonRoot:             new(true),
		RunAsUser:                new(cfg.RunAsUser),
		RunAsGroup:               new(cfg.RunAsGroup),
		ReadOnlyRootFilesystem:   new(true),
		AllowPrivilegeEscalation: new(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// BackupVolume is the cluster backup volume (the configured claim).
func BackupVolume(cfg *config.Config) corev1.Volume {
	return corev1.Volume{Name: VolumeBackups, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: cfg.VolumeClaim},
	}}
}

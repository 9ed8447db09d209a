package inject

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
)

// Version is the injector's version, the prefix of the status annotation's value. Bump
// it when the shape of the injection changes.
const Version = "v2"

// Volumes the webhook adds to a pod (see ReservedVolumes).
const (
	// VolumeScratch is the restore's spool directory (RESTORE_SCRATCH_DIR).
	VolumeScratch = "smartbackup-scratch"
	// VolumeTmp is /tmp of the init container, whose root filesystem is read-only.
	VolumeTmp = "smartbackup-tmp"
	// VolumeBackups is the namespace's own directory of the backup volume, and
	// VolumeBackupsSource its restore source's, mounted when the storage is file://.
	VolumeBackups       = "smartbackup-backups"
	VolumeBackupsSource = "smartbackup-backups-source"
	// VolumeMasking is the masking SQL's ConfigMap.
	VolumeMasking = "smartbackup-masking"
	// VolumeDatabaseCA is the database server's CA (a ConfigMap or a Secret).
	VolumeDatabaseCA = "smartbackup-database-ca"
)

// injection is everything the webhook owns in a pod: its init container, its
// volumes, the env it sets in the dbaccess container, and the status annotation.
type injection struct {
	Version string
	Init    corev1.Container
	Volumes []corev1.Volume
	// Env goes first in the dbaccess container (so the pod's own variables can refer
	// to it as $(DATABASE_ENDPOINT)); the namespace decides every value.
	Env []corev1.EnvVar
}

// Apply makes pod carry exactly the injection s and cfg describe and reports whether
// that changed it. It never trusts what the pod brings: it strips everything the
// webhook owns (the init container, the reserved volumes, the variables it owns in the
// dbaccess container, the status annotation) and builds them again, so a pod that
// arrives with a forged status annotation, an edited init container or another
// namespace's injection comes out rebuilt. It reports no change only when the rebuilt
// pod deep-equals the one given, so Apply(Apply(p)) changes nothing, and what other
// webhooks add in between (their volumes, containers, proxy variables) survives.
//
// A denial leaves pod untouched: the pod itself sets a variable the namespace owns to
// another value (see ownedEnvSource), or names a dbaccess container it does not have.
func Apply(pod *corev1.Pod, s Settings, cfg *config.Config) (bool, *Denial) {
	in := build(s, cfg)
	want := pod.DeepCopy()
	if d := in.rebuild(want, s, cfg); d != nil {
		return false, d
	}
	if apiequality.Semantic.DeepEqual(pod, want) {
		return false, nil
	}
	*pod = *want
	return true, nil
}

// Injected reports whether pod carries exactly the injection s and cfg describe: Apply
// would change nothing.
func Injected(pod *corev1.Pod, s Settings, cfg *config.Config) bool {
	changed, d := Apply(pod.DeepCopy(), s, cfg)
	return d == nil && !changed
}

// rebuild strips what the webhook owns from p and builds it again, in place.
func (in injection) rebuild(p *corev1.Pod, s Settings, cfg *config.Config) *Denial {
	// What the pod may keep from an earlier pass: an earlier injection's values in the
	// dbaccess container are replaced silently (a pod copied from another namespace),
	// the pod author's own conflicting values are refused.
	injectedBefore := p.Annotations[contract.AnnotationInjected] != ""

	// 1. The dbaccess container: chosen before anything moves.
	target, d := TargetContainer(p, cfg)
	if d != nil {
		return d
	}

	// 2. Strip the init container, keeping only what another webhook may add to every
	// init container (proxy variables, the service account token mount).
	var carried corev1.Container
	p.Spec.InitContainers = slices.DeleteFunc(p.Spec.InitContainers, func(c corev1.Container) bool {
		if c.Name != contract.InitContainerName {
			return false
		}
		for _, e := range c.Env {
			if foreignEnvAllowed(e.Name) {
				carried.Env = append(carried.Env, e)
			}
		}
		for _, m := range c.VolumeMounts {
			if foreignMountAllowed(m) {
				carried.VolumeMounts = append(carried.VolumeMounts, m)
			}
		}
		return true
	})

	// 3. Strip the variables the webhook owns from the dbaccess container.
	if target >= 0 {
		c := &p.Spec.Containers[target]
		var conflict *Denial
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool {
			i := slices.IndexFunc(in.Env, func(o corev1.EnvVar) bool { return o.Name == e.Name })
			if i < 0 {
				return false
			}
			if conflict == nil && !injectedBefore && !apiequality.Semantic.DeepEqual(e, in.Env[i]) {
				conflict = envConflict(c.Name, e.Name, s)
			}
			return true
		})
		if conflict != nil {
			return conflict
		}
		if len(c.Env) == 0 {
			c.Env = nil
		}
		// 4. The namespace's variables first, so that $(VAR) in the pod's own expand.
		c.Env = append(slices.Clone(in.Env), c.Env...)
	}

	// 5. The init container, after the last native sidecar (an init container with
	// restartPolicy Always: a mesh proxy or a Cloud SQL Auth Proxy the restore needs to
	// reach the database) and before every ordinary init container, so whatever they
	// do finds the database.
	init := in.Init
	init.Env = append(slices.Clone(init.Env), carried.Env...)
	init.VolumeMounts = append(slices.Clone(init.VolumeMounts), carried.VolumeMounts...)
	at := 0
	for i, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			at = i + 1
		}
	}
	p.Spec.InitContainers = slices.Insert(p.Spec.InitContainers, at, init)

	// 6. The reserved volumes, each where it was (so a second pass moves nothing),
	// the missing ones appended; a reserved name the injection does not use is dropped.
	p.Spec.Volumes = mergeVolumes(p.Spec.Volumes, in.Volumes)

	// 7. The status annotation.
	if p.Annotations == nil {
		p.Annotations = map[string]string{}
	}
	p.Annotations[contract.AnnotationInjected] = in.status()
	return nil
}

// ReservedVolumes are the names of every volume the webhook may add: a pod's own volume
// of such a name is replaced, or removed when the namespace's injection has none. A new
// volume in build gets its name here too.
var ReservedVolumes = []string{VolumeScratch, VolumeTmp, VolumeBackups, VolumeBackupsSource, VolumeMasking, VolumeDatabaseCA}

func reservedVolume(name string) bool { return slices.Contains(ReservedVolumes, name) }

func mergeVolumes(have, ours []corev1.Volume) []corev1.Volume {
	out := make([]corev1.Volume, 0, len(have)+len(ours))
	placed := map[string]bool{}
	for _, v := range have {
		if !reservedVolume(v.Name) {
			out = append(out, v)
			continue
		}
		i := slices.IndexFunc(ours, func(o corev1.Volume) bool { return o.Name == v.Name })
		if i >= 0 && !placed[v.Name] {
			out = append(out, ours[i])
			placed[v.Name] = true
		}
	}
	for _, o := range ours {
		if !placed[o.Name] {
			out = append(out, o)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// proxyEnv are the variables another webhook may add to every init container, ours
// included (an egress proxy injector): they survive a second pass. Nothing else a pod
// or a webhook puts into the restore container does.
var proxyEnv = []string{"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}

func foreignEnvAllowed(name string) bool {
	return slices.Contains(proxyEnv, name) && !slices.Contains(contract.Names, name)
}

// ServiceAccountTokenPath is where the ServiceAccount admission plugin mounts the API
// token into every container, init containers included, when it runs after the webhook.
const ServiceAccountTokenPath = "/var/run/secrets/kubernetes.io/serviceaccount"

func foreignMountAllowed(m corev1.VolumeMount) bool {
	return m.MountPath == ServiceAccountTokenPath && m.ReadOnly && m.SubPath == "" && m.SubPathExpr == "" && !reservedVolume(m.Name)
}

// ownedEnvSource says, for each variable the webhook owns in the dbaccess container,
// what decides its value: the denial of a pod that sets it otherwise names it.
func ownedEnvSource(name string, s Settings) string {
	switch name {
	case contract.EnvDatabaseEndpoint:
		return "annotation " + contract.AnnotationDatabaseEndpoint
	case contract.EnvDatabasePort:
		return "annotation " + contract.AnnotationDatabasePort
	case contract.EnvDatabaseName:
		return "annotation " + contract.AnnotationDatabaseName
	case contract.EnvDatabaseCodepage:
		return "annotation " + contract.AnnotationDatabaseCodepage
	case contract.EnvBackupStorageURL:
		return fmt.Sprintf("the smartbackup operators' storage for product %q (label %s)", s.Product, contract.LabelProduct)
	case contract.EnvNamespace:
		return "the pod's namespace (metadata.namespace)"
	}
	if a, ok := ownedEnvAnnotations[name]; ok {
		return "annotation " + a
	}
	return "its smartbackup settings"
}

// ownedEnvAnnotations maps further owned variables to the namespace annotation that
// sets them (additions to DatabaseEnv register here for their denial message).
var ownedEnvAnnotations = map[string]string{}

func envConflict(container, name string, s Settings) *Denial {
	return &Denial{ReasonEnvConflict, fmt.Sprintf(
		"container %q sets %s, which namespace %q decides (%s): remove it from the pod, or ask a cluster administrator to change that setting",
		container, name, s.Namespace, ownedEnvSource(name, s))}
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

// DefaultContainerAnnotation is the pod annotation kubectl reads for its default
// container; the webhook reads it first to find the dbaccess container.
const DefaultContainerAnnotation = "kubectl.kubernetes.io/default-container"

// KnownSidecars are container names that are never the dbaccess container: mesh
// proxies, database proxies and agents other webhooks add, some of them first (Linkerd
// puts linkerd-proxy first since 2.11).
var KnownSidecars = []string{
	"istio-proxy", "linkerd-proxy", "cloud-sql-proxy", "cloudsql-proxy", "vault-agent",
	"consul-dataplane", "envoy-sidecar", "kuma-sidecar", "pgbouncer", "datadog-agent",
}

// TargetContainer is the index of the container that receives the database env: the
// one named by the pod's kubectl.kubernetes.io/default-container annotation, else the
// one named dbaccess, else the one SMARTBACKUP_DBACCESS_CONTAINER names, else the
// first that is not a known sidecar. -1 when the pod has no container. Which
// container gets the env is the pod author's choice to make; what it gets is not.
func TargetContainer(p *corev1.Pod, cfg *config.Config) (int, *Denial) {
	byName := func(n string) int {
		return slices.IndexFunc(p.Spec.Containers, func(c corev1.Container) bool { return c.Name == n })
	}
	if n, ok := p.Annotations[DefaultContainerAnnotation]; ok {
		if i := byName(n); i >= 0 {
			return i, nil
		}
		return -1, &Denial{ReasonInvalidTargetContainer, fmt.Sprintf(
			"pod annotation %s names container %q, which the pod does not have; it names the container that receives the database settings",
			DefaultContainerAnnotation, n)}
	}
	if i := byName(contract.DBAccessName); i >= 0 {
		return i, nil
	}
	if cfg.DBAccessContainer != "" {
		if i := byName(cfg.DBAccessContainer); i >= 0 {
			return i, nil
		}
	}
	if len(p.Spec.Containers) == 0 {
		return -1, nil
	}
	if i := slices.IndexFunc(p.Spec.Containers, func(c corev1.Container) bool { return !slices.Contains(KnownSidecars, c.Name) }); i >= 0 {
		return i, nil
	}
	return -1, &Denial{ReasonInvalidTargetContainer, fmt.Sprintf(
		"every container of the pod is a known sidecar; name the dbaccess container with pod annotation %s", DefaultContainerAnnotation)}
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
	env = append(env, TLSEnv(s)...)
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
		// The namespace's own directory and its source's, each a volume of that
		// directory alone, read-only: the restore never writes backups.
		// The own directory first: a pod copied from a namespace restoring from
		// itself (production) keeps that volume's place and gains the source's after it,
		// as a fresh pod has them.
		for _, ns := range uniq(s.Namespace, s.RestoreSource) {
			v := BackupVolume(ns != s.Namespace, true)
			mounts = append(mounts, corev1.VolumeMount{Name: v.Name, MountPath: path.Join(s.StoragePath, ns), ReadOnly: true})
			volumes = append(volumes, v)
		}
	}
	if s.MaskingConfigMap != "" {
		// Not optional: without its masking file the restore must not run.
		mounts = append(mounts, corev1.VolumeMount{Name: VolumeMasking, MountPath: contract.MaskingDir, ReadOnly: true})
		volumes = append(volumes, corev1.Volume{Name: VolumeMasking, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: s.MaskingConfigMap},
			Items:                []corev1.KeyToPath{{Key: contract.MaskingKey, Path: contract.MaskingKey}},
			// The apiserver's default, set here so the stored pod equals the injection.
			DefaultMode: new(corev1.ConfigMapVolumeSourceDefaultMode),
		}}})
	}

	if v, m, ok := DatabaseCAVolume(s); ok {
		mounts = append(mounts, m)
		volumes = append(volumes, v)
	}

	return injection{
		Version: Version,
		Init: corev1.Container{
			Name:                     contract.InitContainerName,
			Image:                    cfg.InitRestoreImage,
			ImagePullPolicy:          cfg.ImagePullPolicy,
			Env:                      env,
			Resources:                restoreResources(s, cfg),
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

// TLSEnv is DATABASE_SSLMODE and DATABASE_SSLROOTCERT of s, for the init container and
// the backup CronJob (where DatabaseCAVolume is mounted); nothing when the namespace
// sets neither.
func TLSEnv(s Settings) []corev1.EnvVar {
	var env []corev1.EnvVar
	if s.SSLMode != "" {
		env = append(env, value(contract.EnvDatabaseSSLMode, s.SSLMode))
	}
	if s.CAConfigMap != "" || s.CASecret != "" {
		env = append(env, value(contract.EnvDatabaseSSLRootCert, path.Join(contract.DatabaseCADir, contract.DatabaseCAKey)))
	}
	return env
}

// DatabaseCAVolume is the read-only volume of the namespace's database CA (its
// ConfigMap or Secret, key ca.crt only) and its mount, when the namespace names one.
// Not optional: a connection that must verify the server does not start without it.
func DatabaseCAVolume(s Settings) (corev1.Volume, corev1.VolumeMount, bool) {
	items := []corev1.KeyToPath{{Key: contract.DatabaseCAKey, Path: contract.DatabaseCAKey}}
	v := corev1.Volume{Name: VolumeDatabaseCA}
	switch {
	case s.CAConfigMap != "":
		v.ConfigMap = &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: s.CAConfigMap},
			// The apiserver's default, set here so the stored pod equals the injection.
			Items: items, DefaultMode: new(corev1.ConfigMapVolumeSourceDefaultMode)}
	case s.CASecret != "":
		v.Secret = &corev1.SecretVolumeSource{SecretName: s.CASecret, Items: items, DefaultMode: new(corev1.SecretVolumeSourceDefaultMode)}
	default:
		return corev1.Volume{}, corev1.VolumeMount{}, false
	}
	return v, corev1.VolumeMount{Name: VolumeDatabaseCA, MountPath: contract.DatabaseCADir, ReadOnly: true}, true
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

// restoreResources are the init container's: the namespace's annotations (request and
// limit alike), else the configuration's.
func restoreResources(s Settings, cfg *config.Config) corev1.ResourceRequirements {
	r := Resources(cfg.RestoreCPURequest, cfg.RestoreMemoryRequest, cfg.RestoreCPULimit, cfg.RestoreMemoryLimit)
	for name, v := range map[corev1.ResourceName]string{corev1.ResourceCPU: s.RestoreCPU, corev1.ResourceMemory: s.RestoreMemory} {
		if v != "" {
			q := resource.MustParse(v) // canonical, from parseRestore
			r.Requests[name], r.Limits[name] = q, q
		}
	}
	return r
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

// BackupVolume is a namespace's claim of its own directory of the backup volume, or of
// its restore source's.
func BackupVolume(source, readOnly bool) corev1.Volume {
	name, claim := VolumeBackups, contract.ClaimOwn
	if source {
		name, claim = VolumeBackupsSource, contract.ClaimSource
	}
	return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
		PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim, ReadOnly: readOnly},
	}}
}

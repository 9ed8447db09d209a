package cronjobs

import (
	"crypto/sha256"
	"encoding/hex"
	"path"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// ComponentVolume labels the PersistentVolumes, claims and provisioning Jobs.
const ComponentVolume = "volume"

// LabelVolumeNamespace names, on a PersistentVolume or a provisioning Job, the
// namespace whose directory it is about.
const LabelVolumeNamespace = "smartbackup.io/volume-namespace"

// nominalSize is the capacity of the static PersistentVolumes: NFS and hostPath do not
// enforce it, and binding needs one.
var nominalSize = resource.MustParse("1Gi")

// Claim is one of a namespace's backup volumes: a PersistentVolume rooted at one
// directory of the backup volume, pre-bound to a claim in that namespace. A tenant
// cannot create PersistentVolumes (cluster-scoped) nor bind one pre-bound to another
// namespace's claim, so every claim a tenant can see reaches only its own directory and,
// read-only, its restore source's.
type Claim struct {
	PV  *corev1.PersistentVolume
	PVC *corev1.PersistentVolumeClaim
}

// PVName is the PersistentVolume of namespace ns's own directory, or of its restore
// source's. Namespace names are DNS labels (no dots), so the two prefixes never collide.
func PVName(ns string, source bool) string {
	if source {
		return "smartbackup-src-" + ns
	}
	return "smartbackup-own-" + ns
}

// Claims are the backup volumes of the namespace s describes, when its storage is
// file://: its own directory, read-write (its backup CronJob writes there), and, when
// it restores from another namespace, that namespace's directory, read-only.
func Claims(s inject.Settings, cfg *config.Config) []Claim {
	if s.StoragePath == "" {
		return nil
	}
	out := []Claim{claim(s.Namespace, s.Namespace, false, cfg.Volume())}
	if s.RestoreSource != "" && s.RestoreSource != s.Namespace {
		out = append(out, claim(s.Namespace, s.RestoreSource, true, cfg.Volume()))
	}
	return out
}

func claim(ns, dir string, source bool, v config.Volume) Claim {
	labels := map[string]string{
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelAppName:   "smartbackup",
		LabelComponent:          ComponentVolume,
		LabelVolumeNamespace:    ns,
	}
	name, mode := contract.ClaimOwn, corev1.ReadWriteMany
	if source {
		name, mode = contract.ClaimSource, corev1.ReadOnlyMany
	}
	var src corev1.PersistentVolumeSource
	switch v.Kind {
	case config.VolumeNFS:
		src.NFS = &corev1.NFSVolumeSource{Server: v.Server, Path: path.Join(v.Root, dir), ReadOnly: source}
	default:
		// hostPath has no read-only flag: a restore source is reached through the
		// read-only view of the root. Directory, not DirectoryOrCreate: a directory no
		// provisioning made fails the mount instead of appearing empty.
		root := v.Root
		if source {
			root = v.ReadOnlyRoot
		}
		src.HostPath = &corev1.HostPathVolumeSource{Path: path.Join(root, dir), Type: new(corev1.HostPathDirectory)}
	}
	fs := corev1.PersistentVolumeFilesystem
	pv := &corev1.PersistentVolume{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolume"},
		ObjectMeta: metav1.ObjectMeta{Name: PVName(ns, source), Labels: labels},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: nominalSize},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{mode},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain, // the backups outlive the namespace
			StorageClassName:              "",
			VolumeMode:                    &fs,
			ClaimRef:                      &corev1.ObjectReference{APIVersion: "v1", Kind: "PersistentVolumeClaim", Namespace: ns, Name: name},
			PersistentVolumeSource:        src,
		},
	}
	pvc := &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: nominalSize}},
			VolumeName:       pv.Name,
			StorageClassName: new(""), // no provisioner: only the pre-bound volume
			VolumeMode:       &fs,
		},
	}
	return Claim{PV: pv, PVC: pvc}
}

// ProvisionJobName is the Job that provisions namespace ns's directory. Job names
// become label values (63 characters), so the namespace is hashed.
func ProvisionJobName(ns string) string {
	h := sha256.Sum256([]byte(ns))
	return "smartbackup-provision-" + hex.EncodeToString(h[:5])
}

// ProvisionJob makes namespace ns's directory of the backup volume and its marker
// (`cronbackup provision`), in the operator's namespace where the whole volume's claim
// is: tenants never mount it.
func ProvisionJob(ns, storagePath string, cfg *config.Config) *batchv1.Job {
	labels := map[string]string{
		contract.LabelManagedBy: contract.ManagedBy,
		contract.LabelAppName:   "smartbackup",
		LabelComponent:          ComponentVolume,
		LabelVolumeNamespace:    ns,
	}
	return &batchv1.Job{
		TypeMeta:   metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{Name: ProvisionJobName(ns), Namespace: cfg.SyncNamespace, Labels: labels},
		Spec: batchv1.JobSpec{
			BackoffLimit:            new(int32(3)),
			ActiveDeadlineSeconds:   new(int64(600)),
			TTLSecondsAfterFinished: new(int32(3600)),
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: jobPodSpec(corev1.Container{
					Name:         "provision",
					Args:         []string{"provision", "file://" + storagePath, ns},
					Resources:    inject.Resources(cfg.BackupCPURequest, cfg.BackupMemoryRequest, cfg.BackupCPURequest, cfg.BackupMemoryRequest),
					VolumeMounts: []corev1.VolumeMount{{Name: inject.VolumeBackups, MountPath: storagePath}},
				}, []corev1.Volume{WholeVolume(cfg)}, false, cfg),
			},
		},
	}
}

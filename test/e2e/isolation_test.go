package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/storage"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
)

// TestSmartERPVolumeIsolation: SmartERP keeps backups on a cluster volume. On the real
// node, with the volume a node directory (hostPath, its read-only view a read-only bind
// mount), each tenant namespace holds claims of its own directory (read-write) and its
// production source's (read-only) only: a tenant pod that mounts every claim it can see
// reaches nothing else, and cannot bind another namespace's volume. A directory whose
// marker is missing or names another namespace reads as unreachable (exit 5), never as
// "no backup" (exit 8).
func TestSmartERPVolumeIsolation(t *testing.T) {
	s := &story{t: t, start: time.Now()}
	w := &world{t: t, s: s, product: contract.ProductSmartERP}
	w.cluster = testenv.StartCluster(t)
	w.cs = w.cluster.Client
	w.pg = testenv.StartPostgres(t, 15)
	w.pgHost, w.pgPort = w.cluster.Forward(t, fmt.Sprintf("127.0.0.1:%d", w.pg.Port))

	// The volume: a node directory the backup user owns, and a read-only view of it.
	base := t.TempDir()
	root, ro := filepath.Join(base, "smartbackup"), filepath.Join(base, "smartbackup-ro")
	for _, d := range []string{root, ro} {
		if err := os.Mkdir(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(root, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"--bind", root, ro}, {"-o", "remount,bind,ro", ro}} {
		if out, err := exec.Command("mount", args...).CombinedOutput(); err != nil {
			t.Fatalf("mount %v: %v\n%s", args, err, out)
		}
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", ro).Run() })
	s.step("SmartERP's volume is %s on the node, its read-only view %s (a read-only bind mount)", root, ro)

	// The operator's claim of the whole volume, in the chart's namespace only.
	ctx := t.Context()
	if _, err := w.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: chartNS}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	size := resource.MustParse("1Gi")
	fs := corev1.PersistentVolumeFilesystem
	whole := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "smartbackup-whole-volume"}, Spec: corev1.PersistentVolumeSpec{
		Capacity: corev1.ResourceList{corev1.ResourceStorage: size}, AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain, VolumeMode: &fs,
		ClaimRef:               &corev1.ObjectReference{Namespace: chartNS, Name: "smartbackup-backups"},
		PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: root}},
	}}
	if _, err := w.cs.CoreV1().PersistentVolumes().Create(ctx, whole, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wholeClaim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Name: "smartbackup-backups"}, Spec: corev1.PersistentVolumeClaimSpec{
		AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}, VolumeName: whole.Name, StorageClassName: new(""), VolumeMode: &fs,
		Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
	}}
	if _, err := w.cs.CoreV1().PersistentVolumeClaims(chartNS).Create(ctx, wholeClaim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	values := filepath.Join(base, "values.yaml")
	if err := os.WriteFile(values, fmt.Appendf(nil, "storage:\n  smarterp: file:///backup\n  volumeSource: hostpath://%s?read_only_root=%s\n", root, ro), 0o644); err != nil {
		t.Fatal(err)
	}
	w.chartValues = values
	s.step("The chart is installed with storage.smarterp=file:///backup and storage.volumeSource=hostpath://%s?read_only_root=%s", root, ro)
	w.installChart()

	const prd, hml, other = "acme-prd", "acme-hml", "globex-prd"
	s.step("Namespaces %s and %s (customer acme, %s restores from %s) and %s (customer globex)", prd, hml, hml, prd, other)
	w.namespace(prd, "production", "acme", "", "acme_erp", "acme_erp", "x")
	w.namespace(hml, "homologation", "acme", prd, "acme_erp_hml", "acme_erp_hml", "senha-hml")
	w.namespace(other, "production", "globex", "", "globex_erp", "globex_erp", "y")
	for _, ns := range []string{prd, hml, other} {
		w.eventually("the provisioned volume of "+ns, func() bool {
			pv, err := w.cs.CoreV1().PersistentVolumes().Get(ctx, cronjobs.PVName(ns, false), metav1.GetOptions{})
			return err == nil && pv.Annotations[contract.AnnotationProvisioned] == "true" && pv.Status.Phase == corev1.VolumeBound
		})
		b, err := os.ReadFile(filepath.Join(root, ns, storage.NamespaceMarker))
		if err != nil || strings.TrimSpace(string(b)) != ns {
			t.Fatalf("marker of %s: %q, %v", ns, b, err)
		}
	}
	pvs, err := w.cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{LabelSelector: contract.LabelManagedBy + "=" + contract.ManagedBy})
	if err != nil {
		t.Fatal(err)
	}
	for _, pv := range pvs.Items {
		s.evidence("PersistentVolume %s: %s, bound to %s/%s, %s", pv.Name, pv.Spec.HostPath.Path, pv.Spec.ClaimRef.Namespace, pv.Spec.ClaimRef.Name, pv.Spec.AccessModes[0])
	}
	s.evidence("each directory was made by a provisioning Job in %s and holds its marker %s", chartNS, storage.NamespaceMarker)

	// Each namespace's "backups".
	for _, ns := range []string{prd, hml, other} {
		if err := os.WriteFile(filepath.Join(root, ns, "backup-of-"+ns), []byte(ns), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	s.step("A tenant pod in %s mounts every claim it can see and tries to read and write each", hml)
	claims, err := w.cs.CoreV1().PersistentVolumeClaims(hml).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, c := range claims.Items {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	if !slices.Equal(names, []string{contract.ClaimOwn, contract.ClaimSource}) {
		t.Fatalf("claims in %s: %v", hml, names)
	}
	pod := tenantPod("snoop", names)
	if _, err := w.cs.CoreV1().Pods(hml).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	out := w.waitPodLog(hml, pod.Name)
	s.evidence("%s", strings.ReplaceAll(strings.TrimSpace(out), "\n", " | "))
	for _, want := range []string{
		"== " + contract.ClaimOwn + ": .smartbackup-namespace backup-of-" + hml + " ; write ok",
		"== " + contract.ClaimSource + ": .smartbackup-namespace backup-of-" + prd + " ; write refused",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("tenant pod output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, other) {
		t.Errorf("the tenant reached %s's directory:\n%s", other, out)
	}

	s.step("The tenant claims another customer's volume, and the whole volume, by name")
	for _, pv := range []string{cronjobs.PVName(other, false), whole.Name} {
		grab := wholeClaim.DeepCopy()
		grab.Name, grab.Namespace, grab.Spec.VolumeName = "grab-"+strings.ReplaceAll(pv, ".", "-"), hml, pv
		if _, err := w.cs.CoreV1().PersistentVolumeClaims(hml).Create(ctx, grab, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(5 * time.Second) // the binder's resync is far shorter
		got, err := w.cs.CoreV1().PersistentVolumeClaims(hml).Get(ctx, grab.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status.Phase == corev1.ClaimBound {
			t.Fatalf("claim %s bound %s", grab.Name, pv)
		}
		s.evidence("claim %s of %s: %s (the volume is pre-bound to another namespace's claim)", grab.Name, pv, got.Status.Phase)
	}

	s.step("A directory without its marker reads as unreachable, never as no backup")
	marker := filepath.Join(root, prd, storage.NamespaceMarker)
	if err := os.WriteFile(marker, []byte(other+"\n"), 0o644); err != nil { // as if mis-bound
		t.Fatal(err)
	}
	w.applyExampleDeployment(hml)
	failing := w.waitInitRestarted(hml)
	if code := initStatus(failing).LastTerminationState.Terminated.ExitCode; code != 5 {
		t.Fatalf("with %s's directory marked for %s, the init container exited %d, want 5 (unreachable)", prd, other, code)
	}
	s.evidence("%s marked for %s: the init container exited 5 (storage unreachable): %s", prd, other,
		grepLog(w.cluster.Logs(ctx, hml, failing.Name, contract.InitContainerName, true), "not provisioned"))
	if err := os.WriteFile(marker, []byte(prd+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w.eventually("exit 8 once the marker is right", func() bool {
		p, err := w.cs.CoreV1().Pods(hml).Get(ctx, failing.Name, metav1.GetOptions{})
		if err != nil {
			return false
		}
		st := initStatus(p)
		return st != nil && st.LastTerminationState.Terminated != nil && st.LastTerminationState.Terminated.ExitCode == 8
	})
	s.evidence("marker fixed, no backup yet: the init container exited 8 (no backup)")
}

// tenantPod mounts each claim at /v/NAME (Pod Security restricted) and prints, per
// claim, what it lists and whether a write succeeds.
func tenantPod(name string, claims []string) *corev1.Pod {
	p := restrictedPod(name, testenv.ImageInitRestore, []string{"/bin/bash", "-c",
		`for d in /v/*; do echo "== $(basename $d): $(ls -A $d | tr '\n' ' '); $( (echo x > $d/tenant-write) 2>/dev/null && echo write ok || echo write refused)"; done`})
	for _, c := range claims {
		p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: c, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: c}}})
		p.Spec.Containers[0].VolumeMounts = append(p.Spec.Containers[0].VolumeMounts, corev1.VolumeMount{Name: c, MountPath: "/v/" + c})
	}
	return p
}

func restrictedPod(name, image string, command []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: new(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: new(true), RunAsUser: new(int64(65532)), RunAsGroup: new(int64(65532)),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Containers: []corev1.Container{{
				Name: "main", Image: image, ImagePullPolicy: corev1.PullNever, Command: command,
				SecurityContext: &corev1.SecurityContext{
					ReadOnlyRootFilesystem:   new(true),
					AllowPrivilegeEscalation: new(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
				},
			}},
		},
	}
}

// waitPodLog waits for a pod to finish and returns its main container's log.
func (w *world) waitPodLog(ns, name string) string {
	w.eventually("pod "+name+" finished", func() bool {
		p, err := w.cs.CoreV1().Pods(ns).Get(w.t.Context(), name, metav1.GetOptions{})
		return err == nil && (p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed)
	})
	return w.cluster.Logs(w.t.Context(), ns, name, "main", false)
}

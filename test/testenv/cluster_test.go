package testenv_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/smartbackup/smartbackup/test/testenv"
)

// TestCluster brings the real node up, runs the product's images in a namespace that
// enforces Pod Security "restricted" (non-root from the image's numeric USER, read-only
// root filesystem, no capabilities), reaches a server on the host over the pod
// network and the apiserver through the kubernetes Service, and then checks that
// stopping the cluster left no process, mount or bridge behind.
func TestCluster(t *testing.T) {
	var dir string
	var pids []int
	t.Run("up", func(t *testing.T) {
		c := testenv.StartCluster(t)
		dir = c.Dir
		pids = clusterPIDs(t, dir)
		ctx := t.Context()

		node, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v := node.Status.NodeInfo.KubeletVersion; v != "v1.37.2" {
			t.Errorf("kubelet reports %q, want v1.37.2", v)
		}
		if !strings.HasPrefix(node.Status.NodeInfo.ContainerRuntimeVersion, "containerd://") {
			t.Errorf("runtime %q, want containerd", node.Status.NodeInfo.ContainerRuntimeVersion)
		}
		sv, err := c.Client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if sv.GitVersion != "v1.37.2" {
			t.Errorf("apiserver reports %q, want v1.37.2", sv.GitVersion)
		}

		ns := "images-" + strings.ToLower(testenv.RandomName(""))
		if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns,
			Labels: map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		// A server on the host, reached by the pod at the gateway.
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		go func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				_, _ = fmt.Fprintln(conn, "hello-from-the-host")
				_ = conn.Close()
			}
		}()
		gw, port := c.Forward(t, l.Addr().String())

		cases := map[string]struct {
			image   string
			command []string
			group   int64 // pod-level runAsUser 65532 and this runAsGroup, if set
			code    int32
			log     string
		}{
			// Each binary starts on a read-only root and stops at its missing settings.
			"webhook":     {image: testenv.ImageWebhook, code: 2, log: "INITRESTORE_IMAGE"},
			"initrestore": {image: testenv.ImageInitRestore, code: 2, log: "DATABASE_"},
			"cronbackup":  {image: testenv.ImageCronBackup, code: 2, log: "DATABASE_"},
			"psql": {image: testenv.ImageInitRestore, command: []string{"/usr/lib/postgresql/15/bin/psql", "--version"},
				log: "psql (PostgreSQL) 15."},
			"pg-restore": {image: testenv.ImageInitRestore, command: []string{"/usr/lib/postgresql/15/bin/pg_restore", "--version"},
				log: "pg_restore (PostgreSQL) 15."},
			"pg-dump": {image: testenv.ImageCronBackup, command: []string{"/usr/lib/postgresql/15/bin/pg_dump", "--version"},
				log: "pg_dump (PostgreSQL) 15."},
			// The image's USER gives the uid; kubelet 1.37 with containerd 1.6 starts the
			// process in group 0 unless the pod names its group, which is why the injected
			// containers always set runAsGroup (RUN_AS_GROUP).
			"user":       {image: testenv.ImageCronBackup, command: []string{"/usr/bin/id"}, log: "uid=65532 gid=0"},
			"user-group": {image: testenv.ImageCronBackup, command: []string{"/usr/bin/id"}, group: 65532, log: "uid=65532 gid=65532"},
			"host-over-pod-network": {image: testenv.ImageInitRestore, command: []string{"/bin/bash", "-c",
				fmt.Sprintf("exec 3<>/dev/tcp/%s/%d && cat <&3", gw, port)}, log: "hello-from-the-host"},
			"kubernetes-service": {image: testenv.ImageInitRestore, command: []string{"/bin/bash", "-c",
				`exec 3<>/dev/tcp/$KUBERNETES_SERVICE_HOST/$KUBERNETES_SERVICE_PORT && echo reached $KUBERNETES_SERVICE_HOST`},
				log: "reached " + testenv.KubernetesServiceIP},
			"dbaccess": {image: testenv.ImageDBAccess, code: 1, log: "dbaccess cannot boot"},
		}
		for name, tc := range cases {
			pod := restrictedPod(name, tc.image, tc.command)
			if tc.group != 0 {
				// containerd refuses a group without a user ("user group ... is specified
				// without user"); the injected containers set both.
				pod.Spec.SecurityContext.RunAsUser, pod.Spec.SecurityContext.RunAsGroup = new(int64(65532)), &tc.group
			}
			if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
				t.Fatalf("pod %s: %v", name, err)
			}
		}
		for name, tc := range cases {
			var term *corev1.ContainerStateTerminated
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
				p, err := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				if err != nil || len(p.Status.ContainerStatuses) == 0 {
					return false, nil
				}
				term = p.Status.ContainerStatuses[0].State.Terminated
				return term != nil, nil
			})
			if err != nil {
				p, _ := c.Client.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
				t.Fatalf("pod %s did not finish: %v; status %+v", name, err, p.Status)
			}
			log := c.Logs(ctx, ns, name, "main", false)
			if term.ExitCode != tc.code || !strings.Contains(log, tc.log) {
				t.Errorf("%s: exit code %d, log %q; want %d and %q", name, term.ExitCode, log, tc.code, tc.log)
			}
		}
	})
	if dir == "" {
		return // skipped
	}
	for _, pid := range pids {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err == nil {
			cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
			t.Errorf("process %d (%s) still runs after the cluster stopped", pid, strings.ReplaceAll(string(cmd), "\x00", " "))
		}
	}
	if left := clusterPIDs(t, dir); len(left) > 0 {
		t.Errorf("processes naming %s still run: %v", dir, left)
	}
	if _, err := net.InterfaceByName("smartbackup0"); err == nil {
		t.Error("the bridge smartbackup0 still exists")
	}
	mounts, _ := os.ReadFile("/proc/self/mounts")
	if strings.Contains(string(mounts), dir+"/") {
		t.Errorf("mounts under %s remain", dir)
	}
}

// clusterPIDs lists the processes whose command line names the cluster's folder (the
// components, the shims) or are its container runtime's children.
func clusterPIDs(t *testing.T, dir string) []int {
	t.Helper()
	entries, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var pids []int
	for _, e := range entries {
		b, err := os.ReadFile(e)
		if err != nil || !strings.Contains(string(b), dir) {
			continue
		}
		var pid int
		if _, err := fmt.Sscanf(e, "/proc/%d/cmdline", &pid); err == nil && pid != os.Getpid() {
			pids = append(pids, pid)
		}
	}
	return pids
}

// restrictedPod is a pod that Pod Security "restricted" admits, with its user taken
// from the image (runAsNonRoot makes the kubelet check that it is numeric and not 0).
func restrictedPod(name, image string, command []string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: new(false),
			EnableServiceLinks:           new(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot:   new(true),
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

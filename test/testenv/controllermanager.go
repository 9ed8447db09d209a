package testenv

import (
	"fmt"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// ControllerManagers are the controllers the end-to-end tests need: Deployments make
// ReplicaSets, ReplicaSets make pods, CronJobs make Jobs, Jobs make pods, and the
// garbage collector follows owner references.
const ControllerManagers = "deployment-controller,replicaset-controller,job-controller,cronjob-controller,garbage-collector-controller"

var (
	kcmOnce sync.Once
	kcmErr  error
)

// StartControllerManager runs a real kube-controller-manager (built from the same
// module set as the apiserver) against the test control plane, as its admin user,
// without leader election or a serving port. Once per process.
func StartControllerManager(tb testing.TB, k *Kube) {
	tb.Helper()
	bin := Tool(tb, "kube-controller-manager")
	kcmOnce.Do(func() {
		kcmErr = fmt.Errorf("an earlier start failed")
		dir := scratchDir(tb, "kcm")
		p := startProcess(tb, filepath.Join(dir, "kube-controller-manager.log"), nil, nil, bin,
			"--kubeconfig="+k.KubeConfigPath,
			"--controllers="+ControllerManagers,
			"--leader-elect=false",
			"--secure-port=0",
			"--concurrent-cron-job-syncs=5",
			"--v=1")
		onStop(func() { p.stop(syscall.SIGTERM) })
		// Ready when it has started syncing: poll the apiserver until the process is
		// alive for a few seconds with no exit.
		cs, err := kubernetes.NewForConfig(k.Config)
		if err != nil {
			kcmErr = err
			return
		}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if p.exited() {
				kcmErr = fmt.Errorf("kube-controller-manager exited; log: %s", tail(p.log))
				return
			}
			if _, err := cs.CoreV1().Namespaces().List(tb.Context(), metav1.ListOptions{Limit: 1}); err == nil {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		time.Sleep(time.Second)
		if p.exited() {
			kcmErr = fmt.Errorf("kube-controller-manager exited; log: %s", tail(p.log))
			return
		}
		kcmErr = nil
	})
	if kcmErr != nil {
		tb.Fatalf("kube-controller-manager: %v", kcmErr)
	}
}

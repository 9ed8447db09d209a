package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// Kube is a real kube-apiserver with its etcd, started through controller-runtime's
// envtest from the binaries hack/tools/build.sh caches (no download, never an existing
// cluster). There is no controller-manager and no kubelet: objects are stored and
// admitted, nothing runs them.
type Kube struct {
	Env *envtest.Environment
	// Config is the admin user's (system:masters) client configuration.
	Config *rest.Config
	// KubeConfigPath is a kubeconfig file for the admin user, for processes the tests
	// start.
	KubeConfigPath string
	// LogPath holds the apiserver's and etcd's output.
	LogPath string
}

var (
	kubeOnce sync.Once
	kube     *Kube
	kubeErr  error
)

// StartKube returns the process-wide test control plane, starting it on first use.
// Tests share it: each uses its own namespaces and cluster-scoped names.
func StartKube(tb testing.TB) *Kube {
	tb.Helper()
	apiserver, etcd := Tool(tb, "kube-apiserver"), Tool(tb, "etcd")
	kubeOnce.Do(func() {
		kubeErr = fmt.Errorf("an earlier start failed")
		kube, kubeErr = startKube(tb, apiserver, etcd)
	})
	if kubeErr != nil {
		tb.Fatalf("starting kube-apiserver and etcd: %v", kubeErr)
	}
	return kube
}

func startKube(tb testing.TB, apiserverPath, etcdPath string) (*Kube, error) {
	dir := scratchDir(tb, "kube")
	logPath := filepath.Join(dir, "control-plane.log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("creating %s: %w", logPath, err)
	}
	onStop(func() { _ = logf.Close() })

	env := &envtest.Environment{
		UseExistingCluster:       new(false),
		BinaryAssetsDirectory:    filepath.Join(ToolsDir(), "bin"),
		ControlPlaneStartTimeout: 2 * time.Minute,
		ControlPlaneStopTimeout:  30 * time.Second,
	}
	// Explicit paths win over KUBEBUILDER_ASSETS, so a developer's shell cannot swap
	// in other binaries.
	api := env.ControlPlane.GetAPIServer()
	api.Path = apiserverPath
	api.Out, api.Err = logf, logf
	env.ControlPlane.Etcd = &envtest.Etcd{Path: etcdPath, Out: logf, Err: logf}

	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("%w; log: %s", err, tail(logPath))
	}
	onStop(func() { _ = env.Stop() })

	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, env.KubeConfig, 0o600); err != nil {
		return nil, fmt.Errorf("writing %s: %w", kc, err)
	}
	return &Kube{Env: env, Config: cfg, KubeConfigPath: kc, LogPath: logPath}, nil
}

package app_test

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/test/webhookproc"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

// TestRolloutLosesNoAdmission restarts the webhook the way a Deployment rollout does
// (maxSurge 1, maxUnavailable 0: a new process becomes ready, then the old one gets
// SIGTERM) twice, behind a stand-in for the Service that routes new connections to
// ready processes only, while dbaccess pods are created through the apiserver without
// pause: every create succeeds and every pod is injected.
func TestRolloutLosesNoAdmission(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)
	delay := "3s"
	env := map[string]string{config.Prefix + "_SHUTDOWN_DELAY": delay}
	for k, v := range configtest.Env() {
		env[config.Prefix+"_"+k] = v
	}

	svc := webhookproc.NewService(t)
	name := webhookproc.Register(t, kube, svc.URL())
	old := webhookproc.Launch(t, kube, env, name, testenv.FreePort(t))
	svc.Add(old)

	ns := testenv.RandomName("rollout-")
	createNamespace(t, c, ns, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "acme", ""))
	waitInjecting(t, c, ns, contract.ProductSistemico)

	const want = 200
	var created, failed, plain atomic.Int64
	var rolledOut atomic.Bool
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	start := time.Now()
	for range 4 {
		wg.Go(func() {
			for !rolledOut.Load() || created.Load()+failed.Load() < want {
				p := dbaccessPod(ns, contract.ProductSistemico)
				if err := c.Create(t.Context(), p); err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				created.Add(1)
				if len(p.Spec.InitContainers) == 0 || p.Spec.InitContainers[0].Name != contract.InitContainerName {
					plain.Add(1)
				}
			}
		})
	}
	for i := range 2 {
		// Let some creates go through the current process first.
		for n := created.Load(); created.Load() < n+20 && failed.Load() == 0; {
			time.Sleep(20 * time.Millisecond)
		}
		next := webhookproc.Launch(t, kube, env, name, testenv.FreePort(t))
		svc.Add(next)
		time.Sleep(2 * webhookproc.ProbeInterval) // the Service sees it ready
		stopped := time.Now()
		if err := old.Stop(); err != nil {
			t.Errorf("restart %d: the old webhook exited with %v after SIGTERM:\n%s", i+1, err, old.Log())
		}
		t.Logf("restart %d: old process stopped in %s (drain %s), %d pods created so far", i+1, time.Since(stopped).Round(time.Millisecond), delay, created.Load())
		old = next
	}
	rolledOut.Store(true)
	wg.Wait()
	t.Logf("METRIC rollout restarts=2 creates=%d failed=%d not_injected=%d elapsed=%s", created.Load(), failed.Load(), plain.Load(), time.Since(start).Round(time.Millisecond))
	if failed.Load() > 0 {
		t.Errorf("%d of %d pod creates failed during the rollout; first: %v", failed.Load(), created.Load()+failed.Load(), firstErr)
	}
	if plain.Load() > 0 {
		t.Errorf("%d pods were created without the restore init container", plain.Load())
	}
}

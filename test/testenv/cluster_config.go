package testenv

import (
	"fmt"
	"os"
	"path/filepath"
)

// The settings below are ordinary single-node configuration except for the few this
// kind of machine needs (no systemd, cgroup v1, no CAP_SYS_RESOURCE, no registry):
// failCgroupV1 false and cgroupDriver cgroupfs (kubelet), restrict_oom_score_adj and a
// locally built sandbox image (containerd).

// containerdConfig is a containerd 1.6 configuration (CRI v1) with its own root,
// state and socket, so it never meets a containerd the machine may run.
func containerdConfig(c *Cluster) string {
	return fmt.Sprintf(`version = 2
root = %[1]q
state = %[2]q
[grpc]
  address = %[3]q
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %[4]q
  # Without CAP_SYS_RESOURCE no process may lower its oom_score_adj: the sandbox's -998
  # and a Guaranteed pod's -997 make runc fail ("can't get final child's PID from pipe").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %[5]q
    conf_dir = %[6]q
`, filepath.Join(c.Dir, "containerd", "root"), filepath.Join(c.Dir, "containerd", "state"), c.containerdSocket(),
		ImagePause, cniBinDir, filepath.Join(c.Dir, "cni", "net.d"))
}

const cniBinDir = "/usr/lib/cni"

// cniConfig puts pods on the bridge clusterBridge; the host is its gateway, so pods
// reach servers on the host at Cluster.Gateway.
func cniConfig(c *Cluster) string {
	return fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": "smartbackup-test",
  "plugins": [
    {"type": "bridge", "bridge": %q, "isGateway": true, "ipMasq": true, "hairpinMode": true,
     "ipam": {"type": "host-local", "dataDir": %q, "ranges": [[{"subnet": %q, "gateway": %q}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "loopback"}
  ]
}
`, clusterBridge, filepath.Join(c.Dir, "cni", "ipam"), PodCIDR, c.Gateway)
}

func kubeletConfig(c *Cluster) string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 is deprecated and refused by default since 1.35; this machine has only v1.
failCgroupV1: false
failSwapOn: false
# PID 1 is not systemd.
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://%[1]s
podCIDR: %[2]s
address: %[3]s
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: %[4]q}
authorization: {mode: Webhook}
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
clusterDomain: cluster.local
resolvConf: /etc/resolv.conf
# Nothing can be pulled again: never collect the imported images, never evict for disk.
evictionHard: {memory.available: "100Mi", nodefs.available: "1%%", imagefs.available: "1%%"}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# A failed container is restarted after at most %[5]s (the default backoff grows to 5 min).
crashLoopBackOff: {maxContainerRestartPeriod: %[5]s}
featureGates: {KubeletCrashLoopBackOffMax: true}
`, c.containerdSocket(), PodCIDR, c.HostIP, filepath.Join(c.pki.dir, "ca.crt"), CrashLoopBackOffMax)
}

func kubeProxyConfig(c *Cluster) string {
	return fmt.Sprintf(`apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: %q}
hostnameOverride: %s
clusterCIDR: %s
mode: iptables
# Leave the machine's conntrack table size alone.
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`, c.KubeConfigPath, c.NodeName, PodCIDR)
}

func writeFile(path, body string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

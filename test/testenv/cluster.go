package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// CrashLoopBackOffMax caps the test kubelet's restart backoff of failed containers
// (the kubelet's default grows from 10 s to 5 min).
const CrashLoopBackOffMax = 5 * time.Second

const (
	clusterBridge = "smartbackup0"
	// PodCIDR is the pod network; this machine is Cluster.Gateway on it.
	PodCIDR     = "10.244.0.0/24"
	podGateway  = "10.244.0.1"
	serviceCIDR = "10.0.0.0/24"
	// KubernetesServiceIP is the ClusterIP of the "kubernetes" Service.
	KubernetesServiceIP = "10.0.0.1"
)

// Cluster is a real single-node Kubernetes cluster on this machine: etcd,
// kube-apiserver, kube-controller-manager and kube-scheduler (all v1.37.2, from
// hack/tools/build.sh), Debian's containerd and runc, a kubelet, kube-proxy (iptables
// mode) and a CNI bridge. Pods run the images hack/images.sh builds; they reach servers
// on the host at Gateway. It needs root, cgroups and the Debian packages
// hack/test-deps.sh installs; StartCluster skips the test where these are missing.
type Cluster struct {
	// Config is the admin user's (system:masters) client configuration; Client uses it.
	Config *rest.Config
	Client kubernetes.Interface
	// KubeConfigPath is the admin user's kubeconfig, for kubectl, helm and the tools.
	KubeConfigPath string
	NodeName       string
	// HostIP is the address the apiserver advertises and the kubelet serves on.
	HostIP string
	// Gateway is this machine's address on the pod network.
	Gateway string
	// Dir holds the cluster's state; logs/ keeps every component's output after the
	// test (removed at the next start).
	Dir string

	pki   *clusterPKI
	procs []*clusterProc
}

type clusterProc struct {
	name string
	*process
}

var clusterMu sync.Mutex

// StartCluster starts a cluster for this test and stops it, and every pod it ran, when
// the test ends, failed or not. Only one runs on a machine at a time (iptables, the
// bridge): a second waits for the first. Its state lives in <repo>/.cache/cluster;
// whatever a killed test process left there is stopped first, by its recorded PIDs.
func StartCluster(tb testing.TB) *Cluster {
	tb.Helper()
	if reason := clusterUnsupported(); reason != "" {
		tb.Skipf("no real cluster on this machine: %s", reason)
	}
	bins := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy", "kubectl"} {
		bins[b] = Tool(tb, b)
	}
	images := BuildImages(tb)

	clusterMu.Lock()
	tb.Cleanup(clusterMu.Unlock)
	dir := filepath.Join(RepoRoot(), ".cache", "cluster")
	unlock, err := lockMachine(dir + ".lock")
	if err != nil {
		tb.Fatalf("taking the machine's cluster lock: %v", err)
	}
	tb.Cleanup(unlock)
	cleanLeftovers(tb, dir, false)
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o755); err != nil {
		tb.Fatal(err)
	}

	c := &Cluster{NodeName: "smartbackup-node", Gateway: podGateway, Dir: dir}
	start := time.Now()
	tb.Cleanup(func() { c.stop(tb) })
	if err := c.start(tb, bins, images); err != nil {
		tb.Fatalf("starting the test cluster: %v (logs in %s)", err, filepath.Join(dir, "logs"))
	}
	tb.Logf("test cluster up in %s: node %s Ready (kubelet v1.37.2, containerd %s, runc, CNI bridge %s), images %s",
		time.Since(start).Round(100*time.Millisecond), c.NodeName, containerdVersion(), clusterBridge,
		strings.Join([]string{ImageWebhook, ImageInitRestore, ImageCronBackup, ImageDBAccess}, ", "))
	return c
}

// clusterUnsupported says why this machine cannot run the cluster, or "".
func clusterUnsupported() string {
	if os.Geteuid() != 0 {
		return "it needs root (containerd, the kubelet, iptables)"
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if b, err := os.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err != nil || !strings.Contains(string(b), "memory") {
			return "no cgroup memory controller under /sys/fs/cgroup"
		}
	}
	for _, cmd := range []string{"containerd", "containerd-shim-runc-v2", "ctr", "runc", "iptables", "conntrack", "buildah", "mmdebstrap"} {
		if _, err := exec.LookPath(cmd); err != nil {
			return cmd + " is not installed (hack/test-deps.sh installs it)"
		}
	}
	if _, err := os.Stat(filepath.Join(cniBinDir, "bridge")); err != nil {
		return "the CNI plugins are not installed (hack/test-deps.sh installs containernetworking-plugins)"
	}
	if hostIP() == "" {
		return "no non-loopback IPv4 address for the apiserver to advertise"
	}
	return ""
}

// hostIP is the machine's primary IPv4 address: the source address of its default
// route (nothing is sent), else its first global one.
func hostIP() string {
	if conn, err := net.Dial("udp4", "203.0.113.1:9"); err == nil {
		defer conn.Close()
		if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsLoopback() {
			return a.IP.String()
		}
	}
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.To4() != nil && n.IP.IsGlobalUnicast() && !strings.HasPrefix(n.IP.String(), "10.244.") {
			return n.IP.String()
		}
	}
	return ""
}

func containerdVersion() string {
	out, _ := exec.Command("containerd", "--version").Output()
	f := strings.Fields(string(out))
	if len(f) >= 3 {
		return f[2]
	}
	return "?"
}

func (c *Cluster) containerdSocket() string {
	return filepath.Join(c.Dir, "containerd", "containerd.sock")
}

func (c *Cluster) logPath(name string) string { return filepath.Join(c.Dir, "logs", name+".log") }

func (c *Cluster) run(tb testing.TB, name, bin string, args ...string) *clusterProc {
	p := &clusterProc{name: name, process: startProcess(tb, c.logPath(name), nil, nil, bin, args...)}
	c.procs = append(c.procs, p)
	_ = os.WriteFile(filepath.Join(c.Dir, "pids", name+".pid"), []byte(strconv.Itoa(p.cmd.Process.Pid)+" "+filepath.Base(bin)), 0o644)
	return p
}

func (c *Cluster) start(tb testing.TB, bins map[string]string, images string) error {
	c.HostIP = hostIP()
	if err := os.MkdirAll(filepath.Join(c.Dir, "pids"), 0o755); err != nil {
		return err
	}
	// The bridge exists before any pod, so host servers can listen on the gateway.
	if err := createBridge(); err != nil {
		return err
	}

	// 1. Control plane.
	pki, err := newClusterPKI(filepath.Join(c.Dir, "pki"), []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP(c.HostIP), net.ParseIP(KubernetesServiceIP)}, c.NodeName)
	if err != nil {
		return err
	}
	c.pki = pki
	etcdPort, peerPort, apiPort := FreePort(tb), FreePort(tb), FreePort(tb)
	server := fmt.Sprintf("https://127.0.0.1:%d", apiPort)
	if c.KubeConfigPath, err = pki.kubeconfig("admin", server); err != nil {
		return err
	}
	kubeletKC, err := pki.kubeconfig("kubelet", server)
	if err != nil {
		return err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", etcdPort)
	c.run(tb, "etcd", bins["etcd"], "--data-dir", filepath.Join(c.Dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", peerPort),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", peerPort),
		"--unsafe-no-fsync", "--log-level", "warn")
	api := c.run(tb, "kube-apiserver", bins["kube-apiserver"],
		"--etcd-servers="+etcdURL,
		// An apiserver may not advertise a loopback address; pods reach it through the
		// kubernetes Service (kube-proxy) at this machine's address.
		"--bind-address=0.0.0.0", "--advertise-address="+c.HostIP, "--secure-port="+strconv.Itoa(apiPort),
		"--tls-cert-file="+pki.path("apiserver.crt"), "--tls-private-key-file="+pki.path("apiserver.key"),
		"--client-ca-file="+pki.path("ca.crt"),
		"--service-account-key-file="+pki.path("sa.pub"), "--service-account-signing-key-file="+pki.path("sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range="+serviceCIDR, "--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		// Webhooks are called at their endpoints' pod IPs (there is no cluster DNS).
		"--enable-aggregator-routing=true",
		"--kubelet-client-certificate="+pki.path("apiserver-kubelet-client.crt"),
		"--kubelet-client-key="+pki.path("apiserver-kubelet-client.key"),
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--profiling=false")
	if c.Config, err = c.restConfig(server); err != nil {
		return err
	}
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return err
	}
	if err := c.waitFor(tb, "kube-apiserver ready", 90*time.Second, api, func(ctx context.Context) bool {
		b, err := c.Client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil && string(b) == "ok"
	}); err != nil {
		return err
	}
	c.run(tb, "kube-controller-manager", bins["kube-controller-manager"],
		"--kubeconfig="+c.KubeConfigPath, "--leader-elect=false", "--secure-port=0",
		"--use-service-account-credentials=false",
		"--service-account-private-key-file="+pki.path("sa.key"), "--root-ca-file="+pki.path("ca.crt"),
		"--controllers=*,-nodeipam", "--concurrent-cron-job-syncs=5", "--v=1")
	c.run(tb, "kube-scheduler", bins["kube-scheduler"],
		"--kubeconfig="+c.KubeConfigPath, "--authentication-kubeconfig="+c.KubeConfigPath,
		"--authorization-kubeconfig="+c.KubeConfigPath, "--leader-elect=false", "--secure-port=0")

	// 2. Container runtime, with the images imported.
	cfg := filepath.Join(c.Dir, "containerd", "config.toml")
	if err := writeFile(cfg, containerdConfig(c)); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(c.Dir, "cni", "net.d", "10-bridge.conflist"), cniConfig(c)); err != nil {
		return err
	}
	ctrd := c.run(tb, "containerd", "containerd", "--config", cfg)
	if err := c.waitFor(tb, "containerd", 30*time.Second, ctrd, func(context.Context) bool {
		return exec.Command("ctr", "--address", c.containerdSocket(), "version").Run() == nil
	}); err != nil {
		return err
	}
	tars, _ := filepath.Glob(filepath.Join(images, "*.tar"))
	for _, tar := range tars {
		if out, err := c.ctr("images", "import", tar); err != nil {
			return fmt.Errorf("importing %s: %w: %s", tar, err, out)
		}
	}

	// 3. The node.
	kcfg := filepath.Join(c.Dir, "kubelet", "config.yaml")
	if err := writeFile(kcfg, kubeletConfig(c)); err != nil {
		return err
	}
	kubelet := c.run(tb, "kubelet", bins["kubelet"], "--config="+kcfg, "--kubeconfig="+kubeletKC,
		"--hostname-override="+c.NodeName, "--node-ip="+c.HostIP,
		"--root-dir="+filepath.Join(c.Dir, "kubelet", "root"), "--cert-dir="+filepath.Join(c.Dir, "kubelet", "pki"), "--v=1")
	pcfg := filepath.Join(c.Dir, "kube-proxy", "config.yaml")
	if err := writeFile(pcfg, kubeProxyConfig(c)); err != nil {
		return err
	}
	proxy := c.run(tb, "kube-proxy", bins["kube-proxy"], "--config="+pcfg)
	if err := c.waitFor(tb, "node "+c.NodeName+" Ready", 90*time.Second, kubelet, func(ctx context.Context) bool {
		n, err := c.Client.CoreV1().Nodes().Get(ctx, c.NodeName, metav1.GetOptions{})
		if err != nil {
			return false
		}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				return cond.Status == corev1.ConditionTrue
			}
		}
		return false
	}); err != nil {
		return err
	}
	// Pods can be created once the controller-manager made the default ServiceAccount,
	// and reach the apiserver once kube-proxy wrote the kubernetes Service's rules.
	if err := c.waitFor(tb, "the default ServiceAccount", 60*time.Second, nil, func(ctx context.Context) bool {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		return err == nil
	}); err != nil {
		return err
	}
	return c.waitFor(tb, "kube-proxy's rules for the kubernetes Service", 60*time.Second, proxy, func(context.Context) bool {
		out, err := exec.Command("iptables", "-w", "-t", "nat", "-S", "KUBE-SERVICES").Output()
		return err == nil && strings.Contains(string(out), KubernetesServiceIP+"/32")
	})
}

func (c *Cluster) restConfig(server string) (*rest.Config, error) {
	read := func(n string) ([]byte, error) { return os.ReadFile(c.pki.path(n)) }
	ca, err := read("ca.crt")
	if err != nil {
		return nil, err
	}
	crt, err := read("admin.crt")
	if err != nil {
		return nil, err
	}
	key, err := read("admin.key")
	if err != nil {
		return nil, err
	}
	return &rest.Config{Host: server, QPS: 100, Burst: 200,
		TLSClientConfig: rest.TLSClientConfig{CAData: ca, CertData: crt, KeyData: key}}, nil
}

// waitFor polls cond until it holds, the process (if any) exits or the timeout passes.
func (c *Cluster) waitFor(tb testing.TB, what string, timeout time.Duration, p *clusterProc, cond func(context.Context) bool) error {
	ctx, cancel := context.WithTimeout(tb.Context(), timeout)
	defer cancel()
	for {
		if cond(ctx) {
			return nil
		}
		if p != nil && p.exited() {
			return fmt.Errorf("%s exited while waiting for %s; log: %s", p.name, what, tail(p.log))
		}
		select {
		case <-ctx.Done():
			msg := fmt.Sprintf("waiting for %s: %v", what, ctx.Err())
			if p != nil {
				msg += "; log of " + p.name + ": " + tail(p.log)
			}
			return errors.New(msg)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// ctr runs containerd's client against this cluster's runtime, in the CRI's namespace.
func (c *Cluster) ctr(args ...string) ([]byte, error) {
	return exec.Command("ctr", append([]string{"--address", c.containerdSocket(), "--namespace", "k8s.io"}, args...)...).CombinedOutput()
}

// Kubectl runs kubectl as the admin user and returns its output; a failure fails the
// test with the output.
func (c *Cluster) Kubectl(tb testing.TB, args ...string) string {
	tb.Helper()
	cmd := exec.Command(Tool(tb, "kubectl"), append([]string{"--kubeconfig", c.KubeConfigPath}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		tb.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// Logs returns a container's output through the apiserver and the kubelet, of its
// current run or, with previous, of the run before ("" when there is none).
func (c *Cluster) Logs(ctx context.Context, namespace, pod, container string, previous bool) string {
	b, err := c.Client.CoreV1().Pods(namespace).GetLogs(pod, &corev1.PodLogOptions{Container: container, Previous: previous}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	return string(b)
}

// Forward makes a TCP server on this machine (target, host:port on loopback)
// reachable from pods: it listens on the gateway and returns the address pods dial.
func (c *Cluster) Forward(tb testing.TB, target string) (host string, port int) {
	tb.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(c.Gateway, "0"))
	if err != nil {
		tb.Fatalf("listening on the pod network's gateway: %v", err)
	}
	tb.Cleanup(func() { _ = l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				go func() { _, _ = io.Copy(out, in); _ = out.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(in, out)
			}()
		}
	}()
	return c.Gateway, l.Addr().(*net.TCPAddr).Port
}

// stop tears everything down: no controller recreates pods, the kubelet stops every
// pod (so the CNI releases their network), then the node, the runtime and whatever
// containers are left, kube-proxy's and the kubelet's iptables rules, the bridge, the
// control plane. Logs stay in Dir/logs.
func (c *Cluster) stop(tb testing.TB) {
	byName := map[string]*clusterProc{}
	for _, p := range c.procs {
		byName[p.name] = p
	}
	stop := func(name string) {
		if p := byName[name]; p != nil {
			p.stop(syscall.SIGTERM)
			_ = os.Remove(filepath.Join(c.Dir, "pids", name+".pid"))
		}
	}
	stop("kube-controller-manager")
	stop("kube-scheduler")
	if c.Client != nil && byName["kubelet"] != nil && !byName["kubelet"].exited() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		c.deleteAllPods(ctx)
		cancel()
	}
	stop("kubelet")
	if p := byName["containerd"]; p != nil && !p.exited() {
		if out, err := c.ctr("tasks", "ls", "-q"); err == nil {
			for _, id := range strings.Fields(string(out)) {
				_, _ = c.ctr("tasks", "kill", "-s", "SIGKILL", id)
				_, _ = c.ctr("tasks", "delete", "-f", id)
			}
		}
	}
	stop("kube-proxy")
	stop("containerd")
	if p := byName["kube-proxy"]; p != nil {
		_ = exec.Command(p.cmd.Path, "--cleanup").Run()
	}
	stop("kube-apiserver")
	stop("etcd")
	cleanLeftovers(tb, c.Dir, true)
	if tb.Failed() {
		tb.Logf("the test cluster's logs are in %s", filepath.Join(c.Dir, "logs"))
	}
}

// deleteAllPods deletes every pod and waits until the kubelet has stopped them.
func (c *Cluster) deleteAllPods(ctx context.Context) {
	one := int64(1)
	for ctx.Err() == nil {
		l, err := c.Client.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
		if err != nil || len(l.Items) == 0 {
			return
		}
		for _, p := range l.Items {
			if p.DeletionTimestamp == nil {
				_ = c.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &one})
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func createBridge() error {
	if _, err := net.InterfaceByName(clusterBridge); err == nil {
		return nil
	}
	for _, args := range [][]string{
		{"link", "add", clusterBridge, "type", "bridge"},
		{"addr", "add", podGateway + "/24", "dev", clusterBridge},
		{"link", "set", clusterBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// cleanLeftovers stops what a cluster in dir left running (a test process killed before
// its cleanup, or a cleanup that could not finish): its processes by their recorded
// PIDs, the containers by the shims' and runc's PID files, then its mounts, the
// bridge, the iptables chains of kube-proxy, the kubelet and the CNI bridge plugin,
// and its state (with keepLogs, not its logs).
func cleanLeftovers(tb testing.TB, dir string, keepLogs bool) {
	pidFiles, _ := filepath.Glob(filepath.Join(dir, "pids", "*.pid"))
	for _, f := range pidFiles {
		b, _ := os.ReadFile(f)
		fields := strings.Fields(string(b))
		if len(fields) == 2 {
			killIfNamed(fields[0], fields[1])
		}
		_ = os.Remove(f)
	}
	// Container processes first (init.pid), then their shims (shim.pid).
	taskDirs, _ := filepath.Glob(filepath.Join(dir, "containerd", "state", "io.containerd.runtime.v2.task", "*", "*"))
	for _, name := range []string{"init.pid", "shim.pid"} {
		for _, d := range taskDirs {
			if b, err := os.ReadFile(filepath.Join(d, name)); err == nil {
				if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 1 {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		}
	}
	if len(taskDirs) > 0 {
		time.Sleep(500 * time.Millisecond)
	}
	unmountUnder(dir)
	if _, err := net.InterfaceByName(clusterBridge); err == nil {
		_ = exec.Command("ip", "link", "del", clusterBridge).Run()
	}
	cleanIptables()
	subs := []string{"containerd", "kubelet", "etcd", "cni", "pki", "kube-proxy", "pids"}
	if !keepLogs {
		subs = append(subs, "logs")
	}
	for _, sub := range subs {
		if err := os.RemoveAll(filepath.Join(dir, sub)); err != nil {
			// A mount that would not go: say where; the next start retries.
			tb.Logf("removing %s: %v", filepath.Join(dir, sub), err)
		}
	}
}

func killIfNamed(pidText, name string) {
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 1 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !strings.Contains(string(cmdline), name) {
		return // gone, or the PID was reused
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	for i := 0; i < 50; i++ {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// unmountUnder lazily unmounts every mount below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			mounts = append(mounts, f[1])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(mounts)))
	for _, m := range mounts {
		_ = syscall.Unmount(m, syscall.MNT_DETACH)
	}
}

// cleanIptables removes the chains the kubelet and the CNI bridge plugin (ipMasq)
// create; kube-proxy --cleanup removes its own.
func cleanIptables() {
	ipt := func(args ...string) ([]byte, error) {
		return exec.Command("iptables", append([]string{"-w"}, args...)...).Output()
	}
	if out, err := ipt("-t", "nat", "-S", "POSTROUTING"); err == nil {
		for _, rule := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(rule, "-A POSTROUTING") || !strings.Contains(rule, `name: \"smartbackup-test\"`) {
				continue
			}
			f := strings.Fields(rule)
			var chain string
			for i := range f {
				if f[i] == "-j" && i+1 < len(f) {
					chain = f[i+1]
				}
			}
			del := append([]string{"-t", "nat", "-D"}, unquoteRule(f[1:])...)
			_, _ = ipt(del...)
			if strings.HasPrefix(chain, "CNI-") {
				_, _ = ipt("-t", "nat", "-F", chain)
				_, _ = ipt("-t", "nat", "-X", chain)
			}
		}
	}
	for _, c := range []string{"INPUT", "OUTPUT"} {
		_, _ = ipt("-D", c, "-j", "KUBE-FIREWALL")
	}
	_, _ = ipt("-F", "KUBE-FIREWALL")
	_, _ = ipt("-X", "KUBE-FIREWALL")
	for _, t := range []string{"filter", "nat", "mangle"} {
		_, _ = ipt("-t", t, "-X", "KUBE-KUBELET-CANARY")
		_, _ = ipt("-t", t, "-X", "KUBE-IPTABLES-HINT")
	}
}

// unquoteRule turns `iptables -S` output fields back into arguments: the comment is
// printed quoted ("name: \"x\" id: \"y\"") and spans several fields.
func unquoteRule(f []string) []string {
	var out []string
	for i := 0; i < len(f); i++ {
		if !strings.HasPrefix(f[i], `"`) {
			out = append(out, f[i])
			continue
		}
		j := i
		for j < len(f) && !(strings.HasSuffix(f[j], `"`) && !strings.HasSuffix(f[j], `\"`)) {
			j++
		}
		s := strings.Join(f[i:min(j+1, len(f))], " ")
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		out = append(out, s)
		i = j
	}
	return out
}

// lockMachine takes an exclusive lock on path, waiting up to 30 minutes for another
// test process's cluster to finish.
func lockMachine(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(30 * time.Minute)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { _ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN); _ = f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			_ = f.Close()
			return nil, fmt.Errorf("locking %s: %w", path, err)
		}
		time.Sleep(time.Second)
	}
}

// StartGCS starts a GCS emulator for this test that pods of the cluster reach: it
// listens on the pod network's gateway, and the upload URLs it hands out name that
// address too. The test process reaches it there as well.
func (c *Cluster) StartGCS(tb testing.TB) *GCS {
	tb.Helper()
	return startGCS(tb, c.Gateway, tb.Cleanup)
}

// Package testenv starts the real servers the integration tests run against: PostgreSQL
// 12 and 15, the fake-gcs-server GCS emulator and a MinIO S3 server, each a separate
// process on loopback with its data in a temporary directory.
//
// A test package calls Main from its TestMain; the first test that asks for a server
// starts it, later ones share it, and Main stops every server when the package ends.
// Binaries come from hack/tools/build.sh and hack/test-deps.sh (make tools); a missing
// binary fails the test with the command that installs it.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	mu       sync.Mutex
	stoppers []func()
)

// Main runs the package's tests and then stops the servers they started.
func Main(m *testing.M) {
	code := m.Run()
	StopAll()
	os.Exit(code)
}

// StopAll stops every server started by this process, newest first.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	for i := len(stoppers) - 1; i >= 0; i-- {
		stoppers[i]()
	}
	stoppers = nil
}

func onStop(f func()) {
	mu.Lock()
	defer mu.Unlock()
	stoppers = append(stoppers, f)
}

// RepoRoot is the directory holding the product's go.mod.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ToolsDir is where hack/tools/build.sh and hack/test-deps.sh put the test servers.
func ToolsDir() string {
	if d := os.Getenv("SMARTBACKUP_TOOLS"); d != "" {
		return d
	}
	return filepath.Join(RepoRoot(), ".cache", "tools")
}

// Tool returns the path of a cached test binary, or fails the test saying how to get it.
func Tool(tb testing.TB, name string) string {
	tb.Helper()
	p := filepath.Join(ToolsDir(), "bin", name)
	if _, err := os.Stat(p); err != nil {
		tb.Fatalf("test server %q is missing at %s: run `make tools` (or hack/test-deps.sh)", name, p)
	}
	return p
}

// FreePort asks the kernel for a free loopback port.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatalf("finding a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RandomName returns prefix plus 8 random hex characters, for buckets and databases.
func RandomName(prefix string) string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// process is a started server.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
	log  string
}

// startProcess starts a server with its output in logPath; it dies with the test
// process (Pdeathsig) and is stopped with SIGTERM, then SIGKILL.
func startProcess(tb testing.TB, logPath string, cred *syscall.Credential, env []string, name string, args ...string) *process {
	tb.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		tb.Fatalf("creating log %s: %v", logPath, err)
	}
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true, Credential: cred}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("starting %s: %v", name, err)
	}
	p := &process{cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	return p
}

func (p *process) stop(sig syscall.Signal) {
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(20 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process has ended.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitHTTP polls url until it answers below 500, the process dies, or 60 s pass.
func waitHTTP(tb testing.TB, p *process, url string) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode < 500 {
				return
			}
		}
		if p.exited() {
			tb.Fatalf("server exited before answering %s; log: %s", url, tail(p.log))
		}
		select {
		case <-ctx.Done():
			tb.Fatalf("server did not answer %s within 60s; log: %s", url, tail(p.log))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// scratchDir is a per-process directory for server data, removed by StopAll.
func scratchDir(tb testing.TB, name string) string {
	tb.Helper()
	base := os.Getenv("SMARTBACKUP_TEST_SCRATCH")
	d, err := os.MkdirTemp(base, "smartbackup-"+name+"-")
	if err != nil {
		tb.Fatalf("creating scratch dir: %v", err)
	}
	_ = os.Chmod(d, 0o755)
	onStop(func() { _ = os.RemoveAll(d) })
	return d
}

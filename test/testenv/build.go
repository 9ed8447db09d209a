package testenv

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

var (
	buildMu  sync.Mutex
	builtDir string
	built    = map[string]string{}
)

// Build compiles one of the product's commands ("initrestore", "cronbackup",
// "webhook") once per test process and returns the binary's path, for tests that need
// a real process: to kill it, to time its start, to run several at once.
func Build(tb testing.TB, command string) string {
	tb.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if p, ok := built[command]; ok {
		return p
	}
	if builtDir == "" {
		d, err := os.MkdirTemp("", "smartbackup-bin-")
		if err != nil {
			tb.Fatal(err)
		}
		builtDir = d
		onStop(func() { _ = os.RemoveAll(d) })
	}
	out := filepath.Join(builtDir, filepath.Base(command))
	cmd := exec.Command("go", "build", "-o", out, "./"+command)
	cmd.Dir = RepoRoot()
	if b, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("building %s: %v\n%s", command, err, b)
	}
	built[command] = out
	return out
}

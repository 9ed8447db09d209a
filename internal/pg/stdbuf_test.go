package pg_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/smartbackup/smartbackup/internal/pg"
)

// The wrapped command runs with stdio's output buffer set (env shows stdbuf's
// settings) and keeps its arguments and environment.
func TestBufferStdoutSetsTheBuffer(t *testing.T) {
	if _, err := exec.LookPath("stdbuf"); err != nil {
		t.Skip("no stdbuf here")
	}
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(envPath, "-u", "UNSET_ME")
	cmd.Env = []string{"KEEP=1", "UNSET_ME=x"}
	if err := pg.BufferStdout(context.Background(), cmd); err != nil {
		t.Fatal(err)
	}
	if filepath.Base(cmd.Path) != "stdbuf" || cmd.Args[2] != envPath || !slices.Equal(cmd.Args[3:], []string{"-u", "UNSET_ME"}) {
		t.Fatalf("command is %q %q", cmd.Path, cmd.Args)
	}
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	env := strings.Fields(string(out))
	if !slices.Contains(env, "_STDBUF_O="+strconv.Itoa(pg.StdoutBuffer)) || !slices.Contains(env, "KEEP=1") || slices.Contains(env, "UNSET_ME=x") {
		t.Fatalf("the client's environment: %q", env)
	}
}

// Without a working stdbuf the command is left as it was, and the error says why.
func TestBufferStdoutFallsBack(t *testing.T) {
	envPath, err := exec.LookPath("env")
	if err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "stdbuf"), []byte("#!/bin/sh\necho 'stdbuf: failed to find libstdbuf.so' >&2\nexit 125\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"missing": t.TempDir(), "broken": broken} {
		t.Run(name, func(t *testing.T) {
			t.Setenv("PATH", path)
			cmd := exec.Command(envPath, "A=1")
			err := pg.BufferStdout(context.Background(), cmd)
			if err == nil {
				t.Fatal("no error")
			}
			if cmd.Path != envPath || !slices.Equal(cmd.Args, []string{envPath, "A=1"}) {
				t.Fatalf("command changed to %q %q", cmd.Path, cmd.Args)
			}
			if name == "broken" && !strings.Contains(err.Error(), "libstdbuf") {
				t.Errorf("error does not say why: %v", err)
			}
		})
	}
}

// A pipe grows to StdoutBuffer; what is not a pipe is refused and left alone.
func TestWidenPipe(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := pg.WidenPipe(r); err != nil {
		t.Fatal(err)
	}
	size, err := unix.FcntlInt(w.Fd(), unix.F_GETPIPE_SZ, 0)
	if err != nil || size < pg.StdoutBuffer {
		t.Fatalf("pipe of %d bytes (%v), want %d", size, err, pg.StdoutBuffer)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "file"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := pg.WidenPipe(f); err == nil {
		t.Error("a file widened")
	}
	if err := pg.WidenPipe(strings.NewReader("")); err == nil {
		t.Error("a reader widened")
	}
}

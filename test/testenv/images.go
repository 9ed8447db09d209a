package testenv

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// The images a test cluster runs, built by hack/images.sh and imported into its
// container runtime (nothing is ever pulled).
const (
	ImageWebhook     = "localhost/smartbackup/webhook:dev"
	ImageInitRestore = "localhost/smartbackup/initrestore:dev"
	ImageCronBackup  = "localhost/smartbackup/cronbackup:dev"
	ImagePause       = "localhost/smartbackup/pause:dev"
	// ImageDBAccess is the dbaccess stand-in (test/e2e/dbaccess-standin) under the name
	// the unmodified example Deployment asks for.
	ImageDBAccess = "localhost/erp/dbaccess:2026.11"
)

var (
	imagesOnce sync.Once
	imagesDir  string
	imagesErr  error
)

// BuildImages runs hack/images.sh once per test process (it skips what is unchanged)
// and returns the folder holding the images' docker-archive tars.
func BuildImages(tb testing.TB) string {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("building the images needs root (buildah's image store, mmdebstrap's chroot)")
	}
	for _, cmd := range []string{"buildah", "mmdebstrap"} {
		if _, err := exec.LookPath(cmd); err != nil {
			tb.Skipf("building the images needs %s (hack/test-deps.sh installs it)", cmd)
		}
	}
	imagesOnce.Do(func() {
		dir := filepath.Join(RepoRoot(), ".cache", "images")
		cmd := exec.Command(filepath.Join(RepoRoot(), "hack", "images.sh"), dir)
		cmd.Dir = RepoRoot()
		start := time.Now()
		out, err := cmd.CombinedOutput()
		if err != nil {
			imagesErr = fmt.Errorf("hack/images.sh: %w\n%s", err, out)
			return
		}
		tb.Logf("%s(%s)", out, time.Since(start).Round(100*time.Millisecond))
		imagesDir = dir
	})
	if imagesErr != nil {
		tb.Fatal(imagesErr)
	}
	return imagesDir
}

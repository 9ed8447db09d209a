package testenv

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"testing"
)

// CRDModules are the upstream modules whose CustomResourceDefinitions the chart's
// objects need (cert-manager's Certificate and Issuer, the Prometheus Operator's
// ServiceMonitor and PrometheusRule), read from the Go module cache where
// hack/test-deps.sh downloads them: used as published, never copied into the project.
var CRDModules = map[string]string{
	"github.com/cert-manager/cert-manager@v1.21.2":               "deploy/crds",
	"github.com/prometheus-operator/prometheus-operator@v0.85.0": "example/prometheus-operator-crd",
}

// CRDDirs returns the CRD directories of CRDModules, downloading a module if needed.
func CRDDirs(tb testing.TB) []string {
	tb.Helper()
	var dirs []string
	for mod, sub := range CRDModules {
		out, err := exec.Command("go", "mod", "download", "-json", mod).Output()
		if err != nil {
			tb.Fatalf("go mod download %s: %v %s (run hack/test-deps.sh)", mod, err, out)
		}
		var info struct{ Dir string }
		if err := json.Unmarshal(out, &info); err != nil || info.Dir == "" {
			tb.Fatalf("go mod download %s: no directory in %s", mod, out)
		}
		dirs = append(dirs, filepath.Join(info.Dir, sub))
	}
	return dirs
}

package inject_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

var update = flag.Bool("update", false, "rewrite testdata/inject/*.golden.yaml from the current output")

const goldenDir = "testdata/inject"

// TestGolden runs the whole pipeline (Decide, CheckSource, Apply) on each input of
// testdata/inject (namespaces and one pod) and compares the decision and the resulting
// pod with NAME.golden.yaml. Each injected pod is then injected again, which must change
// nothing, and checked for secrets given as literal values. A golden file without an
// input fails the test, as in istio's injection tests.
func TestGolden(t *testing.T) {
	cfg := configtest.New(t, nil)
	inputs, err := filepath.Glob(filepath.Join(goldenDir, "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	inputs = slices.DeleteFunc(inputs, func(p string) bool { return strings.HasSuffix(p, ".golden.yaml") })
	if len(inputs) == 0 {
		t.Fatal("no inputs in " + goldenDir)
	}
	used := map[string]bool{}
	for _, in := range inputs {
		name := strings.TrimSuffix(filepath.Base(in), ".yaml")
		golden := filepath.Join(goldenDir, name+".golden.yaml")
		used[golden] = true
		t.Run(name, func(t *testing.T) {
			target, lookup, pod := readInput(t, in)
			original := pod.DeepCopy()
			d, err := inject.Run(t.Context(), pod, target, lookup, cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			compareGolden(t, golden, render(t, d, pod))

			if d.Action != inject.Inject {
				if diff := cmp.Diff(original, pod); diff != "" {
					t.Errorf("a %s decision changed the pod (-before +after):\n%s", d.Action, diff)
				}
				return
			}
			again := pod.DeepCopy()
			d2, err := inject.Run(t.Context(), again, target, lookup, cfg)
			if err != nil {
				t.Fatalf("second Run: %v", err)
			}
			if d2.Reason != inject.ReasonAlreadyInjected {
				t.Errorf("second pass reason = %q, want %q", d2.Reason, inject.ReasonAlreadyInjected)
			}
			if diff := cmp.Diff(pod, again); diff != "" {
				t.Errorf("injecting twice changed the pod (-once +twice):\n%s", diff)
			}
			checkSecretsByReference(t, pod)
			init := slices.IndexFunc(pod.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == contract.InitContainerName })
			if init < 0 {
				t.Fatal("no restore init container")
			}
			for _, e := range pod.Spec.InitContainers[init].Env {
				if !slices.Contains(contract.Names, e.Name) {
					t.Errorf("injected %s, which is not in internal/contract's list", e.Name)
				}
			}
		})
	}
	goldens, _ := filepath.Glob(filepath.Join(goldenDir, "*.golden.yaml"))
	for _, g := range goldens {
		if !used[g] {
			t.Errorf("%s has no input %s: delete it or add the input", g, strings.TrimSuffix(g, ".golden.yaml")+".yaml")
		}
	}
}

// checkSecretsByReference fails when any container sets a secret variable to a literal
// value, or references it other than as the same-named key of a Secret.
func checkSecretsByReference(t *testing.T, pod *corev1.Pod) {
	t.Helper()
	all := append(slices.Clone(pod.Spec.InitContainers), pod.Spec.Containers...)
	for _, c := range all {
		for _, e := range c.Env {
			if !slices.Contains(contract.Secrets, e.Name) {
				continue
			}
			if e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Key != e.Name {
				t.Errorf("container %q: %s is not a secretKeyRef with key %s: %+v", c.Name, e.Name, e.Name, e)
			}
		}
	}
}

// readInput splits a multi-document file into the pod, its namespace and the other
// namespaces (possible restore sources).
func readInput(t *testing.T, path string) (inject.Namespace, inject.Lookup, *corev1.Pod) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	namespaces := map[string]inject.Namespace{}
	var pod *corev1.Pod
	for _, doc := range bytes.Split(b, []byte("\n---\n")) {
		var meta metav1.TypeMeta
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		switch meta.Kind {
		case "Namespace":
			var ns corev1.Namespace
			if err := yaml.UnmarshalStrict(doc, &ns); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			namespaces[ns.Name] = inject.Namespace{Name: ns.Name, Labels: ns.Labels, Annotations: ns.Annotations}
		case "Pod":
			pod = &corev1.Pod{}
			if err := yaml.UnmarshalStrict(doc, pod); err != nil {
				t.Fatalf("%s: %v", path, err)
			}
		default:
			t.Fatalf("%s: unexpected kind %q", path, meta.Kind)
		}
	}
	if pod == nil {
		t.Fatalf("%s: no Pod", path)
	}
	target, ok := namespaces[pod.Namespace]
	if !ok {
		t.Fatalf("%s: no Namespace %q for the pod", path, pod.Namespace)
	}
	lookup := func(_ context.Context, name string) (*inject.Namespace, error) {
		if ns, ok := namespaces[name]; ok {
			return &ns, nil
		}
		return nil, nil
	}
	return target, lookup, pod
}

// render is the golden form: the decision as comments, then the pod unless denied.
func render(t *testing.T, d inject.Decision, pod *corev1.Pod) []byte {
	t.Helper()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# action: %s\n# reason: %s\n", d.Action, d.Reason)
	if d.Message != "" {
		fmt.Fprintf(&b, "# message: %s\n", d.Message)
	}
	if d.Action == inject.Deny {
		return b.Bytes()
	}
	y, err := yaml.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	b.WriteString("---\n")
	b.Write(y)
	return b.Bytes()
}

func compareGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("reading golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs (-golden +got); run go test ./webhook/inject -update if the change is intended:\n%s", path, diff)
	}
}

// TestStatusAnnotationIsSet is a reminder that the hash depends on what is injected:
// two namespaces with different settings get different status values.
func TestStatusDependsOnSettings(t *testing.T) {
	cfg := configtest.New(t, nil)
	a := inject.Settings{Namespace: "a", Product: contract.ProductSistemico, Environment: contract.EnvironmentProduction,
		RestoreSource: "a", StorageURL: cfg.StorageURLSistemico, Endpoint: "db", Port: 5432, Codepage: "WIN1252",
		SecretName: contract.DefaultDatabaseSecret, OnMissingBackup: contract.OnMissingFail}
	b := a
	b.Endpoint = "db2"
	sa, sb := inject.Status(a, cfg), inject.Status(b, cfg)
	if sa == sb {
		t.Errorf("Status is %q for two different endpoints", sa)
	}
	if !strings.HasPrefix(sa, inject.Version+"-") {
		t.Errorf("Status %q lacks the version prefix %q", sa, inject.Version+"-")
	}
}

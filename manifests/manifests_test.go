// Package manifests_test renders the Helm chart and builds the kustomize base with the
// real tools and applies every object they produce, and the examples, to a real
// kube-apiserver (server-side validation, with the upstream CRDs of cert-manager and
// the Prometheus Operator installed).
package manifests_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
)

func TestMain(m *testing.M) { testenv.Main(m) }

const chart = "chart/smartbackup"

func helm(t *testing.T, args ...string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "helm"), append([]string{"template", "smartbackup", chart, "--namespace", "smartbackup"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("helm template %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	return out
}

func kustomize(t *testing.T, dir string) []byte {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "kustomize"), "build", dir).Output()
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	return out
}

// decode splits a YAML stream into objects.
func decode(t *testing.T, b []byte) []*unstructured.Unstructured {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
	var out []*unstructured.Unstructured
	for {
		var obj map[string]any
		err := dec.Decode(&obj)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatalf("decoding YAML: %v", err)
		}
		if len(obj) > 0 {
			out = append(out, &unstructured.Unstructured{Object: obj})
		}
	}
}

// cluster is the test apiserver with the CRDs installed, and an applier.
type cluster struct {
	dyn    dynamic.Interface
	mapper meta.RESTMapper
	cs     kubernetes.Interface
}

func newCluster(t *testing.T) *cluster {
	t.Helper()
	k := testenv.StartKube(t)
	if _, err := envtest.InstallCRDs(k.Config, envtest.CRDInstallOptions{Paths: testenv.CRDDirs(t), ErrorIfPathMissing: true}); err != nil {
		t.Fatalf("installing CRDs: %v", err)
	}
	dc := discovery.NewDiscoveryClientForConfigOrDie(k.Config)
	return &cluster{
		dyn:    dynamic.NewForConfigOrDie(k.Config),
		mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc)),
		cs:     kubernetes.NewForConfigOrDie(k.Config),
	}
}

func (c *cluster) namespace(t *testing.T, name string) {
	_, err := c.cs.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// apply server-side applies every object (into ns when namespaced and unset).
func (c *cluster) apply(t *testing.T, objs []*unstructured.Unstructured, ns string) {
	t.Helper()
	for _, o := range objs {
		gvk := o.GroupVersionKind()
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s %s: no API for it: %v", gvk, o.GetName(), err)
		}
		var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
		if m.Scope.Name() == meta.RESTScopeNameNamespace {
			if o.GetNamespace() == "" {
				o.SetNamespace(ns)
			}
			ri = c.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
		}
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		force := true
		if _, err := ri.Patch(t.Context(), o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "manifests-test", Force: &force}); err != nil {
			t.Errorf("applying %s %s/%s: %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
		}
	}
}

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

// TestChartAndKustomizeApply: every object of every rendering is accepted by the
// apiserver.
func TestChartAndKustomizeApply(t *testing.T) {
	c := newCluster(t)
	renders := map[string][]byte{
		"chart, cert-manager TLS": helm(t),
		"chart, self-managed TLS": helm(t, "--set", "tls.mode=self"),
		"chart, Rubrik sync on":   helm(t, "--set", "sync.targetURL=file:///rubrik", "--set", "sync.targetClaim=rubrik-managed-volume", "--set", "storage.sistemico=gs://erp-backups"),
		"kustomize base":          kustomize(t, "kustomize/base"),
	}
	c.namespace(t, "smartbackup")
	for name, b := range renders {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, b)
			want := []string{"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration", "ServiceMonitor", "PrometheusRule"}
			for _, k := range want {
				if !strings.Contains(strings.Join(kinds(objs), " "), k+"/") {
					t.Errorf("%s has no %s: %v", name, k, kinds(objs))
				}
			}
			for _, o := range objs {
				// The Service smartbackup-webhook would set SMARTBACKUP_WEBHOOK_PORT=tcp://…
				// in the webhook's environment, where it is the port setting.
				if links, found, _ := unstructured.NestedBool(o.Object, "spec", "template", "spec", "enableServiceLinks"); o.GetKind() == "Deployment" && (!found || links) {
					t.Errorf("%s: the webhook Deployment must set enableServiceLinks: false", name)
				}
			}
			c.apply(t, objs, "smartbackup")
		})
	}
	t.Run("examples", func(t *testing.T) {
		ns := decode(t, mustRead(t, "examples/namespaces.yaml"))
		c.apply(t, ns, "")
		c.apply(t, decode(t, mustRead(t, "examples/dbaccess.yaml")), "cliente-hml")
	})
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestKustomizeBaseIsTheChart: the kustomize base is the chart's default rendering
// (hack/gen-manifests.sh), so the two ways to deploy cannot drift.
func TestKustomizeBaseIsTheChart(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("kustomize", "base", "smartbackup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Generated by hack/gen-manifests.sh from manifests/chart/smartbackup (default values). Do not edit.\n" + string(helm(t))
	if string(got) != want {
		t.Fatal("manifests/kustomize/base/smartbackup.yaml is stale: run hack/gen-manifests.sh")
	}
}

// TestWebhookConfigurationMatchesCode: the chart's MutatingWebhookConfiguration is the
// one webhook/admission defines (scoping, failure policy, timeouts).
func TestWebhookConfigurationMatchesCode(t *testing.T) {
	for _, mode := range []string{"cert-manager", "self"} {
		var rendered *admissionregistrationv1.MutatingWebhookConfiguration
		for _, o := range decode(t, helm(t, "--set", "tls.mode="+mode)) {
			if o.GetKind() == "MutatingWebhookConfiguration" {
				rendered = &admissionregistrationv1.MutatingWebhookConfiguration{}
				if err := runtime.DefaultUnstructuredConverter.FromUnstructured(o.Object, rendered); err != nil {
					t.Fatal(err)
				}
			}
		}
		if rendered == nil {
			t.Fatalf("%s: no MutatingWebhookConfiguration rendered", mode)
		}
		want := admission.WebhookConfiguration("smartbackup-webhook", "smartbackup", "smartbackup-webhook", nil)
		if diff := cmp.Diff(want.Webhooks, rendered.Webhooks); diff != "" {
			t.Errorf("%s: chart vs webhook/admission.WebhookConfiguration (-code +chart):\n%s", mode, diff)
		}
		if rendered.Name != want.Name {
			t.Errorf("%s: name %q, want %q", mode, rendered.Name, want.Name)
		}
		_, injected := rendered.Annotations["cert-manager.io/inject-ca-from"]
		if injected != (mode == "cert-manager") {
			t.Errorf("%s: cert-manager.io/inject-ca-from present=%v", mode, injected)
		}
	}
}

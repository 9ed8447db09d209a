package admission_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/google/go-cmp/cmp"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// namespaces is a client.Reader over a fixed set of namespaces: the admission handler's
// only dependency. The same handler runs against a real apiserver in webhook/app.
type namespaces struct {
	items map[string]*corev1.Namespace
	err   error
}

func (n namespaces) Get(_ context.Context, key client.ObjectKey, obj client.Object, _ ...client.GetOption) error {
	if n.err != nil {
		return n.err
	}
	ns, ok := n.items[key.Name]
	if !ok {
		return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, key.Name)
	}
	ns.DeepCopyInto(obj.(*corev1.Namespace))
	return nil
}

func (n namespaces) List(context.Context, client.ObjectList, ...client.ListOption) error {
	return errors.New("not used")
}

func namespace(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: name, Labels: labels,
		Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "postgres." + name + ".svc", contract.AnnotationDatabaseName: "erp"},
	}}
}

var testNamespaces = map[string]*corev1.Namespace{
	"acme-prd": namespace("acme-prd", map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "acme",
	}),
	"acme-hml": namespace("acme-hml", map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico,
		contract.LabelEnvironment: contract.EnvironmentHomologation, contract.LabelCustomer: "acme",
		contract.LabelRestoreSource: "globex-prd",
	}),
	"globex-prd": namespace("globex-prd", map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "globex",
	}),
}

func dbaccess(owner *metav1.OwnerReference) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "dbaccess-", Labels: map[string]string{
			contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: contract.ProductSistemico,
		}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "sistemico/dbaccess:3"}}},
	}
	if owner != nil {
		p.OwnerReferences = []metav1.OwnerReference{*owner}
	}
	return p
}

// review is an AdmissionReview body for pod in ns.
func review(t testing.TB, op admissionv1.Operation, ns string, pod *corev1.Pod, dryRun bool) []byte {
	t.Helper()
	raw, err := json.Marshal(pod)
	if err != nil {
		t.Fatal(err)
	}
	ar := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID: types.UID("req-1"), Kind: metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  metav1.GroupVersionResource{Version: "v1", Resource: "pods"},
			Namespace: ns, Operation: op, Object: runtime.RawExtension{Raw: raw}, DryRun: &dryRun,
		},
	}
	b, err := json.Marshal(ar)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// serve posts body to the webhook and decodes the AdmissionReview it answers.
func serve(t testing.TB, h http.Handler, body []byte) (int, admissionv1.AdmissionReview) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, admission.Path, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
		t.Fatalf("response is not an AdmissionReview: %v: %q", err, rec.Body.String())
	}
	if out.Response == nil {
		t.Fatalf("AdmissionReview without a response: %q", rec.Body.String())
	}
	return rec.Code, out
}

func TestDefaulter(t *testing.T) {
	cfg := configtest.New(t, nil)
	rs := &metav1.OwnerReference{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "dbaccess-7d9f", UID: "rs-uid", Controller: new(true)}
	cases := map[string]struct {
		body     func(t *testing.T) []byte
		lookup   error
		allowed  bool
		patched  bool
		code     int32  // of a refusal
		message  string // substring of a refusal
		event    string // substring of the recorded Event, "" for none
		inNSName string // the namespace whose settings the patch must carry
	}{
		"a new dbaccess pod of an enabled namespace is patched": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Create, "acme-prd", dbaccess(nil), false) },
			allowed: true, patched: true, inNSName: "acme-prd",
		},
		"an update passes through without a patch": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Update, "acme-prd", dbaccess(nil), false) },
			allowed: true,
		},
		"a pod of another product passes through without a patch": {
			body: func(t *testing.T) []byte {
				p := dbaccess(nil)
				p.Labels[contract.LabelProduct] = "smartesocial"
				return review(t, admissionv1.Create, "acme-prd", p, false)
			},
			allowed: true,
		},
		"a cross-customer restore is denied with the reason and an Event on the owner": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Create, "acme-hml", dbaccess(rs), false) },
			code:    http.StatusForbidden,
			message: `namespace "acme-hml" may not restore from "globex-prd"`,
			event:   "Warning SmartbackupRestoreSourceDenied",
		},
		"a dry-run denial records no Event": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Create, "acme-hml", dbaccess(rs), true) },
			code:    http.StatusForbidden,
			message: "source_other_customer",
		},
		"a failed namespace lookup is an internal error, not an admission": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Create, "acme-prd", dbaccess(nil), false) },
			lookup:  errors.New("connection refused"),
			code:    http.StatusInternalServerError,
			message: "connection refused",
		},
		"a pod in a namespace that does not exist is an internal error": {
			body:    func(t *testing.T) []byte { return review(t, admissionv1.Create, "nowhere", dbaccess(nil), false) },
			code:    http.StatusInternalServerError,
			message: `"nowhere"`,
		},
		"a body that is not JSON is a bad request": {
			body:    func(*testing.T) []byte { return []byte("{not json") },
			code:    http.StatusBadRequest,
			message: "",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			rec := events.NewFakeRecorder(10)
			d := &admission.Defaulter{Config: cfg, Reader: namespaces{items: testNamespaces, err: tc.lookup}, Recorder: rec}
			wh := admission.NewWebhook(clientgoscheme.Scheme, d)
			body := tc.body(t)
			status, out := serve(t, wh, body)
			if status != http.StatusOK {
				t.Errorf("HTTP status %d, want 200 (admission outcomes travel in the body)", status)
			}
			r := out.Response
			if r.Allowed != tc.allowed {
				t.Fatalf("allowed = %v, want %v; result %+v", r.Allowed, tc.allowed, r.Result)
			}
			if (len(r.Patch) > 0) != tc.patched {
				t.Fatalf("patch %q, want patched %v", r.Patch, tc.patched)
			}
			if !tc.allowed {
				if r.Result == nil || r.Result.Code != tc.code || !strings.Contains(r.Result.Message, tc.message) {
					t.Errorf("result = %+v, want code %d and a message containing %q", r.Result, tc.code, tc.message)
				}
			}
			if tc.patched {
				checkPatch(t, body, r.Patch, tc.inNSName, d)
			}
			var got string
			select {
			case got = <-rec.Events:
			default:
			}
			if tc.event == "" && got != "" {
				t.Errorf("unexpected Event %q", got)
			}
			if tc.event != "" && (!strings.Contains(got, tc.event) || !strings.Contains(got, tc.message)) {
				t.Errorf("Event = %q, want %q with the message", got, tc.event)
			}
		})
	}
}

// checkPatch applies the JSON patch to the submitted pod and compares the result with
// inject.Apply on the same pod: the framework's diff must carry exactly the injection.
func checkPatch(t *testing.T, body, patch []byte, ns string, d *admission.Defaulter) {
	t.Helper()
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("decoding the patch: %v", err)
	}
	patched, err := p.Apply(ar.Request.Object.Raw)
	if err != nil {
		t.Fatalf("applying the patch: %v", err)
	}
	var got, want corev1.Pod
	if err := json.Unmarshal(patched, &got); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(ar.Request.Object.Raw, &want); err != nil {
		t.Fatal(err)
	}
	n := testNamespaces[ns]
	s, denial := inject.ParseNamespace(inject.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}, d.Config)
	if denial != nil {
		t.Fatal(denial)
	}
	if _, denial := inject.Apply(&want, s, d.Config); denial != nil {
		t.Fatal(denial)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("patched pod differs from inject.Apply (-want +got):\n%s", diff)
	}
}

func TestEventTarget(t *testing.T) {
	owner := metav1.OwnerReference{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "dbaccess", UID: "uid-1", Controller: new(true)}
	notController := metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: "cm", UID: "uid-2"}
	cases := map[string]struct {
		owners []metav1.OwnerReference
		want   *metav1.PartialObjectMetadata
	}{
		"a controlled pod's Event is on its controller": {
			owners: []metav1.OwnerReference{notController, owner},
			want: &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "StatefulSet"},
				ObjectMeta: metav1.ObjectMeta{Name: "dbaccess", Namespace: "acme", UID: "uid-1"}},
		},
		"a bare pod's Event is on its namespace, stored in that namespace": {
			owners: []metav1.OwnerReference{notController},
			want: &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
				ObjectMeta: metav1.ObjectMeta{Name: "acme", Namespace: "acme"}},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{OwnerReferences: tc.owners}}
			if diff := cmp.Diff(tc.want, admission.EventTarget(p, "acme")); diff != "" {
				t.Errorf("EventTarget (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNamespacesFromTheCacheFirst: an admission reads the watch cache and calls the
// API only for a namespace the cache does not have (or when the cache fails).
func TestNamespacesFromTheCacheFirst(t *testing.T) {
	cfg := configtest.New(t, nil)
	down := namespaces{err: errors.New("apiserver must not be called")}
	cases := map[string]struct {
		cache, live client.Reader
	}{
		"cached":               {namespaces{items: testNamespaces}, down},
		"not cached yet":       {namespaces{items: map[string]*corev1.Namespace{}}, namespaces{items: testNamespaces}},
		"cache failing":        {namespaces{err: errors.New("timed out waiting for cache")}, namespaces{items: testNamespaces}},
		"no cache (live only)": {nil, namespaces{items: testNamespaces}},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			d := &admission.Defaulter{Config: cfg, Cache: tc.cache, Reader: tc.live}
			_, out := serve(t, admission.NewWebhook(clientgoscheme.Scheme, d), review(t, admissionv1.Create, "acme-prd", dbaccess(nil), false))
			if !out.Response.Allowed || len(out.Response.Patch) == 0 {
				t.Fatalf("want an injected pod, got %+v", out.Response.Result)
			}
		})
	}
}

// TestPatchLeavesTheAuthorsFields: the injection into a pod with its own init container,
// env and sidecar is additions only (the framework's diff rewrote the author's init
// container field by field into ours, and the author's env vars into ours), and a field
// the webhook's API types do not know survives in the apiserver's copy.
func TestPatchLeavesTheAuthorsFields(t *testing.T) {
	cfg := configtest.New(t, nil)
	d := &admission.Defaulter{Config: cfg, Reader: namespaces{items: testNamespaces}}
	p := dbaccess(nil)
	p.Annotations = map[string]string{"prometheus.io/scrape": "true"}
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "TZ", Value: "America/Sao_Paulo"}, {Name: "THREADS", Value: "64"}}
	p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: "log-shipper", Image: "erp/log-shipper:2", Args: []string{"--json"}})
	p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "erp/migrate:1", Args: []string{"up"}}}
	p.Spec.Volumes = []corev1.Volume{{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{}}}}
	body := review(t, admissionv1.Create, "acme-prd", p, false)
	// A field of a newer API in the author's container, as a newer apiserver sends it.
	body = bytes.Replace(body, []byte(`"name":"dbaccess",`), []byte(`"name":"dbaccess","futureField":{"on":true},`), 1)
	if !bytes.Contains(body, []byte("futureField")) {
		t.Fatal("the review has no unknown field to keep")
	}
	_, out := serve(t, admission.NewWebhook(clientgoscheme.Scheme, d), body)
	var ops []struct{ Op, Path string }
	if err := json.Unmarshal(out.Response.Patch, &ops); err != nil {
		t.Fatalf("patch %q: %v (%+v)", out.Response.Patch, err, out.Response.Result)
	}
	for _, o := range ops {
		if o.Op != "add" {
			t.Errorf("%s %s: the injection only adds", o.Op, o.Path)
		}
	}
	// An annotation, our init container, our env vars, our volumes: nothing else.
	if len(ops) > 12 {
		t.Errorf("%d operations, want at most 12: %s", len(ops), out.Response.Patch)
	}
	var ar admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &ar); err != nil {
		t.Fatal(err)
	}
	patch, err := jsonpatch.DecodePatch(out.Response.Patch)
	if err != nil {
		t.Fatal(err)
	}
	patched, err := patch.Apply(ar.Request.Object.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(patched, []byte(`"futureField":{"on":true}`)) {
		t.Errorf("the unknown field is gone: %s", patched)
	}
	checkPatch(t, body, out.Response.Patch, "acme-prd", d)
}

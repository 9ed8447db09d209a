package admission_test

import (
	"encoding/json"
	"net/http"
	"testing"

	jsonpatch "github.com/evanphx/json-patch/v5"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"

	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

// FuzzAdmissionReview posts arbitrary bodies to the webhook with panic recovery off, so
// a panic anywhere in decoding, deciding or patching fails. Every answer must be an
// AdmissionReview with a response; a refusal carries a status; a patch must apply to
// the submitted object and leave a decodable pod.
func FuzzAdmissionReview(f *testing.F) {
	valid := review(f, admissionv1.Create, "acme-prd", dbaccess(nil), false)
	f.Add(valid)
	f.Add(review(f, admissionv1.Create, "acme-hml", dbaccess(nil), false))
	f.Add(review(f, admissionv1.Update, "acme-prd", dbaccess(nil), true))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1beta1","kind":"AdmissionReview","request":{"uid":"1","operation":"CREATE","namespace":"acme-prd","object":{"kind":"Pod","metadata":{"labels":{"app.kubernetes.io/name":"dbaccess","smartbackup.io/product":"sistemico"}},"spec":{"containers":[]}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"2","operation":"CREATE","namespace":"acme-prd","object":{"kind":"ConfigMap","data":{"a":"b"}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"3","operation":"CREATE","object":null}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1","request":{"uid":"4","operation":"CREATE","namespace":"acme-prd","object":{"metadata":{"annotations":{"smartbackup.io/injected":7}}}}}`))
	f.Add([]byte(`{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(``))
	f.Add(valid[:len(valid)/2])

	cfg := configtest.New(f, nil)
	d := &admission.Defaulter{Config: cfg, Reader: namespaces{items: testNamespaces}}
	wh := admission.NewWebhook(clientgoscheme.Scheme, d).WithRecoverPanic(false)

	f.Fuzz(func(t *testing.T, body []byte) {
		status, out := serve(t, wh, body)
		if status != http.StatusOK {
			t.Fatalf("HTTP status %d", status)
		}
		r := out.Response
		if !r.Allowed {
			if r.Result == nil || r.Result.Code == 0 {
				t.Fatalf("refusal without a status: %+v", r)
			}
			return
		}
		if len(r.Patch) == 0 {
			return
		}
		var in admissionv1.AdmissionReview
		if err := json.Unmarshal(body, &in); err != nil || in.Request == nil {
			t.Fatalf("patched a body that is not an AdmissionReview (%v)", err)
		}
		p, err := jsonpatch.DecodePatch(r.Patch)
		if err != nil {
			t.Fatalf("invalid patch %q: %v", r.Patch, err)
		}
		patched, err := p.Apply(in.Request.Object.Raw)
		if err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
		var pod corev1.Pod
		if err := json.Unmarshal(patched, &pod); err != nil {
			t.Fatalf("patched object is not a pod: %v", err)
		}
		if len(pod.Spec.InitContainers) == 0 {
			t.Fatal("a patch without the init container")
		}
	})
}

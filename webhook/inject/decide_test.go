package inject_test

import (
	"context"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// kv merges maps; a "-" value deletes the key.
func kv(base map[string]string, edits ...map[string]string) map[string]string {
	out := maps.Clone(base)
	for _, e := range edits {
		for k, v := range e {
			if v == "-" {
				delete(out, k)
			} else {
				out[k] = v
			}
		}
	}
	return out
}

var (
	prodLabels = map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "acme",
	}
	hmlLabels = kv(prodLabels, map[string]string{
		contract.LabelEnvironment: contract.EnvironmentHomologation, contract.LabelRestoreSource: "acme-prd",
	})
	dbAnnotations = map[string]string{contract.AnnotationDatabaseEndpoint: "postgres.db.svc", contract.AnnotationDatabaseName: "erp"}
	dbaccessPod   = map[string]string{contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: contract.ProductSmartERP}
	acmePrd       = inject.Namespace{Name: "acme-prd", Labels: prodLabels, Annotations: dbAnnotations}
)

func pod(labels map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "dbaccess-", Labels: labels},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "dbaccess"}}},
	}
}

type decideCase struct {
	labels, annotations map[string]string // of the pod's namespace "ns"
	pod                 map[string]string // the pod's labels
	sources             []inject.Namespace
	config              map[string]string
	injected            bool // the pod arrives already injected
	want                inject.Action
	reason              inject.Reason
	message             string // a substring of the denial message
}

var decideCases = map[string]decideCase{
	"a pod of a namespace without the enabled label passes through": {
		labels: kv(prodLabels, map[string]string{contract.LabelEnabled: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Skip, reason: inject.ReasonNamespaceNotEnabled,
	},
	"enabled=yes is not enabled=true": {
		labels: kv(prodLabels, map[string]string{contract.LabelEnabled: "yes"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Skip, reason: inject.ReasonNamespaceNotEnabled,
	},
	"a pod without the dbaccess label passes through": {
		labels: prodLabels, annotations: dbAnnotations, pod: kv(dbaccessPod, map[string]string{contract.LabelAppName: "web"}),
		want: inject.Skip, reason: inject.ReasonNotDBAccess,
	},
	"the dbaccess selector is configurable": {
		labels: prodLabels, annotations: dbAnnotations, pod: dbaccessPod, config: map[string]string{"DBACCESS_LABEL": "tier=db"},
		want: inject.Skip, reason: inject.ReasonNotDBAccess,
	},
	"a dbaccess pod without a product label passes through": {
		labels: prodLabels, annotations: dbAnnotations, pod: kv(dbaccessPod, map[string]string{contract.LabelProduct: "-"}),
		want: inject.Skip, reason: inject.ReasonUnknownProduct,
	},
	"a Smart eSocial dbaccess pod passes through": {
		labels: prodLabels, annotations: dbAnnotations, pod: kv(dbaccessPod, map[string]string{contract.LabelProduct: "smartesocial"}),
		want: inject.Skip, reason: inject.ReasonUnknownProduct,
	},
	"an already injected pod is left as it is": {
		labels: prodLabels, annotations: dbAnnotations, pod: dbaccessPod, injected: true,
		want: inject.Skip, reason: inject.ReasonAlreadyInjected,
	},
	"a production dbaccess pod is injected and restores from its own namespace": {
		labels: prodLabels, annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Inject, reason: inject.ReasonInjected,
	},
	"a production namespace may name itself as restore source": {
		labels: kv(prodLabels, map[string]string{contract.LabelRestoreSource: "ns"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Inject, reason: inject.ReasonInjected,
	},
	"a production namespace without a customer label is injected": {
		labels: kv(prodLabels, map[string]string{contract.LabelCustomer: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Inject, reason: inject.ReasonInjected,
	},
	"a homologation namespace restores from its customer's production namespace": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod, sources: []inject.Namespace{acmePrd},
		want: inject.Inject, reason: inject.ReasonInjected,
	},
	"an internal-dev namespace restores from its customer's production namespace": {
		labels:      kv(hmlLabels, map[string]string{contract.LabelEnvironment: contract.EnvironmentInternalDev}),
		annotations: dbAnnotations, pod: dbaccessPod, sources: []inject.Namespace{acmePrd},
		want: inject.Inject, reason: inject.ReasonInjected,
	},
	"a namespace without a product label is denied": {
		labels: kv(prodLabels, map[string]string{contract.LabelProduct: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidNamespaceProduct, message: "needs label smartbackup.io/product",
	},
	"a pod claiming another product than its namespace is denied": {
		labels: prodLabels, annotations: dbAnnotations, pod: kv(dbaccessPod, map[string]string{contract.LabelProduct: contract.ProductSistemico}),
		want: inject.Deny, reason: inject.ReasonProductMismatch, message: "namespace's product decides",
	},
	"a product without a configured storage URL is denied": {
		labels: prodLabels, annotations: dbAnnotations, pod: dbaccessPod, config: map[string]string{"STORAGE_URL_SMARTERP": ""},
		want: inject.Deny, reason: inject.ReasonStorageNotConfigured, message: `no storage configured for product "smarterp"`,
	},
	"a namespace without an environment is denied": {
		labels: kv(prodLabels, map[string]string{contract.LabelEnvironment: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidEnvironment, message: "smartbackup.io/environment",
	},
	"a namespace with an unknown environment is denied": {
		labels: kv(prodLabels, map[string]string{contract.LabelEnvironment: "staging"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidEnvironment, message: "production, homologation or internal-dev",
	},
	"a homologation namespace without a customer is denied": {
		labels: kv(hmlLabels, map[string]string{contract.LabelCustomer: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonMissingCustomer, message: "needs label smartbackup.io/customer",
	},
	"a homologation namespace without a restore source is denied": {
		labels: kv(hmlLabels, map[string]string{contract.LabelRestoreSource: "-"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonMissingRestoreSource, message: "needs label smartbackup.io/restore-source",
	},
	"a restore source that is not a namespace name is denied": {
		labels: kv(hmlLabels, map[string]string{contract.LabelRestoreSource: "Acme_Prd"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidRestoreSource, message: "is not a namespace name",
	},
	"a production namespace pointing at another namespace is denied": {
		labels: kv(prodLabels, map[string]string{contract.LabelRestoreSource: "other-prd"}), annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonProductionForeignSource, message: "restores only from itself",
	},
	"a namespace without a database endpoint is denied": {
		labels: prodLabels, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "needs annotation smartbackup.io/database-endpoint",
	},
	"an endpoint that is no host name is denied": {
		labels: prodLabels, annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "db; rm -rf /"}, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "host name or an IP address",
	},
	"a port out of range is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabasePort: "70000"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "port number",
	},
	"a codepage with a space is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseCodepage: "WIN 1252"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "encoding name",
	},
	"a namespace without a database name is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseName: "-"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "needs annotation smartbackup.io/database-name",
	},
	"a database name longer than initrestore accepts is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseName: strings.Repeat("d", 41)}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "at most 40 characters",
	},
	"a database name with initrestore's temporary infix is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseName: "erp__restoring"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "identifier",
	},
	"a masking ConfigMap name that is not a name is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationMaskingConfigMap: "Masks!"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidRestoreRequest, message: "ConfigMap name",
	},
	"a database name with a semicolon is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseName: "erp;drop"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "identifier",
	},
	"a malformed extension list is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseExtensions: "pg_trgm;plpython3u"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "extension names",
	},
	"a malformed locale is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseLocale: "pt BR"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "locale",
	},
	"a Secret name that is not a name is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationDatabaseSecret: "Not/A/Secret"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidDatabase, message: "Secret name",
	},
	"a malformed restore request id is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationRestoreRequest: "now please!"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidRestoreRequest, message: "smartbackup.io/restore-request",
	},
	"an unknown restore request source is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationRestoreRequestSource: "yesterday"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidRestoreRequest, message: "production or own",
	},
	"an unknown missing-backup policy is denied": {
		labels: prodLabels, annotations: kv(dbAnnotations, map[string]string{contract.AnnotationRestoreOnMissingBackup: "maybe"}), pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonInvalidRestoreRequest, message: "fail or empty",
	},
	"a restore source that does not exist is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		want: inject.Deny, reason: inject.ReasonSourceNotFound, message: "does not exist",
	},
	"a restore source that is not enabled is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		sources: []inject.Namespace{{Name: "acme-prd", Labels: kv(prodLabels, map[string]string{contract.LabelEnabled: "false"})}},
		want:    inject.Deny, reason: inject.ReasonSourceNotEnabled, message: "not enabled",
	},
	"a restore source that is homologation is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		sources: []inject.Namespace{{Name: "acme-prd", Labels: hmlLabels}},
		want:    inject.Deny, reason: inject.ReasonSourceNotProduction, message: "not production",
	},
	"a restore source of another customer is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		sources: []inject.Namespace{{Name: "acme-prd", Labels: kv(prodLabels, map[string]string{contract.LabelCustomer: "globex"})}},
		want:    inject.Deny, reason: inject.ReasonSourceOtherCustomer, message: `does not belong to customer "acme"`,
	},
	"a restore source without a customer is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		sources: []inject.Namespace{{Name: "acme-prd", Labels: kv(prodLabels, map[string]string{contract.LabelCustomer: "-"})}},
		want:    inject.Deny, reason: inject.ReasonSourceOtherCustomer, message: "does not belong",
	},
	"a restore source of another product is denied": {
		labels: hmlLabels, annotations: dbAnnotations, pod: dbaccessPod,
		sources: []inject.Namespace{{Name: "acme-prd", Labels: kv(prodLabels, map[string]string{contract.LabelProduct: contract.ProductSistemico})}},
		want:    inject.Deny, reason: inject.ReasonSourceOtherProduct, message: `not product "smarterp"`,
	},
	"pod labels and annotations cannot choose the source": {
		labels: hmlLabels, annotations: dbAnnotations,
		pod:  kv(dbaccessPod, map[string]string{contract.LabelRestoreSource: "acme-prd", contract.LabelEnvironment: contract.EnvironmentProduction}),
		want: inject.Deny, reason: inject.ReasonSourceNotFound,
	},
}

// reasonsProducedElsewhere are reasons the admission handler produces, with the test
// that covers each.
var reasonsProducedElsewhere = map[inject.Reason]string{
	inject.ReasonNotCreate:              "admission.TestDefaulter",
	inject.ReasonReinjected:             "TestTamperedInjectionIsRebuilt",
	inject.ReasonEnvConflict:            "TestNamespaceOwnsTheConnection, golden env-conflict-denied",
	inject.ReasonInvalidTargetContainer: "TestTargetContainer, golden default-container-missing-denied",
}

func TestRun(t *testing.T) {
	for name, tc := range decideCases {
		t.Run(name, func(t *testing.T) {
			cfg := configtest.New(t, tc.config)
			ns := inject.Namespace{Name: "ns", Labels: tc.labels, Annotations: tc.annotations}
			p := pod(tc.pod)
			lookups := 0
			lookup := func(_ context.Context, name string) (*inject.Namespace, error) {
				lookups++
				for _, s := range tc.sources {
					if s.Name == name {
						return &s, nil
					}
				}
				return nil, nil
			}
			if tc.injected {
				d := inject.Decide(p, ns, cfg)
				if d.Action != inject.Inject {
					t.Fatalf("preparing an injected pod: %+v", d)
				}
				if changed, denial := inject.Apply(p, d.Settings, cfg); !changed || denial != nil {
					t.Fatalf("preparing an injected pod: changed %v, %v", changed, denial)
				}
			}
			before := p.DeepCopy()
			d, err := inject.Run(t.Context(), p, ns, lookup, cfg)
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if d.Action != tc.want || d.Reason != tc.reason {
				t.Fatalf("Run = %s/%s (%s), want %s/%s", d.Action, d.Reason, d.Message, tc.want, tc.reason)
			}
			if !strings.Contains(d.Message, tc.message) {
				t.Errorf("message %q does not contain %q", d.Message, tc.message)
			}
			if tc.want == inject.Deny && d.Message == "" {
				t.Error("a denial without a message")
			}
			injected := p.Annotations[contract.AnnotationInjected] != "" && before.Annotations[contract.AnnotationInjected] == ""
			if injected != (tc.want == inject.Inject) {
				t.Errorf("pod injected = %v, want %v", injected, tc.want == inject.Inject)
			}
			if tc.labels[contract.LabelEnvironment] == contract.EnvironmentProduction && lookups > 0 {
				t.Errorf("looked up %d namespaces for a production namespace, which restores from itself", lookups)
			}
		})
	}
}

// TestEveryReasonHasACase reads the Reason constants from decision.go and fails for any
// that no case of TestRun expects.
func TestEveryReasonHasACase(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "decision.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	covered := map[inject.Reason]bool{}
	for _, tc := range decideCases {
		covered[tc.reason] = true
	}
	found := 0
	ast.Inspect(f, func(n ast.Node) bool {
		vs, ok := n.(*ast.ValueSpec)
		if !ok || vs.Type == nil || fmtIdent(vs.Type) != "Reason" {
			return true
		}
		for _, v := range vs.Values {
			lit, ok := v.(*ast.BasicLit)
			if !ok {
				continue
			}
			found++
			r := inject.Reason(strings.Trim(lit.Value, `"`))
			if !covered[r] && reasonsProducedElsewhere[r] == "" {
				t.Errorf("reason %q has no case in TestRun", r)
			}
		}
		return true
	})
	if found < 10 {
		t.Fatalf("found only %d Reason constants in decision.go; did the file change shape?", found)
	}
}

func fmtIdent(e ast.Expr) string {
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

func TestRunReportsLookupErrors(t *testing.T) {
	cfg := configtest.New(t, nil)
	boom := errors.New("apiserver unreachable")
	ns := inject.Namespace{Name: "acme-hml", Labels: hmlLabels, Annotations: dbAnnotations}
	p := pod(dbaccessPod)
	_, err := inject.Run(t.Context(), p, ns, func(context.Context, string) (*inject.Namespace, error) { return nil, boom }, cfg)
	if !errors.Is(err, boom) {
		t.Fatalf("Run error = %v, want it to wrap %v", err, boom)
	}
	if p.Annotations[contract.AnnotationInjected] != "" {
		t.Error("pod injected despite the failed lookup")
	}
}

// TestParseNamespaceDefaults checks the values a minimal namespace gets.
func TestParseNamespaceDefaults(t *testing.T) {
	cfg := configtest.New(t, map[string]string{"DEFAULT_CODEPAGE": "UTF8", "RESTORE_ON_MISSING_BACKUP": "empty"})
	s, d := inject.ParseNamespace(acmePrd, cfg)
	if d != nil {
		t.Fatalf("ParseNamespace: %v", d)
	}
	want := inject.Settings{
		Namespace: "acme-prd", Product: contract.ProductSmartERP, Environment: contract.EnvironmentProduction, Customer: "acme",
		RestoreSource: "acme-prd", StorageURL: "file:///backup?namespace_marker=true", StoragePath: "/backup", Endpoint: "postgres.db.svc", Port: 5432, DatabaseName: "erp",
		Codepage: "UTF8", SecretName: contract.DefaultDatabaseSecret, OnMissingBackup: contract.OnMissingEmpty,
	}
	if s != want {
		t.Errorf("ParseNamespace =\n%+v\nwant\n%+v", s, want)
	}
}

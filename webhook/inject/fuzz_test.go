package inject_test

import (
	"net"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// FuzzNamespaceSettings feeds arbitrary label and annotation values through
// ParseNamespace, Decide and Apply. Whatever the input: no panic; accepted settings are
// valid; production restores from itself; an injected pod is injected exactly once and
// carries no secret as a literal value.
func FuzzNamespaceSettings(f *testing.F) {
	f.Add("true", "smarterp", "production", "acme", "", "db.svc", "5432", "erp", "WIN1252", "", "pg_trgm, unaccent", "", "", "", "smarterp")
	f.Add("true", "sistemico", "homologation", "acme", "acme-prd", "10.0.0.1", "65535", "erp", "UTF8", "C", "", "db", "r1", "own", "sistemico")
	f.Add("true", "smarterp", "internal-dev", "", "x", "db", "0", "a;b", "WIN 1252", "pt BR", ",,", "A/B", "!", "x", "")
	f.Add("true", "smarterp", "production", "", "other", "::1", "-1", "", "", "", "a,a,a", "", "", "", "smarterp")
	cfg := configtest.New(f, nil)
	f.Fuzz(func(t *testing.T, enabled, product, env, customer, source, endpoint, port, dbname, codepage, locale, exts, secret, request, requestSource, podProduct string) {
		labels := map[string]string{
			contract.LabelEnabled: enabled, contract.LabelProduct: product, contract.LabelEnvironment: env,
			contract.LabelCustomer: customer, contract.LabelRestoreSource: source,
		}
		annotations := map[string]string{
			contract.AnnotationDatabaseEndpoint: endpoint, contract.AnnotationDatabasePort: port,
			contract.AnnotationDatabaseName: dbname, contract.AnnotationDatabaseCodepage: codepage,
			contract.AnnotationDatabaseLocale: locale, contract.AnnotationDatabaseExtensions: exts,
			contract.AnnotationDatabaseSecret: secret, contract.AnnotationRestoreRequest: request,
			contract.AnnotationRestoreRequestSource: requestSource,
		}
		// An empty value stands for an absent key, the common case.
		for _, m := range []map[string]string{labels, annotations} {
			for k, v := range m {
				if v == "" {
					delete(m, k)
				}
			}
		}
		ns := inject.Namespace{Name: "fuzz-ns", Labels: labels, Annotations: annotations}

		s, d := inject.ParseNamespace(ns, cfg)
		if d != nil {
			if d.Reason == "" || d.Message == "" {
				t.Fatalf("denial without reason or message: %+v", d)
			}
		} else {
			checkSettings(t, ns, s)
		}

		p := pod(map[string]string{contract.LabelAppName: contract.DBAccessName, contract.LabelProduct: podProduct})
		dec := inject.Decide(p, ns, cfg)
		if dec.Action != inject.Inject {
			return
		}
		if d != nil {
			t.Fatalf("Decide injects what ParseNamespace denied (%s)", d.Reason)
		}
		if changed, denial := inject.Apply(p, dec.Settings, cfg); !changed || denial != nil {
			t.Fatalf("first Apply: changed %v, %v", changed, denial)
		}
		if changed, denial := inject.Apply(p, dec.Settings, cfg); changed || denial != nil {
			t.Fatalf("second Apply: changed %v, %v", changed, denial)
		}
		for _, c := range append(slices.Clone(p.Spec.InitContainers), p.Spec.Containers...) {
			for _, e := range c.Env {
				if slices.Contains(contract.Secrets, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Fatalf("container %q: %s is not a secretKeyRef", c.Name, e.Name)
				}
			}
		}
	})
}

func checkSettings(t *testing.T, ns inject.Namespace, s inject.Settings) {
	t.Helper()
	switch {
	case !config.KnownProduct(s.Product):
		t.Fatalf("accepted product %q", s.Product)
	case s.StorageURL == "":
		t.Fatal("accepted settings without a storage URL")
	case s.Port < 1 || s.Port > 65535:
		t.Fatalf("accepted port %d", s.Port)
	case !contract.ValidCodepage(s.Codepage):
		t.Fatalf("accepted codepage %q", s.Codepage)
	case len(validation.IsDNS1123Label(s.RestoreSource)) > 0:
		t.Fatalf("accepted restore source %q", s.RestoreSource)
	case s.Environment == contract.EnvironmentProduction && s.RestoreSource != ns.Name:
		t.Fatalf("production namespace restores from %q", s.RestoreSource)
	case s.Environment != contract.EnvironmentProduction && (s.Customer == "" || s.RestoreSource == ""):
		t.Fatalf("%s namespace accepted without customer or source: %+v", s.Environment, s)
	case net.ParseIP(s.Endpoint) == nil && len(validation.IsDNS1123Subdomain(s.Endpoint)) > 0:
		t.Fatalf("accepted endpoint %q", s.Endpoint)
	case len(validation.IsDNS1123Subdomain(s.SecretName)) > 0:
		t.Fatalf("accepted secret %q", s.SecretName)
	case strings.ContainsAny(s.Extensions, " \t") || strings.HasPrefix(s.Extensions, ",") || strings.Contains(s.Extensions, ",,"):
		t.Fatalf("extensions not normalised: %q", s.Extensions)
	}
	for _, v := range []string{s.Endpoint, s.DatabaseName, s.Codepage, s.Locale, s.Extensions, s.RequestID} {
		if strings.ContainsAny(v, "\x00\n\r;'\"$`\\ ") && v != s.DatabaseName {
			t.Fatalf("accepted a value with shell or SQL metacharacters: %q", v)
		}
	}
}

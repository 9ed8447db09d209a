package inject_test

import (
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/pg"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// FuzzNamespaceTLS: the TLS annotations (sslmode, the CA's ConfigMap or Secret) are the
// namespace administrator's. The webhook accepts exactly the combinations the rules
// allow, and never one that initrestore or cronbackup would refuse (pg.CheckTLS): a
// mode that verifies the server always comes with a CA.
func FuzzNamespaceTLS(f *testing.F) {
	for _, s := range [][3]string{{"", "", ""}, {"verify-full", "db-ca", ""}, {"verify-ca", "", "db-ca"}, {"require", "", ""},
		{"verify-full", "", ""}, {"disable", "a", "b"}, {"Verify-Full", "db-ca", ""}, {"prefer", "DB_CA", ""}, {"allow", "", "x.y-z"}} {
		f.Add(s[0], s[1], s[2])
	}
	cfg := configtest.New(f, nil)
	f.Fuzz(func(t *testing.T, mode, configMap, secret string) {
		a := map[string]string{contract.AnnotationDatabaseEndpoint: "db.svc", contract.AnnotationDatabasePort: "5432",
			contract.AnnotationDatabaseName: "erp", contract.AnnotationDatabaseCodepage: "WIN1252"}
		for k, v := range map[string]string{contract.AnnotationDatabaseSSLMode: mode,
			contract.AnnotationDatabaseCAConfigMap: configMap, contract.AnnotationDatabaseCASecret: secret} {
			if v != "" {
				a[k] = v
			}
		}
		ns := inject.Namespace{Name: "fuzz-ns", Annotations: a, Labels: map[string]string{contract.LabelEnabled: "true",
			contract.LabelProduct: "smarterp", contract.LabelEnvironment: "production", contract.LabelCustomer: "acme"}}
		s, d := inject.ParseNamespace(ns, cfg)

		name := func(v string) bool { return v == "" || len(validation.IsDNS1123Subdomain(v)) == 0 }
		valid := (mode == "" || slices.Contains(contract.SSLModes, mode)) && name(configMap) && name(secret) &&
			(configMap == "" || secret == "") && (!contract.SSLModeNeedsCA(mode) || configMap != "" || secret != "")
		if !valid {
			if d == nil {
				t.Fatalf("accepted sslmode %q, CA ConfigMap %q, CA Secret %q", mode, configMap, secret)
			}
			return
		}
		if d != nil {
			t.Fatalf("denied sslmode %q, CA ConfigMap %q, CA Secret %q: %s", mode, configMap, secret, d.Message)
		}
		if s.SSLMode != mode || s.CAConfigMap != configMap || s.CASecret != secret {
			t.Fatalf("settings %q %q %q from %q %q %q", s.SSLMode, s.CAConfigMap, s.CASecret, mode, configMap, secret)
		}
		if s.CAConfigMap == "" && s.CASecret == "" {
			if err := pg.CheckTLS(s.SSLMode, ""); err != nil {
				t.Fatalf("the webhook accepts what the binaries refuse: %v", err)
			}
		}
	})
}

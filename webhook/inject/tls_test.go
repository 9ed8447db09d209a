package inject_test

import (
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// TestDatabaseTLSAnnotations: the namespace's sslmode and CA annotations are validated
// with initrestore's and cronbackup's rules (a denial names the annotation) and become
// DATABASE_SSLMODE, DATABASE_SSLROOTCERT and a read-only CA volume.
func TestDatabaseTLSAnnotations(t *testing.T) {
	cfg := configtest.New(t, nil)
	base := map[string]string{contract.AnnotationDatabaseEndpoint: "pg.example.internal", contract.AnnotationDatabaseName: "erp"}
	tests := map[string]struct {
		annotations map[string]string
		denial      string // "" = accepted
		env         []string
		volume      string // "configmap:NAME", "secret:NAME" or ""
	}{
		"nothing set: no variable, the binaries' default (prefer)": {},
		"require without a CA": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "require"},
			env: []string{"DATABASE_SSLMODE=require"}},
		"verify-full with a ConfigMap": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "verify-full", contract.AnnotationDatabaseCAConfigMap: "db-ca"},
			env: []string{"DATABASE_SSLMODE=verify-full", "DATABASE_SSLROOTCERT=/etc/smartbackup/database-ca/ca.crt"}, volume: "configmap:db-ca"},
		"verify-ca with a Secret": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "verify-ca", contract.AnnotationDatabaseCASecret: "db-ca"},
			env: []string{"DATABASE_SSLMODE=verify-ca", "DATABASE_SSLROOTCERT=/etc/smartbackup/database-ca/ca.crt"}, volume: "secret:db-ca"},
		"a CA alone (prefer, verified when TLS is used)": {annotations: map[string]string{contract.AnnotationDatabaseCAConfigMap: "db-ca"},
			env: []string{"DATABASE_SSLROOTCERT=/etc/smartbackup/database-ca/ca.crt"}, volume: "configmap:db-ca"},
		"an unknown mode": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "on"},
			denial: `annotation smartbackup.io/database-sslmode="on" must be one of disable, allow, prefer, require, verify-ca, verify-full`},
		"modes are libpq's spelling": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "verify_full"},
			denial: "smartbackup.io/database-sslmode"},
		"verify-full without a CA": {annotations: map[string]string{contract.AnnotationDatabaseSSLMode: "verify-full"},
			denial: "smartbackup.io/database-sslmode=verify-full needs the server's CA"},
		"both a ConfigMap and a Secret": {annotations: map[string]string{contract.AnnotationDatabaseCAConfigMap: "a", contract.AnnotationDatabaseCASecret: "b"},
			denial: "not both"},
		"a CA name that is no object name": {annotations: map[string]string{contract.AnnotationDatabaseCASecret: "DB CA"},
			denial: `annotation smartbackup.io/database-ca-secret="DB CA" must be a ConfigMap or Secret name`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			ns := inject.Namespace{Name: "acme-prd",
				Labels:      map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP, contract.LabelEnvironment: contract.EnvironmentProduction},
				Annotations: kv(base, tc.annotations)}
			s, d := inject.ParseNamespace(ns, cfg)
			if tc.denial != "" {
				if d == nil || d.Reason != inject.ReasonInvalidDatabase || !strings.Contains(d.Message, tc.denial) {
					t.Fatalf("denial %+v, want %s containing %q", d, inject.ReasonInvalidDatabase, tc.denial)
				}
				if _, d := inject.ParseBackup(ns, cfg); d == nil {
					t.Error("the backup CronJob's parse accepts what the pod's refuses")
				}
				return
			}
			if d != nil {
				t.Fatalf("denied: %v", d)
			}
			var env []string
			for _, e := range inject.TLSEnv(s) {
				env = append(env, e.Name+"="+e.Value)
			}
			if strings.Join(env, " ") != strings.Join(tc.env, " ") {
				t.Errorf("TLSEnv = %v, want %v", env, tc.env)
			}
			v, m, ok := inject.DatabaseCAVolume(s)
			got := ""
			switch {
			case ok && v.ConfigMap != nil:
				got = "configmap:" + v.ConfigMap.Name
				if len(v.ConfigMap.Items) != 1 || v.ConfigMap.Items[0].Key != "ca.crt" {
					t.Errorf("ConfigMap items %+v, want only ca.crt", v.ConfigMap.Items)
				}
			case ok && v.Secret != nil:
				got = "secret:" + v.Secret.SecretName
				if len(v.Secret.Items) != 1 || v.Secret.Items[0].Key != "ca.crt" {
					t.Errorf("Secret items %+v, want only ca.crt", v.Secret.Items)
				}
			}
			if got != tc.volume {
				t.Errorf("CA volume %q, want %q", got, tc.volume)
			}
			if ok && (!m.ReadOnly || m.MountPath != contract.DatabaseCADir || m.Name != inject.VolumeDatabaseCA) {
				t.Errorf("CA mount %+v, want %s read-only at %s", m, inject.VolumeDatabaseCA, contract.DatabaseCADir)
			}
		})
	}
}

package main

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
)

func ns(name string, labels map[string]string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
}

func TestPlan(t *testing.T) {
	hml := ns("cliente-hml", map[string]string{contract.LabelEnabled: "true", contract.LabelEnvironment: "homologation",
		contract.LabelRestoreSource: "cliente-prod", contract.LabelCustomer: "c1"})
	prod := ns("cliente-prod", map[string]string{contract.LabelEnabled: "true", contract.LabelEnvironment: "production"})
	tests := map[string]struct {
		ns         *corev1.Namespace
		source     string
		wantSource string
		wantErr    string
	}{
		"homologation from its production source by default": {ns: hml, wantSource: "production"},
		"homologation from production named explicitly":      {ns: hml, source: "cliente-prod", wantSource: "production"},
		"homologation from its own latest":                   {ns: hml, source: "cliente-hml", wantSource: "own"},
		"production from itself":                             {ns: prod, wantSource: "production"},
		"another customer's namespace is refused":            {ns: hml, source: "outro-prod", wantErr: "restores only from itself or from"},
		"a namespace not enabled is refused":                 {ns: ns("x", nil), wantErr: "not enabled"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			s, err := Plan(tc.ns, tc.source, "manual-1")
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Plan = %+v, %v; want an error with %q", s, err, tc.wantErr)
				}
				return
			}
			if err != nil || s.Source != tc.wantSource {
				t.Fatalf("Plan = %+v, %v; want source %s", s, err, tc.wantSource)
			}
			script := s.Script()
			for _, want := range []string{"kubectl annotate namespace " + tc.ns.Name, "smartbackup.io/restore-request=manual-1", "kubectl delete pod"} {
				if !strings.Contains(script, want) {
					t.Errorf("script lacks %q:\n%s", want, script)
				}
			}
		})
	}
}

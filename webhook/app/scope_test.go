package app_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
)

// TestScopeWithTheWebhookDown registers the webhook configuration pointed at a port
// where nothing listens (the webhook is down; failurePolicy Fail): only dbaccess pods
// of a known product are refused. A Smart eSocial dbaccess pod, an unlabelled dbaccess
// pod and any other pod of the same enabled namespace are created as usual, because
// the apiserver never calls the webhook for them.
func TestScopeWithTheWebhookDown(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	_ = l.Close()
	registerWebhook(t, c, testenv.RandomName("smartbackup-down-"), testenv.RandomName("smartbackup-system-"),
		fmt.Sprintf("https://%s%s", dead, admission.Path), nil)

	ns := testenv.RandomName("scope-")
	createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""))
	cases := map[string]struct {
		pod     func() *corev1.Pod
		refused bool
	}{
		"a Smart eSocial dbaccess pod is created": {pod: func() *corev1.Pod { return dbaccessPod(ns, "smartesocial") }},
		"a dbaccess pod without a product label is created": {pod: func() *corev1.Pod {
			p := dbaccessPod(ns, contract.ProductSmartERP)
			delete(p.Labels, contract.LabelProduct)
			return p
		}},
		"another pod is created": {pod: func() *corev1.Pod {
			p := dbaccessPod(ns, contract.ProductSmartERP)
			p.Labels[contract.LabelAppName] = "web"
			return p
		}},
		"a SmartERP dbaccess pod waits for the webhook":  {pod: func() *corev1.Pod { return dbaccessPod(ns, contract.ProductSmartERP) }, refused: true},
		"a Sistêmico dbaccess pod waits for the webhook": {pod: func() *corev1.Pod { return dbaccessPod(ns, contract.ProductSistemico) }, refused: true},
	}
	// The apiserver picks a new configuration up within about a second: wait until the
	// in-scope pod is refused before judging the others.
	eventually(t, 30*time.Second, func() error {
		if err := c.Create(t.Context(), dbaccessPod(ns, contract.ProductSmartERP)); err == nil {
			return fmt.Errorf("a SmartERP dbaccess pod was admitted with the webhook down")
		}
		return nil
	})
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			err := c.Create(t.Context(), tc.pod())
			switch {
			case tc.refused && err == nil:
				t.Fatal("admitted with the webhook down; failurePolicy Fail must refuse it")
			case tc.refused && !strings.Contains(err.Error(), admission.WebhookName):
				t.Fatalf("refused, but not by the webhook: %v", err)
			case !tc.refused && err != nil:
				t.Fatalf("refused with the webhook down: %v", err)
			}
		})
	}
}

package testenv_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/test/testenv"
)

// TestKubeSmoke starts the control plane, stores a namespace, and checks that a second
// StartKube shares the same apiserver.
func TestKubeSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{Scheme: clientgoscheme.Scheme})
	if err != nil {
		t.Fatal(err)
	}
	name := testenv.RandomName("smoke-")
	if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatalf("creating a namespace: %v", err)
	}
	var got corev1.Namespace
	if err := c.Get(t.Context(), client.ObjectKey{Name: name}, &got); err != nil {
		t.Fatalf("reading it back: %v", err)
	}
	if again := testenv.StartKube(t); again != kube {
		t.Error("a second StartKube started another control plane")
	}
}

package outcomes_test

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/outcomes"
)

// TestPredicate: only pods of the two products whose restore (or, for a backup Job's
// pod, backup) container has terminated reach the watcher.
func TestPredicate(t *testing.T) {
	terminated := corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0}}
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	dbaccess := func(product string, init ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "dbaccess-0", Namespace: "acme-prd", Labels: map[string]string{contract.LabelProduct: product}},
			Status:     corev1.PodStatus{InitContainerStatuses: init},
		}
	}
	backup := func(st ...corev1.ContainerStatus) *corev1.Pod {
		p := dbaccess(contract.ProductSmartERP)
		p.Labels["app.kubernetes.io/component"] = "backup"
		p.Labels[contract.LabelManagedBy] = contract.ManagedBy
		p.Status.ContainerStatuses = st
		return p
	}
	for name, c := range map[string]struct {
		pod  *corev1.Pod
		want bool
	}{
		"a new pod":                           {dbaccess(contract.ProductSistemico), false},
		"the restore running":                 {dbaccess(contract.ProductSistemico, corev1.ContainerStatus{Name: contract.InitContainerName, State: running}), false},
		"the restore terminated":              {dbaccess(contract.ProductSistemico, corev1.ContainerStatus{Name: contract.InitContainerName, State: terminated}), true},
		"a restart after a terminated run":    {dbaccess(contract.ProductSmartERP, corev1.ContainerStatus{Name: contract.InitContainerName, State: running, LastTerminationState: terminated, RestartCount: 1}), true},
		"another init container terminated":   {dbaccess(contract.ProductSmartERP, corev1.ContainerStatus{Name: "migrate", State: terminated}), false},
		"another product":                     {dbaccess("smartesocial", corev1.ContainerStatus{Name: contract.InitContainerName, State: terminated}), false},
		"a backup terminated":                 {backup(corev1.ContainerStatus{Name: "backup", State: terminated}), true},
		"a backup running":                    {backup(corev1.ContainerStatus{Name: "backup", State: running}), false},
		"a backup pod's restore-named status": {backup(corev1.ContainerStatus{Name: "other", State: terminated}), false},
	} {
		p := outcomes.Predicate()
		if got := p.Create(event.CreateEvent{Object: c.pod}); got != c.want {
			t.Errorf("%s: create passes = %v, want %v", name, got, c.want)
		}
		if got := p.Update(event.UpdateEvent{ObjectOld: dbaccess(contract.ProductSistemico), ObjectNew: c.pod}); got != c.want {
			t.Errorf("%s: update passes = %v, want %v", name, got, c.want)
		}
	}
}

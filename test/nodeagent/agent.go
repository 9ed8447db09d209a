// Package nodeagent is a TEST HARNESS, not a kubelet: it registers one Node, binds every
// pending pod to it, and "runs" each pod by starting its init containers (in order,
// retried with backoff on failure) and then its containers as local processes, mapping
// each image to a local binary. It resolves env from value, secretKeyRef,
// configMapKeyRef and the downward API, maps emptyDir and PVC mount paths to host
// directories, and reports phase and container statuses back through the API, so that
// Deployments, ReplicaSets, Jobs and CronJobs driven by a real kube-controller-manager
// behave as on a cluster. It ignores what a laptop cannot do: images, securityContext,
// resource limits, probes, networking.
package nodeagent

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Image says how to run a container image on this machine.
type Image struct {
	// Path is the binary that stands for the image's entrypoint; container args are
	// appended (a container's command, when set, is ignored).
	Path string
	// Env is added to every container of this image (e.g. test credentials that a
	// cluster would provide through workload identity).
	Env []string
}

// Agent is the fake node.
type Agent struct {
	Client   kubernetes.Interface
	NodeName string
	// Images maps an image reference (without tag, or with) to a local binary.
	Images map[string]Image
	// Dir holds container logs and the host side of volumes.
	Dir string
	Log logr.Logger
	// Backoff is the first restart delay of a failed container (doubling, capped at
	// 8×); the kubelet's is 10 s, tests want less.
	Backoff time.Duration

	mu   sync.Mutex
	pods map[types.UID]*podRun
}

// Run registers the node and serves pods until ctx ends.
func (a *Agent) Run(ctx context.Context) error {
	if a.Backoff == 0 {
		a.Backoff = time.Second
	}
	a.pods = map[types.UID]*podRun{}
	if err := os.MkdirAll(a.Dir, 0o755); err != nil {
		return err
	}
	if err := a.registerNode(ctx); err != nil {
		return err
	}
	factory := informers.NewSharedInformerFactory(a.Client, 0)
	inf := factory.Core().V1().Pods().Informer()
	_, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { a.handle(ctx, obj.(*corev1.Pod)) },
		UpdateFunc: func(_, obj any) { a.handle(ctx, obj.(*corev1.Pod)) },
		DeleteFunc: func(obj any) {
			if p, ok := obj.(*corev1.Pod); ok {
				a.stop(p.UID)
			}
		},
	})
	if err != nil {
		return err
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	<-ctx.Done()
	a.mu.Lock()
	runs := make([]*podRun, 0, len(a.pods))
	for _, r := range a.pods {
		runs = append(runs, r)
	}
	a.mu.Unlock()
	for _, r := range runs {
		r.cancel()
		<-r.done
	}
	return nil
}

func (a *Agent) registerNode(ctx context.Context) error {
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{Name: a.NodeName, Labels: map[string]string{"kubernetes.io/hostname": a.NodeName, "smartbackup.io/test-node": "true"}},
		Status: corev1.NodeStatus{
			Capacity: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("64"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("500")},
			Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "TestAgentReady",
				LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
		},
	}
	node.Status.Allocatable = node.Status.Capacity
	created, err := a.Client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{})
	if apierrors.IsAlreadyExists(err) {
		created, err = a.Client.CoreV1().Nodes().Get(ctx, a.NodeName, metav1.GetOptions{})
	}
	if err != nil {
		return fmt.Errorf("registering node %q: %w", a.NodeName, err)
	}
	created.Status = node.Status
	_, err = a.Client.CoreV1().Nodes().UpdateStatus(ctx, created, metav1.UpdateOptions{})
	return err
}

func (a *Agent) handle(ctx context.Context, p *corev1.Pod) {
	switch {
	case p.Spec.NodeName == "" && p.DeletionTimestamp == nil:
		a.bind(ctx, p)
	case p.Spec.NodeName != a.NodeName:
	case p.DeletionTimestamp != nil:
		a.terminate(ctx, p)
	case p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed:
	default:
		a.start(ctx, p)
	}
}

func (a *Agent) bind(ctx context.Context, p *corev1.Pod) {
	b := &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target:     corev1.ObjectReference{Kind: "Node", Name: a.NodeName},
	}
	if err := a.Client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{}); err != nil && !apierrors.IsConflict(err) && !apierrors.IsNotFound(err) {
		a.Log.Error(err, "binding pod", "pod", p.Namespace+"/"+p.Name)
	}
}

func (a *Agent) start(ctx context.Context, p *corev1.Pod) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.pods[p.UID]; ok {
		return
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &podRun{agent: a, pod: p.DeepCopy(), cancel: cancel, done: make(chan struct{}),
		dir: filepath.Join(a.Dir, p.Namespace, p.Name+"-"+string(p.UID)[:8])}
	a.pods[p.UID] = r
	go func() {
		defer close(r.done)
		r.run(rctx)
	}()
}

// terminate stops a deleted pod's processes and confirms the deletion, as a kubelet does.
func (a *Agent) terminate(ctx context.Context, p *corev1.Pod) {
	a.mu.Lock()
	r := a.pods[p.UID]
	a.mu.Unlock()
	go func() {
		if r != nil {
			r.cancel()
			<-r.done
		}
		uid := p.UID
		err := a.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64), Preconditions: &metav1.Preconditions{UID: &uid}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) && ctx.Err() == nil {
			a.Log.Error(err, "confirming pod deletion", "pod", p.Namespace+"/"+p.Name)
		}
	}()
}

func (a *Agent) stop(uid types.UID) {
	a.mu.Lock()
	r := a.pods[uid]
	delete(a.pods, uid)
	a.mu.Unlock()
	if r != nil {
		r.cancel()
	}
}

// LogPath is where a container's output goes: the pod's directory holds one file per
// container, appended to across restarts.
func (a *Agent) LogPath(namespace, pod string, uid types.UID, container string) string {
	return filepath.Join(a.Dir, namespace, pod+"-"+string(uid)[:8], container+".log")
}

// Logs returns a container's output so far ("" when it never ran).
func (a *Agent) Logs(namespace, pod string, uid types.UID, container string) string {
	b, _ := os.ReadFile(a.LogPath(namespace, pod, uid, container))
	return string(b)
}

package nodeagent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/testr"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/smartbackup/smartbackup/test/nodeagent"
	"github.com/smartbackup/smartbackup/test/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// TestAgentRunsDeploymentsAndJobs: with a real controller-manager, a Deployment's pod
// runs its init container then its container, with env from a Secret and the downward
// API; a deleted pod is replaced; a failing init container is retried; a Job completes.
func TestAgentRunsDeploymentsAndJobs(t *testing.T) {
	k := testenv.StartKube(t)
	testenv.StartControllerManager(t, k)
	cs := kubernetes.NewForConfigOrDie(k.Config)
	ctx := t.Context()
	agent := &nodeagent.Agent{Client: cs, NodeName: "test-node-a", Dir: t.TempDir(), Log: testr.New(t),
		Backoff: 200 * time.Millisecond,
		Images:  map[string]nodeagent.Image{"busybox": {Path: "/bin/sh"}}}
	actx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { _ = agent.Run(actx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })

	ns := "agent-" + testenv.RandomName("")
	must[any](t)(cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}))
	must[any](t)(cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		StringData: map[string]string{"word": "segredo"}}, metav1.CreateOptions{}))
	marker := t.TempDir() + "/init-ran"
	labels := map[string]string{"app": "demo"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "demo", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					InitContainers: []corev1.Container{{Name: "flaky-init", Image: "busybox:1.36",
						// Fails the first time, then succeeds: the agent must retry it.
						Args: []string{"-c", `if [ -e "$M" ]; then echo second; else touch "$M"; exit 3; fi`},
						Env:  []corev1.EnvVar{{Name: "M", Value: marker}}}},
					Containers: []corev1.Container{{Name: "main", Image: "busybox",
						Args: []string{"-c", `echo "pod=$POD ns=$NS secret=$W"; exec sleep 600`},
						Env: []corev1.EnvVar{
							{Name: "POD", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
							{Name: "NS", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
							{Name: "W", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
								LocalObjectReference: corev1.LocalObjectReference{Name: "s"}, Key: "word"}}},
						}}},
				},
			},
		},
	}
	must[any](t)(cs.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}))
	pod := waitPod(t, cs, ns, "app=demo", func(p *corev1.Pod) bool { return p.Status.Phase == corev1.PodRunning })
	if rc := pod.Status.InitContainerStatuses[0].RestartCount; rc != 1 {
		t.Errorf("init container restarts = %d, want 1", rc)
	}
	waitFor(t, func() bool {
		return strings.Contains(agent.Logs(ns, pod.Name, pod.UID, "main"), "pod="+pod.Name+" ns="+ns+" secret=segredo")
	}, "the container's env")

	if err := cs.CoreV1().Pods(ns).Delete(ctx, pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	next := waitPod(t, cs, ns, "app=demo", func(p *corev1.Pod) bool { return p.UID != pod.UID && p.Status.Phase == corev1.PodRunning })
	waitFor(t, func() bool {
		_, err := cs.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		return err != nil
	}, "the deleted pod to go")
	_ = next

	job := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "once", Namespace: ns},
		Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "c", Image: "busybox", Args: []string{"-c", "exit 0"}}}}}},
	}
	must[any](t)(cs.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}))
	waitFor(t, func() bool {
		j, err := cs.BatchV1().Jobs(ns).Get(ctx, "once", metav1.GetOptions{})
		return err == nil && j.Status.Succeeded == 1
	}, "the job to succeed")
}

// must fails the test on the error of a (value, error) call.
func must[T any](t *testing.T) func(T, error) {
	return func(_ T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
}

func waitPod(t *testing.T, cs kubernetes.Interface, ns, sel string, ok func(*corev1.Pod) bool) *corev1.Pod {
	t.Helper()
	var found *corev1.Pod
	waitFor(t, func() bool {
		l, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false
		}
		for i := range l.Items {
			if ok(&l.Items[i]) {
				found = &l.Items[i]
				return true
			}
		}
		return false
	}, "a pod "+sel)
	return found
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, 60*time.Second, true, func(context.Context) (bool, error) { return cond(), nil })
	if err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

package nodeagent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
)

// podRun is one pod's life on the fake node.
type podRun struct {
	agent  *Agent
	pod    *corev1.Pod
	cancel context.CancelFunc
	done   chan struct{}
	dir    string

	mu     sync.Mutex
	status corev1.PodStatus
	mounts map[string]map[string]string // container → mountPath → host dir
}

func (r *podRun) log() string { return r.pod.Namespace + "/" + r.pod.Name }

func (r *podRun) run(ctx context.Context) {
	if err := r.prepareVolumes(); err != nil {
		r.agent.Log.Error(err, "preparing volumes", "pod", r.log())
		return
	}
	now := metav1.Now()
	r.update(ctx, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodPending
		s.HostIP, s.PodIP = "127.0.0.1", "127.0.0.1"
		s.PodIPs = []corev1.PodIP{{IP: "127.0.0.1"}}
		s.StartTime = &now
		setCondition(s, corev1.PodScheduled, true, "")
		setCondition(s, corev1.PodInitialized, len(r.pod.Spec.InitContainers) == 0, "ContainersNotInitialized")
		setCondition(s, corev1.PodReady, false, "ContainersNotReady")
		setCondition(s, corev1.ContainersReady, false, "ContainersNotReady")
	})
	for _, c := range r.pod.Spec.InitContainers {
		for attempt := int32(0); ; attempt++ {
			code := r.runContainer(ctx, c, true, attempt)
			if ctx.Err() != nil {
				return
			}
			if code == 0 {
				break
			}
			if r.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				r.update(ctx, func(s *corev1.PodStatus) { s.Phase = corev1.PodFailed; s.Reason = "InitContainerFailed" })
				return
			}
			if !r.sleep(ctx, r.backoff(attempt), c.Name, true, attempt) {
				return
			}
		}
	}
	r.update(ctx, func(s *corev1.PodStatus) { setCondition(s, corev1.PodInitialized, true, "") })

	var wg sync.WaitGroup
	results := make([]int, len(r.pod.Spec.Containers))
	for i, c := range r.pod.Spec.Containers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for attempt := int32(0); ; attempt++ {
				code := r.runContainer(ctx, c, false, attempt)
				results[i] = code
				if ctx.Err() != nil {
					return
				}
				restart := r.pod.Spec.RestartPolicy == corev1.RestartPolicyAlways ||
					(r.pod.Spec.RestartPolicy == corev1.RestartPolicyOnFailure && code != 0)
				if !restart || !r.sleep(ctx, r.backoff(attempt), c.Name, false, attempt) {
					return
				}
			}
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	phase := corev1.PodSucceeded
	for _, code := range results {
		if code != 0 {
			phase = corev1.PodFailed
		}
	}
	r.update(ctx, func(s *corev1.PodStatus) {
		s.Phase = phase
		setCondition(s, corev1.PodReady, false, "PodCompleted")
		setCondition(s, corev1.ContainersReady, false, "PodCompleted")
	})
}

func (r *podRun) backoff(attempt int32) time.Duration {
	return min(r.agent.Backoff<<min(attempt, 3), r.agent.Backoff*8)
}

// sleep waits out a restart backoff, showing CrashLoopBackOff meanwhile.
func (r *podRun) sleep(ctx context.Context, d time.Duration, name string, init bool, attempt int32) bool {
	r.update(ctx, func(s *corev1.PodStatus) {
		cs := containerStatus(s, name, init)
		cs.LastTerminationState = cs.State
		cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container", d)}}
		cs.RestartCount = attempt + 1
	})
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// runContainer runs one container to its end and returns its exit code.
func (r *podRun) runContainer(ctx context.Context, c corev1.Container, init bool, attempt int32) int {
	img, ok := r.agent.lookupImage(c.Image)
	if !ok {
		r.update(ctx, func(s *corev1.PodStatus) {
			containerStatus(s, c.Name, init).State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "ErrImagePull", Message: fmt.Sprintf("the test node has no binary for image %q", c.Image)}}
		})
		return 127
	}
	env, err := r.resolveEnv(ctx, c)
	if err != nil {
		r.update(ctx, func(s *corev1.PodStatus) {
			containerStatus(s, c.Name, init).State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
				Reason: "CreateContainerConfigError", Message: err.Error()}}
		})
		return 126
	}
	env = append(append(env, img.Env...), "PATH="+os.Getenv("PATH"), "HOME="+r.dir)
	vars := map[string]string{}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		vars[k] = v
	}
	var args []string
	for _, a := range c.Args {
		args = append(args, expand(a, vars))
	}
	logf, err := os.OpenFile(filepath.Join(r.dir, c.Name+".log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return 125
	}
	defer logf.Close()
	cmd := exec.Command(img.Path, args...)
	cmd.Env = env
	cmd.Dir = r.dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	started := metav1.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(logf, "nodeagent: starting %s: %v\n", img.Path, err)
		return 128
	}
	r.update(ctx, func(s *corev1.PodStatus) {
		cs := containerStatus(s, c.Name, init)
		cs.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
		cs.RestartCount, cs.Started = attempt, new(bool)
		*cs.Started = true
		if !init {
			cs.Ready = true
			if r.allRunning(s) {
				s.Phase = corev1.PodRunning
				setCondition(s, corev1.ContainersReady, true, "")
				setCondition(s, corev1.PodReady, true, "")
			}
		} else {
			s.Phase = corev1.PodPending
		}
	})
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-exited:
	case <-ctx.Done():
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case werr = <-exited:
		case <-time.After(r.grace()):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			werr = <-exited
		}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(werr, &ee) {
		code = ee.ExitCode()
		if code < 0 {
			code = 137
		}
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	finished := metav1.Now()
	r.update(context.WithoutCancel(ctx), func(s *corev1.PodStatus) {
		cs := containerStatus(s, c.Name, init)
		cs.State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: int32(code), Reason: reason, StartedAt: started, FinishedAt: finished}}
		cs.Ready = false
		if !init {
			setCondition(s, corev1.ContainersReady, false, "ContainersNotReady")
			setCondition(s, corev1.PodReady, false, "ContainersNotReady")
		}
	})
	return code
}

func (r *podRun) grace() time.Duration {
	if g := r.pod.Spec.TerminationGracePeriodSeconds; g != nil && *g < 10 {
		return time.Duration(*g) * time.Second
	}
	return 10 * time.Second
}

func (r *podRun) allRunning(s *corev1.PodStatus) bool {
	if len(s.ContainerStatuses) != len(r.pod.Spec.Containers) {
		return false
	}
	for _, cs := range s.ContainerStatuses {
		if cs.State.Running == nil {
			return false
		}
	}
	return true
}

func (a *Agent) lookupImage(ref string) (Image, bool) {
	if img, ok := a.Images[ref]; ok {
		return img, true
	}
	name := ref
	if i := strings.LastIndex(ref, ":"); i > strings.LastIndex(ref, "/") {
		name = ref[:i]
	}
	img, ok := a.Images[name]
	return img, ok
}

// update changes the local status and writes it to the API (retrying conflicts).
func (r *podRun) update(ctx context.Context, change func(*corev1.PodStatus)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	change(&r.status)
	status := *r.status.DeepCopy()
	pods := r.agent.Client.CoreV1().Pods(r.pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		cur, err := pods.Get(ctx, r.pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != r.pod.UID {
			return apierrors.NewNotFound(corev1.Resource("pods"), r.pod.Name)
		}
		cur.Status = status
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		r.agent.Log.Error(err, "updating pod status", "pod", r.log())
	}
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, ok bool, reason string) {
	st := corev1.ConditionFalse
	if ok {
		st, reason = corev1.ConditionTrue, ""
	}
	for i := range s.Conditions {
		if s.Conditions[i].Type == t {
			if s.Conditions[i].Status != st {
				s.Conditions[i].LastTransitionTime = metav1.Now()
			}
			s.Conditions[i].Status, s.Conditions[i].Reason = st, reason
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: st, Reason: reason, LastTransitionTime: metav1.Now()})
}

func containerStatus(s *corev1.PodStatus, name string, init bool) *corev1.ContainerStatus {
	list := &s.ContainerStatuses
	if init {
		list = &s.InitContainerStatuses
	}
	for i := range *list {
		if (*list)[i].Name == name {
			return &(*list)[i]
		}
	}
	*list = append(*list, corev1.ContainerStatus{Name: name, Image: name, ImageID: "nodeagent://" + name})
	return &(*list)[len(*list)-1]
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

// expand replaces $(VAR) with defined variables, as the kubelet does; $$ escapes.
func expand(s string, vars map[string]string) string {
	s = varRef.ReplaceAllStringFunc(s, func(m string) string {
		if v, ok := vars[m[2:len(m)-1]]; ok {
			return v
		}
		return m
	})
	return strings.ReplaceAll(s, "$$", "$")
}

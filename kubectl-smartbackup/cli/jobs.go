package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/internal/inventory"
	"github.com/smartbackup/smartbackup/internal/layout"
)

// AnnotationInstantiate is what `kubectl create job --from=cronjob/…` sets on a Job it
// makes from a CronJob.
const AnnotationInstantiate = "cronjob.kubernetes.io/instantiate"

// JobFromCronJob is the Job `kubectl create job --from=cronjob/NAME` would make: the
// CronJob's job template, owned by the CronJob (so its history limits and the
// namespace's deletion clean it up), named NAME-manual-<random>.
func JobFromCronJob(cj *batchv1.CronJob) *batchv1.Job {
	t := cj.Spec.JobTemplate
	annotations := map[string]string{AnnotationInstantiate: "manual"}
	for k, v := range t.Annotations {
		annotations[k] = v
	}
	return &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{
			GenerateName:    cj.Name + "-manual-",
			Namespace:       cj.Namespace,
			Labels:          t.Labels,
			Annotations:     annotations,
			OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(cj, batchv1.SchemeGroupVersion.WithKind("CronJob"))},
		},
		Spec: *t.Spec.DeepCopy(),
	}
}

func startJob(ctx context.Context, env *Env, c Command) error {
	ns := c.Namespaces[0]
	name := contract.BackupCronJobName
	if c.Verb == VerbVerify {
		name = contract.VerifyCronJobName
	}
	cj, err := env.Client.BatchV1().CronJobs(ns).Get(ctx, name, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err) && c.Verb == VerbVerify:
		return fmt.Errorf("namespace %q has no CronJob %s: is it enabled, and verification on (chart value verify.enabled)?", ns, name)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("namespace %q has no CronJob %s: is it enabled (label %s=true)? its SmartbackupBackupNotScheduled Events say why not", ns, name, contract.LabelEnabled)
	case err != nil:
		return fmt.Errorf("reading CronJob %s/%s: %w", ns, name, err)
	}
	if cj.Spec.Suspend != nil && *cj.Spec.Suspend {
		return fmt.Errorf("CronJob %s/%s is suspended (the namespace left smartbackup): not starting it", ns, name)
	}
	job, err := env.Client.BatchV1().Jobs(ns).Create(ctx, JobFromCronJob(cj), metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("creating a Job from CronJob %s/%s: %w", ns, name, err)
	}
	fmt.Fprintf(env.Out, "job.batch/%s created in %s\n", job.Name, ns)
	if !c.Wait {
		fmt.Fprintf(env.Out, "# follow it: kubectl logs -n %s job/%s -f\n", ns, job.Name)
		return nil
	}
	done, err := waitJob(ctx, env, job)
	if err != nil {
		return err
	}
	return reportJob(ctx, env, c.Verb, cj, done)
}

// waitJob polls the Job until it completes or fails.
func waitJob(ctx context.Context, env *Env, job *batchv1.Job) (*batchv1.Job, error) {
	tick := time.NewTicker(env.Poll)
	defer tick.Stop()
	for {
		j, err := env.Client.BatchV1().Jobs(job.Namespace).Get(ctx, job.Name, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("reading Job %s/%s: %w", job.Namespace, job.Name, err)
		}
		for _, cond := range j.Status.Conditions {
			if (cond.Type == batchv1.JobComplete || cond.Type == batchv1.JobFailed) && cond.Status == corev1.ConditionTrue {
				return j, nil
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("waiting for Job %s/%s: %w", job.Namespace, job.Name, ctx.Err())
		case <-tick.C:
		}
	}
}

// reportJob prints a finished Job's outcome: the backup's summary (its termination
// message), or the verification's verdict from the store.
func reportJob(ctx context.Context, env *Env, verb string, cj *batchv1.CronJob, j *batchv1.Job) error {
	failed := j.Status.Failed > 0 && j.Status.Succeeded == 0
	s, summarized := jobSummary(ctx, env, j)
	if summarized {
		fmt.Fprintf(env.Out, "%s %s: %s", verb, j.Name, s.Outcome)
		if s.Object != "" {
			fmt.Fprintf(env.Out, ", %s sha256 %s", s.Object, s.SHA256)
		}
		fmt.Fprintf(env.Out, " in %.0fs", s.Seconds)
		if s.ExitCode != 0 {
			fmt.Fprintf(env.Out, ", exit %d (%s)", s.ExitCode, s.Reason)
		}
		fmt.Fprintln(env.Out)
	}
	if verb == VerbVerify {
		if err := reportVerification(ctx, env, cj, j); err != nil {
			return err
		}
	}
	if failed {
		return fmt.Errorf("the Job %s/%s failed: kubectl logs -n %s job/%s", j.Namespace, j.Name, j.Namespace, j.Name)
	}
	if verb == VerbBackup && !summarized {
		fmt.Fprintf(env.Out, "%s %s: succeeded (its pod is gone: no summary)\n", verb, j.Name)
	}
	return nil
}

// jobSummary is the termination message of the Job's last pod, when it is a summary.
func jobSummary(ctx context.Context, env *Env, j *batchv1.Job) (contract.Summary, bool) {
	pods, err := env.Client.CoreV1().Pods(j.Namespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + j.Name})
	if err != nil {
		return contract.Summary{}, false
	}
	var best contract.Summary
	var at time.Time
	found := false
	for _, p := range pods.Items {
		for _, cs := range p.Status.ContainerStatuses {
			t := cs.State.Terminated
			if t == nil || t.Message == "" || t.FinishedAt.Time.Before(at) {
				continue
			}
			if s, err := contract.ParseSummary(t.Message); err == nil {
				best, at, found = s, t.FinishedAt.Time, true
			}
		}
	}
	return best, found
}

// reportVerification prints the verdict written beside the latest backup by a
// verification that finished after the Job started.
func reportVerification(ctx context.Context, env *Env, cj *batchv1.CronJob, j *batchv1.Job) error {
	url := storageURL(cj)
	if url == "" {
		return errors.New("the verify CronJob names no store: its verdict cannot be read")
	}
	stores := storeCache{env: env}
	defer stores.close()
	st, err := stores.open(ctx, url)
	if err != nil {
		return err
	}
	inv, err := inventory.Take(ctx, st, j.Namespace, false)
	if err != nil {
		return err
	}
	v := inv.Verification
	started := j.CreationTimestamp.Time.Add(-time.Second)
	switch {
	case v == nil || v.FinishedAt.Before(started):
		return fmt.Errorf("no verification result newer than Job %s in the store (the Job failed before writing one?)", j.Name)
	case v.Problem != "":
		return errors.New(v.Problem)
	}
	fmt.Fprintf(env.Out, "verification of %s: %s\n", v.Object, v.Verdict)
	for _, f := range v.Failures {
		fmt.Fprintf(env.Out, "  %s\n", f)
	}
	if v.Verdict != layout.VerdictPassed {
		return fmt.Errorf("%s did not verify", v.Object)
	}
	return nil
}

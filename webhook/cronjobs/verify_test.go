package cronjobs_test

import (
	"fmt"
	"regexp"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
)

// TestVerifySchedule: each namespace verifies weekly at a minute of VERIFY_WINDOW its
// name gives, on VERIFY_WEEKDAY (the next day for a start past midnight), the same
// every time; a fleet's starts spread over the window.
func TestVerifySchedule(t *testing.T) {
	cfg := configtest.New(t, map[string]string{"VERIFY_WINDOW": "23:00-03:00", "VERIFY_WEEKDAY": "6"})
	re := regexp.MustCompile(`^(\d+) (\d+) \* \* (\d)$`)
	minutes := map[int]int{}
	for i := range 500 {
		ns := fmt.Sprintf("cliente-%03d-prd", i)
		s := cronjobs.VerifySchedule(ns, cfg)
		if again := cronjobs.VerifySchedule(ns, cfg); again != s {
			t.Fatalf("%s: %q then %q", ns, s, again)
		}
		m := re.FindStringSubmatch(s)
		if m == nil {
			t.Fatalf("%s: schedule %q", ns, s)
		}
		var minute, hour, day int
		fmt.Sscan(m[1]+" "+m[2]+" "+m[3], &minute, &hour, &day)
		switch {
		case hour == 23 && day == 6, hour < 3 && day == 0:
		default:
			t.Fatalf("%s: %q is outside Saturday 23:00 to Sunday 03:00", ns, s)
		}
		minutes[(hour*60+minute-23*60+24*60)%(24*60)]++
	}
	if len(minutes) < 240*3/4 {
		t.Errorf("500 namespaces start on only %d of the window's 240 minutes", len(minutes))
	}
}

// TestVerifyCronJobOnTheAPIServer: an enabled namespace gets smartbackup-verify next to
// its backup CronJob (args verify, the admin keys of its Secret by reference, its
// verification server annotation); an invalid annotation is an Event and changes
// nothing; VERIFY_ENABLED=false removes it; so does a namespace no longer enabled,
// whose backup CronJob is only suspended.
func TestVerifyCronJobOnTheAPIServer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c, err := client.New(kube.Config, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := configtest.New(t, nil)
	stop := startReconciler(t, kube, cfg)

	name := testenv.RandomName("verified-")
	ns := enabledNamespace(name)
	ns.Annotations[contract.AnnotationVerifyEndpoint] = "verify-db.internal:5433"
	if err := c.Create(t.Context(), ns); err != nil {
		t.Fatal(err)
	}
	get := func(cronJob string) (*batchv1.CronJob, error) {
		var cj batchv1.CronJob
		err := c.Get(t.Context(), client.ObjectKey{Namespace: name, Name: cronJob}, &cj)
		return &cj, err
	}
	var cj *batchv1.CronJob
	eventually(t, 30*time.Second, func() error {
		cj, err = get(contract.VerifyCronJobName)
		return err
	})
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	if got := pod.Containers[0].Args; len(got) != 1 || got[0] != "verify" {
		t.Errorf("args %q", got)
	}
	if cj.Spec.Schedule != cronjobs.VerifySchedule(name, cfg) || cj.Labels[cronjobs.LabelComponent] != cronjobs.ComponentVerify ||
		cj.Labels[contract.LabelManagedBy] != contract.ManagedBy || *cj.Spec.Suspend {
		t.Errorf("CronJob %+v %q", cj.Labels, cj.Spec.Schedule)
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range pod.Containers[0].Env {
		env[e.Name] = e
	}
	for _, k := range []string{contract.EnvDatabaseAdminUser, contract.EnvDatabaseAdminPassword} {
		if e := env[k]; e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil || e.ValueFrom.SecretKeyRef.Key != k {
			t.Errorf("%s: %+v, want a reference to the Secret's key", k, e)
		}
	}
	for k, v := range map[string]string{contract.EnvVerifyDatabaseEndpoint: "verify-db.internal", contract.EnvVerifyDatabasePort: "5433",
		contract.EnvDatabaseEndpoint: "db.shared-1.internal"} {
		if env[k].Value != v {
			t.Errorf("%s = %q, want %q", k, env[k].Value, v)
		}
	}
	for _, k := range []string{contract.EnvDatabaseUser, contract.EnvDatabasePassword} {
		if _, ok := env[k]; ok {
			t.Errorf("the verification gets the application role's %s", k)
		}
	}
	// The backup CronJob's volumes and mounts, whatever they are.
	backup, err := get(contract.BackupCronJobName)
	if err != nil {
		t.Fatal(err)
	}
	bpod := backup.Spec.JobTemplate.Spec.Template.Spec
	if fmt.Sprint(bpod.Volumes) != fmt.Sprint(pod.Volumes) || fmt.Sprint(bpod.Containers[0].VolumeMounts) != fmt.Sprint(pod.Containers[0].VolumeMounts) {
		t.Errorf("verify volumes %v %v, backup's %v %v", pod.Volumes, pod.Containers[0].VolumeMounts, bpod.Volumes, bpod.Containers[0].VolumeMounts)
	}

	update := func(change func(*corev1.Namespace)) {
		t.Helper()
		eventually(t, 20*time.Second, func() error {
			if err := c.Get(t.Context(), client.ObjectKey{Name: name}, ns); err != nil {
				return err
			}
			change(ns)
			return c.Update(t.Context(), ns)
		})
	}
	endpoint := func() (string, error) {
		cj, err := get(contract.VerifyCronJobName)
		if err != nil {
			return "", err
		}
		for _, e := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers[0].Env {
			if e.Name == contract.EnvVerifyDatabaseEndpoint {
				return e.Value, nil
			}
		}
		return "", nil
	}
	update(func(n *corev1.Namespace) { n.Annotations[contract.AnnotationVerifyEndpoint] = "verify db" })
	waitEvent(t, c, name, corev1.EventTypeWarning, cronjobs.EventBackupNotScheduled, contract.AnnotationVerifyEndpoint)
	if got, err := endpoint(); err != nil || got != "verify-db.internal" {
		t.Errorf("an invalid annotation changed the verify CronJob: endpoint %q, %v", got, err)
	}
	update(func(n *corev1.Namespace) { delete(n.Annotations, contract.AnnotationVerifyEndpoint) })
	eventually(t, 30*time.Second, func() error {
		if got, err := endpoint(); err != nil || got != "" {
			return fmt.Errorf("still verifying on %q (%v)", got, err)
		}
		return nil
	})

	gone := func(step string) {
		t.Helper()
		eventually(t, 30*time.Second, func() error {
			if _, err := get(contract.VerifyCronJobName); !apierrors.IsNotFound(err) {
				return fmt.Errorf("%s: verify CronJob still there (%v)", step, err)
			}
			return nil
		})
	}
	// Not enabled: the backup CronJob is suspended, the verify CronJob goes; enabled
	// again, it is back.
	update(func(n *corev1.Namespace) { n.Labels[contract.LabelEnabled] = "false" })
	eventually(t, 30*time.Second, func() error {
		b, err := get(contract.BackupCronJobName)
		if err != nil || b.Spec.Suspend == nil || !*b.Spec.Suspend {
			return fmt.Errorf("backup CronJob not suspended (%v)", err)
		}
		return nil
	})
	gone("not enabled")
	update(func(n *corev1.Namespace) { n.Labels[contract.LabelEnabled] = "true" })
	eventually(t, 30*time.Second, func() error {
		_, err := get(contract.VerifyCronJobName)
		return err
	})

	// The off switch.
	stop()
	startReconciler(t, kube, configtest.New(t, map[string]string{"VERIFY_ENABLED": "false"}))
	update(func(n *corev1.Namespace) { n.Annotations["touch"] = "1" })
	gone("VERIFY_ENABLED=false")
	if b, err := get(contract.BackupCronJobName); err != nil || *b.Spec.Suspend {
		t.Errorf("backup CronJob: %v", err)
	}
}

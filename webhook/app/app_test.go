package app_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"maps"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/admission"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// TestWebhook runs the webhook in this process against a real kube-apiserver: the
// apiserver calls it over TLS on loopback through the MutatingWebhookConfiguration
// WebhookConfiguration defines (with envtest's CA), pods are created through the API,
// and the CronJob reconciler runs in the same manager (cert-manager TLS mode: the
// server only watches its cert directory).
func TestWebhook(t *testing.T) {
	if testing.Short() {
		t.Skip("needs kube-apiserver and etcd")
	}
	kube := testenv.StartKube(t)
	c := newClient(t, kube)

	certs, cfg := runWebhook(t, kube.Config, map[string]string{
		"SYNC_TARGET_URL": "s3://rubrik-archive/smarterp",
		"SYNC_NAMESPACE":  testenv.RandomName("smartbackup-"),
		// One fixed start, so that want() knows it (the window's spread is
		// webhook/cronjobs's test).
		"BACKUP_SCHEDULE": "0 21 * * *",
	})

	url := fmt.Sprintf("https://127.0.0.1:%d%s", certs.LocalServingPort, admission.Path)
	own := testenv.RandomName("smartbackup-system-")
	registerWebhook(t, c, testenv.RandomName("smartbackup-webhook-"), own, url, certs.LocalServingCAData)
	probe := testenv.RandomName("probe-")
	createNamespace(t, c, probe, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "probe", ""))
	waitInjecting(t, c, probe, contract.ProductSistemico)

	// One production namespace per customer, shared by the cases below.
	acmePrd, globexPrd := testenv.RandomName("acme-prd-"), testenv.RandomName("globex-prd-")
	createNamespace(t, c, acmePrd, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "acme", ""))
	createNamespace(t, c, globexPrd, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "globex", ""))

	t.Run("the webhook server speaks HTTP/1.1 only", func(t *testing.T) {
		conn, err := tls.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", certs.LocalServingPort),
			&tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if got := conn.ConnectionState().NegotiatedProtocol; got != "http/1.1" {
			t.Errorf("negotiated %q with a client offering h2, want http/1.1", got)
		}
	})

	t.Run("pods come back injected or untouched", func(t *testing.T) {
		cases := map[string]struct {
			labels   map[string]string // of the namespace
			pod      func(ns string) *corev1.Pod
			injected bool
			source   func(ns string) string
		}{
			"a dbaccess pod of an opted-in production namespace restores its own backup": {
				labels:   nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""),
				pod:      func(ns string) *corev1.Pod { return dbaccessPod(ns, contract.ProductSmartERP) },
				injected: true, source: func(ns string) string { return ns },
			},
			"a dbaccess pod of a homologation namespace restores its customer's production": {
				labels:   nsLabels(contract.ProductSmartERP, contract.EnvironmentHomologation, "acme", acmePrd),
				pod:      func(ns string) *corev1.Pod { return dbaccessPod(ns, contract.ProductSmartERP) },
				injected: true, source: func(string) string { return acmePrd },
			},
			"a dbaccess pod of a namespace that did not opt in is untouched": {
				labels: map[string]string{contract.LabelProduct: contract.ProductSmartERP, contract.LabelEnvironment: contract.EnvironmentProduction},
				pod:    func(ns string) *corev1.Pod { return dbaccessPod(ns, contract.ProductSmartERP) },
			},
			"another pod of an opted-in namespace is untouched": {
				labels: nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""),
				pod: func(ns string) *corev1.Pod {
					p := dbaccessPod(ns, contract.ProductSmartERP)
					p.Labels[contract.LabelAppName] = "web"
					return p
				},
			},
			"a Smart eSocial dbaccess pod is untouched": {
				labels: nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""),
				pod:    func(ns string) *corev1.Pod { return dbaccessPod(ns, "smartesocial") },
			},
		}
		for name, tc := range cases {
			t.Run(name, func(t *testing.T) {
				ns := testenv.RandomName("ns-")
				n := createNamespace(t, c, ns, tc.labels)
				submitted := tc.pod(ns)
				p := submitted.DeepCopy()
				if err := c.Create(t.Context(), p); err != nil {
					t.Fatalf("creating the pod: %v", err)
				}
				var got corev1.Pod
				if err := c.Get(t.Context(), client.ObjectKeyFromObject(p), &got); err != nil {
					t.Fatal(err)
				}
				if !tc.injected {
					if len(got.Spec.InitContainers) > 0 || got.Annotations[contract.AnnotationInjected] != "" {
						t.Fatalf("pod was injected: %+v", got.Spec.InitContainers)
					}
					return
				}
				s, d := inject.ParseNamespace(inject.Namespace{Name: ns, Labels: n.Labels, Annotations: n.Annotations}, cfg)
				if d != nil {
					t.Fatal(d)
				}
				want := submitted.DeepCopy()
				inject.Apply(want, s, cfg)
				init := got.Spec.InitContainers[0]
				if init.Name != contract.InitContainerName {
					t.Fatalf("first init container is %q", init.Name)
				}
				if diff := cmp.Diff(want.Spec.InitContainers[0].Env, init.Env); diff != "" {
					t.Errorf("init container env (-want +got):\n%s", diff)
				}
				if src := envValue(init.Env, contract.EnvRestoreSourceNamespace); src != tc.source(ns) {
					t.Errorf("RESTORE_SOURCE_NAMESPACE = %q, want %q", src, tc.source(ns))
				}
				// The pod as stored (after the apiserver's defaulting) still counts as
				// injected: a reinvocation changes nothing.
				if !inject.Injected(&got, s, cfg) {
					t.Error("the stored pod no longer counts as injected")
				}
			})
		}
	})

	t.Run("an injected pod resubmitted with a tampered restore comes back rebuilt", func(t *testing.T) {
		ns := testenv.RandomName("tamper-")
		n := createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""))
		s, d := inject.ParseNamespace(inject.Namespace{Name: ns, Labels: n.Labels, Annotations: n.Annotations}, cfg)
		if d != nil {
			t.Fatal(d)
		}
		p := dbaccessPod(ns, contract.ProductSmartERP)
		if _, d := inject.Apply(p, s, cfg); d != nil {
			t.Fatal(d)
		}
		want := p.DeepCopy()
		init := &p.Spec.InitContainers[0]
		init.Command = []string{"/bin/sh", "-c", "exit 0"}
		init.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "tenant"}}}}
		init.SecurityContext = nil
		for i := range p.Spec.Volumes {
			if p.Spec.Volumes[i].Name == inject.VolumeScratch {
				p.Spec.Volumes[i].VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}
			}
		}
		if err := c.Create(t.Context(), p); err != nil {
			t.Fatalf("creating the tampered pod: %v", err)
		}
		var got corev1.Pod
		if err := c.Get(t.Context(), client.ObjectKeyFromObject(p), &got); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want.Spec.InitContainers, got.Spec.InitContainers); diff != "" {
			t.Errorf("stored init containers differ from the namespace's injection (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(want.Spec.Volumes, got.Spec.Volumes); diff != "" {
			t.Errorf("stored volumes differ from the namespace's injection (-want +got):\n%s", diff)
		}
		if !inject.Injected(&got, s, cfg) {
			t.Error("the stored pod does not count as injected")
		}
	})

	t.Run("a pod pointing dbaccess at another database is denied, naming the annotation", func(t *testing.T) {
		ns := testenv.RandomName("conflict-")
		createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""))
		p := dbaccessPod(ns, contract.ProductSmartERP)
		p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: contract.EnvDatabaseEndpoint, Value: "postgres.globex-prd.svc"}}
		err := c.Create(t.Context(), p)
		if !apierrors.IsForbidden(err) {
			t.Fatalf("create = %v, want Forbidden", err)
		}
		for _, want := range []string{contract.EnvDatabaseEndpoint, contract.AnnotationDatabaseEndpoint, string(inject.ReasonEnvConflict)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("denial %q does not mention %q", err, want)
			}
		}
	})

	t.Run("behind native sidecars the restore runs after them, and the env reaches dbaccess", func(t *testing.T) {
		ns := testenv.RandomName("mesh-")
		createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "initech", ""))
		always := corev1.ContainerRestartPolicyAlways
		p := dbaccessPod(ns, contract.ProductSmartERP)
		p.Spec.InitContainers = []corev1.Container{
			{Name: "istio-init", Image: "istio/proxyv2:1.24"},
			{Name: "istio-proxy", Image: "istio/proxyv2:1.24", RestartPolicy: &always},
			{Name: "migrate", Image: "smarterp/migrate:7"},
		}
		p.Spec.Containers = append([]corev1.Container{{Name: "linkerd-proxy", Image: "linkerd/proxy:2.14"}}, corev1.Container{Name: "erp", Image: "smarterp/dbaccess:7"})
		if err := c.Create(t.Context(), p); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, ic := range p.Spec.InitContainers {
			names = append(names, ic.Name)
		}
		if want := []string{"istio-init", "istio-proxy", contract.InitContainerName, "migrate"}; !slices.Equal(names, want) {
			t.Errorf("init containers %v, want %v", names, want)
		}
		if envValue(p.Spec.Containers[0].Env, contract.EnvDatabaseEndpoint) != "" || envValue(p.Spec.Containers[1].Env, contract.EnvDatabaseEndpoint) == "" {
			t.Error("the database env went to linkerd-proxy instead of the dbaccess container")
		}
	})

	t.Run("the webhook's own namespace and kube-system are never sent to it, even when labelled", func(t *testing.T) {
		createNamespace(t, c, own, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "ops", ""))
		var ks corev1.Namespace
		if err := c.Get(t.Context(), client.ObjectKey{Name: metav1.NamespaceSystem}, &ks); err != nil {
			t.Fatal(err)
		}
		orig := ks.DeepCopy()
		maps.Copy(ks.Labels, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "ops", ""))
		ks.Annotations = map[string]string{contract.AnnotationDatabaseEndpoint: "postgres.kube-system.svc", contract.AnnotationDatabaseName: "erp"}
		if err := c.Update(t.Context(), &ks); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			var now corev1.Namespace
			if err := c.Get(context.Background(), client.ObjectKey{Name: metav1.NamespaceSystem}, &now); err == nil {
				now.Labels, now.Annotations = orig.Labels, orig.Annotations
				_ = c.Update(context.Background(), &now)
			}
		})
		for _, ns := range []string{own, metav1.NamespaceSystem} {
			p := dbaccessPod(ns, contract.ProductSmartERP)
			if err := c.Create(t.Context(), p); err != nil {
				t.Fatalf("creating a pod in %s: %v", ns, err)
			}
			if len(p.Spec.InitContainers) > 0 {
				t.Errorf("a pod in %s was injected", ns)
			}
		}
	})

	t.Run("a homologation namespace pointing at another customer's production is denied with an Event", func(t *testing.T) {
		ns := testenv.RandomName("acme-hml-")
		createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentHomologation, "acme", globexPrd))
		rs := replicaSet(t, c, ns)
		p := dbaccessPod(ns, contract.ProductSmartERP)
		p.OwnerReferences = []metav1.OwnerReference{*metav1.NewControllerRef(rs, appsv1.SchemeGroupVersion.WithKind("ReplicaSet"))}
		err := c.Create(t.Context(), p)
		if !apierrors.IsForbidden(err) {
			t.Fatalf("create = %v, want Forbidden", err)
		}
		for _, want := range []string{admission.WebhookName, fmt.Sprintf("may not restore from %q", globexPrd), string(inject.ReasonSourceOtherCustomer)} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("denial %q does not mention %q", err, want)
			}
		}
		waitEvent(t, c, ns, "ReplicaSet", rs.Name, admission.EventRestoreSourceDenied, "may not restore from")
	})

	t.Run("the reconciler creates, updates and deletes the backup CronJob as namespace labels change", func(t *testing.T) {
		ns := testenv.RandomName("cron-")
		n := createNamespace(t, c, ns, nsLabels(contract.ProductSmartERP, contract.EnvironmentProduction, "acme", ""))
		steps := []struct {
			name   string
			change func(*corev1.Namespace)
			want   func(*corev1.Namespace) *batchv1.CronJob // nil: no CronJob
			event  string                                   // a Warning Event on the namespace mentioning this
		}{
			{name: "an opted-in namespace gets the 21:00 CronJob", want: want(cfg)},
			{name: "a schedule annotation moves it", want: want(cfg), change: func(n *corev1.Namespace) {
				n.Annotations[contract.AnnotationBackupSchedule] = "30 22 * * *"
			}},
			{name: "a new database endpoint reaches its env", want: want(cfg), change: func(n *corev1.Namespace) {
				n.Annotations[contract.AnnotationDatabaseEndpoint] = "10.1.2.3"
				n.Annotations[contract.AnnotationDatabaseSecret] = "erp-db"
			}},
			{name: "another product moves it to that product's bucket", want: want(cfg), change: func(n *corev1.Namespace) {
				n.Labels[contract.LabelProduct] = contract.ProductSistemico
			}},
			{
				name: "invalid settings keep the last good CronJob and say why in an Event",
				change: func(n *corev1.Namespace) {
					n.Annotations[contract.AnnotationDatabasePort] = "not-a-port"
				},
				want: func(n *corev1.Namespace) *batchv1.CronJob {
					prev := n.DeepCopy()
					delete(prev.Annotations, contract.AnnotationDatabasePort)
					return want(cfg)(prev)
				},
				event: contract.AnnotationDatabasePort,
			},
			{name: "opting out suspends it (kept, see webhook/cronjobs)", want: want(cfg), change: func(n *corev1.Namespace) {
				delete(n.Annotations, contract.AnnotationDatabasePort)
				n.Labels[contract.LabelEnabled] = "false"
			}},
			{name: "the opt-out annotation deletes it", change: func(n *corev1.Namespace) {
				n.Annotations[contract.AnnotationBackupOptOut] = "true"
			}},
			{name: "opting in again recreates it", want: want(cfg), change: func(n *corev1.Namespace) {
				delete(n.Annotations, contract.AnnotationBackupOptOut)
				n.Labels[contract.LabelEnabled] = "true"
			}},
		}
		for _, st := range steps {
			if st.change != nil {
				if err := c.Get(t.Context(), client.ObjectKey{Name: ns}, n); err != nil {
					t.Fatal(err)
				}
				st.change(n)
				if err := c.Update(t.Context(), n); err != nil {
					t.Fatalf("%s: updating the namespace: %v", st.name, err)
				}
			}
			waitCronJob(t, c, ns, contract.BackupCronJobName, st.name, func() *batchv1.CronJob {
				if st.want == nil {
					return nil
				}
				return st.want(n)
			}())
			if st.event != "" {
				waitEvent(t, c, ns, "Namespace", ns, cronjobs.EventBackupNotScheduled, st.event)
			}
		}

		// A hand edit is reverted by the next reconcile (the CronJob watch).
		var cj batchv1.CronJob
		if err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: contract.BackupCronJobName}, &cj); err != nil {
			t.Fatal(err)
		}
		cj.Spec.Schedule = "* * * * *"
		if err := c.Update(t.Context(), &cj); err != nil {
			t.Fatal(err)
		}
		waitCronJob(t, c, ns, contract.BackupCronJobName, "a hand edit is reverted", want(cfg)(n))
	})

	t.Run("the 06:00 sync CronJob appears in the operator's namespace", func(t *testing.T) {
		if err := c.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: cfg.SyncNamespace}}); err != nil {
			t.Fatal(err)
		}
		waitCronJob(t, c, cfg.SyncNamespace, contract.SyncCronJobName, "sync", cronjobs.Sync(cfg))
	})

	t.Run("admission latency of 200 pod creates", func(t *testing.T) {
		enabled, plain := testenv.RandomName("latency-"), testenv.RandomName("baseline-")
		createNamespace(t, c, enabled, nsLabels(contract.ProductSistemico, contract.EnvironmentProduction, "perf", ""))
		createNamespace(t, c, plain, map[string]string{contract.LabelProduct: contract.ProductSistemico})
		_ = latencies(t, c, plain, contract.ProductSistemico, 20) // warm up connections
		base := latencies(t, c, plain, contract.ProductSistemico, 200)
		with := latencies(t, c, enabled, contract.ProductSistemico, 200)
		runtime.GC()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		t.Logf("METRIC admission mode=in-process creates=200 p50=%s p99=%s baseline_p50=%s baseline_p99=%s heap_inuse=%s rss=%s (heap and RSS of the whole test process)",
			ms(quantile(with, .5)), ms(quantile(with, .99)), ms(quantile(base, .5)), ms(quantile(base, .99)),
			mib(float64(ms0.HeapInuse)), mib(procStatus(t, "self", "VmRSS")))
		var pods corev1.PodList
		if err := c.List(t.Context(), &pods, client.InNamespace(enabled)); err != nil {
			t.Fatal(err)
		}
		if len(pods.Items) != 200 || slices.ContainsFunc(pods.Items, func(p corev1.Pod) bool { return len(p.Spec.InitContainers) == 0 }) {
			t.Errorf("of %d pods created in the opted-in namespace, not all were injected", len(pods.Items))
		}
	})

	t.Run("the log says why and never holds a secret", func(t *testing.T) {
		out := logs.String()
		for _, want := range []string{`"msg":"pod injected"`, `"msg":"pod denied"`, `"reason":"source_other_customer"`} {
			if !strings.Contains(out, want) {
				t.Errorf("log lacks %s", want)
			}
		}
		if strings.Contains(out, "secretKeyRef") || strings.Contains(strings.ToLower(out), "password\":") {
			t.Error("log mentions secret material")
		}
	})
}

// waitEvent waits for a Warning Event about kind/name in ns with reason and a note
// containing note.
func waitEvent(t *testing.T, c client.Client, ns, kind, name, reason, note string) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		var evs eventsv1.EventList
		if err := c.List(t.Context(), &evs, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range evs.Items {
			if e.Regarding.Kind == kind && e.Regarding.Name == name && e.Reason == reason &&
				e.Type == corev1.EventTypeWarning && strings.Contains(e.Note, note) {
				return nil
			}
		}
		return fmt.Errorf("no %s Event on %s %s among %d", reason, kind, name, len(evs.Items))
	})
}

func envValue(env []corev1.EnvVar, name string) string {
	for _, e := range env {
		if e.Name == name {
			return e.Value
		}
	}
	return ""
}

// want is the CronJob the builders make for a namespace's current metadata.
func want(cfg *config.Config) func(*corev1.Namespace) *batchv1.CronJob {
	return func(n *corev1.Namespace) *batchv1.CronJob {
		in := inject.Namespace{Name: n.Name, Labels: n.Labels, Annotations: n.Annotations}
		s, d := inject.ParseBackup(in, cfg)
		if d != nil {
			panic(d)
		}
		p, err := cronjobs.PlanFor(in, cfg)
		if err != nil {
			panic(err)
		}
		return cronjobs.Backup(s, p, cfg)
	}
}

// waitCronJob waits until the stored CronJob matches want in everything the builders
// set (nil: until it is gone).
func waitCronJob(t *testing.T, c client.Client, ns, name, step string, want *batchv1.CronJob) {
	t.Helper()
	eventually(t, 20*time.Second, func() error {
		var got batchv1.CronJob
		err := c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, &got)
		if want == nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("%s: CronJob still there (%v)", step, err)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		type view struct {
			Labels     map[string]string
			Schedule   string
			TimeZone   *string
			Concurrent batchv1.ConcurrencyPolicy
			Deadlines  [2]*int64
			Container  corev1.Container
			Volumes    []corev1.Volume
			Security   *corev1.PodSecurityContext
		}
		v := func(cj *batchv1.CronJob) view {
			ps := cj.Spec.JobTemplate.Spec.Template.Spec
			ctr := ps.Containers[0]
			ctr.TerminationMessagePath = "" // defaulted by the apiserver
			return view{cj.Labels, cj.Spec.Schedule, cj.Spec.TimeZone, cj.Spec.ConcurrencyPolicy,
				[2]*int64{cj.Spec.StartingDeadlineSeconds, cj.Spec.JobTemplate.Spec.ActiveDeadlineSeconds}, ctr, ps.Volumes, ps.SecurityContext}
		}
		if diff := cmp.Diff(v(want), v(&got)); diff != "" {
			return fmt.Errorf("%s: CronJob differs (-want +got):\n%s", step, diff)
		}
		return nil
	})
}

// replicaSet creates an owner for a pod; nothing runs it (no controller-manager).
func replicaSet(t *testing.T, c client.Client, ns string) *appsv1.ReplicaSet {
	t.Helper()
	sel := map[string]string{contract.LabelAppName: contract.DBAccessName}
	rs := &appsv1.ReplicaSet{
		ObjectMeta: metav1.ObjectMeta{Name: "dbaccess-7d9f", Namespace: ns},
		Spec: appsv1.ReplicaSetSpec{
			Replicas: new(int32(0)),
			Selector: &metav1.LabelSelector{MatchLabels: sel},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: sel},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "dbaccess", Image: "smarterp/dbaccess:7"}}},
			},
		},
	}
	if err := c.Create(t.Context(), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

package inject_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

// An internal-dev namespace of SmartERP on the cluster volume: the injection has every
// part (backup mounts, masking volume) a tamperer could aim at.
var (
	initechPrd = inject.Namespace{Name: "initech-prd", Labels: map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP,
		contract.LabelEnvironment: contract.EnvironmentProduction, contract.LabelCustomer: "initech",
	}, Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "pg.initech-prd.svc", contract.AnnotationDatabaseName: "erp"}}
	initechDev = inject.Namespace{Name: "initech-dev", Labels: map[string]string{
		contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP,
		contract.LabelEnvironment: contract.EnvironmentInternalDev, contract.LabelCustomer: "initech",
		contract.LabelRestoreSource: "initech-prd",
	}, Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "pg.initech-dev.svc", contract.AnnotationDatabaseName: "erp_dev"}}
)

func lookupOf(nss ...inject.Namespace) inject.Lookup {
	return func(_ context.Context, name string) (*inject.Namespace, error) {
		for _, n := range nss {
			if n.Name == name {
				return &n, nil
			}
		}
		return nil, nil
	}
}

// injectedPod is a dbaccess pod of ns as the webhook injects it.
func injectedPod(t *testing.T, ns inject.Namespace) *corev1.Pod {
	t.Helper()
	cfg := configtest.New(t, nil)
	p := pod(dbaccessPod)
	p.Namespace = ns.Name
	p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "JAVA_OPTS", Value: "-Xmx1g"}}
	d, err := inject.Run(t.Context(), p, ns, lookupOf(initechPrd, initechDev), cfg)
	if err != nil || d.Action != inject.Inject {
		t.Fatalf("injecting: %+v, %v", d, err)
	}
	return p
}

func restore(p *corev1.Pod) *corev1.Container {
	i := slices.IndexFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == contract.InitContainerName })
	if i < 0 {
		return nil
	}
	return &p.Spec.InitContainers[i]
}

func volume(p *corev1.Pod, name string) *corev1.Volume {
	i := slices.IndexFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	return &p.Spec.Volumes[i]
}

// TestTamperedInjectionIsRebuilt resubmits an injected pod, its status annotation
// intact, edited in each way a pod's author could use to run the restore otherwise:
// every one comes out rebuilt to exactly the namespace's injection, never passed
// through.
func TestTamperedInjectionIsRebuilt(t *testing.T) {
	cases := map[string]func(p *corev1.Pod){
		"a replaced command": func(p *corev1.Pod) {
			restore(p).Command = []string{"/bin/sh", "-c", "pg_restore --no-masking"}
		},
		"replaced args": func(p *corev1.Pod) { restore(p).Args = []string{"--skip-masking"} },
		"an added envFrom forcing a restore from the namespace's own backup": func(p *corev1.Pod) {
			restore(p).EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "tenant-restore"}}}}
		},
		"added RESTORE_REQUEST_ID and RESTORE_REQUEST_SOURCE=own": func(p *corev1.Pod) {
			c := restore(p)
			c.Env = append(c.Env, corev1.EnvVar{Name: contract.EnvRestoreRequestID, Value: "x"},
				corev1.EnvVar{Name: contract.EnvRestoreRequestSource, Value: contract.RequestSourceOwn})
		},
		"a removed masking variable": func(p *corev1.Pod) {
			c := restore(p)
			c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == contract.EnvRestoreMaskingSQL })
		},
		"a removed securityContext": func(p *corev1.Pod) { restore(p).SecurityContext = nil },
		"a privileged securityContext": func(p *corev1.Pod) {
			restore(p).SecurityContext.Privileged = new(true)
			restore(p).SecurityContext.RunAsNonRoot = new(false)
		},
		"another image": func(p *corev1.Pod) { restore(p).Image = "tenant/initrestore:patched" },
		"the scratch volume turned into hostPath /": func(p *corev1.Pod) {
			volume(p, inject.VolumeScratch).VolumeSource = corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}
		},
		"the masking volume pointed at a tenant's own ConfigMap": func(p *corev1.Pod) {
			volume(p, inject.VolumeMasking).ConfigMap.Name = "no-masking"
		},
		"the backup volume pointed at another claim": func(p *corev1.Pod) {
			volume(p, inject.VolumeBackups).PersistentVolumeClaim.ClaimName = "globex-backups"
		},
		"a backup mount made writable and moved to another customer's directory": func(p *corev1.Pod) {
			m := &restore(p).VolumeMounts[2]
			m.ReadOnly, m.SubPath = false, "globex-prd"
		},
		"a mount shadowing the PostgreSQL clients": func(p *corev1.Pod) {
			p.Spec.Volumes = append(p.Spec.Volumes, corev1.Volume{Name: "tools", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "fake-pg-restore"}}}})
			c := restore(p)
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "tools", MountPath: "/usr/lib/postgresql/15/bin"})
		},
		"the restore moved after the pod's own init container": func(p *corev1.Pod) {
			p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "seed", Image: "tenant/seed"})
			slices.Reverse(p.Spec.InitContainers)
		},
		"the restore init container removed": func(p *corev1.Pod) { p.Spec.InitContainers = nil },
		"the dbaccess container pointed at production": func(p *corev1.Pod) {
			c := &p.Spec.Containers[0]
			c.Env[0].Value = "pg.initech-prd.svc"
		},
		"the dbaccess container's variables removed": func(p *corev1.Pod) {
			p.Spec.Containers[0].Env = []corev1.EnvVar{{Name: "JAVA_OPTS", Value: "-Xmx1g"}}
		},
		"a forged status annotation on an edited pod": func(p *corev1.Pod) {
			p.Annotations[contract.AnnotationInjected] = inject.Version + "-0000000000000000"
			restore(p).Command = []string{"/bin/true"}
		},
	}
	cfg := configtest.New(t, nil)
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			want := injectedPod(t, initechDev)
			if restore(want) == nil || len(want.Spec.InitContainers) != 1 {
				t.Fatal("the injected pod has no restore init container")
			}
			p := want.DeepCopy()
			tamper(p)
			if cmp.Equal(p, want) {
				t.Fatal("the tamper changed nothing")
			}
			d, err := inject.Run(t.Context(), p, initechDev, lookupOf(initechPrd, initechDev), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != inject.Inject || d.Reason != inject.ReasonReinjected {
				t.Fatalf("Run = %s/%s (%s), want inject/%s", d.Action, d.Reason, d.Message, inject.ReasonReinjected)
			}
			// The pod's own additions (seed, tools) stay; what the webhook owns is rebuilt.
			p.Spec.InitContainers = slices.DeleteFunc(p.Spec.InitContainers, func(c corev1.Container) bool { return c.Name == "seed" })
			p.Spec.Volumes = slices.DeleteFunc(p.Spec.Volumes, func(v corev1.Volume) bool { return v.Name == "tools" })
			if diff := cmp.Diff(want, p); diff != "" {
				t.Errorf("the tampered pod was not rebuilt to the namespace's injection (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReinvocationKeepsOtherWebhooksAdditions: between two passes another webhook adds
// a proxy variable to every init container, its own volume and the service account
// token mount; the second pass changes nothing. A native sidecar added after the
// restore makes the second pass move the restore after it, and a third pass is a no-op.
func TestReinvocationKeepsOtherWebhooksAdditions(t *testing.T) {
	cfg := configtest.New(t, nil)
	p := injectedPod(t, initechDev)
	c := restore(p)
	c.Env = append(c.Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://egress.proxy:3128"})
	c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: "kube-api-access-x7k2p", MountPath: inject.ServiceAccountTokenPath, ReadOnly: true})
	p.Spec.Volumes = append(p.Spec.Volumes,
		corev1.Volume{Name: "kube-api-access-x7k2p", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}},
		corev1.Volume{Name: "tracing", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	p.Spec.Containers[0].Env = append(p.Spec.Containers[0].Env, corev1.EnvVar{Name: "HTTPS_PROXY", Value: "http://egress.proxy:3128"})
	before := p.DeepCopy()
	d, err := inject.Run(t.Context(), p, initechDev, lookupOf(initechPrd, initechDev), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != inject.Skip || d.Reason != inject.ReasonAlreadyInjected {
		t.Fatalf("second pass = %s/%s (%s), want skip/%s", d.Action, d.Reason, d.Message, inject.ReasonAlreadyInjected)
	}
	if diff := cmp.Diff(before, p); diff != "" {
		t.Fatalf("the second pass changed the pod (-before +after):\n%s", diff)
	}

	p.Spec.InitContainers = append(p.Spec.InitContainers, corev1.Container{Name: "istio-proxy", Image: "istio/proxyv2", RestartPolicy: new(corev1.ContainerRestartPolicyAlways)})
	if d, _ := inject.Run(t.Context(), p, initechDev, lookupOf(initechPrd, initechDev), cfg); d.Reason != inject.ReasonReinjected {
		t.Fatalf("after a native sidecar was added: %s/%s, want inject/%s", d.Action, d.Reason, inject.ReasonReinjected)
	}
	if names := containerNames(p.Spec.InitContainers); !slices.Equal(names, []string{"istio-proxy", contract.InitContainerName}) {
		t.Errorf("init containers %v, want the restore after istio-proxy", names)
	}
	if got := restore(p).Env[len(restore(p).Env)-1]; got.Name != "HTTPS_PROXY" {
		t.Errorf("the proxy variable was dropped when the restore moved: last env %s", got.Name)
	}
	if d, _ := inject.Run(t.Context(), p, initechDev, lookupOf(initechPrd, initechDev), cfg); d.Reason != inject.ReasonAlreadyInjected {
		t.Errorf("third pass: %s/%s, want skip/%s", d.Action, d.Reason, inject.ReasonAlreadyInjected)
	}
}

func containerNames(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// TestNamespaceOwnsTheConnection: the variables the webhook owns in the dbaccess
// container always carry the namespace's values.
func TestNamespaceOwnsTheConnection(t *testing.T) {
	cfg := configtest.New(t, nil)
	acmeHml := inject.Namespace{Name: "acme-hml", Labels: hmlLabels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "db.acme-hml.svc", contract.AnnotationDatabaseName: "erp_hml"}}
	prd := inject.Namespace{Name: "acme-prd", Labels: prodLabels, Annotations: map[string]string{
		contract.AnnotationDatabaseEndpoint: "db.acme-prd.svc", contract.AnnotationDatabaseName: "erp"}}
	lookup := lookupOf(prd, acmeHml)

	t.Run("a pod injected in production and resubmitted in homologation gets homologation's connection", func(t *testing.T) {
		p := pod(dbaccessPod)
		p.Namespace = prd.Name
		if d, err := inject.Run(t.Context(), p, prd, lookup, cfg); err != nil || d.Action != inject.Inject {
			t.Fatalf("injecting in production: %+v %v", d, err)
		}
		p.Namespace = acmeHml.Name
		d, err := inject.Run(t.Context(), p, acmeHml, lookup, cfg)
		if err != nil || d.Action != inject.Inject || d.Reason != inject.ReasonReinjected {
			t.Fatalf("resubmitting in homologation: %+v %v", d, err)
		}
		fresh := pod(dbaccessPod)
		fresh.Namespace = acmeHml.Name
		if d, err := inject.Run(t.Context(), fresh, acmeHml, lookup, cfg); err != nil || d.Action != inject.Inject {
			t.Fatalf("injecting a fresh pod: %+v %v", d, err)
		}
		if diff := cmp.Diff(fresh, p); diff != "" {
			t.Errorf("the copied pod differs from a fresh homologation pod (-fresh +copied):\n%s", diff)
		}
		if got := envValue(p.Spec.Containers[0].Env, contract.EnvDatabaseEndpoint); got != "db.acme-hml.svc" {
			t.Errorf("DATABASE_ENDPOINT = %q, want homologation's", got)
		}
	})

	denials := map[string]struct {
		env     []corev1.EnvVar
		message []string
	}{
		"a different endpoint names the endpoint annotation": {
			env:     []corev1.EnvVar{{Name: contract.EnvDatabaseEndpoint, Value: "db.acme-prd.svc"}},
			message: []string{contract.EnvDatabaseEndpoint, contract.AnnotationDatabaseEndpoint, `"acme-hml"`},
		},
		"a database name from a ConfigMap names the name annotation": {
			env: []corev1.EnvVar{{Name: contract.EnvDatabaseName, ValueFrom: &corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Key: "db"}}}},
			message: []string{contract.EnvDatabaseName, contract.AnnotationDatabaseName},
		},
		"another storage URL names the product label": {
			env:     []corev1.EnvVar{{Name: contract.EnvBackupStorageURL, Value: "file:///elsewhere"}},
			message: []string{contract.EnvBackupStorageURL, contract.LabelProduct},
		},
	}
	for name, tc := range denials {
		t.Run(name, func(t *testing.T) {
			p := pod(dbaccessPod)
			p.Namespace = acmeHml.Name
			p.Spec.Containers[0].Env = tc.env
			before := p.DeepCopy()
			d, err := inject.Run(t.Context(), p, acmeHml, lookup, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != inject.Deny || d.Reason != inject.ReasonEnvConflict {
				t.Fatalf("Run = %s/%s, want deny/%s", d.Action, d.Reason, inject.ReasonEnvConflict)
			}
			for _, m := range tc.message {
				if !strings.Contains(d.Message, m) {
					t.Errorf("message %q does not name %s", d.Message, m)
				}
			}
			if diff := cmp.Diff(before, p); diff != "" {
				t.Errorf("a denied pod was changed:\n%s", diff)
			}
		})
	}

	t.Run("the pod's own value equal to the namespace's is accepted and its references expand", func(t *testing.T) {
		p := pod(dbaccessPod)
		p.Namespace = acmeHml.Name
		p.Spec.Containers[0].Env = []corev1.EnvVar{
			{Name: "URL", Value: "postgres://$(DATABASE_ENDPOINT)/$(DATABASE_NAME)"},
			{Name: contract.EnvDatabasePort, Value: "5432"},
		}
		d, err := inject.Run(t.Context(), p, acmeHml, lookup, cfg)
		if err != nil || d.Action != inject.Inject {
			t.Fatalf("Run = %+v %v", d, err)
		}
		env := p.Spec.Containers[0].Env
		url := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == "URL" })
		for _, n := range []string{contract.EnvDatabaseEndpoint, contract.EnvDatabaseName, contract.EnvDatabasePort} {
			i := slices.IndexFunc(env, func(e corev1.EnvVar) bool { return e.Name == n })
			if i < 0 || i > url {
				t.Errorf("%s at %d, want before URL (%d) so $(%s) expands", n, i, url, n)
			}
			if c := slices.IndexFunc(env[i+1:], func(e corev1.EnvVar) bool { return e.Name == n }); c >= 0 {
				t.Errorf("%s appears twice", n)
			}
		}
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

// TestTargetContainer: the default-container annotation, then the name dbaccess, then
// the configured name, then the first container that is not a known sidecar.
func TestTargetContainer(t *testing.T) {
	cases := map[string]struct {
		containers []string
		annotation string
		config     string
		want       string // "" for a denial
	}{
		"the annotation wins":                            {containers: []string{"dbaccess", "server"}, annotation: "server", want: "server"},
		"the container named dbaccess":                   {containers: []string{"exporter", "dbaccess"}, want: "dbaccess"},
		"the configured name":                            {containers: []string{"exporter", "erp"}, config: "erp", want: "erp"},
		"dbaccess before the configured name":            {containers: []string{"erp", "dbaccess"}, config: "erp", want: "dbaccess"},
		"a configured name the pod lacks falls through":  {containers: []string{"linkerd-proxy", "erp"}, config: "app", want: "erp"},
		"linkerd-proxy first is skipped":                 {containers: []string{"linkerd-proxy", "erp"}, want: "erp"},
		"every known sidecar is skipped":                 {containers: []string{"istio-proxy", "cloud-sql-proxy", "vault-agent", "app"}, want: "app"},
		"an annotation naming no container is denied":    {containers: []string{"erp"}, annotation: "server"},
		"a pod of sidecars only is denied":               {containers: []string{"istio-proxy", "cloudsql-proxy"}},
		"an annotation may still choose a known sidecar": {containers: []string{"cloud-sql-proxy", "erp"}, annotation: "cloud-sql-proxy", want: "cloud-sql-proxy"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := configtest.New(t, map[string]string{"DBACCESS_CONTAINER": tc.config})
			p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{}}}
			if tc.annotation != "" {
				p.Annotations[inject.DefaultContainerAnnotation] = tc.annotation
			}
			for _, c := range tc.containers {
				p.Spec.Containers = append(p.Spec.Containers, corev1.Container{Name: c})
			}
			i, d := inject.TargetContainer(p, cfg)
			if tc.want == "" {
				if d == nil || d.Reason != inject.ReasonInvalidTargetContainer || !strings.Contains(d.Message, inject.DefaultContainerAnnotation) {
					t.Fatalf("TargetContainer = %d, %v; want a denial naming %s", i, d, inject.DefaultContainerAnnotation)
				}
				return
			}
			if d != nil || i < 0 || p.Spec.Containers[i].Name != tc.want {
				t.Fatalf("TargetContainer = %d, %v; want %q", i, d, tc.want)
			}
		})
	}
}

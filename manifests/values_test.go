package manifests_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/kelseyhightower/envconfig"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/smartbackup/smartbackup/test/testenv"
	"github.com/smartbackup/smartbackup/webhook/config"
)

const maxValues = "testdata/values-max.yaml"

// fixedSettings are the webhook's settings the chart sets from its own structure, not
// from a value: changing them would break the objects that name them.
var fixedSettings = map[string]string{
	"NAMESPACE":           "the downward API: the release's namespace",
	"SERVICE_NAME":        "the chart's Service, which the certificates and the webhook configuration name",
	"WEBHOOK_CONFIG_NAME": "the chart's MutatingWebhookConfiguration",
	"CERT_DIR":            "where the chart mounts the TLS volume",
	"SYNC_NAMESPACE":      "the release's namespace (helm --namespace), where the sync CronJob and the volume's claims live",
}

// setting is one envconfig field of config.Config.
type setting struct {
	field string // Go field name
	name  string // envconfig name, without the prefix
}

// settings lists every field of config.Config that envconfig reads, by reflection, so
// that a setting added to the webhook is checked here without touching this test.
func settings(t *testing.T) []setting {
	t.Helper()
	var out []setting
	typ := reflect.TypeFor[config.Config]()
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name := f.Tag.Get("envconfig")
		if name == "" {
			t.Fatalf("config.Config.%s has no envconfig tag: name its variable", f.Name)
		}
		out = append(out, setting{field: f.Name, name: name})
	}
	if len(out) < 40 {
		t.Fatalf("only %d settings found in config.Config: the reflection is broken", len(out))
	}
	return out
}

// webhookContainer returns the rendered Deployment's webhook container.
func webhookContainer(t *testing.T, objs []*unstructured.Unstructured) map[string]any {
	t.Helper()
	d := find(t, objs, "Deployment", "smartbackup-webhook")
	cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, c := range cs {
		if m := c.(map[string]any); m["name"] == "webhook" {
			return m
		}
	}
	t.Fatal("the Deployment has no webhook container")
	return nil
}

// renderedEnv is the webhook container's env: names in order, and the plain values
// (the downward API's namespace resolved to the release's).
func renderedEnv(t *testing.T, c map[string]any) ([]string, map[string]string) {
	t.Helper()
	env, _, _ := unstructured.NestedSlice(c, "env")
	var names []string
	values := map[string]string{}
	for _, e := range env {
		m := e.(map[string]any)
		name := m["name"].(string)
		names = append(names, name)
		switch {
		case name == config.Prefix+"_NAMESPACE":
			values[name] = "smartbackup"
		case m["valueFrom"] != nil:
		default:
			v, ok := m["value"].(string)
			if !ok {
				t.Fatalf("env %s: value %v (%T) is not a string", name, m["value"], m["value"])
			}
			values[name] = v
		}
	}
	return names, values
}

// load reads config.Config from exactly env, as the webhook's envconfig.Process does:
// every variable it could read (prefixed and bare) is cleared first.
func load(t *testing.T, env map[string]string) config.Config {
	t.Helper()
	for _, s := range settings(t) {
		for _, n := range []string{config.Prefix + "_" + s.name, s.name} {
			t.Setenv(n, "")
			if err := os.Unsetenv(n); err != nil {
				t.Fatal(err)
			}
		}
	}
	for k, v := range env {
		if strings.HasPrefix(k, config.Prefix+"_") {
			t.Setenv(k, v)
		}
	}
	var c config.Config
	if err := envconfig.Process(config.Prefix, &c); err != nil {
		t.Fatalf("the rendered environment does not load: %v", err)
	}
	return c
}

// TestEveryWebhookSettingIsReachable: every variable of config.Config is set by the
// chart; with the default values each equals the code's default (the chart changes
// nothing by default), and testdata/values-max.yaml changes each one (so every setting
// is reachable from some value) into a configuration the webhook accepts. A setting
// added to config.Config without a value fails here. extraEnv comes last.
func TestEveryWebhookSettingIsReachable(t *testing.T) {
	defNames, defEnv := renderedEnv(t, webhookContainer(t, decode(t, helm(t))))
	maxObjs := decode(t, helm(t, "-f", maxValues))
	maxNames, maxEnv := renderedEnv(t, webhookContainer(t, maxObjs))

	for _, s := range settings(t) {
		if _, ok := maxEnv[config.Prefix+"_"+s.name]; !ok {
			t.Errorf("%s_%s (config.Config.%s) is not rendered by the chart: add a value for it", config.Prefix, s.name, s.field)
		}
	}

	// The defaults: what the code takes with nothing set but the required images.
	codeDefaults := load(t, map[string]string{
		config.Prefix + "_INITRESTORE_IMAGE": defEnv[config.Prefix+"_INITRESTORE_IMAGE"],
		config.Prefix + "_CRONBACKUP_IMAGE":  defEnv[config.Prefix+"_CRONBACKUP_IMAGE"],
		config.Prefix + "_NAMESPACE":         "smartbackup",
	})
	chartDefaults := load(t, defEnv)
	maximal := load(t, maxEnv)
	if err := maximal.Validate(); err != nil {
		t.Errorf("%s renders a configuration the webhook refuses: %v", maxValues, err)
	}
	cd, ch, mx := reflect.ValueOf(codeDefaults), reflect.ValueOf(chartDefaults), reflect.ValueOf(maximal)
	for _, s := range settings(t) {
		code, chart, maxv := cd.FieldByName(s.field).Interface(), ch.FieldByName(s.field).Interface(), mx.FieldByName(s.field).Interface()
		if !reflect.DeepEqual(code, chart) {
			t.Errorf("%s_%s: the chart's default %v differs from the code's %v", config.Prefix, s.name, fmt.Sprint(chart), fmt.Sprint(code))
		}
		if why, fixed := fixedSettings[s.name]; fixed {
			if !reflect.DeepEqual(chart, maxv) {
				t.Errorf("%s_%s is listed as fixed (%s) but changed to %v", config.Prefix, s.name, why, maxv)
			}
			continue
		}
		if reflect.DeepEqual(chart, maxv) {
			t.Errorf("%s_%s (config.Config.%s) is %v in %s too: no value reaches it (set it there, or add a value)", config.Prefix, s.name, s.field, fmt.Sprint(maxv), maxValues)
		}
	}

	// extraEnv is appended after every variable the chart sets, in its order.
	if got, want := maxNames[len(maxNames)-2:], []string{"GOMEMLIMIT", "POD_NAME"}; !reflect.DeepEqual(got, want) {
		t.Errorf("the env ends with %v, want extraEnv %v last", got, want)
	}
	if got := len(maxNames) - len(defNames); got != 3 {
		t.Errorf("%d variables by default, %d with every value (TLS_EXTRA_SANS and 2 extraEnv): want 3 more", len(defNames), len(maxNames))
	}

	// Digests pin all three images.
	for _, v := range []string{"INITRESTORE_IMAGE", "CRONBACKUP_IMAGE"} {
		if got := maxEnv[config.Prefix+"_"+v]; !strings.Contains(got, "@sha256:") || strings.Contains(got, ":9.9.9") {
			t.Errorf("%s_%s = %q, want repository@sha256:… (the digest, not the tag)", config.Prefix, v, got)
		}
	}
	if got := webhookContainer(t, maxObjs)["image"]; got != "registry.example/smartbackup/webhook@sha256:1111111111111111111111111111111111111111111111111111111111111111" {
		t.Errorf("webhook image %v, want its digest", got)
	}
}

// TestPortsFollowTheSettings: the container's ports, probes and Service follow
// ports.*, and so do SMARTBACKUP_WEBHOOK_PORT, METRICS_ADDR and HEALTH_ADDR; ports.metrics
// 0 turns the metrics off everywhere (no port, no ServiceMonitor).
func TestPortsFollowTheSettings(t *testing.T) {
	cases := map[string]struct {
		args                    []string
		webhook, metrics, healt int64
	}{
		"defaults":        {nil, 9443, 8080, 8081},
		"every value":     {[]string{"-f", maxValues}, 10443, 9090, 9091},
		"metrics off":     {[]string{"--set", "ports.metrics=0"}, 9443, 0, 8081},
		"ports moved":     {[]string{"--set", "ports.webhook=8443,ports.health=9000,ports.metrics=9001"}, 8443, 9001, 9000},
		"metrics off, np": {[]string{"--set", "ports.metrics=0,networkPolicy.enabled=true"}, 9443, 0, 8081},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, helm(t, append([]string{"--api-versions", "monitoring.coreos.com/v1"}, tc.args...)...))
			c := webhookContainer(t, objs)
			_, env := renderedEnv(t, c)
			ports := map[string]int64{}
			cps, _, _ := unstructured.NestedSlice(c, "ports")
			for _, p := range cps {
				m := p.(map[string]any)
				n, _ := number(m, "containerPort")
				ports[m["name"].(string)] = n
			}
			want := map[string]int64{"webhook": tc.webhook, "health": tc.healt}
			if tc.metrics != 0 {
				want["metrics"] = tc.metrics
			}
			if !reflect.DeepEqual(ports, want) {
				t.Errorf("container ports %v, want %v", ports, want)
			}
			addr := func(v string) int64 {
				if v == "0" {
					return 0
				}
				_, p, err := net.SplitHostPort(v)
				if err != nil {
					t.Fatalf("address %q: %v", v, err)
				}
				var n int64
				fmt.Sscan(p, &n)
				return n
			}
			if got := env[config.Prefix+"_WEBHOOK_PORT"]; got != fmt.Sprint(tc.webhook) {
				t.Errorf("WEBHOOK_PORT %s, want %d", got, tc.webhook)
			}
			if got := addr(env[config.Prefix+"_METRICS_ADDR"]); got != tc.metrics {
				t.Errorf("METRICS_ADDR %q, want port %d", env[config.Prefix+"_METRICS_ADDR"], tc.metrics)
			}
			if got := addr(env[config.Prefix+"_HEALTH_ADDR"]); got != tc.healt {
				t.Errorf("HEALTH_ADDR %q, want port %d", env[config.Prefix+"_HEALTH_ADDR"], tc.healt)
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				if got, _, _ := unstructured.NestedString(c, probe, "httpGet", "port"); got != "health" {
					t.Errorf("%s port %q, want the health port", probe, got)
				}
			}
			svc := find(t, objs, "Service", "smartbackup-webhook")
			sps, _, _ := unstructured.NestedSlice(svc.Object, "spec", "ports")
			targets := map[string]bool{}
			for _, p := range sps {
				m := p.(map[string]any)
				target := m["targetPort"].(string)
				if _, ok := ports[target]; !ok {
					t.Errorf("Service port %v targets %q, which the container does not have", m["name"], target)
				}
				targets[target] = true
				if target == "webhook" {
					if n, _ := number(m, "port"); n != 443 {
						t.Errorf("the Service's webhook port is %d, want 443 (the webhook configuration's)", n)
					}
				}
			}
			if targets["metrics"] != (tc.metrics != 0) || !targets["webhook"] {
				t.Errorf("Service targets %v (metrics %d)", targets, tc.metrics)
			}
			hasSM := false
			for _, o := range objs {
				hasSM = hasSM || o.GetKind() == "ServiceMonitor"
				if o.GetKind() == "NetworkPolicy" && tc.metrics == 0 && strings.Contains(fmt.Sprint(o.Object["spec"]), "metrics") {
					t.Errorf("metrics off, the NetworkPolicy still opens a metrics port: %v", o.Object["spec"])
				}
			}
			if hasSM != (tc.metrics != 0) {
				t.Errorf("ServiceMonitor rendered=%v with metrics port %d", hasSM, tc.metrics)
			}
		})
	}
}

// helmRun runs helm with args and returns its combined output and error.
func helmRun(t *testing.T, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "helm"), args...).CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return string(out), err
}

// TestChartLintAndSchema: `helm lint --strict` passes on the defaults and on every
// value set; values.schema.json refuses bad values with a message that names the key
// (helm template and helm lint alike), and accepts good ones.
func TestChartLintAndSchema(t *testing.T) {
	for _, args := range [][]string{nil, {"-f", maxValues}} {
		if out, err := helmRun(t, append([]string{"lint", "--strict", chart}, args...)...); err != nil {
			t.Errorf("helm lint --strict %v: %v\n%s", args, err, out)
		}
	}
	good := map[string][]string{
		"defaults":                 nil,
		"every value":              {"-f", maxValues},
		"a window to midnight":     {"--set", "schedules.backupWindow=22:00-24:00"},
		"a window past midnight":   {"--set", "schedules.backupWindow=23:00-01:30"},
		"a fixed schedule":         {"--set-string", "schedules.backup=0 21 * * 1-5"},
		"one replica":              {"--set", "replicas=1"},
		"metrics off":              {"--set", "ports.metrics=0"},
		"durations in hours":       {"--set", "cronJobs.activeDeadline=1h30m,slotWaitTimeout=90m"},
		"an S3 URL":                {"--set", "storage.smarterp=s3://bucket/prefix?region=sa-east-1"},
		"an issuer of one's own":   {"--set", "tls.issuerRef.name=corp,tls.issuerRef.kind=ClusterIssuer"},
		"a quantity as a number":   {"--set", "backup.resources.limits.cpu=2"},
		"restore creates empty":    {"--set", "defaults.restoreOnMissingBackup=empty"},
		"the network policy alone": {"--set", "networkPolicy.enabled=true"},
	}
	for name, args := range good {
		t.Run("accepts "+name, func(t *testing.T) {
			if out, err := helmRun(t, append([]string{"template", "smartbackup", chart}, args...)...); err != nil {
				t.Errorf("helm template %v: %v\n%s", args, err, out)
			}
		})
	}
	bad := map[string]struct {
		args []string
		key  string // what the message must name
		// templateOnly: a check of the templates (fail), which helm lint reports as INFO.
		templateOnly bool
	}{
		"an unknown TLS mode":             {args: []string{"--set", "tls.mode=bogus"}, key: "/tls/mode"},
		"negative replicas":               {args: []string{"--set", "replicas=-1"}, key: "/replicas"},
		"no replica":                      {args: []string{"--set", "replicas=0"}, key: "/replicas"},
		"a window of no clock":            {args: []string{"--set", "schedules.backupWindow=25:00-26:00"}, key: "/schedules/backupWindow"},
		"a window without its end":        {args: []string{"--set", "schedules.backupWindow=21:00"}, key: "/schedules/backupWindow"},
		"a verify window of no clock":     {args: []string{"--set", "verify.window=1:00-5:00"}, key: "/verify/window"},
		"a tag for a digest":              {args: []string{"--set", "images.webhook.digest=latest"}, key: "/images/webhook/digest"},
		"a short digest":                  {args: []string{"--set", "images.cronbackup.digest=sha256:abc"}, key: "/images/cronbackup/digest"},
		"a digest of another algorithm":   {args: []string{"--set", "images.initrestore.digest=md5:" + strings.Repeat("a", 64)}, key: "/images/initrestore/digest"},
		"an unknown pull policy":          {args: []string{"--set", "images.pullPolicy=Sometimes"}, key: "/images/pullPolicy"},
		"an unknown missing-backup rule":  {args: []string{"--set", "defaults.restoreOnMissingBackup=skip"}, key: "/defaults/restoreOnMissingBackup"},
		"a typo at the top":               {args: []string{"--set", "replica=2"}, key: "'replica'"},
		"a typo below":                    {args: []string{"--set", "tls.secretname=x"}, key: "'secretname'"},
		"a duration without a unit":       {args: []string{"--set", "shutdownDelay=5"}, key: "/shutdownDelay"},
		"a duration in words":             {args: []string{"--set", "cronJobs.startingDeadline=one hour"}, key: "/cronJobs/startingDeadline"},
		"a port out of range":             {args: []string{"--set", "ports.webhook=70000"}, key: "/ports/webhook"},
		"a negative history":              {args: []string{"--set", "cronJobs.failedJobsHistory=-1"}, key: "/cronJobs/failedJobsHistory"},
		"no daily backup kept":            {args: []string{"--set", "retention.daily=0"}, key: "/retention/daily"},
		"a weekday past Saturday":         {args: []string{"--set", "verify.weekday=7"}, key: "/verify/weekday"},
		"root":                            {args: []string{"--set", "runAs.user=0"}, key: "/runAs/user"},
		"a schedule of four fields":       {args: []string{"--set-string", "sync.schedule=0 6 * *"}, key: "/sync/schedule"},
		"a storage URL of another scheme": {args: []string{"--set", "storage.sistemico=ftp://host/x"}, key: "/storage/sistemico"},
		"a quantity in words":             {args: []string{"--set", "restore.tmpSize=lots"}, key: "/restore/tmpSize"},
		"a string for a number":           {args: []string{"--set-string", "defaults.databasePort=5432"}, key: "/defaults/databasePort"},
		"a string for a boolean":          {args: []string{"--set-string", "networkPolicy.enabled=yes"}, key: "/networkPolicy/enabled"},
		"an issuer of an unknown kind":    {args: []string{"--set", "tls.issuerRef.name=x,tls.issuerRef.kind=Vault"}, key: "/tls/issuerRef/kind"},
		"an env var without a name":       {args: []string{"--set", "extraEnv[0].value=x"}, key: "/extraEnv/0"},
		"a pull secret as a string":       {args: []string{"--set", "imagePullSecrets[0]=regcred"}, key: "/imagePullSecrets/0"},
		"a non-positive alert age":        {args: []string{"--set", "monitoring.backupMaxAgeHours=0"}, key: "/monitoring/backupMaxAgeHours"},
		"two settings on one port":        {args: []string{"--set", "ports.metrics=8081"}, key: "ports.webhook (9443), ports.metrics (8081) and ports.health (8081) must differ", templateOnly: true},
	}
	for name, tc := range bad {
		t.Run("refuses "+name, func(t *testing.T) {
			cmds := [][]string{{"template", "smartbackup", chart}, {"lint", "--strict", chart}}
			if tc.templateOnly {
				cmds = cmds[:1]
			}
			for _, cmd := range cmds {
				out, err := helmRun(t, append(cmd, tc.args...)...)
				if err == nil {
					t.Fatalf("helm %s %v succeeded, want it refused:\n%.500s", cmd[0], tc.args, out)
				}
				if !strings.Contains(out, tc.key) {
					t.Errorf("helm %s %v: the message does not name %q:\n%s", cmd[0], tc.args, tc.key, out)
				}
			}
		})
	}
}

// TestNetworkPolicy: off by default; on, the admission port is open to every source
// (the apiserver's addresses are not knowable) unless webhookFrom narrows it, the
// metrics port only from metricsFrom, egress open unless rules are given. (The
// renderings are applied to the real apiserver by TestChartAndKustomizeApply.)
func TestNetworkPolicy(t *testing.T) {
	policy := func(args ...string) *unstructured.Unstructured {
		for _, o := range decode(t, helm(t, args...)) {
			if o.GetKind() == "NetworkPolicy" {
				return o
			}
		}
		return nil
	}
	if np := policy(); np != nil {
		t.Errorf("a NetworkPolicy by default: %v", np.Object)
	}
	rules := func(np *unstructured.Unstructured) map[string][]any {
		t.Helper()
		out := map[string][]any{}
		in, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
		for _, r := range in {
			m := r.(map[string]any)
			ports := m["ports"].([]any)
			if len(ports) != 1 {
				t.Fatalf("ingress rule of %d ports: %v", len(ports), m)
			}
			from, _ := m["from"].([]any)
			out[ports[0].(map[string]any)["port"].(string)] = from
		}
		return out
	}
	np := policy("--set", "networkPolicy.enabled=true")
	if np == nil {
		t.Fatal("networkPolicy.enabled renders no NetworkPolicy")
	}
	sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
	if sel["app.kubernetes.io/name"] != "smartbackup-webhook" {
		t.Errorf("podSelector %v does not select the webhook's pods", sel)
	}
	r := rules(np)
	if from, ok := r["webhook"]; !ok || from != nil {
		t.Errorf("webhook port: from %v (present %v), want every source", from, ok)
	}
	if len(r["metrics"]) == 0 {
		t.Errorf("metrics port open to every source: %v", r)
	}
	if types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes"); !reflect.DeepEqual(types, []string{"Ingress"}) {
		t.Errorf("policyTypes %v, want Ingress only (egress open)", types)
	}

	np = policy("-f", maxValues)
	r = rules(np)
	if fmt.Sprint(r["webhook"]) != "[map[ipBlock:map[cidr:10.0.0.0/16]]]" {
		t.Errorf("webhookFrom did not narrow the webhook port: %v", r["webhook"])
	}
	if fmt.Sprint(r["metrics"]) != "[map[namespaceSelector:map[matchLabels:map[kubernetes.io/metadata.name:monitoring]]]]" {
		t.Errorf("metricsFrom: %v", r["metrics"])
	}
	if types, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "policyTypes"); !reflect.DeepEqual(types, []string{"Ingress", "Egress"}) {
		t.Errorf("policyTypes %v with egress rules, want Ingress and Egress", types)
	}
	if r := rules(policy("--set", "networkPolicy.enabled=true", "--set", "networkPolicy.metricsFrom=null")); len(r) != 1 {
		t.Errorf("empty metricsFrom: rules %v, want the webhook port only (metrics from nowhere)", r)
	}
}

// TestPodScheduling: the pod's scheduling and identity values reach the pod template;
// podLabels cannot replace the labels the Deployment and the Service select by; a
// topology spread constraint gets the pods' selector; affinity replaces the default
// anti-affinity.
func TestPodScheduling(t *testing.T) {
	d := find(t, decode(t, helm(t, "-f", maxValues, "--set", "podLabels.app\\.kubernetes\\.io/name=other")), "Deployment", "smartbackup-webhook")
	spec, _, _ := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	want := map[string]string{
		"priorityClassName":         "system-cluster-critical",
		"imagePullSecrets":          "[map[name:regcred]]",
		"nodeSelector":              "map[kubernetes.io/os:linux]",
		"tolerations":               "[map[effect:NoSchedule key:node-role.kubernetes.io/control-plane operator:Exists]]",
		"affinity":                  "map[nodeAffinity:map[requiredDuringSchedulingIgnoredDuringExecution:map[nodeSelectorTerms:[map[matchExpressions:[map[key:kubernetes.io/arch operator:In values:[amd64 arm64]]]]]]]]",
		"topologySpreadConstraints": "[map[labelSelector:map[matchLabels:map[app.kubernetes.io/instance:smartbackup app.kubernetes.io/name:smartbackup-webhook]] maxSkew:1 topologyKey:topology.kubernetes.io/zone whenUnsatisfiable:ScheduleAnyway]]",
	}
	for k, v := range want {
		if got := fmt.Sprint(spec[k]); got != v {
			t.Errorf("%s = %s, want %s", k, got, v)
		}
	}
	labels, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "labels")
	if labels["team"] != "platform" || labels["app.kubernetes.io/name"] != "smartbackup-webhook" {
		t.Errorf("pod labels %v: want podLabels added, the selector's kept", labels)
	}
	if ann, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "annotations"); ann["example.com/owner"] != "platform" {
		t.Errorf("pod annotations %v", ann)
	}
	def := find(t, decode(t, helm(t)), "Deployment", "smartbackup-webhook")
	if _, ok, _ := unstructured.NestedMap(def.Object, "spec", "template", "spec", "affinity", "podAntiAffinity"); !ok {
		t.Error("no default anti-affinity")
	}
	for _, k := range []string{"priorityClassName", "imagePullSecrets", "nodeSelector", "tolerations", "topologySpreadConstraints"} {
		if _, ok, _ := unstructured.NestedFieldNoCopy(def.Object, "spec", "template", "spec", k); ok {
			t.Errorf("%s rendered by default", k)
		}
	}
}

// byKindName indexes decoded objects by kind/namespace/name, each as its JSON, with
// the whitespace in strings collapsed (kustomize re-folds the multi-line CEL
// expressions' line breaks, which CEL ignores).
func byKindName(t *testing.T, objs []*unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	var collapse func(v any) any
	collapse = func(v any) any {
		switch v := v.(type) {
		case string:
			return strings.Join(strings.Fields(v), " ")
		case map[string]any:
			for k, e := range v {
				v[k] = collapse(e)
			}
		case []any:
			for i, e := range v {
				v[i] = collapse(e)
			}
		}
		return v
	}
	for _, o := range objs {
		collapse(o.Object)
		b, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		out[o.GetKind()+"/"+o.GetNamespace()+"/"+o.GetName()] = string(b)
	}
	return out
}

// TestKustomizeInAnotherNamespace: the base built by an overlay in another namespace
// (kustomize/examples/other-namespace: namespace plus the transformers of
// kustomize/namespace) is, object for object, the chart rendered into that namespace:
// every string naming the namespace moved, and nothing still names smartbackup as one.
func TestKustomizeInAnotherNamespace(t *testing.T) {
	got := byKindName(t, decode(t, kustomize(t, "kustomize/examples/other-namespace")))
	out, err := exec.Command(testenv.Tool(t, "helm"), "template", "smartbackup", chart, "--namespace", "erp-backup",
		"--api-versions", "monitoring.coreos.com/v1").Output()
	if err != nil {
		t.Fatalf("helm template: %v", err)
	}
	want := byKindName(t, decode(t, out))
	for k, w := range want {
		g, ok := got[k]
		switch {
		case !ok:
			t.Errorf("the overlay has no %s", k)
		case g != w:
			t.Errorf("%s differs from the chart's in erp-backup (-chart +overlay):\n%s", k, cmp.Diff(w, g))
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("the overlay has %s, the chart not", k)
		}
	}
	// Nothing names the base's namespace as a namespace any more.
	for k, g := range got {
		for _, pinned := range []string{".smartbackup.svc", `"smartbackup/smartbackup-webhook`, ":smartbackup:", `"'smartbackup'"`, `namespace == 'smartbackup'`, `"namespace":"smartbackup"`, `"value":"smartbackup"`, `"kube-system","smartbackup"`} {
			if strings.Contains(g, pinned) {
				t.Errorf("%s still names the namespace smartbackup (%s)", k, pinned)
			}
		}
	}
}

// TestDBAccessLabelIsTheObjectSelector: SMARTBACKUP_DBACCESS_LABEL and the webhook
// configuration's objectSelector come from one value, so the pods the webhook is
// called for are the pods it treats as dbaccess.
func TestDBAccessLabelIsTheObjectSelector(t *testing.T) {
	for name, args := range map[string][]string{"defaults": nil, "every value": {"-f", maxValues}} {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, helm(t, args...))
			_, env := renderedEnv(t, webhookContainer(t, objs))
			mwc := find(t, objs, "MutatingWebhookConfiguration", "smartbackup-webhook")
			hooks, _, _ := unstructured.NestedSlice(mwc.Object, "webhooks")
			sel, _, _ := unstructured.NestedStringMap(hooks[0].(map[string]any), "objectSelector", "matchLabels")
			c := load(t, env)
			if err := c.Validate(); err != nil && !strings.Contains(err.Error(), "STORAGE_URL") {
				t.Fatal(err)
			}
			got := c.DBAccessSelector().String()
			var pairs []string
			for k, v := range sel {
				pairs = append(pairs, k+"="+v)
			}
			slices.Sort(pairs)
			if want := strings.Join(pairs, ","); got != want {
				t.Errorf("SMARTBACKUP_DBACCESS_LABEL selects %q, the objectSelector %q", got, want)
			}
		})
	}
}

// TestExtraSANsInTheCertificate: in cert-manager mode too, tls.extraSANs reach the
// serving Certificate, DNS names as dnsNames, addresses as ipAddresses.
func TestExtraSANsInTheCertificate(t *testing.T) {
	cert := find(t, decode(t, helm(t, "--set", "tls.extraSANs={webhook.example,10.0.0.10,fd00::1}")), "Certificate", "smartbackup-webhook")
	dns, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "dnsNames")
	ips, _, _ := unstructured.NestedStringSlice(cert.Object, "spec", "ipAddresses")
	if want := []string{"smartbackup-webhook.smartbackup.svc", "smartbackup-webhook.smartbackup.svc.cluster.local", "webhook.example"}; !reflect.DeepEqual(dns, want) {
		t.Errorf("dnsNames %v, want %v", dns, want)
	}
	if want := []string{"10.0.0.10", "fd00::1"}; !reflect.DeepEqual(ips, want) {
		t.Errorf("ipAddresses %v, want %v", ips, want)
	}
}

// TestRenderingsAcceptedByTheAPIServer: every object of the renderings this file adds
// (every value set, the NetworkPolicy, extra SANs, the kustomize base in another
// namespace) passes the real kube-apiserver's validation and admission, the CRDs'
// schemas and the CEL compilation of the admission policies. Server-side dry runs:
// the apiserver is shared by the package's tests, and a persisted variant of the
// cluster-scoped policies would race TestAdmissionPolicies' own.
func TestRenderingsAcceptedByTheAPIServer(t *testing.T) {
	c := newCluster(t)
	c.namespace(t, "smartbackup")
	c.namespace(t, "erp-backup")
	renders := map[string][]byte{
		"chart, every value":           helm(t, "--api-versions", "monitoring.coreos.com/v1", "-f", maxValues),
		"chart, NetworkPolicy":         helm(t, "--api-versions", "monitoring.coreos.com/v1", "--set", "networkPolicy.enabled=true"),
		"chart, extra SANs":            helm(t, "--api-versions", "monitoring.coreos.com/v1", "--set", "tls.extraSANs={webhook.example,10.0.0.10}"),
		"kustomize, another namespace": kustomize(t, "kustomize/examples/other-namespace"),
	}
	for name, b := range renders {
		t.Run(name, func(t *testing.T) {
			objs := decode(t, b)
			if name == "chart, every value" || name == "chart, NetworkPolicy" {
				if !slices.Contains(kinds(objs), "NetworkPolicy/smartbackup-webhook") {
					t.Errorf("no NetworkPolicy in %v", kinds(objs))
				}
			}
			for _, o := range objs {
				gvk := o.GroupVersionKind()
				m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
				if err != nil {
					t.Fatalf("%s %s: no API for it: %v", gvk, o.GetName(), err)
				}
				var ri dynamic.ResourceInterface = c.dyn.Resource(m.Resource)
				if m.Scope.Name() == meta.RESTScopeNameNamespace {
					ri = c.dyn.Resource(m.Resource).Namespace(o.GetNamespace())
				}
				data, err := o.MarshalJSON()
				if err != nil {
					t.Fatal(err)
				}
				force := true
				if _, err := ri.Patch(t.Context(), o.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
					FieldManager: "manifests-test", Force: &force, DryRun: []string{metav1.DryRunAll}}); err != nil {
					t.Errorf("applying %s %s/%s (dry run): %v", gvk.Kind, o.GetNamespace(), o.GetName(), err)
				}
			}
		})
	}
}

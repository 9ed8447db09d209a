package manifests_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/smartbackup/smartbackup/test/testenv"
)

// withMonitoring renders the chart as on a cluster that serves the Prometheus
// Operator's API.
func withMonitoring(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	return decode(t, helm(t, append([]string{"--api-versions", "monitoring.coreos.com/v1"}, args...)...))
}

// ruleGroups writes the rendered PrometheusRule's groups as a Prometheus rule file.
func ruleGroups(t *testing.T, objs []*unstructured.Unstructured, path string) {
	t.Helper()
	rule := find(t, objs, "PrometheusRule", "smartbackup-webhook")
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	b, err := yaml.Marshal(map[string]any{"groups": groups})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func promtool(t *testing.T, args ...string) {
	t.Helper()
	out, err := exec.Command(testenv.Tool(t, "promtool"), args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestAlertRules: the rendered rules pass promtool check rules, and promtool test rules
// with synthetic series (testdata/alerts*_test.yaml: each alert fires in one case and
// stays silent in another: a namespace before its first window, a restore that failed
// once and recovered, fractional thresholds).
func TestAlertRules(t *testing.T) {
	cases := map[string]struct {
		values []string
		tests  []string
	}{
		"default values, sync on": {
			values: []string{"--set", "sync.targetURL=file:///rubrik", "--set", "sync.targetClaim=rubrik-managed-volume"},
			tests:  []string{"alerts_test.yaml", "alerts_weekly_test.yaml"},
		},
		"fractional thresholds": {
			values: []string{"--set", "monitoring.backupMaxAgeHours=1.5", "--set", "monitoring.verifyMaxAgeDays=0.5"},
			tests:  []string{"alerts_fractional_test.yaml"},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			ruleGroups(t, withMonitoring(t, tc.values...), filepath.Join(dir, "rules.yaml"))
			promtool(t, "check", "rules", filepath.Join(dir, "rules.yaml"))
			for _, f := range tc.tests {
				if err := os.WriteFile(filepath.Join(dir, f), mustRead(t, filepath.Join("testdata", f)), 0o600); err != nil {
					t.Fatal(err)
				}
				promtool(t, "test", "rules", filepath.Join(dir, f))
			}
		})
	}
}

// TestEveryAlertIsTested: each alert the chart can render has a promtool case.
func TestEveryAlertIsTested(t *testing.T) {
	objs := withMonitoring(t, "--set", "sync.targetURL=file:///rubrik", "--set", "sync.targetClaim=rubrik-managed-volume")
	groups, _, _ := unstructured.NestedSlice(find(t, objs, "PrometheusRule", "smartbackup-webhook").Object, "spec", "groups")
	tests := string(mustRead(t, "testdata/alerts_test.yaml")) + string(mustRead(t, "testdata/alerts_weekly_test.yaml"))
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			alert, _ := r.(map[string]any)["alert"].(string)
			if !strings.Contains(tests, "alertname: "+alert+"\n") {
				t.Errorf("alert %s has no case in testdata/alerts_test.yaml or alerts_weekly_test.yaml", alert)
			}
		}
	}
}

// TestMonitoringRender: without the Prometheus Operator's API the chart renders no
// ServiceMonitor or PrometheusRule (helm install works there); with it, both carry
// monitoring.labels; fractional thresholds render as seconds; the dashboard ConfigMap
// carries the sidecar's label.
func TestMonitoringRender(t *testing.T) {
	for _, o := range decode(t, helm(t)) {
		if o.GetKind() == "ServiceMonitor" || o.GetKind() == "PrometheusRule" {
			t.Errorf("rendered %s/%s without monitoring.coreos.com/v1", o.GetKind(), o.GetName())
		}
	}
	objs := withMonitoring(t, "--set", "monitoring.labels.release=kube-prometheus-stack", "--set", "monitoring.backupMaxAgeHours=1.5")
	for _, kind := range []string{"ServiceMonitor", "PrometheusRule"} {
		if got := find(t, objs, kind, "smartbackup-webhook").GetLabels()["release"]; got != "kube-prometheus-stack" {
			t.Errorf("%s label release = %q, want monitoring.labels' kube-prometheus-stack", kind, got)
		}
	}
	if expr := alertExpr(t, objs, "SmartbackupBackupMissing"); strings.Count(expr, "> 5400\n") != 2 {
		t.Errorf("backupMaxAgeHours=1.5 does not render as > 5400 seconds:\n%s", expr)
	}
	if honor, _, _ := unstructured.NestedSlice(find(t, objs, "ServiceMonitor", "smartbackup-webhook").Object, "spec", "endpoints"); len(honor) != 1 || honor[0].(map[string]any)["honorLabels"] != true {
		t.Errorf("the ServiceMonitor must honor the metrics' namespace label: %v", honor)
	}
	for _, o := range withMonitoring(t, "--set", "monitoring.serviceMonitor=false", "--set", "monitoring.prometheusRule=false") {
		if o.GetKind() == "ServiceMonitor" || o.GetKind() == "PrometheusRule" {
			t.Errorf("rendered %s/%s with it disabled", o.GetKind(), o.GetName())
		}
	}

	cm := find(t, decode(t, helm(t, "--set", "monitoring.dashboard.labels.grafana_dashboard=yes")), "ConfigMap", "smartbackup-dashboard")
	if got := cm.GetLabels()["grafana_dashboard"]; got != "yes" {
		t.Errorf("dashboard label grafana_dashboard = %q, want the value's yes", got)
	}
	for _, o := range decode(t, helm(t, "--set", "monitoring.dashboard.enabled=false")) {
		if o.GetKind() == "ConfigMap" && o.GetName() == "smartbackup-dashboard" {
			t.Error("rendered the dashboard with monitoring.dashboard.enabled=false")
		}
	}
}

// alertExpr is the expression of the rendered alert.
func alertExpr(t *testing.T, objs []*unstructured.Unstructured, alert string) string {
	t.Helper()
	groups, _, _ := unstructured.NestedSlice(find(t, objs, "PrometheusRule", "smartbackup-webhook").Object, "spec", "groups")
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			if rule := r.(map[string]any); rule["alert"] == alert {
				return rule["expr"].(string)
			}
		}
	}
	t.Fatalf("no alert %s rendered", alert)
	return ""
}

// The metrics the rules and the dashboard may read besides the product's own:
// kube-state-metrics', controller-runtime's and Prometheus' up.
var externalMetrics = []string{
	"up",
	"kube_cronjob_created",
	"kube_cronjob_info",
	"kube_cronjob_spec_suspend",
	"kube_cronjob_status_last_successful_time",
	"kube_cronjob_status_last_schedule_time",
	"kube_job_failed",
	"kube_job_status_start_time",
	"kube_job_status_completion_time",
	"kube_pod_init_container_status_ready",
	"kube_pod_init_container_status_restarts_total",
	"kube_pod_init_container_status_running",
	"kube_pod_init_container_status_waiting_reason",
	"controller_runtime_reconcile_errors_total",
	"controller_runtime_reconcile_total",
	"controller_runtime_webhook_requests_total",
}

// productMetrics greps the metric names the product's code registers
// (prometheus.NewCounterVec(prometheus.CounterOpts{Name: ...}) and the like), with a
// histogram's series suffixes.
func productMetrics(t *testing.T) []string {
	t.Helper()
	decl := regexp.MustCompile(`prometheus\.New(Counter|Gauge|Histogram|Summary)(?:Vec)?\(prometheus\.\w+Opts\{\s*Name:\s*"([a-z_:][a-z0-9_:]*)"`)
	var names []string
	root := testenv.RepoRoot()
	for _, dir := range []string{"webhook", "internal", "cronbackup", "initrestore"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for _, m := range decl.FindAllStringSubmatch(string(b), -1) {
				switch m[1] {
				case "Histogram", "Summary":
					names = append(names, m[2]+"_bucket", m[2]+"_sum", m[2]+"_count")
				default:
					names = append(names, m[2])
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Contains(names, "smartbackup_webhook_admissions_total") || !slices.Contains(names, "smartbackup_backup_cronjob_state") {
		t.Fatalf("the code's metric declarations were not found (found %v)", names)
	}
	return names
}

var (
	promqlStrings = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promqlParts   = regexp.MustCompile(`\{[^}]*\}|\[[^\]]*\]|\$\{?\w+\}?|\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promqlIdent   = regexp.MustCompile(`\b[a-zA-Z_:][a-zA-Z0-9_:]*\s*\(?`)
	promqlWords   = []string{"and", "or", "unless", "offset", "bool", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan"}
)

// metricNames returns the metric names a PromQL expression selects: what is left of it
// without strings, label matchers, ranges, Grafana variables and grouping lists, less
// function calls and keywords.
func metricNames(expr string) []string {
	e := promqlParts.ReplaceAllString(promqlStrings.ReplaceAllString(expr, `""`), " ")
	var out []string
	for _, id := range promqlIdent.FindAllString(e, -1) {
		id = strings.TrimSpace(id)
		if strings.HasSuffix(id, "(") || slices.Contains(promqlWords, strings.ToLower(id)) {
			continue
		}
		out = append(out, id)
	}
	return out
}

func TestMetricNames(t *testing.T) {
	got := metricNames(`sum by (namespace, le) (rate(a_bucket{x="}{", namespace=~"$namespace"}[$__rate_interval])) / on (ns) group_left () b_total offset 5m > bool 3 or absent(up{job="x"} == 1)`)
	if diff := strings.Join(got, " "); diff != "a_bucket b_total up" {
		t.Errorf("metricNames = %q, want a_bucket b_total up", diff)
	}
}

// dashboardQueries returns the dashboard's expressions: every panel target's (rows'
// nested panels too) and every query variable's.
func dashboardQueries(t *testing.T) map[string]string {
	t.Helper()
	cm := find(t, decode(t, helm(t)), "ConfigMap", "smartbackup-dashboard")
	var dash struct {
		Panels     []panel `json:"panels"`
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Type  string `json:"type"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	data, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if err := json.Unmarshal([]byte(data["smartbackup.json"]), &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	out := map[string]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for i, tg := range p.Targets {
				out[fmt.Sprintf("panel %q #%d", p.Title, i)] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(dash.Panels)
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*\w+\)$`)
	for _, v := range dash.Templating.List {
		if v.Type != "query" {
			continue
		}
		q, _ := v.Query.(string)
		if m, ok := v.Query.(map[string]any); ok {
			q, _ = m["query"].(string)
		}
		if sm := labelValues.FindStringSubmatch(q); sm != nil {
			q = sm[1]
		}
		out["variable "+v.Name] = q
	}
	return out
}

type panel struct {
	Title   string  `json:"title"`
	Panels  []panel `json:"panels"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
}

// TestDashboardAndRulesUseMetricsThatExist: every metric name a dashboard panel or an
// alert reads is one the code registers or one of externalMetrics, and each panel's
// PromQL parses (promtool check rules on recording rules made of them).
func TestDashboardAndRulesUseMetricsThatExist(t *testing.T) {
	known := append(productMetrics(t), externalMetrics...)
	queries := dashboardQueries(t)
	if len(queries) < 10 {
		t.Fatalf("the dashboard has %d queries: %v", len(queries), queries)
	}
	objs := withMonitoring(t, "--set", "sync.targetURL=file:///rubrik", "--set", "sync.targetClaim=rubrik-managed-volume")
	groups, _, _ := unstructured.NestedSlice(find(t, objs, "PrometheusRule", "smartbackup-webhook").Object, "spec", "groups")
	for _, g := range groups {
		rules, _ := g.(map[string]any)["rules"].([]any)
		for _, r := range rules {
			rule := r.(map[string]any)
			queries["alert "+rule["alert"].(string)] = rule["expr"].(string)
		}
	}
	var recording []map[string]string
	grafanaVars := strings.NewReplacer("$__rate_interval", "5m", "$__range", "1d", "$__interval", "1m", "$namespace", ".*")
	for name, expr := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: no metric in %q", name, expr)
		}
		for _, n := range names {
			if !slices.Contains(known, n) {
				t.Errorf("%s reads %s, which neither the code registers nor externalMetrics lists", name, n)
			}
		}
		if !strings.HasPrefix(name, "alert ") {
			recording = append(recording, map[string]string{"record": fmt.Sprintf("smartbackup:dashboard:q%d", len(recording)), "expr": grafanaVars.Replace(expr)})
		}
	}
	b, err := yaml.Marshal(map[string]any{"groups": []any{map[string]any{"name": "dashboard", "rules": recording}}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "dashboard.yaml")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	promtool(t, "check", "rules", path)
}

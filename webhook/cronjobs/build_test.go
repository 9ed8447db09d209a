package cronjobs_test

import (
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	"sigs.k8s.io/yaml"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden.yaml from the current output")

func backup(t *testing.T, cfg *config.Config, ns inject.Namespace) *batchv1.CronJob {
	t.Helper()
	s, d := inject.ParseBackup(ns, cfg)
	if d != nil {
		t.Fatal(d)
	}
	p, err := cronjobs.PlanFor(ns, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if p.Source == contract.ScheduleSourceWindow {
		// Alone in its window, a namespace starts at its preferred minute.
		p.Schedule = p.Window.Schedule(cronjobs.NewSpread(p.Window).Place(ns.Name))
	}
	return cronjobs.Backup(s, p, cfg)
}

// TestGolden compares the CronJobs with testdata/NAME.golden.yaml; -update rewrites
// them and a golden file no case produces fails the test.
func TestGolden(t *testing.T) {
	cases := map[string]func(t *testing.T) *batchv1.CronJob{
		"backup-smarterp-volume": func(t *testing.T) *batchv1.CronJob {
			return backup(t, configtest.New(t, nil), inject.Namespace{
				Name:        "acme-prd",
				Labels:      map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSmartERP},
				Annotations: map[string]string{contract.AnnotationDatabaseEndpoint: "postgres.acme-prd.svc", contract.AnnotationDatabaseName: "erp"},
			})
		},
		"backup-sistemico-bucket": func(t *testing.T) *batchv1.CronJob {
			cfg := configtest.New(t, map[string]string{"BACKUP_SERVICE_ACCOUNT": "smartbackup-backup", "SUCCESSFUL_JOBS_HISTORY": "5"})
			return backup(t, cfg, inject.Namespace{
				Name: "globex-hml",
				// Restore settings (environment, source) do not matter to the backup.
				Labels: map[string]string{contract.LabelEnabled: "true", contract.LabelProduct: contract.ProductSistemico},
				Annotations: map[string]string{
					contract.AnnotationDatabaseEndpoint: "10.20.30.40", contract.AnnotationDatabasePort: "5433",
					contract.AnnotationDatabaseName: "sistemico", contract.AnnotationDatabaseCodepage: "LATIN1",
					contract.AnnotationDatabaseSecret: "globex-db", contract.AnnotationBackupSchedule: "15 22 * * 1-5",
					contract.AnnotationBackupKeepDaily: "14", contract.AnnotationBackupKeepMonthly: "12",
					contract.AnnotationBackupMaxConcurrentPerServer: "1",
				},
			})
		},
		"sync-to-volume": func(t *testing.T) *batchv1.CronJob {
			return cronjobs.Sync(configtest.New(t, map[string]string{
				"SYNC_TARGET_URL": "file:///rubrik", "SYNC_TARGET_CLAIM": "rubrik-managed-volume", "SYNC_KEEP_DAILY": "30",
				"SYNC_KEEP_WEEKLY": "8", "SYNC_KEEP_MONTHLY": "12",
			}))
		},
		"sync": func(t *testing.T) *batchv1.CronJob {
			return cronjobs.Sync(configtest.New(t, map[string]string{"SYNC_TARGET_URL": "s3://rubrik-archive/smarterp?endpoint=https://rubrik.example.internal"}))
		},
	}
	used := map[string]bool{}
	for name, build := range cases {
		golden := filepath.Join("testdata", name+".golden.yaml")
		used[golden] = true
		t.Run(name, func(t *testing.T) {
			cj := build(t)
			got, err := yaml.Marshal(cj)
			if err != nil {
				t.Fatal(err)
			}
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (go test -update creates it): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("%s differs (-golden +got):\n%s", golden, diff)
			}
			pod := cj.Spec.JobTemplate.Spec.Template.Spec
			for _, e := range pod.Containers[0].Env {
				if slices.Contains(contract.Secrets, e.Name) && (e.Value != "" || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
					t.Errorf("%s is not a secretKeyRef", e.Name)
				}
				if !slices.Contains(contract.Names, e.Name) {
					t.Errorf("%s is not in internal/contract's list", e.Name)
				}
			}
			if cj.Spec.JobTemplate.Spec.Template.Labels[contract.LabelAppName] == contract.DBAccessName {
				t.Error("backup pods must not look like dbaccess pods to the webhook")
			}
		})
	}
	goldens, _ := filepath.Glob(filepath.Join("testdata", "*.golden.yaml"))
	for _, g := range goldens {
		if !used[g] {
			t.Errorf("%s is produced by no case: delete it", g)
		}
	}
}

func TestSchedule(t *testing.T) {
	cfg := configtest.New(t, map[string]string{"BACKUP_SCHEDULE": "0 20 * * *"})
	cases := map[string]struct {
		annotation *string
		operator   *string // BACKUP_SCHEDULE when set
		want       string
		err        string
	}{
		"without an annotation the operator's schedule applies": {want: "0 20 * * *"},
		"without either, none (a start in the window)":          {operator: new(""), want: ""},
		"an annotation overrides it":                            {annotation: new("30 22 * * 1-5"), want: "30 22 * * 1-5"},
		"an annotation with six fields is refused":              {annotation: new("0 0 21 * * *"), err: "five-field"},
		"an empty annotation is refused":                        {annotation: new(""), err: "five-field"},
		"an annotation with a newline is refused":               {annotation: new("0 21 * * *\n0 3 * * *"), err: "five-field"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			ns := inject.Namespace{Name: "ns", Annotations: map[string]string{}}
			cfg := cfg
			if tc.operator != nil {
				cfg = configtest.New(t, map[string]string{"BACKUP_SCHEDULE": *tc.operator})
			}
			if tc.annotation != nil {
				ns.Annotations[contract.AnnotationBackupSchedule] = *tc.annotation
			}
			got, err := cronjobs.Schedule(ns, cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Schedule = %q, %v; want an error with %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Schedule = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestSyncIsOffWithoutTarget(t *testing.T) {
	if cj := cronjobs.Sync(configtest.New(t, nil)); cj != nil {
		t.Errorf("Sync without SYNC_TARGET_URL = %s/%s, want none", cj.Namespace, cj.Name)
	}
}

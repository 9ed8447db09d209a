package cronjobs_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/contract"
	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
	"github.com/smartbackup/smartbackup/webhook/cronjobs"
	"github.com/smartbackup/smartbackup/webhook/inject"
)

func mustWindow(t *testing.T, s string) config.Window {
	t.Helper()
	w, err := config.ParseWindow(s)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestParseWindow(t *testing.T) {
	cases := map[string]struct {
		in            string
		start, minute int
		err           bool
	}{
		"two hours from 21:00":          {in: "21:00-23:00", start: 21 * 60, minute: 120},
		"past midnight":                 {in: "23:30-01:15", start: 23*60 + 30, minute: 105},
		"to midnight":                   {in: "22:00-24:00", start: 22 * 60, minute: 120},
		"a whole day":                   {in: "21:00-21:00", start: 21 * 60, minute: 24 * 60},
		"one minute":                    {in: "21:00-21:01", start: 21 * 60, minute: 1},
		"hours without two digits":      {in: "9:00-11:00", err: true},
		"a single time":                 {in: "21:00", err: true},
		"minutes past 59":               {in: "21:60-22:00", err: true},
		"after 24:00":                   {in: "21:00-24:30", err: true},
		"a cron expression":             {in: "0 21 * * *", err: true},
		"spaces around the dash":        {in: "21:00 - 23:00", err: true},
		"trailing garbage after a line": {in: "21:00-23:00\n", err: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			w, err := config.ParseWindow(tc.in)
			if tc.err {
				if err == nil {
					t.Fatalf("ParseWindow(%q) = %+v, want an error", tc.in, w)
				}
				return
			}
			if err != nil || w.Start != tc.start || w.Minutes != tc.minute {
				t.Fatalf("ParseWindow(%q) = %+v, %v; want start %d, %d minutes", tc.in, w, err, tc.start, tc.minute)
			}
			if back, _ := config.ParseWindow(w.String()); back != w {
				t.Errorf("%q renders as %q, which reads back as %+v", tc.in, w.String(), back)
			}
		})
	}
}

func TestWindowScheduleAndOffset(t *testing.T) {
	w := mustWindow(t, "23:30-01:15")
	for off := range w.Minutes {
		s := w.Schedule(off)
		got, ok := w.Offset(s)
		if !ok || got != off {
			t.Fatalf("offset %d renders %q, which reads back as %d, %v", off, s, got, ok)
		}
	}
	if s := w.Schedule(45); s != "15 0 * * *" {
		t.Errorf("45 minutes into 23:30-01:15 = %q, want 15 0 * * *", s)
	}
	for _, s := range []string{"20 1 * * *", "0 21 * * 1-5", "*/5 23 * * *", "30 23 * * * extra", "07 23 * * *"} {
		if off, ok := w.Offset(s); ok {
			t.Errorf("Offset(%q) = %d, want none (outside the window, or not a daily start)", s, off)
		}
	}
}

// histogram is the start-minute histogram as one line: count per minute.
func histogram(loads []int) string {
	var b strings.Builder
	for _, n := range loads {
		fmt.Fprintf(&b, "%d", n)
	}
	return b.String()
}

func TestSpreadBoundsEveryMinute(t *testing.T) {
	for _, tc := range []struct {
		window     string
		namespaces int
	}{{"21:00-23:00", 500}, {"21:00-23:00", 50}, {"23:30-00:30", 2000}, {"21:00-21:10", 37}} {
		t.Run(fmt.Sprintf("%d namespaces in %s", tc.namespaces, tc.window), func(t *testing.T) {
			w := mustWindow(t, tc.window)
			sp := cronjobs.NewSpread(w)
			plain := make([]int, w.Minutes)
			atPreferred := 0
			for i := range tc.namespaces {
				ns := fmt.Sprintf("cliente-%04d-prd", i)
				off := sp.Place(ns)
				if again := sp.Place(ns); again != off {
					t.Fatalf("%s placed at %d, then at %d", ns, off, again)
				}
				pref := cronjobs.Preferred(ns, w.Minutes)
				plain[pref]++
				if off == pref {
					atPreferred++
				}
			}
			limit := (tc.namespaces+w.Minutes-1)/w.Minutes + 1
			loads := sp.Loads()
			if m := slices.Max(loads); m > limit {
				t.Errorf("busiest minute has %d starts, want at most ⌈N/W⌉+1 = %d; histogram %s", m, limit, histogram(loads))
			}
			t.Logf("busiest minute %d (plain hash: %d), %d of %d at their preferred minute; histogram %s",
				slices.Max(loads), slices.Max(plain), atPreferred, tc.namespaces, histogram(loads))
		})
	}
}

func TestSpreadKeepsStartsAcrossRestartsAndDepartures(t *testing.T) {
	w := mustWindow(t, "21:00-23:00")
	first := cronjobs.NewSpread(w)
	starts := map[string]int{}
	for i := range 300 {
		ns := fmt.Sprintf("ns-%d", i)
		starts[ns] = first.Place(ns)
	}
	// A new webhook seeds its Spread from the CronJobs, in another order, and then
	// sees namespaces leave and others arrive: nobody who stays moves.
	second := cronjobs.NewSpread(w)
	for i := 299; i >= 0; i-- {
		ns := fmt.Sprintf("ns-%d", i)
		second.Keep(ns, starts[ns])
	}
	for i := 0; i < 300; i += 3 {
		second.Release(fmt.Sprintf("ns-%d", i))
	}
	for i := range 100 {
		second.Place(fmt.Sprintf("new-%d", i))
	}
	for i := range 300 {
		if i%3 == 0 {
			continue // left
		}
		ns := fmt.Sprintf("ns-%d", i)
		if got := second.Place(ns); got != starts[ns] {
			t.Errorf("%s moved from %d to %d", ns, starts[ns], got)
		}
	}
}

func TestPlanFor(t *testing.T) {
	cfg := configtest.New(t, nil)
	cases := map[string]struct {
		annotations map[string]string
		operator    string
		want        cronjobs.Plan
		err         string
	}{
		"the defaults: a start in 21:00-23:00, 7 daily, 4 weekly, 3 monthly, 4 dumps per server": {
			want: cronjobs.Plan{Source: contract.ScheduleSourceWindow, Window: config.Window{Start: 21 * 60, Minutes: 120},
				KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 3, MaxConcurrentPerServer: 4},
		},
		"annotations override retention and slots": {
			annotations: map[string]string{
				contract.AnnotationBackupKeepDaily: "30", contract.AnnotationBackupKeepWeekly: "0",
				contract.AnnotationBackupKeepMonthly: "24", contract.AnnotationBackupMaxConcurrentPerServer: "0",
			},
			want: cronjobs.Plan{Source: contract.ScheduleSourceWindow, Window: config.Window{Start: 21 * 60, Minutes: 120},
				KeepDaily: 30, KeepWeekly: 0, KeepMonthly: 24, MaxConcurrentPerServer: 0},
		},
		"a schedule annotation wins over the window": {
			annotations: map[string]string{contract.AnnotationBackupSchedule: "15 3 * * *"},
			want:        cronjobs.Plan{Schedule: "15 3 * * *", Source: contract.ScheduleSourceNamespace, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 3, MaxConcurrentPerServer: 4},
		},
		"the operator's BACKUP_SCHEDULE wins over the window": {
			operator: "0 21 * * *",
			want:     cronjobs.Plan{Schedule: "0 21 * * *", Source: contract.ScheduleSourceOperator, KeepDaily: 7, KeepWeekly: 4, KeepMonthly: 3, MaxConcurrentPerServer: 4},
		},
		"zero dailies are refused":           {annotations: map[string]string{contract.AnnotationBackupKeepDaily: "0"}, err: contract.AnnotationBackupKeepDaily},
		"a negative weekly count is refused": {annotations: map[string]string{contract.AnnotationBackupKeepWeekly: "-1"}, err: contract.AnnotationBackupKeepWeekly},
		"a padded number is refused":         {annotations: map[string]string{contract.AnnotationBackupKeepMonthly: " 3"}, err: contract.AnnotationBackupKeepMonthly},
		"slots beyond the bound are refused": {annotations: map[string]string{contract.AnnotationBackupMaxConcurrentPerServer: "1000"}, err: contract.AnnotationBackupMaxConcurrentPerServer},
		"words are refused":                  {annotations: map[string]string{contract.AnnotationBackupKeepDaily: "seven"}, err: contract.AnnotationBackupKeepDaily},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			cfg := cfg
			if tc.operator != "" {
				cfg = configtest.New(t, map[string]string{"BACKUP_SCHEDULE": tc.operator})
			}
			if tc.annotations == nil {
				tc.annotations = map[string]string{}
			}
			got, err := cronjobs.PlanFor(inject.Namespace{Name: "acme-prd", Annotations: tc.annotations}, cfg)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("PlanFor = %+v, %v; want an error naming %s", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("PlanFor = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

package config_test

import (
	"testing"

	"github.com/smartbackup/smartbackup/webhook/config"
)

// FuzzParseWindow: BACKUP_WINDOW is the operator's. A window it accepts is one to
// 1440 minutes from a start within the day, prints back as itself, and every schedule
// it hands out starts inside it and reads back at the same offset.
func FuzzParseWindow(f *testing.F) {
	for _, s := range []string{"01:00-05:00", "22:30-02:15", "00:00-24:00", "21:00-21:00", "23:59-00:00", "24:00-01:00", "1:00-5:00"} {
		f.Add(s, 0, "0 1 * * *")
	}
	f.Fuzz(func(t *testing.T, s string, offset int, schedule string) {
		w, err := config.ParseWindow(s)
		if err != nil {
			return
		}
		if w.Start < 0 || w.Start >= 24*60 || w.Minutes < 1 || w.Minutes > 24*60 {
			t.Fatalf("ParseWindow(%q) = %+v", s, w)
		}
		if again, err := config.ParseWindow(w.String()); err != nil || again != w {
			t.Fatalf("ParseWindow(%q) = %+v prints as %q, which reads as %+v, %v", s, w, w.String(), again, err)
		}
		off := offset % w.Minutes
		if off < 0 {
			off += w.Minutes
		}
		sched := w.Schedule(off)
		if !config.ValidSchedule(sched) {
			t.Fatalf("window %v hands out schedule %q, which ValidSchedule refuses", w, sched)
		}
		if got, ok := w.Offset(sched); !ok || got != off {
			t.Fatalf("window %v: schedule %q at offset %d reads back as %d, %v", w, sched, off, got, ok)
		}
		if got, ok := w.Offset(schedule); ok && (got < 0 || got >= w.Minutes || w.Schedule(got) != schedule) {
			t.Fatalf("window %v: Offset(%q) = %d, true, but Schedule(%d) = %q", w, schedule, got, got, w.Schedule(got))
		}
	})
}

// FuzzValidSchedule: a schedule annotation is the namespace administrator's; no value
// panics, and an accepted one is short and has the five fields the CronJob expects.
func FuzzValidSchedule(f *testing.F) {
	f.Add("0 3 * * *")
	f.Add("*/15 1-5 * * MON-FRI")
	f.Add("@daily")
	f.Fuzz(func(t *testing.T, s string) {
		if !config.ValidSchedule(s) {
			return
		}
		fields := 1
		for _, c := range s {
			if c == ' ' {
				fields++
			} else if c < '!' || c > '~' {
				t.Fatalf("accepted %q: it holds %q", s, c)
			}
		}
		if fields != 5 || len(s) > 100 {
			t.Fatalf("accepted %q: %d fields, %d bytes", s, fields, len(s))
		}
	})
}

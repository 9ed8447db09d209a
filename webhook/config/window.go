package config

import (
	"fmt"
	"regexp"
	"strconv"
)

// MaxKeep bounds each retention count (more than ten years of dailies is a typo).
const MaxKeep = 4000

// MaxSlots bounds BACKUP_MAX_CONCURRENT_PER_SERVER.
const MaxSlots = 256

// Window is a daily time window: Minutes minutes from Start (minutes after midnight).
type Window struct {
	Start, Minutes int
}

var windowRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-3]|24):([0-5][0-9])$`)

// ParseWindow reads "HH:MM-HH:MM" (the end excluded; an end before the start is on the
// next day; 24:00 is midnight). A window has at least one minute and at most a day.
func ParseWindow(s string) (Window, error) {
	m := windowRE.FindStringSubmatch(s)
	if m == nil {
		return Window{}, fmt.Errorf("window %q is not HH:MM-HH:MM", s)
	}
	n := func(i int) int { v, _ := strconv.Atoi(m[i]); return v }
	start, end := n(1)*60+n(2), n(3)*60+n(4)
	if end > 24*60 {
		return Window{}, fmt.Errorf("window %q ends after 24:00", s)
	}
	minutes := (end - start + 24*60) % (24 * 60)
	if minutes == 0 {
		minutes = 24 * 60 // 21:00-21:00: the whole day
	}
	return Window{Start: start, Minutes: minutes}, nil
}

// String renders the window as ParseWindow reads it.
func (w Window) String() string {
	end := (w.Start + w.Minutes) % (24 * 60)
	return fmt.Sprintf("%02d:%02d-%02d:%02d", w.Start/60, w.Start%60, end/60, end%60)
}

// Schedule is the daily five-field cron expression starting offset minutes into w.
func (w Window) Schedule(offset int) string {
	t := (w.Start + offset) % (24 * 60)
	return fmt.Sprintf("%d %d * * *", t%60, t/60)
}

// Offset is where a daily "M H * * *" schedule starts in w, false when schedule is not
// of that form or starts outside w.
func (w Window) Offset(schedule string) (int, bool) {
	var m, h int
	var rest string
	if n, _ := fmt.Sscanf(schedule, "%d %d * * *%s", &m, &h, &rest); n != 2 || m < 0 || m > 59 || h < 0 || h > 23 ||
		schedule != fmt.Sprintf("%d %d * * *", m, h) {
		return 0, false
	}
	off := (h*60 + m - w.Start + 24*60) % (24 * 60)
	return off, off < w.Minutes
}

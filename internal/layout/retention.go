package layout

import (
	"fmt"
	"sort"
	"time"
)

// Policy is how many backups to keep: the newest backup of each of the Daily most
// recent days that have one, of each of the Weekly most recent ISO weeks, and of each of
// the Monthly most recent months, days, weeks and months counted in Location.
type Policy struct {
	Daily, Weekly, Monthly int
	Location               *time.Location
}

// Retain splits backups into those to keep and those to delete. The newest backup is
// always kept, whatever the policy says; the latest copy is not a backup key and never
// reaches this function. Inputs of several namespaces are handled per namespace.
func Retain(backups []Backup, p Policy) (keep, drop []Backup) {
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	byNS := map[string][]Backup{}
	for _, b := range backups {
		byNS[b.Namespace] = append(byNS[b.Namespace], b)
	}
	nss := make([]string, 0, len(byNS))
	for ns := range byNS {
		nss = append(nss, ns)
	}
	sort.Strings(nss)
	for _, ns := range nss {
		bs := byNS[ns]
		// Newest first, so the first backup of a period is its newest.
		sort.Slice(bs, func(i, j int) bool { return bs[i].Time.After(bs[j].Time) })
		kept := map[string]bool{bs[0].Key: true}
		mark := func(n int, period func(time.Time) string) {
			seen := map[string]bool{}
			for _, b := range bs {
				if len(seen) == n {
					return
				}
				k := period(b.Time.In(loc))
				if !seen[k] {
					seen[k] = true
					kept[b.Key] = true
				}
			}
		}
		mark(p.Daily, func(t time.Time) string { return t.Format("2006-01-02") })
		mark(p.Weekly, func(t time.Time) string { y, w := t.ISOWeek(); return fmt.Sprintf("%dW%02d", y, w) })
		mark(p.Monthly, func(t time.Time) string { return t.Format("2006-01") })
		for _, b := range bs {
			if kept[b.Key] {
				keep = append(keep, b)
			} else {
				drop = append(drop, b)
			}
		}
	}
	return keep, drop
}

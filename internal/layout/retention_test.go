package layout

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func daily(ns string, first time.Time, n int) []Backup {
	var out []Backup
	for i := range n {
		t := first.AddDate(0, 0, i)
		out = append(out, Backup{Namespace: ns, Key: BackupKey(ns, t), Time: t})
	}
	return out
}

func keys(bs []Backup) []string {
	var out []string
	for _, b := range bs {
		out = append(out, b.Key)
	}
	return out
}

func TestRetain(t *testing.T) {
	// 21:00 in São Paulo is midnight UTC: days must be counted in the policy's zone.
	sp, err := time.LoadLocation("America/Sao_Paulo")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 11, 1, 21, 0, 0, 0, sp)
	ten := daily("prod", start, 10)
	tests := map[string]struct {
		in       []Backup
		policy   Policy
		wantDrop []string
	}{
		"ten daily backups and seven to keep drop the three oldest": {
			in: ten, policy: Policy{Daily: 7, Location: sp}, wantDrop: keys(reverse(ten[:3])),
		},
		"fewer backups than the policy drop nothing": {
			in: ten[:5], policy: Policy{Daily: 7, Location: sp},
		},
		"a policy of zero still keeps the newest": {
			in: ten[:3], policy: Policy{Location: sp}, wantDrop: keys(reverse(ten[:2])),
		},
		"two backups on one day keep only that day's newest": {
			in:     append(daily("prod", start, 3), Backup{Namespace: "prod", Key: BackupKey("prod", start.Add(time.Hour)), Time: start.Add(time.Hour)}),
			policy: Policy{Daily: 3, Location: sp}, wantDrop: []string{BackupKey("prod", start)},
		},
		"weekly keeps the newest of older weeks": {
			in: daily("prod", start, 21), policy: Policy{Daily: 2, Weekly: 3, Location: sp},
			// Kept: Nov 20, 21 (daily); Nov 21 (week 47), Nov 15 (week 46), Nov 8 (week 45).
			wantDrop: func() []string {
				all := daily("prod", start, 21)
				var out []string
				for i := 19; i >= 0; i-- {
					if d := all[i].Time.In(sp).Day(); d != 15 && d != 8 && d != 20 {
						out = append(out, all[i].Key)
					}
				}
				return out
			}(),
		},
		"days without a backup do not count: the N most recent days that have one": {
			// Backups on Nov 1, 2, 5 and 10 with three days to keep: Nov 10, 5 and 2 stay,
			// although Nov 2 is eight days before the newest.
			in: []Backup{ten[0], ten[1], ten[4], ten[9]}, policy: Policy{Daily: 3, Location: sp},
			wantDrop: []string{ten[0].Key},
		},
		"namespaces are independent": {
			in: append(daily("a", start, 3), daily("b", start, 1)...), policy: Policy{Daily: 2, Location: sp},
			wantDrop: []string{BackupKey("a", start)},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			keep, drop := Retain(tc.in, tc.policy)
			if diff := cmp.Diff(tc.wantDrop, keys(drop)); diff != "" {
				t.Errorf("dropped (-want +got):\n%s", diff)
			}
			if len(keep)+len(drop) != len(tc.in) {
				t.Errorf("kept %d + dropped %d != %d", len(keep), len(drop), len(tc.in))
			}
		})
	}
}

func reverse(bs []Backup) []Backup {
	out := append([]Backup(nil), bs...)
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

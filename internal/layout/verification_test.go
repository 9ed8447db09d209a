package layout

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseVerification(t *testing.T) {
	good := Verification{Version: 1, Verdict: VerdictPassed, Namespace: "acme-prd", Object: "acme-prd/database_20261124T210000Z.dump.gz",
		FinishedAt: time.Date(2026, 11, 29, 3, 0, 0, 0, time.UTC)}
	tests := map[string]struct {
		edit    func(v *Verification)
		wantErr string
	}{
		"passed":                  {},
		"failed":                  {edit: func(v *Verification) { v.Verdict, v.Failures = VerdictFailed, []string{"x"} }},
		"a newer version":         {edit: func(v *Verification) { v.Version = 2 }, wantErr: "version 2"},
		"an unknown verdict":      {edit: func(v *Verification) { v.Verdict = "ok" }, wantErr: `verdict "ok"`},
		"another namespace's key": {edit: func(v *Verification) { v.Object = "outro-prd/database_20261124T210000Z.dump.gz" }, wantErr: "not a backup key of namespace"},
		"the latest copy":         {edit: func(v *Verification) { v.Object = LatestKey(v.Namespace) }, wantErr: "not a backup key"},
		"no finish time":          {edit: func(v *Verification) { v.FinishedAt = time.Time{} }, wantErr: "finishedAt"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			v := good
			if tc.edit != nil {
				tc.edit(&v)
			}
			b, _ := json.Marshal(v)
			got, err := ParseVerification(b)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrBadVerification) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ParseVerification = %+v, %v; want ErrBadVerification with %q", got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got.Object != v.Object || got.Verdict != v.Verdict {
				t.Fatalf("ParseVerification = %+v, %v", got, err)
			}
		})
	}
}

// FuzzParseVerification: verification results come from a bucket; any bytes give a
// result of the namespace's own backup key or ErrBadVerification, never a panic.
func FuzzParseVerification(f *testing.F) {
	f.Add([]byte(`{"version":1,"verdict":"passed","namespace":"ns","object":"ns/database_20261124T210000Z.dump.gz","finishedAt":"2026-11-29T03:00:00Z"}`))
	f.Add([]byte(`{"version":1,"verdict":"failed","failures":["a"],"figures":{"mismatches":[{"schema":"s"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := ParseVerification(b)
		if err != nil {
			if !errors.Is(err, ErrBadVerification) {
				t.Fatalf("error %v is not ErrBadVerification", err)
			}
			return
		}
		if bk, ok := ParseBackupKey(v.Object); !ok || bk.Namespace != v.Namespace {
			t.Fatalf("accepted object %q of namespace %q", v.Object, v.Namespace)
		}
	})
}

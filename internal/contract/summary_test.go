package contract_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/internal/contract"
)

func TestSummaryRoundTrip(t *testing.T) {
	good := []contract.Summary{
		{Kind: contract.SummaryRestore, Outcome: "restored", Object: "cliente-prod/database_20261201T224749Z.dump.gz",
			SHA256: strings.Repeat("ab", 32), Seconds: 2.13},
		{Kind: contract.SummaryRestore, Outcome: "exists", Seconds: 0.04},
		{Kind: contract.SummaryRestore, Outcome: contract.OutcomeFailed, ExitCode: 8, Reason: contract.ExitMeaning(contract.SummaryRestore, 8), Seconds: 1},
		{Kind: contract.SummaryBackup, Outcome: contract.OutcomeSucceeded, Object: "acme-prd/database_20261201T210000Z.dump.gz", SHA256: strings.Repeat("0", 64), Seconds: 90},
		{Kind: contract.SummaryBackup, Outcome: contract.OutcomeFailed, ExitCode: 5, Reason: contract.ExitMeaning(contract.SummaryBackup, 5)},
	}
	for _, s := range good {
		got, err := contract.ParseSummary(s.Line())
		if err != nil || got != s {
			t.Errorf("ParseSummary(%s) = %+v, %v", s.Line(), got, err)
		}
	}
	bad := []string{
		"", "dbaccess cannot boot: password authentication failed for user x",
		`{"kind":"restore","outcome":"restored","seconds":1,"exitCode":0,"rows":"Valéria"}`,
		`{"kind":"restore","outcome":"dropped","seconds":1,"exitCode":0}`,
		`{"kind":"restore","outcome":"failed","seconds":1,"exitCode":0}`,
		`{"kind":"restore","outcome":"restored","seconds":1,"exitCode":3}`,
		`{"kind":"backup","outcome":"restored","seconds":1,"exitCode":0}`,
		`{"kind":"restore","outcome":"restored","object":"../../etc/passwd","seconds":1,"exitCode":0}`,
		`{"kind":"restore","outcome":"restored","sha256":"xyz","seconds":1,"exitCode":0}`,
		`{"kind":"restore","outcome":"failed","seconds":1,"exitCode":5,"reason":"CPF 123.456.789-09 <script>"}`,
		`{"kind":"restore","outcome":"restored","seconds":-1,"exitCode":0}`,
		`{"kind":"restore","outcome":"restored","seconds":1,"exitCode":0} {"kind":"restore"}`,
		strings.Repeat(" ", 5000),
	}
	for _, m := range bad {
		if s, err := contract.ParseSummary(m); err == nil {
			t.Errorf("ParseSummary(%q) = %+v, want an error", m, s)
		}
	}
}

func TestWriteSummary(t *testing.T) {
	p := filepath.Join(t.TempDir(), "termination-log")
	t.Setenv(contract.EnvTerminationMessagePath, p)
	s := contract.Summary{Kind: contract.SummaryRestore, Outcome: "exists", Seconds: 0.5}
	if err := contract.WriteSummary(s); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := contract.ParseSummary(string(b)); err != nil || got != s {
		t.Fatalf("written %q: %+v %v", b, got, err)
	}
	t.Setenv(contract.EnvTerminationMessagePath, filepath.Join(t.TempDir(), "missing", "x"))
	if err := contract.WriteSummary(s); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

// FuzzParseSummary: a termination message is outside input (any program in the
// container could write it); what ParseSummary accepts is a data-free summary that
// survives a round trip.
func FuzzParseSummary(f *testing.F) {
	f.Add(`{"kind":"restore","outcome":"restored","object":"cliente-prod/database_20261201T224749Z.dump.gz","sha256":"` + strings.Repeat("ab", 32) + `","seconds":2.13,"exitCode":0}`)
	f.Add(`{"kind":"backup","outcome":"failed","seconds":3,"exitCode":5,"reason":"storage unreachable or forbidden"}`)
	f.Add("not json")
	f.Fuzz(func(t *testing.T, msg string) {
		s, err := contract.ParseSummary(msg)
		if err != nil {
			return
		}
		again, err := contract.ParseSummary(s.Line())
		if err != nil || again != s {
			t.Fatalf("%q parsed to %+v, whose line %s parses to %+v, %v", msg, s, s.Line(), again, err)
		}
		if len(s.Line()) > 4096 {
			t.Fatalf("summary line of %d bytes", len(s.Line()))
		}
	})
}

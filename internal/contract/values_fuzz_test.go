package contract

import (
	"slices"
	"strings"
	"testing"
)

// FuzzValues: codepage, locale and SSL mode come from namespace annotations and reach
// CREATE DATABASE and libpq. An accepted value has no character that could end a
// quoted SQL literal or identifier, or start another option.
func FuzzValues(f *testing.F) {
	for _, s := range []string{"WIN1252", "UTF8", "pt_BR.CP1252", "C", "en_US.UTF-8@euro", "verify-full", "prefer", "x'; DROP DATABASE erp; --", "\"", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if ValidCodepage(s) || ValidLocale(s) {
			if s == "" || len(s) > 64 || strings.ContainsAny(s, "'\"\\ ;=\x00\n\t") {
				t.Fatalf("accepted %q as a codepage or locale", s)
			}
		}
		if ValidSSLMode(s) != slices.Contains(SSLModes, s) {
			t.Fatalf("ValidSSLMode(%q) disagrees with SSLModes", s)
		}
		if SSLModeNeedsCA(s) && !ValidSSLMode(s) {
			t.Fatalf("SSLModeNeedsCA(%q) for a mode that is not valid", s)
		}
	})
}

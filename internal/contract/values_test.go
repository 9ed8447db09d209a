package contract

import "testing"

func TestValidValues(t *testing.T) {
	for _, tc := range []struct {
		value         string
		codepage, loc bool
	}{
		{"WIN1252", true, true},
		{"SQL_ASCII", true, true},
		{"pt_BR.CP1252", false, true},
		{"C", false, true},
		{"", false, false},
		{"UTF8; DROP DATABASE x", false, false},
		{"1252", false, true},
	} {
		if got := ValidCodepage(tc.value); got != tc.codepage {
			t.Errorf("ValidCodepage(%q) = %v", tc.value, got)
		}
		if got := ValidLocale(tc.value); got != tc.loc {
			t.Errorf("ValidLocale(%q) = %v", tc.value, got)
		}
	}
}

func TestValidSSLMode(t *testing.T) {
	for mode, want := range map[string]bool{
		"disable": true, "allow": true, "prefer": true, "require": true, "verify-ca": true, "verify-full": true,
		"": false, "Require": false, "verify_full": false, "on": false, "require ": false,
	} {
		if got := ValidSSLMode(mode); got != want {
			t.Errorf("ValidSSLMode(%q) = %v, want %v", mode, got, want)
		}
	}
	if !SSLModeNeedsCA("verify-ca") || !SSLModeNeedsCA("verify-full") || SSLModeNeedsCA("require") {
		t.Error("SSLModeNeedsCA: only verify-ca and verify-full need a CA file")
	}
}

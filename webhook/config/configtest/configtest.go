// Package configtest builds operator configurations for tests through the real loader
// (environment variables, envconfig defaults, validation), so tests exercise the
// defaults the Deployment gets.
package configtest

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/webhook/config"
)

// Env is the environment of the test configuration: fixed images, SmartERP on a cluster
// volume (as the operations page keeps it) and Sistêmico in a bucket.
func Env() map[string]string {
	return map[string]string{
		"INITRESTORE_IMAGE":     "smartbackup/initrestore:test",
		"CRONBACKUP_IMAGE":      "smartbackup/cronbackup:test",
		"STORAGE_URL_SMARTERP":  "file:///backup",
		"VOLUME_SOURCE":         "nfs://nfs.backup.internal/exports/smartbackup",
		"STORAGE_URL_SISTEMICO": "gs://sistemico-backups/br",
		"LEADER_ELECTION":       "false",
	}
}

// New loads a configuration from Env plus overrides (names without the SMARTBACKUP_
// prefix; an empty value unsets the variable). Every other SMARTBACKUP_ variable of the
// test process is cleared first so the result does not depend on the caller's shell.
func New(tb testing.TB, overrides map[string]string) *config.Config {
	tb.Helper()
	// envconfig also reads each name without the prefix when the prefixed one is
	// unset (NAMESPACE, TIME_ZONE, …), so both forms are cleared.
	names := map[string]bool{}
	for _, kv := range os.Environ() {
		if k, _, _ := strings.Cut(kv, "="); strings.HasPrefix(k, config.Prefix+"_") {
			names[k] = true
		}
	}
	t := reflect.TypeFor[config.Config]()
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("envconfig"); name != "" {
			names[name] = true
		}
	}
	for k := range names {
		if _, ok := os.LookupEnv(k); ok {
			tb.Setenv(k, "")
			os.Unsetenv(k)
		}
	}
	env := Env()
	for k, v := range overrides {
		env[k] = v
	}
	for k, v := range env {
		if v == "" {
			continue
		}
		tb.Setenv(config.Prefix+"_"+k, v)
	}
	cfg, err := config.Load()
	if err != nil {
		tb.Fatalf("loading the test configuration: %v", err)
	}
	return cfg
}

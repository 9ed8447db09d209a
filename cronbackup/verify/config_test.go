package verify_test

import (
	"strings"
	"testing"

	"github.com/smartbackup/smartbackup/cronbackup/verify"
)

// TestConfigErrorsNameTheVariable: each bad setting is refused naming its variable, and
// the verification server defaults to the namespace's own.
func TestConfigErrorsNameTheVariable(t *testing.T) {
	base := map[string]string{
		"DATABASE_ENDPOINT": "db.internal", "DATABASE_PORT": "5433", "DATABASE_ADMIN_USER": "admin", "DATABASE_ADMIN_PASSWORD": "pw",
		"BACKUP_STORAGE_URL": "file:///backups", "NAMESPACE": "cliente-prod",
	}
	tests := map[string]struct {
		set  map[string]string
		want string
	}{
		"a port out of range":           {set: map[string]string{"VERIFY_DATABASE_PORT": "70000"}, want: "VERIFY_DATABASE_PORT"},
		"an admin name that is SQL":     {set: map[string]string{"DATABASE_ADMIN_USER": "x; DROP"}, want: "DATABASE_ADMIN_USER"},
		"a maintenance database of SQL": {set: map[string]string{"VERIFY_MAINTENANCE_DATABASE": "a b"}, want: "VERIFY_MAINTENANCE_DATABASE"},
		"no namespace":                  {set: map[string]string{"NAMESPACE": "Not_A_Namespace"}, want: "NAMESPACE"},
		"a bad storage URL":             {set: map[string]string{"BACKUP_STORAGE_URL": "ftp://x"}, want: "BACKUP_STORAGE_URL"},
		"no admin password":             {set: map[string]string{"DATABASE_ADMIN_PASSWORD": ""}, want: "DATABASE_ADMIN_PASSWORD"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			for k, v := range base {
				t.Setenv(k, v)
			}
			for k, v := range tc.set {
				t.Setenv(k, v)
			}
			_, err := verify.LoadConfig()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig = %v, want an error naming %s", err, tc.want)
			}
		})
	}
	t.Run("the verification server defaults to the namespace's", func(t *testing.T) {
		for k, v := range base {
			t.Setenv(k, v)
		}
		c, err := verify.LoadConfig()
		if err != nil || c.VerifyEndpoint != "db.internal" || c.VerifyPort != 5433 {
			t.Fatalf("%+v, %v", c, err)
		}
		t.Setenv("VERIFY_DATABASE_ENDPOINT", "verify.internal")
		if c, err = verify.LoadConfig(); err != nil || c.VerifyEndpoint != "verify.internal" || c.VerifyPort != 5432 {
			t.Fatalf("%+v, %v", c, err)
		}
	})
}

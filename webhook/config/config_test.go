package config_test

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/smartbackup/smartbackup/webhook/config"
	"github.com/smartbackup/smartbackup/webhook/config/configtest"
)

func TestDefaults(t *testing.T) {
	cfg := configtest.New(t, nil)
	checks := map[string]struct{ got, want any }{
		"backups start from 21:00, spread":       {cfg.BackupWindow, "21:00-23:00"},
		"no fixed schedule for every namespace":  {cfg.BackupSchedule, ""},
		"retention is 7 daily":                   {cfg.BackupKeepDaily, 7},
		"4 weekly":                               {cfg.BackupKeepWeekly, 4},
		"3 monthly":                              {cfg.BackupKeepMonthly, 3},
		"4 dumps per database server":            {cfg.BackupMaxConcurrentPerServer, 4},
		"in São Paulo time":                      {cfg.TimeZone, "America/Sao_Paulo"},
		"the sync runs at 06:00":                 {cfg.SyncSchedule, "0 6 * * *"},
		"in the smartbackup namespace":           {cfg.SyncNamespace, "smartbackup"},
		"the codepage is WIN1252":                {cfg.DefaultCodepage, "WIN1252"},
		"TLS comes from cert-manager":            {cfg.TLSMode, config.TLSCertManager},
		"the scratch volume is 20Gi":             {cfg.ScratchSize.String(), "20Gi"},
		"a missing backup fails the restore":     {cfg.RestoreOnMissingBackup, "fail"},
		"images are pulled if not present":       {cfg.ImagePullPolicy, corev1.PullIfNotPresent},
		"the certificate lives a year":           {cfg.CertValidity, 365 * 24 * time.Hour},
		"dbaccess pods are selected by app name": {cfg.DBAccessSelector().Matches(labels.Set{"app.kubernetes.io/name": "dbaccess"}), true},
		"other pods are not":                     {cfg.DBAccessSelector().Matches(labels.Set{"app.kubernetes.io/name": "web"}), false},
	}
	for name, c := range checks {
		if c.got != c.want {
			t.Errorf("%s: got %v, want %v", name, c.got, c.want)
		}
	}
}

// TestInvalid sets one bad variable at a time; Load must refuse it and name it.
func TestInvalid(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		name string // the variable the error must name
	}{
		"no image for the init container":         {map[string]string{"INITRESTORE_IMAGE": ""}, "INITRESTORE_IMAGE"},
		"no storage for any product":              {map[string]string{"STORAGE_URL_SMARTERP": "", "STORAGE_URL_SISTEMICO": ""}, "SMARTBACKUP_STORAGE_URL_SMARTERP"},
		"credentials in a storage URL":            {map[string]string{"STORAGE_URL_SISTEMICO": "s3://key:secret@bucket"}, "SMARTBACKUP_STORAGE_URL_SISTEMICO"},
		"an unknown storage scheme":               {map[string]string{"STORAGE_URL_SISTEMICO": "ftp://host/dir"}, "SMARTBACKUP_STORAGE_URL_SISTEMICO"},
		"a relative volume path":                  {map[string]string{"STORAGE_URL_SMARTERP": "file://backup"}, "SMARTBACKUP_STORAGE_URL_SMARTERP"},
		"a sync without a SmartERP volume":        {map[string]string{"STORAGE_URL_SMARTERP": "gs://erp", "SYNC_TARGET_URL": "s3://rubrik"}, "SMARTBACKUP_SYNC_TARGET_URL"},
		"a volume sync target without its claim":  {map[string]string{"SYNC_TARGET_URL": "file:///rubrik"}, "SMARTBACKUP_SYNC_TARGET_CLAIM"},
		"a sync onto its own source":              {map[string]string{"SYNC_TARGET_URL": "file:///backup", "SYNC_TARGET_CLAIM": "x"}, "SMARTBACKUP_SYNC_TARGET_URL"},
		"an empty dbaccess selector":              {map[string]string{"DBACCESS_LABEL": ","}, "SMARTBACKUP_DBACCESS_LABEL"},
		"a malformed dbaccess selector":           {map[string]string{"DBACCESS_LABEL": "app in (dbaccess"}, "SMARTBACKUP_DBACCESS_LABEL"},
		"a six-field schedule":                    {map[string]string{"BACKUP_SCHEDULE": "0 0 21 * * *"}, "SMARTBACKUP_BACKUP_SCHEDULE"},
		"a window that is a cron expression":      {map[string]string{"BACKUP_WINDOW": "0 21 * * *"}, "SMARTBACKUP_BACKUP_WINDOW"},
		"no daily backup kept":                    {map[string]string{"BACKUP_KEEP_DAILY": "0"}, "SMARTBACKUP_BACKUP_KEEP_DAILY"},
		"negative dump slots":                     {map[string]string{"BACKUP_MAX_CONCURRENT_PER_SERVER": "-1"}, "SMARTBACKUP_BACKUP_MAX_CONCURRENT_PER_SERVER"},
		"an unknown time zone":                    {map[string]string{"TIME_ZONE": "Brazil/Nowhere"}, "SMARTBACKUP_TIME_ZONE"},
		"a request above its limit":               {map[string]string{"RESTORE_MEMORY_REQUEST": "2Gi", "RESTORE_MEMORY_LIMIT": "1Gi"}, "SMARTBACKUP_RESTORE_CPU_REQUEST"},
		"a zero scratch size":                     {map[string]string{"SCRATCH_SIZE": "0"}, "SMARTBACKUP_SCRATCH_SIZE"},
		"a quantity that is not one":              {map[string]string{"SCRATCH_SIZE": "lots"}, "SCRATCH_SIZE"},
		"running as root":                         {map[string]string{"RUN_AS_USER": "0"}, "SMARTBACKUP_RUN_AS_USER"},
		"an unknown TLS mode":                     {map[string]string{"TLS_MODE": "letsencrypt"}, "SMARTBACKUP_TLS_MODE"},
		"self-managed TLS without a namespace":    {map[string]string{"TLS_MODE": "self"}, "SMARTBACKUP_NAMESPACE"},
		"leader election without a namespace":     {map[string]string{"LEADER_ELECTION": "true"}, "SMARTBACKUP_NAMESPACE"},
		"a check interval longer than a third":    {map[string]string{"TLS_MODE": "self", "NAMESPACE": "sb", "TLS_CERT_VALIDITY": "1h", "TLS_CHECK_INTERVAL": "30m"}, "SMARTBACKUP_TLS_CHECK_INTERVAL"},
		"an extra SAN that is no name":            {map[string]string{"TLS_MODE": "self", "NAMESPACE": "sb", "TLS_EXTRA_SANS": "not a name"}, "SMARTBACKUP_TLS_EXTRA_SANS"},
		"an unknown missing-backup policy":        {map[string]string{"RESTORE_ON_MISSING_BACKUP": "maybe"}, "SMARTBACKUP_RESTORE_ON_MISSING_BACKUP"},
		"a codepage with a space":                 {map[string]string{"DEFAULT_CODEPAGE": "WIN 1252"}, "SMARTBACKUP_DEFAULT_CODEPAGE"},
		"an unknown pull policy":                  {map[string]string{"IMAGE_PULL_POLICY": "Sometimes"}, "SMARTBACKUP_IMAGE_PULL_POLICY"},
		"a relative cert directory":               {map[string]string{"CERT_DIR": "certs"}, "SMARTBACKUP_CERT_DIR"},
		"a volume claim that is not a name":       {map[string]string{"VOLUME_CLAIM": "Backups!"}, "SMARTBACKUP_VOLUME_CLAIM"},
		"a starting deadline the API would clamp": {map[string]string{"STARTING_DEADLINE": "1s"}, "SMARTBACKUP_STARTING_DEADLINE"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			configtest.New(t, nil) // clears the environment and sets the valid base
			for k, v := range tc.env {
				t.Setenv(config.Prefix+"_"+k, v)
			}
			_, err := config.Load()
			if err == nil {
				t.Fatal("Load accepted the configuration")
			}
			if !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

func TestStoragePath(t *testing.T) {
	cases := map[string]struct {
		url, path string
		ok        bool
	}{
		"a bucket has no path":            {"gs://bucket/prefix", "", true},
		"an S3 bucket with options":       {"s3://bucket?region=sa-east-1", "", true},
		"a volume has its directory":      {"file:///backup", "/backup", true},
		"localhost is no host":            {"file://localhost/backup/erp", "/backup/erp", true},
		"the root is refused":             {"file:///", "", false},
		"an unclean path is refused":      {"file:///backup/../etc", "", false},
		"a bucket is required":            {"gs:///prefix", "", false},
		"an unknown scheme is refused":    {"http://bucket", "", false},
		"credentials are refused":         {"gs://user:pw@bucket", "", false},
		"a control character is no URL":   {"gs://bucket/\x7f", "", false},
		"a host on a file URL is refused": {"file://nas/backup", "", false},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			p, err := config.StoragePath(tc.url)
			if (err == nil) != tc.ok || p != tc.path {
				t.Errorf("StoragePath(%q) = %q, %v; want %q, ok %v", tc.url, p, err, tc.path, tc.ok)
			}
		})
	}
}

package backup_test

import (
	"os"
	"testing"
	"time"

	"github.com/smartbackup/smartbackup/cronbackup/backup"
	"github.com/smartbackup/smartbackup/internal/layout"
)

// TestRetentionDefaultsAreSevenFourThree: without BACKUP_KEEP_* a backup keeps 7 dailies,
// 4 weeklies and 3 monthlies, so corruption noticed after a week is still recoverable.
func TestRetentionDefaultsAreSevenFourThree(t *testing.T) {
	for k, v := range map[string]string{
		"DATABASE_ENDPOINT": "db", "DATABASE_USER": "u", "DATABASE_PASSWORD": "p", "DATABASE_CODEPAGE": "UTF8",
		"BACKUP_STORAGE_URL": "file:///backup", "NAMESPACE": "cliente-prod",
	} {
		t.Setenv(k, v)
	}
	for _, k := range []string{"BACKUP_KEEP_DAILY", "BACKUP_KEEP_WEEKLY", "BACKUP_KEEP_MONTHLY"} {
		t.Setenv(k, "") // restored after the test
		os.Unsetenv(k)
	}
	cfg, err := backup.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.KeepDaily != 7 || cfg.KeepWeekly != 4 || cfg.KeepMonthly != 3 {
		t.Fatalf("defaults %d/%d/%d, want 7/4/3", cfg.KeepDaily, cfg.KeepWeekly, cfg.KeepMonthly)
	}
	// 120 nightly backups: 7 days, the older Sundays' weeks, the older months.
	var bs []layout.Backup
	start := time.Date(2026, 8, 3, 0, 0, 0, 0, time.UTC) // a Monday
	for d := range 120 {
		tm := start.AddDate(0, 0, d).Add(21 * time.Hour)
		bs = append(bs, layout.Backup{Namespace: "cliente-prod", Key: layout.BackupKey("cliente-prod", tm), Time: tm})
	}
	keep, _ := layout.Retain(bs, layout.Policy{Daily: cfg.KeepDaily, Weekly: cfg.KeepWeekly, Monthly: cfg.KeepMonthly, Location: time.UTC})
	oldest := keep[len(keep)-1].Time
	if age := bs[len(bs)-1].Time.Sub(oldest); age < 60*24*time.Hour {
		t.Errorf("the oldest backup kept is %s old, want about three months", age)
	}
	if len(keep) < 7+3 || len(keep) > 7+4+3 {
		t.Errorf("kept %d backups, want between 10 and 14", len(keep))
	}
}

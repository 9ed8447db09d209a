package contract

import (
	"reflect"
	"sort"
)

// Names is every environment variable of the contract.
var Names = []string{
	EnvDatabaseEndpoint, EnvDatabasePort, EnvDatabaseName, EnvDatabaseUser, EnvDatabasePassword,
	EnvDatabaseAdminUser, EnvDatabaseAdminPassword, EnvDatabaseCodepage, EnvDatabaseLocale,
	EnvDatabaseExtensions, EnvDatabaseWaitTimeout, EnvDatabaseSSLMode, EnvDatabaseSSLRootCert,
	EnvBackupStorageURL, EnvNamespace, EnvPodName, EnvEnvironment,
	EnvRestoreSourceNamespace, EnvRestoreOnMissingBackup, EnvRestoreRequestID, EnvRestoreRequestSource,
	EnvRestoreScratchDir, EnvRestoreScratchMax, EnvRestoreJobs, EnvRestoreMaskingSQL,
	EnvBackupKeepDaily, EnvBackupKeepWeekly, EnvBackupKeepMonthly, EnvDumpCompression, EnvGzipLevel,
	EnvSyncTargetURL, EnvSyncSourceURL, EnvSyncKeepDaily, EnvBackupTimezone, EnvGzipThreads,
	EnvClientRoot, EnvProgressInterval, EnvLogVerbosity,
	EnvBackupMaxConcurrentPerServer, EnvBackupSlotWaitTimeout, EnvBackupSlotDatabase,
	EnvSyncKeepWeekly, EnvSyncKeepMonthly,
	EnvVerifyDatabaseEndpoint, EnvVerifyDatabasePort, EnvVerifyMaintenanceDatabase,
}

// Secrets are the variables that must only ever be injected by secretKeyRef.
var Secrets = []string{EnvDatabaseUser, EnvDatabasePassword, EnvDatabaseAdminUser, EnvDatabaseAdminPassword}

// UnknownTags returns the envconfig tags of a config struct that are not contract
// names: a binary's test calls it so config and contract cannot drift.
func UnknownTags(config any) []string {
	known := map[string]bool{}
	for _, n := range Names {
		known[n] = true
	}
	var unknown []string
	t := reflect.TypeOf(config)
	for i := range t.NumField() {
		if tag := t.Field(i).Tag.Get("envconfig"); tag != "" && !known[tag] {
			unknown = append(unknown, tag)
		}
	}
	sort.Strings(unknown)
	return unknown
}

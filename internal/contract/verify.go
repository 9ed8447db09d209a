package contract

// `cronbackup verify`: the weekly proof that a namespace's latest backup restores (its
// environment is in contract.go).
const (
	// VerifyDatabaseSuffix names the scratch database a backup is restored into:
	// <database>__verify, owned by the admin, CONNECT revoked from PUBLIC.
	VerifyDatabaseSuffix = "__verify"

	// VerifyCronJobName is the weekly verification CronJob in each enabled namespace.
	VerifyCronJobName = "smartbackup-verify"
	// AnnotationVerifyEndpoint is a namespace's verification server, host or
	// host:port, over the operator's VERIFY_SERVER and the namespace's own server.
	AnnotationVerifyEndpoint = "smartbackup.io/verify-endpoint"
)

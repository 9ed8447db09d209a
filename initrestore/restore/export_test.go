package restore

// Knobs for tests of this package.
var (
	RetryDelay        = &retryDelay
	LockKey           = lockKey
	MissingExtensions = missingExtensions
)

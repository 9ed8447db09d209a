package restore

// Knobs for tests of this package.
var (
	LockKey           = lockKey
	MissingExtensions = missingExtensions
	AfterLoad         = &afterLoad
	RestorerName      = restorerName
)

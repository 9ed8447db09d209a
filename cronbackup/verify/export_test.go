package verify

// SetHooks sets the test hooks around pg_restore; nil clears them.
func SetHooks(before, after func(scratch string)) { beforeRestore, afterRestore = before, after }

package logging

import (
	"os"
	"runtime/debug"
)

// DefaultMemoryLimit is the soft memory limit of initrestore and cronbackup when
// GOMEMLIMIT is not set. Their live memory is bounded (transfer buffers of a few tens
// of MiB); without a limit the garbage collector lets the heap grow to twice that
// before collecting, and a stream of short-lived compression buffers would push the
// resident size past the container's budget.
const DefaultMemoryLimit = 96 << 20

// LimitMemory applies DefaultMemoryLimit unless GOMEMLIMIT says otherwise.
func LimitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(DefaultMemoryLimit)
	}
}

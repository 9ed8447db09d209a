package gzipx

import (
	"math"
	"runtime/debug"
	"sync"
)

// offHeapMu serialises changes of the soft memory limit by writers.
var offHeapMu sync.Mutex

// reserveOffHeap lowers the Go runtime's soft memory limit (GOMEMLIMIT, or the one the
// binaries set: logging.DefaultMemoryLimit) by n bytes of C memory the caller holds,
// and returns the function that gives them back. The limit exists to bound the
// process's resident size, and the runtime does not count C memory: without this, a
// heap allowed to grow to the limit plus the libdeflate members' 20 MiB put the backup
// at 145 MiB. The limit never drops below half of what it was; with no limit set
// nothing changes.
func reserveOffHeap(n int64) (release func()) {
	offHeapMu.Lock()
	defer offHeapMu.Unlock()
	cur := debug.SetMemoryLimit(-1)
	if cur == math.MaxInt64 || n <= 0 {
		return func() {}
	}
	d := min(n, cur/2)
	debug.SetMemoryLimit(cur - d)
	var once sync.Once
	return func() {
		once.Do(func() {
			offHeapMu.Lock()
			defer offHeapMu.Unlock()
			debug.SetMemoryLimit(debug.SetMemoryLimit(-1) + d)
		})
	}
}

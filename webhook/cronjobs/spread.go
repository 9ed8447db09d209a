package cronjobs

import (
	"crypto/sha256"
	"encoding/binary"
	"sync"

	"github.com/smartbackup/smartbackup/webhook/config"
)

// Spread chooses each namespace's start minute in the backup window: hashing with
// bounded loads. A namespace's preferred minute is a hash of its name (uniform over
// the window, the same forever); it takes the first minute from there, wrapping
// around the window, that holds fewer than ⌈k/W⌉+1 starts, k being the number of
// namespaces placed with it and W the window's minutes. So no minute ever holds more
// than ⌈N/W⌉+1 of N namespaces, where a plain hash puts about twice the mean on its
// busiest minute (balls into bins), and most namespaces start at their preferred
// minute. A start, once chosen, is kept while its CronJob exists (the reconciler
// seeds the Spread from the CronJobs at its first reconcile), so it survives webhook
// restarts and does not move when other namespaces come and go; it changes only when
// the window does. Safe for concurrent use.
type Spread struct {
	mu     sync.Mutex
	window config.Window
	start  map[string]int // namespace → offset into the window
	load   []int          // starts per offset
}

// NewSpread is an empty Spread over w.
func NewSpread(w config.Window) *Spread {
	return &Spread{window: w, start: map[string]int{}, load: make([]int, w.Minutes)}
}

// Window is the window the Spread places starts in.
func (s *Spread) Window() config.Window { return s.window }

// Preferred is the offset into a window of minutes minutes that ns prefers: the first
// eight bytes of the SHA-256 of its name, modulo minutes.
func Preferred(ns string, minutes int) int {
	h := sha256.Sum256([]byte(ns))
	return int(binary.BigEndian.Uint64(h[:8]) % uint64(minutes))
}

// Keep records a start already in use (an existing CronJob's), whatever the load.
func (s *Spread) Keep(ns string, offset int) {
	if offset < 0 || offset >= s.window.Minutes {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(ns)
	s.start[ns] = offset
	s.load[offset]++
}

// Place returns ns's offset: the one it has, else a new one chosen as the type says.
func (s *Spread) Place(ns string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if off, ok := s.start[ns]; ok {
		return off
	}
	w := s.window.Minutes
	k := len(s.start) + 1
	limit := (k+w-1)/w + 1
	off := Preferred(ns, w)
	for range w {
		if s.load[off] < limit {
			break
		}
		off = (off + 1) % w
	}
	s.start[ns] = off
	s.load[off]++
	return off
}

// Release forgets ns's start (its CronJob is gone or no longer starts in the window).
func (s *Spread) Release(ns string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(ns)
}

func (s *Spread) releaseLocked(ns string) {
	if off, ok := s.start[ns]; ok {
		s.load[off]--
		delete(s.start, ns)
	}
}

// Loads is the number of starts per minute of the window.
func (s *Spread) Loads() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.load...)
}

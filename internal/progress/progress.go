// Package progress reports long transfers in the structured log: bytes moved, rate,
// elapsed time and, when the total is known, percentage and ETA.
package progress

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
)

// Counter counts bytes written through it; it is safe for concurrent use.
type Counter struct {
	n     atomic.Int64
	start time.Time
}

// NewCounter starts a counter now.
func NewCounter() *Counter { return &Counter{start: time.Now()} }

// Write counts p.
func (c *Counter) Write(p []byte) (int, error) {
	c.n.Add(int64(len(p)))
	return len(p), nil
}

// Add counts n bytes.
func (c *Counter) Add(n int64) { c.n.Add(n) }

// Bytes is the count so far.
func (c *Counter) Bytes() int64 { return c.n.Load() }

// Elapsed is the time since the counter started.
func (c *Counter) Elapsed() time.Duration { return time.Since(c.start) }

// Rate is the mean rate in MiB/s.
func (c *Counter) Rate() float64 {
	s := c.Elapsed().Seconds()
	if s <= 0 {
		return 0
	}
	return float64(c.Bytes()) / (1 << 20) / s
}

// Report logs msg with the counter's figures every interval until ctx ends. total is
// the expected size, or 0 when unknown.
func Report(ctx context.Context, log logr.Logger, msg string, c *Counter, total int64, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			log.Info(msg, Fields(c, total)...)
		}
	}
}

// Fields are the key/value pairs describing c's progress towards total.
func Fields(c *Counter, total int64) []any {
	n := c.Bytes()
	kv := []any{"bytes", n, "MiBps", round1(c.Rate()), "elapsed", c.Elapsed().Round(time.Second).String()}
	if total > 0 {
		kv = append(kv, "percent", round1(100*float64(n)/float64(total)))
		if r := c.Rate(); r > 0 && n < total {
			eta := time.Duration(float64(total-n) / (1 << 20) / r * float64(time.Second))
			kv = append(kv, "eta", eta.Round(time.Second).String())
		}
	}
	return kv
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

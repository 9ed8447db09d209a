// Package logging builds the structured logger of initrestore and cronbackup: one JSON
// object per line on stderr, as cluster log pipelines expect. It is logr over funcr, so
// the init container starts in milliseconds (no zap, no Kubernetes client).
package logging

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
)

// New returns a JSON logger writing to w. verbosity > 0 enables V(n) lines. The
// component is the first field of every line.
func New(w io.Writer, component string, verbosity int) logr.Logger {
	var mu sync.Mutex
	return funcr.NewJSON(func(obj string) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintln(w, obj)
	}, funcr.Options{
		LogTimestamp:    true,
		TimestampFormat: time.RFC3339Nano,
		Verbosity:       verbosity,
		LogCaller:       funcr.None,
	}).WithName(component)
}

// FromEnv is New on stderr with the verbosity of LOG_VERBOSITY (default 0).
func FromEnv(component string) logr.Logger {
	v, _ := strconv.Atoi(os.Getenv("LOG_VERBOSITY"))
	return New(os.Stderr, component, v)
}

//go:build !unix

package provider

import (
	"testing"
	"time"
)

// processCPU skips the benchmark that measures processor time where
// getrusage is missing.
func processCPU(tb testing.TB) time.Duration {
	tb.Skip("the processor time of the process is read with getrusage, which this system lacks")
	return 0
}

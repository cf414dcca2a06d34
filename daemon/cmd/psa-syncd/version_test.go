package main

import (
	"sync"
	"testing"

	commonversion "github.com/prometheus/common/version"
)

// TestBuildVersion_concurrent does what parallel in-process commands do:
// each asks for the version and then reads the build-info globals (as
// daemon.New does for psa_sync_build_info) while the others ask too. Under
// -race (make test-race) it fails if buildVersion writes the globals on
// every call.
func TestBuildVersion_concurrent(t *testing.T) {
	t.Parallel()
	var wg sync.WaitGroup
	got := make([]string, 8)
	for i := range got {
		wg.Add(2)
		go func() { defer wg.Done(); got[i] = buildVersion() }()
		go func() { defer wg.Done(); _ = buildVersion() + commonversion.Version + commonversion.Revision }()
	}
	wg.Wait()
	for i, v := range got {
		if v == "" || v != got[0] {
			t.Errorf("buildVersion() call %d returned %q, want %q from every call", i, v, got[0])
		}
	}
}

package provider

import (
	"context"
	"sync"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestClaimRegistry_claim(t *testing.T) {
	t.Parallel()

	r := newClaimRegistry()
	if _, ok := r.claim(psa.SystemAutotask, "sophos", "29684183", "sophos/a"); !ok {
		t.Fatal("first claim refused")
	}
	// Terraform may plan one resource more than once.
	if _, ok := r.claim(psa.SystemAutotask, "sophos", "29684183", "sophos/a"); !ok {
		t.Error("second claim by the same customer refused")
	}
	if other, ok := r.claim(psa.SystemAutotask, "sophos", "29684183", "sophos/b"); ok || other != "sophos/a" {
		t.Errorf("claim by another customer = %q, %v; want sophos/a, false", other, ok)
	}
	// psa-syncd syncs one source at a time.
	if _, ok := r.claim(psa.SystemAutotask, "file", "29684183", "file/b"); !ok {
		t.Error("claim of the same contract for another source refused")
	}
	// Contract ids are per system.
	if _, ok := r.claim(psa.SystemConnectWise, "sophos", "29684183", "sophos/b"); !ok {
		t.Error("claim of the same id in another system refused")
	}
}

// lazyBackend is a backend that learns its instance on first use, like
// Autotask without base_url.
type lazyBackend struct {
	psa.Backend // unused methods panic
	mu          sync.Mutex
	pings       int
	instance    string
}

func (b *lazyBackend) Instance() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.instance
}

func (b *lazyBackend) Ping(context.Context) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.pings++
	b.instance = "webservices5.autotask.net"
	return nil
}

func TestProviderData_instance(t *testing.T) {
	t.Parallel()

	b := &lazyBackend{}
	d := &providerData{backend: b, system: psa.SystemAutotask}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			in, err := d.instance(t.Context())
			if err != nil || in != "webservices5.autotask.net" {
				t.Errorf("instance() = %q, %v", in, err)
			}
		})
	}
	wg.Wait()
	if b.pings != 1 {
		t.Errorf("pinged %d times, want 1", b.pings)
	}
}

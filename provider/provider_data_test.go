package provider

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
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

// countingBackend counts the loads of the export store it wraps.
type countingBackend struct {
	export.Backend
	mu    sync.Mutex
	loads int
}

func (b *countingBackend) Load(ctx context.Context, ifNoneMatch string) (export.Blob, error) {
	b.mu.Lock()
	b.loads++
	b.mu.Unlock()
	return b.Backend.Load(ctx, ifNoneMatch)
}

func (b *countingBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.loads
}

// TestProviderData_readExport: one command reads the store once, however
// many resources ask, and its own writes are seen by the reads after them.
func TestProviderData_readExport(t *testing.T) {
	t.Parallel()

	store := &countingBackend{Backend: export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))}
	d := &providerData{
		backend: &lazyBackend{instance: "webservices5.autotask.net"},
		system:  psa.SystemAutotask,
		store:   export.NewClient(store),
	}
	ctx := t.Context()
	for range 3 {
		if _, found, err := d.readExport(ctx); err != nil || found {
			t.Fatalf("readExport() of an empty store = found %v, %v; want not found", found, err)
		}
	}
	if n := store.count(); n != 1 {
		t.Errorf("three reads of an empty store loaded it %d times, want 1", n)
	}

	m := export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000012", ServiceName: "Intercept X", SyncEnabled: true}
	if err := d.updateExport(ctx, func(doc *export.Document) error { doc.PutProduct(m); return nil }); err != nil {
		t.Fatal(err)
	}
	loads := store.count()
	for range 3 {
		doc, found, err := d.readExport(ctx)
		if err != nil || !found {
			t.Fatalf("readExport() after a write = found %v, %v; want the export", found, err)
		}
		if got, ok := doc.Product("sophos", "CIXA-MSP"); !ok || got != m {
			t.Fatalf("readExport() after a write holds %+v, %v; want %+v", got, ok, m)
		}
	}
	if n := store.count() - loads; n != 0 {
		t.Errorf("three reads after a write loaded the store %d times, want 0: the write returned the export", n)
	}

	// A failed write drops the version: the next read asks the store.
	if err := d.updateExport(ctx, func(*export.Document) error { return errors.New("boom") }); err == nil {
		t.Fatal("updateExport ignored the error of its function")
	}
	loads = store.count()
	if _, found, err := d.readExport(ctx); err != nil || !found {
		t.Fatalf("readExport() after a failed write = found %v, %v; want the export", found, err)
	}
	if n := store.count() - loads; n != 1 {
		t.Errorf("a read after a failed write loaded the store %d times, want 1", n)
	}
}

// TestProviderData_wroteExport_keepsNewest: writes that end out of order
// leave the newest export for the reads after them, and a failed one
// leaves none.
func TestProviderData_wroteExport_keepsNewest(t *testing.T) {
	t.Parallel()

	d := &providerData{}
	older, newer := &export.Document{Revision: 7}, &export.Document{Revision: 8}
	d.wroteExport(newer, nil)
	d.wroteExport(older, nil) // its goroutine came back last
	if doc, found, err := d.readExport(t.Context()); err != nil || !found || doc != newer {
		t.Errorf("readExport() = revision %d, found %v, %v; want revision 8", doc.Revision, found, err)
	}
	d.wroteExport(nil, errors.New("boom"))
	d.exportMu.Lock()
	defer d.exportMu.Unlock()
	if d.exportRead != nil {
		t.Error("a failed write left the export read before for the reads after it")
	}
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"

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

// TestProviderData_readExportFailed: a read that failed is kept for the
// command, as a successful one is, so the next resources report its error
// without asking the store again, until a write of the command; a read
// cancelled by its caller's context is not kept.
func TestProviderData_readExportFailed(t *testing.T) {
	t.Parallel()

	file := filepath.Join(t.TempDir(), "psa-mappings.json")
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	store := &countingBackend{Backend: export.NewFileBackend(file)}
	d := &providerData{
		backend: &lazyBackend{instance: "webservices5.autotask.net"},
		system:  psa.SystemAutotask,
		store:   export.NewClient(store),
	}
	ctx := t.Context()
	_, _, first := d.readExport(ctx)
	if first == nil {
		t.Fatal("readExport() of a truncated export succeeded")
	}
	for range 2 {
		if _, _, err := d.readExport(ctx); err == nil || err.Error() != first.Error() {
			t.Fatalf("readExport() again = %v, want %v", err, first)
		}
	}
	if n := store.count(); n != 1 {
		t.Errorf("three reads of a truncated export loaded it %d times, want 1", n)
	}
	written := &export.Document{Revision: 4, PSA: export.PSA{System: psa.SystemAutotask}}
	d.wroteExport(written, nil)
	if doc, found, err := d.readExport(ctx); err != nil || !found || doc != written {
		t.Errorf("readExport() after a write = %v, %v, %v; want the export written", doc, found, err)
	}

	cancelled := &countingBackend{Backend: contextBackend{export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))}}
	d = &providerData{system: psa.SystemAutotask, store: export.NewClient(cancelled)}
	stopped, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := d.readExport(stopped); !errors.Is(err, context.Canceled) {
		t.Fatalf("readExport() with a cancelled context = %v, want context.Canceled", err)
	}
	if _, found, err := d.readExport(ctx); err != nil || found {
		t.Errorf("readExport() after a cancelled read = found %v, %v; want an empty store", found, err)
	}
	if n := cancelled.count(); n != 2 {
		t.Errorf("a read after a cancelled one loaded the store %d times in all, want 2", n)
	}
}

// contextBackend is a store that fails a load whose context has ended.
type contextBackend struct{ export.Backend }

func (b contextBackend) Load(ctx context.Context, ifNoneMatch string) (export.Blob, error) {
	if err := ctx.Err(); err != nil {
		return export.Blob{}, err
	}
	return b.Backend.Load(ctx, ifNoneMatch)
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

// hookedBackend runs the hooks of beforeSave, one per Save, at its start.
type hookedBackend struct {
	export.Backend
	mu         sync.Mutex
	beforeSave []func()
}

func (b *hookedBackend) Save(ctx context.Context, data []byte, ifMatch string) (string, error) {
	b.mu.Lock()
	var hook func()
	if len(b.beforeSave) > 0 {
		hook, b.beforeSave = b.beforeSave[0], b.beforeSave[1:]
	}
	b.mu.Unlock()
	if hook != nil {
		hook()
	}
	return b.Backend.Save(ctx, data, ifMatch)
}

// TestProviderData_handOverInOneBatch moves a customer mapping to a new
// resource address without a moved block: Terraform deletes the old
// instance and creates the new one at the same time, and the export Client
// commits both changes in one batch, in the order they came. In either
// order the entry must stay when the values are the same; when they are
// not, the Delete that comes first removes the old entry and the Create
// writes its own, and the Create that comes first refuses the old entry as
// it would any other. The same holds when another writer saves first and
// the batch runs again on its export.
func TestProviderData_handOverInOneBatch(t *testing.T) {
	t.Parallel()
	old := export.CustomerMapping{Source: "sophos", CustomerID: "cust-01", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183", UsageSync: true}
	other := old
	other.ContractID = "29684184"
	for _, tc := range []struct {
		name        string
		created     export.CustomerMapping
		createFirst bool
		conflict    bool
		want        *export.CustomerMapping // nil: not in the export
		createFails bool
	}{
		{name: "create first", created: old, createFirst: true, want: &old},
		{name: "delete first", created: old, want: &old},
		{name: "create first, conflict", created: old, createFirst: true, conflict: true, want: &old},
		{name: "delete first, conflict", created: old, conflict: true, want: &old},
		{name: "other values, create first", created: other, createFirst: true, createFails: true},
		{name: "other values, delete first", created: other, want: &other},
		{name: "other values, create first, conflict", created: other, createFirst: true, conflict: true, createFails: true},
		{name: "other values, delete first, conflict", created: other, conflict: true, want: &other},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				file := export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))
				b := &hookedBackend{Backend: file}
				d := &providerData{
					backend: &lazyBackend{instance: "webservices5.autotask.net"},
					system:  psa.SystemAutotask,
					store:   export.NewClient(b),
				}
				r := &customerMappingResource{data: d}
				unrelated := func(id, contract string) func(*export.Document) error {
					m := old
					m.CustomerID, m.ContractID = id, contract
					return func(doc *export.Document) error { doc.PutCustomer(m); return nil }
				}
				// The old instance's entry, written by an earlier apply.
				if _, err := export.NewClient(file).Update(ctx, psa.SystemAutotask, "", func(doc *export.Document) error {
					doc.PutCustomer(old)
					return nil
				}); err != nil {
					t.Fatal(err)
				}

				// A write in flight, which the changes below wait behind
				// and are then committed together, in the order they came.
				release := make(chan struct{})
				b.beforeSave = append(b.beforeSave, func() { <-release })
				if tc.conflict {
					b.beforeSave = append(b.beforeSave, func() {
						if _, err := export.NewClient(file).Update(ctx, psa.SystemAutotask, "", unrelated("other-writer", "1")); err != nil {
							t.Error(err)
						}
					})
				}
				var wg sync.WaitGroup
				wg.Go(func() {
					if err := d.updateExport(ctx, unrelated("in-flight", "2")); err != nil {
						t.Error(err)
					}
				})
				synctest.Wait()

				var createErr, deleteErr error
				var owner string // the owner token the Create wrote
				create := func() {
					_, owner, createErr = d.createEntry(ctx, r.exportEntry(old.Source, old.CustomerID, &tc.created))
				}
				remove := func() { _, deleteErr = d.deleteEntry(ctx, r.exportEntry(old.Source, old.CustomerID, nil), "") }
				// An unrelated change of the batch, so that it is written.
				ops := []func(){func() {
					if err := d.updateExport(ctx, unrelated("batched", "3")); err != nil {
						t.Error(err)
					}
				}}
				if tc.createFirst {
					ops = append(ops, create, remove)
				} else {
					ops = append(ops, remove, create)
				}
				for _, op := range ops {
					wg.Go(op)
					synctest.Wait() // queued behind the write in flight
				}
				close(release)
				wg.Wait()

				if n := len(b.beforeSave); n > 0 {
					t.Fatalf("%d of the store's hooks did not run: the changes were not written", n)
				}
				if deleteErr != nil {
					t.Errorf("Delete: %v", deleteErr)
				}
				if (createErr != nil) != tc.createFails {
					t.Errorf("Create: %v; want an error: %v", createErr, tc.createFails)
				}
				doc, _, err := export.NewClient(file).Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				got, ok := doc.Customer(old.Source, old.CustomerID)
				// The entry holds the owner token of the Create that wrote
				// it last, so that the new instance's Delete removes it and
				// the old one's does not, in any later apply.
				if ok && got.Owner != owner {
					t.Errorf("the entry's owner is %q, want %q, the token the Create returned", got.Owner, owner)
				}
				got.Owner = ""
				switch {
				case tc.want == nil && ok:
					t.Errorf("the export holds %+v, want no entry: its resources were destroyed and not created", got)
				case tc.want != nil && !ok:
					t.Errorf("the export lost the entry: want %+v", *tc.want)
				case tc.want != nil && got != *tc.want:
					t.Errorf("the export holds %+v, want %+v", got, *tc.want)
				}
				for _, id := range []string{"in-flight", "batched"} {
					if _, ok := doc.Customer(old.Source, id); !ok {
						t.Errorf("the export lost the unrelated entry %s", id)
					}
				}
			})
		})
	}
}

// TestProviderData_conflictWaitsForRelease: a new customer mapping on the
// contract of another customer (both syncing usage) whose Create runs
// before the Delete that takes the other mapping off the export, in one
// apply (a for_each key renamed with the customer id), waits for that
// write and then succeeds; with nothing releasing the contract it fails
// after conflictWait, and the export keeps only the first customer.
func TestProviderData_conflictWaitsForRelease(t *testing.T) {
	t.Parallel()
	first := export.CustomerMapping{Source: "sophos", CustomerID: "cust-01", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183", UsageSync: true}
	second := first
	second.CustomerID = "cust-02"
	for _, released := range []bool{true, false} {
		t.Run(fmt.Sprintf("released=%v", released), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				file := export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))
				d := &providerData{
					backend: &lazyBackend{instance: "webservices5.autotask.net"},
					system:  psa.SystemAutotask,
					store:   export.NewClient(file),
				}
				r := &customerMappingResource{data: d}
				if _, err := export.NewClient(file).Update(ctx, psa.SystemAutotask, "", func(doc *export.Document) error {
					doc.PutCustomer(first)
					return nil
				}); err != nil {
					t.Fatal(err)
				}

				start := time.Now()
				var createErr error
				var took time.Duration
				var wg sync.WaitGroup
				wg.Go(func() {
					_, _, createErr = d.createEntry(ctx, r.exportEntry(second.Source, second.CustomerID, &second))
					took = time.Since(start)
				})
				time.Sleep(5 * time.Second) // Terraform runs the Delete later
				synctest.Wait()
				if released {
					if _, err := d.deleteEntry(ctx, r.exportEntry(first.Source, first.CustomerID, nil), ""); err != nil {
						t.Fatal(err)
					}
				}
				wg.Wait()

				doc, _, err := export.NewClient(file).Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				_, hasFirst := doc.Customer(first.Source, first.CustomerID)
				_, hasSecond := doc.Customer(second.Source, second.CustomerID)
				var conflict *conflictError
				switch {
				case released && (createErr != nil || hasFirst || !hasSecond):
					t.Errorf("Create = %v; export holds the first customer %v, the second %v: want the second only, once the Delete released the contract",
						createErr, hasFirst, hasSecond)
				case !released && (!errors.As(createErr, &conflict) || !hasFirst || hasSecond):
					t.Errorf("Create = %v; export holds the first customer %v, the second %v: want a conflict and the first only", createErr, hasFirst, hasSecond)
				case !released && took != conflictWait:
					t.Errorf("Create failed after %v, want conflictWait (%v)", took, conflictWait)
				}
			})
		})
	}
}

// TestServiceResource_checkUnmappedWaitsForRelease: the destroy of a
// service that a product mapping names by its id, in an apply that also
// removes that mapping but runs the destroy first, waits for the mapping's
// removal and then goes ahead; with the mapping staying it refuses after
// conflictWait.
func TestServiceResource_checkUnmappedWaitsForRelease(t *testing.T) {
	t.Parallel()
	mapping := export.ProductMapping{Source: "sophos", Product: "CIXA-MSP", ServiceID: "30000000", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true}
	for _, released := range []bool{true, false} {
		t.Run(fmt.Sprintf("released=%v", released), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				ctx := t.Context()
				file := export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))
				d := &providerData{
					backend: &lazyBackend{instance: "webservices5.autotask.net"},
					system:  psa.SystemAutotask,
					store:   export.NewClient(file),
				}
				if _, err := export.NewClient(file).Update(ctx, psa.SystemAutotask, "", func(doc *export.Document) error {
					doc.PutProduct(mapping)
					return nil
				}); err != nil {
					t.Fatal(err)
				}
				start := time.Now()
				var ok bool
				var took time.Duration
				var diags diag.Diagnostics
				var wg sync.WaitGroup
				wg.Go(func() {
					ok = (&serviceResource{data: d}).checkUnmapped(ctx, &diags, mapping.ServiceID, "deactivate")
					took = time.Since(start)
				})
				time.Sleep(5 * time.Second) // Terraform removes the mapping later
				synctest.Wait()
				if released {
					p := &productMappingResource{data: d}
					if _, err := d.deleteEntry(ctx, p.exportEntry(mapping.Source, mapping.Product, nil), ""); err != nil {
						t.Fatal(err)
					}
				}
				wg.Wait()
				switch {
				case released && (!ok || diags.HasError()):
					t.Errorf("checkUnmapped = %v, %v; want the destroy to go ahead once the mapping is removed", ok, diags)
				case !released && (ok || !diags.HasError()):
					t.Errorf("checkUnmapped = %v, %v; want the destroy refused while the export maps the product", ok, diags)
				case !released && took != conflictWait:
					t.Errorf("checkUnmapped refused after %v, want conflictWait (%v)", took, conflictWait)
				}
			})
		})
	}
}

// TestProviderData_handOverInTurn: a Delete after the Create of its entry
// has returned (create_before_destroy) leaves the entry, and a Delete with
// no Create of its entry removes it.
func TestProviderData_handOverInTurn(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	d := &providerData{
		backend: &lazyBackend{instance: "webservices5.autotask.net"},
		system:  psa.SystemAutotask,
		store:   export.NewClient(export.NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))),
	}
	r := &customerMappingResource{data: d}
	m := export.CustomerMapping{Source: "sophos", CustomerID: "cust-01", CustomerName: "Acme", CompanyID: "174", ContractID: "29684183", UsageSync: true}
	n := m
	n.CustomerID = "cust-02"
	for _, c := range []export.CustomerMapping{m, n} {
		if err := d.updateExport(ctx, func(doc *export.Document) error { doc.PutCustomer(c); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	if adopted, _, err := d.createEntry(ctx, r.exportEntry(m.Source, m.CustomerID, &m)); err != nil || !adopted {
		t.Fatalf("Create of an entry the export holds = adopted %v, %v; want adopted", adopted, err)
	}
	if kept, err := d.deleteEntry(ctx, r.exportEntry(m.Source, m.CustomerID, nil), ""); err != nil || !kept {
		t.Errorf("Delete of an entry created in this apply = kept %v, %v; want kept", kept, err)
	}
	if kept, err := d.deleteEntry(ctx, r.exportEntry(n.Source, n.CustomerID, nil), ""); err != nil || kept {
		t.Errorf("Delete of an entry not created in this apply = kept %v, %v; want removed", kept, err)
	}
	doc, _, err := d.store.Read(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_, hasM := doc.Customer(m.Source, m.CustomerID)
	_, hasN := doc.Customer(n.Source, n.CustomerID)
	if !hasM || hasN {
		t.Errorf("export holds cust-01 %v, cust-02 %v; want true, false", hasM, hasN)
	}
}

// TestExportClient_redirectFailsRead: a psa-syncd URL that redirects (a
// proxy sending http:// to https://) fails the plan's read, naming where it
// points, rather than failing only the apply, whose writes are not sent
// through a redirect.
func TestExportClient_redirectFailsRead(t *testing.T) {
	t.Parallel()
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		data, _ := export.New(psa.SystemAutotask, "").Encode()
		w.Header().Set("ETag", `"1"`)
		_, _ = w.Write(data)
	}))
	defer target.Close()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, target.URL+r.URL.Path, http.StatusMovedPermanently)
	}))
	defer front.Close()
	c, err := exportClient(t.Context(), front.URL, "psa-syncd-token")
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.Read(t.Context())
	want := fmt.Sprintf("export %q: reading: 301 Moved Permanently to %s/api/v1/export", front.URL, target.URL)
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Read through a redirect = %v, want an error beginning %q", err, want)
	}
}

// TestFoldServiceName checks that two names fold alike exactly when the
// PSAs' own comparison (strings.EqualFold after strings.TrimSpace) takes
// them for one name.
func TestFoldServiceName(t *testing.T) {
	t.Parallel()
	names := []string{"Backup", " BACKUP\t", "backup", "Back up", "Kelvin", "\u212aelvin", "kelvin", "Straße", "STRASSE",
		"Σίσυφος", "ΣΊΣΥΦΟΣ", "σίσυφοσ", "Ǆ", "ǅ", "ǆ", "", " ", "a\xffb", "A\xffB"}
	for _, a := range names {
		for _, b := range names {
			same := strings.EqualFold(strings.TrimSpace(a), strings.TrimSpace(b))
			if got := foldServiceName(a) == foldServiceName(b); got != same {
				t.Errorf("foldServiceName(%q) == foldServiceName(%q) is %v, want %v", a, b, got, same)
			}
		}
	}
}

// TestServiceNameRegistry_claim checks that a claim by another owner is
// refused, that an owner's claim again is no conflict, and that an owner
// claiming another name releases its first.
func TestServiceNameRegistry_claim(t *testing.T) {
	t.Parallel()
	var r serviceNameRegistry
	if _, taken := r.claim(serviceNameClaim{owner: "service 1", name: "Backup", id: "1"}); taken {
		t.Fatal("first claim taken")
	}
	if _, taken := r.claim(serviceNameClaim{owner: "service 1", name: "backup ", id: "1"}); taken {
		t.Fatal("a second claim of one owner is taken")
	}
	if other, taken := r.claim(serviceNameClaim{owner: "plan 1", name: "BACKUP"}); !taken || other.id != "1" || other.name != "backup " {
		t.Fatalf("claim of another owner = %+v, %v; want service 1's claim, taken", other, taken)
	}
	if _, taken := r.claim(serviceNameClaim{owner: "service 1", name: "Mail", id: "1"}); taken {
		t.Fatal("a new name of service 1 is taken")
	}
	if _, taken := r.claim(serviceNameClaim{owner: "plan 1", name: "BACKUP"}); taken {
		t.Fatal("the name service 1 left is still taken")
	}
}

package export

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
)

const testInstance = "webservices5.autotask.net"

// stores returns a fresh, empty store of every kind this package can test
// on its own: a file and an object on a real S3-compatible server. The
// psa-syncd store is tested in package daemon, which serves it.
func stores() map[string]func(t *testing.T) Backend {
	return map[string]func(t *testing.T) Backend{
		"file": func(t *testing.T) Backend {
			return NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))
		},
		"s3": func(t *testing.T) Backend {
			srv := s3test.Start(t)
			b, err := OpenBackend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"), BackendOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return b
		},
	}
}

// TestClient_concurrentApplies runs two "applies" (two Clients, as two
// provider processes would have) of n mappings each, ten at a time like
// Terraform, against one store: every mapping must survive.
func TestClient_concurrentApplies(t *testing.T) {
	t.Parallel()
	const n = 40
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			var wg sync.WaitGroup
			for apply := range 2 {
				c := NewClient(b)
				sem := make(chan struct{}, 10)
				for i := range n {
					wg.Add(1)
					go func() {
						defer wg.Done()
						sem <- struct{}{}
						defer func() { <-sem }()
						m := acme()
						m.CustomerID = fmt.Sprintf("apply%d-customer%03d", apply, i)
						m.ContractID = m.CustomerID
						_, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
							d.PutCustomer(m)
							return nil
						})
						if err != nil {
							t.Error(err)
						}
					}()
				}
			}
			wg.Wait()
			doc, _, err := NewClient(b).Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if got := len(doc.CustomerMappings); got != 2*n {
				t.Errorf("after two concurrent applies of %d mappings the export holds %d, want %d", n, got, 2*n)
			}
		})
	}
}

// countingBackend counts the loads that returned a new version.
type countingBackend struct {
	Backend
	fresh, notModified atomic.Int64
}

func (c *countingBackend) Load(ctx context.Context, ifNoneMatch string) (Blob, error) {
	b, err := c.Backend.Load(ctx, ifNoneMatch)
	switch {
	case errors.Is(err, ErrNotModified):
		c.notModified.Add(1)
	case err == nil:
		c.fresh.Add(1)
	}
	return b, err
}

func TestClient_Read_decodesEachVersionOnce(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := &countingBackend{Backend: open(t)}
			writer := NewClient(b.Backend)
			if _, err := writer.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutProduct(cixa())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			c := NewClient(b)
			first, v1, err := c.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			second, v2, err := c.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if first != second || v1 != v2 {
				t.Errorf("two reads of one version returned different documents (%p %q, %p %q)", first, v1, second, v2)
			}
			if b.fresh.Load() != 1 || b.notModified.Load() != 1 {
				t.Errorf("loads: %d fresh, %d not modified; want 1 and 1", b.fresh.Load(), b.notModified.Load())
			}

			if _, err := writer.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutCustomer(acme())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			third, v3, err := c.Read(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if v3 == v2 || len(third.CustomerMappings) != 1 {
				t.Errorf("read after another writer's update returned version %q with %d customers, want a new version with 1", v3, len(third.CustomerMappings))
			}
		})
	}
}

func TestClient_Update_missingExport(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			c := NewClient(b, WithClientClock(newClock().Now))
			if _, _, err := c.Read(t.Context()); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Read of an empty store returned %v, want fs.ErrNotExist", err)
			}
			// Deleting from a missing export creates nothing.
			if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.DeleteProduct("sophos", "CIXA-MSP")
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := b.Load(t.Context(), ""); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("an update that changed nothing created the export (%v)", err)
			}
			doc, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutProduct(cixa())
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if doc.Revision != 1 || doc.PSA.Instance != testInstance {
				t.Errorf("first write: revision %d, instance %q; want 1, %q", doc.Revision, doc.PSA.Instance, testInstance)
			}
			if _, err := c.Update(t.Context(), psa.SystemConnectWise, "", func(*Document) error { return nil }); err == nil {
				t.Error("Update for another PSA system succeeded")
			}
		})
	}
}

// TestClient_UpdateExisting_missingExport: a change to an entry written
// before fails on a store without an export, naming the store, and writes
// nothing; only a create starts a new export. A Client that read the export
// before it was removed refuses the same way.
func TestClient_UpdateExisting_missingExport(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			c := NewClient(b, WithClientClock(newClock().Now))
			put := func(d *Document) error {
				d.PutProduct(cixa())
				return nil
			}
			for _, fn := range []func(*Document) error{put, func(d *Document) error {
				d.DeleteProduct("sophos", "CIXA-MSP")
				return nil
			}} {
				_, err := c.UpdateExisting(t.Context(), psa.SystemAutotask, testInstance, fn)
				if !errors.Is(err, ErrNoExport) || !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), b.String()) {
					t.Fatalf("UpdateExisting on an empty store returned %v, want ErrNoExport naming %q", err, b.String())
				}
				if _, err := b.Load(t.Context(), ""); !errors.Is(err, fs.ErrNotExist) {
					t.Fatalf("the refused UpdateExisting created the export (%v)", err)
				}
			}
			if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, put); err != nil {
				t.Fatalf("Update (a create) on an empty store returned %v", err)
			}
			doc, err := c.UpdateExisting(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				m := cixa()
				m.SyncEnabled = false
				d.PutProduct(m)
				return nil
			})
			if err != nil || doc.Revision != 2 {
				t.Fatalf("UpdateExisting of a written export returned revision %v, %v; want 2", doc, err)
			}
		})
	}

	t.Run("removed after read", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "psa-mappings.json")
		c := NewClient(NewFileBackend(path))
		if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.PutProduct(cixa())
			d.PutCustomer(acme())
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		_, err := c.UpdateExisting(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.DeleteCustomer(acme().Source, acme().CustomerID)
			return nil
		})
		if !errors.Is(err, ErrNoExport) {
			t.Fatalf("UpdateExisting after the export was removed returned %v, want ErrNoExport", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the refused UpdateExisting wrote a new export (%v)", err)
		}
	})
}

func TestClient_Update_fnErrorAndInvalidChange(t *testing.T) {
	t.Parallel()
	c := NewClient(NewFileBackend(filepath.Join(t.TempDir(), "x.json")))
	boom := errors.New("boom")
	var wg sync.WaitGroup
	errs := make([]error, 3)
	fns := []func(*Document) error{
		func(d *Document) error { d.PutProduct(cixa()); return nil },
		func(d *Document) error { d.PutCustomer(acme()); return boom },
		func(d *Document) error { d.PutProduct(ProductMapping{Source: "sophos", Product: "X"}); return nil }, // no service id
	}
	for i, fn := range fns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Update(t.Context(), psa.SystemAutotask, testInstance, fn)
		}()
	}
	wg.Wait()
	var ve *ValidationError
	if errs[0] != nil || !errors.Is(errs[1], boom) || !errors.As(errs[2], &ve) {
		t.Fatalf("errors = %v, want nil, boom and a validation error", errs)
	}
	doc, _, err := c.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.ProductMappings) != 1 || len(doc.CustomerMappings) != 0 {
		t.Errorf("export holds %d products and %d customers, want only the valid change", len(doc.ProductMappings), len(doc.CustomerMappings))
	}
}

func TestBackend_conditionalWrites(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			ctx := t.Context()
			if _, err := b.Load(ctx, ""); !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Load of a missing export returned %v, want fs.ErrNotExist", err)
			}
			v1, err := b.Save(ctx, []byte("one"), "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Save(ctx, []byte("again"), ""); !errors.Is(err, ErrConflict) {
				t.Errorf("create-only Save over an existing export returned %v, want ErrConflict", err)
			}
			v2, err := b.Save(ctx, []byte("two"), v1)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Save(ctx, []byte("stale"), v1); !errors.Is(err, ErrConflict) {
				t.Errorf("Save with a stale version returned %v, want ErrConflict", err)
			}
			if _, err := b.Load(ctx, v2); !errors.Is(err, ErrNotModified) {
				t.Errorf("Load with the current version returned %v, want ErrNotModified", err)
			}
			got, err := b.Load(ctx, v1)
			if err != nil || string(got.Data) != "two" || got.Version != v2 {
				t.Errorf("Load = %q %q %v, want %q %q", got.Data, got.Version, err, "two", v2)
			}
		})
	}
}

func TestOpenBackend(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url, kind, name, err string
	}{
		{url: "psa-mappings.json", kind: KindFile, name: "psa-mappings.json"},
		{url: "file:///var/lib/psa/psa-mappings.json", kind: KindFile, name: "/var/lib/psa/psa-mappings.json"},
		{url: "file://host/x.json", err: `export: file URL "file://host/x.json" names host "host": only local files are supported (file:///path)`},
		{url: "s3://bucket/psa/psa-mappings.json?region=eu-west-1", kind: KindS3, name: "s3://bucket/psa/psa-mappings.json?region=eu-west-1"},
		{url: "s3://bucket/", err: `export: S3 URL "s3://bucket/" must name a bucket and an object key: s3://bucket/path/psa-mappings.json`},
		{url: "s3://bucket/k?regoin=x", err: `export: S3 URL "s3://bucket/k?regoin=x" has unknown parameter "regoin"; known: region, endpoint, use_path_style, profile, conditional_writes`},
		{url: "s3://bucket/k?conditional_writes=no", err: `export: S3 URL "s3://bucket/k?conditional_writes=no": conditional_writes must be checked or unchecked, got "no"`},
		{url: "s3://bucket/k?use_path_style=yes", err: `export: S3 URL "s3://bucket/k?use_path_style=yes": use_path_style must be true or false, got "yes"`},
		{url: "s3://bucket/k?endpoint=minio:9000", err: `export: S3 URL "s3://bucket/k?endpoint=minio:9000": endpoint must be an http:// or https:// URL, got "minio:9000"`},
		{url: "https://psa-syncd.internal:9810", kind: KindPSASyncd, name: "https://psa-syncd.internal:9810"},
		{url: "https://user:pw@psa-syncd.internal:9810", err: `export: psa-syncd URL "https://user:xxxxx@psa-syncd.internal:9810" must not carry user information, a query or a fragment; the token is a setting of its own`},
		{url: "self", err: `export: "self" is psa-syncd's export_url, where psa-syncd keeps the export itself: give the provider that psa-syncd's http(s):// URL, with its API token as export_token (a file named self is ./self)`},
		{url: "psa-syncd.internal:9810", err: `export: "psa-syncd.internal:9810" is a host and port, not a path: psa-syncd's store is its http(s):// URL, e.g. https://psa-syncd.internal:9810 (a file of that name is ./psa-syncd.internal:9810)`},
		{url: "./self", kind: KindFile, name: "self"},
		{url: "exports/2026:12.json", kind: KindFile, name: "exports/2026:12.json"},
		{url: "gs://bucket/key", err: `export: unsupported export URL scheme "gs" in "gs://bucket/key": use a path, file://, s3:// or the http(s):// URL of psa-syncd`},
	}
	for _, tt := range tests {
		b, err := OpenBackend(t.Context(), tt.url, BackendOptions{})
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("OpenBackend(%q) error = %v, want %q", tt.url, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("OpenBackend(%q) returned %v", tt.url, err)
			continue
		}
		if kind, _ := Kind(tt.url); kind != tt.kind || b.String() != tt.name {
			t.Errorf("OpenBackend(%q) = %s %q, want %s %q", tt.url, kind, b.String(), tt.kind, tt.name)
		}
	}
}

// hookBackend runs beforeLoad, once, at the start of a Load.
type hookBackend struct {
	Backend
	beforeLoad func()
}

func (h *hookBackend) Load(ctx context.Context, ifNoneMatch string) (Blob, error) {
	if f := h.beforeLoad; f != nil {
		h.beforeLoad = nil
		f()
	}
	return h.Backend.Load(ctx, ifNoneMatch)
}

// TestClient_Read_ownWriteDuringLoad checks that a read that finds the
// version the Client itself wrote while the read was under way returns the
// document written rather than decoding it again: in an apply, resources
// read the export while others' changes are being committed.
func TestClient_Read_ownWriteDuringLoad(t *testing.T) {
	t.Parallel()
	b := &hookBackend{Backend: NewFileBackend(filepath.Join(t.TempDir(), "x.json"))}
	c := NewClient(b)
	if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
		d.PutProduct(cixa())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var written *Document
	b.beforeLoad = func() {
		var err error
		written, err = c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.PutCustomer(acme())
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	got, _, err := c.Read(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got != written {
		t.Errorf("Read returned %p with %d customers, want the document the Client wrote (%p), not a new decoding of it",
			got, len(got.CustomerMappings), written)
	}
}

// TestApplyBatch checks that a batch whose changes all succeed runs each
// once on one copy, and that one with a failing or invalid change applies
// the others and refuses only those, leaving old untouched.
func TestApplyBatch(t *testing.T) {
	t.Parallel()
	old := New(psa.SystemAutotask, testInstance)
	runs := make([]int, 3)
	put := func(i int, m ProductMapping, err error) *change {
		return &change{fn: func(d *Document) error {
			runs[i]++
			d.PutProduct(m)
			return err
		}}
	}
	valid := func(p string) ProductMapping { return ProductMapping{Source: "sophos", Product: p, ServiceID: "1"} }

	batch := []*change{put(0, valid("A"), nil), put(1, valid("B"), nil), put(2, valid("C"), nil)}
	d := applyBatch("x.json", old, testInstance, batch)
	if len(d.ProductMappings) != 3 || len(old.ProductMappings) != 0 || runs[0] != 1 || runs[1] != 1 || runs[2] != 1 {
		t.Errorf("valid batch: %d mappings (old %d), runs %v; want 3 (old 0), each run once", len(d.ProductMappings), len(old.ProductMappings), runs)
	}

	boom := errors.New("boom")
	batch = []*change{put(0, valid("A"), nil), put(1, valid("B"), boom), put(2, ProductMapping{Source: "sophos", Product: "C"}, nil)}
	d = applyBatch("x.json", old, testInstance, batch)
	var ve *ValidationError
	if batch[0].err != nil || !errors.Is(batch[1].err, boom) || !errors.As(batch[2].err, &ve) {
		t.Fatalf("errors = %v, %v, %v; want nil, boom and a validation error", batch[0].err, batch[1].err, batch[2].err)
	}
	if len(d.ProductMappings) != 1 || d.ProductMappings[0].Product != "A" || len(old.ProductMappings) != 0 {
		t.Errorf("batch with a failing and an invalid change: %+v (old %d); want only A", d.ProductMappings, len(old.ProductMappings))
	}
}

// TestClient_Update_noChangeOnStaleCache: a change that finds nothing to do
// in the export the Client cached is checked against the store before it
// reports success. Another writer may have added the entry it removes, or
// removed the entry it keeps; the change is then applied to the store's
// export and written.
func TestClient_Update_noChangeOnStaleCache(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			ctx := t.Context()
			c, other := NewClient(b), NewClient(b)
			put := func(m CustomerMapping) func(*Document) error {
				return func(d *Document) error { d.PutCustomer(m); return nil }
			}
			base := acme()
			base.CustomerID, base.ContractID = "base", "1"
			if _, err := c.Update(ctx, psa.SystemAutotask, testInstance, put(base)); err != nil {
				t.Fatal(err)
			}
			stored := func() *Document {
				t.Helper()
				doc, _, err := NewClient(b).Read(ctx)
				if err != nil {
					t.Fatal(err)
				}
				return doc
			}

			// c's cache lacks acme, which other has added since.
			if _, err := other.Update(ctx, psa.SystemAutotask, testInstance, put(acme())); err != nil {
				t.Fatal(err)
			}
			got, err := c.UpdateExisting(ctx, psa.SystemAutotask, testInstance, func(d *Document) error {
				d.DeleteCustomer(acme().Source, acme().CustomerID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := stored().Customer(acme().Source, acme().CustomerID); ok {
				t.Errorf("a removal that found nothing to remove in the cached export left the entry another writer added in the store")
			}
			if _, ok := got.Customer(acme().Source, acme().CustomerID); ok || got.Revision != 3 {
				t.Errorf("UpdateExisting returned revision %d with the entry %v; want revision 3 without it", got.Revision, ok)
			}

			// c's cache has acme with these values; other removes it.
			if _, err := c.Update(ctx, psa.SystemAutotask, testInstance, put(acme())); err != nil {
				t.Fatal(err)
			}
			if _, err := other.Update(ctx, psa.SystemAutotask, testInstance, func(d *Document) error {
				d.DeleteCustomer(acme().Source, acme().CustomerID)
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Update(ctx, psa.SystemAutotask, testInstance, func(d *Document) error {
				if _, ok := d.Customer(acme().Source, acme().CustomerID); !ok {
					d.PutCustomer(acme())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			if _, ok := stored().Customer(acme().Source, acme().CustomerID); !ok {
				t.Errorf("an adoption of the entry in the cached export left the store without the entry another writer removed")
			}

			// A change that finds nothing to do in the store's own version
			// is still nothing to write.
			before := stored().Revision
			if _, err := c.Update(ctx, psa.SystemAutotask, testInstance, put(acme())); err != nil {
				t.Fatal(err)
			}
			if after := stored().Revision; after != before {
				t.Errorf("a change that changed nothing wrote revision %d (was %d)", after, before)
			}
		})
	}
}

// A write from a client that knows only the host (Autotask with base_url
// set) keeps the tenant the export records, so that another tenant on the
// same zone host is still refused.
func TestClient_bareHostWriteKeepsTenant(t *testing.T) {
	t.Parallel()
	b := NewFileBackend(filepath.Join(t.TempDir(), "mappings.json"))
	const tenant = "ci:111@webservices5.autotask.net"
	if _, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, tenant, func(d *Document) error {
		d.PutCustomer(acme())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	m := acme()
	m.CustomerID = "globex"
	doc, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, "webservices5.autotask.net", func(d *Document) error {
		d.PutCustomer(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if doc.PSA.Instance != tenant || len(doc.CustomerMappings) != 2 {
		t.Errorf("after a bare-host write: instance %q, %d customers; want %q, 2", doc.PSA.Instance, len(doc.CustomerMappings), tenant)
	}
	if _, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, "ci:222@webservices5.autotask.net", func(d *Document) error {
		d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: "initech", CompanyID: "9", ContractID: "99"})
		return nil
	}); err == nil {
		t.Error("another tenant on the same host wrote to the export")
	}
}

// TestClient_exportLostDuringUse: an export deleted while a Client uses it
// (during an apply) is not replaced by a new export holding only the later
// changes: every change fails with ErrNoExport, a creation too.
func TestClient_exportLostDuringUse(t *testing.T) {
	t.Parallel()
	for name, open := range stores() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			b := open(t)
			c := NewClient(b)
			if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutCustomer(acme())
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			switch b := b.(type) {
			case *FileBackend:
				if err := os.Remove(b.path); err != nil {
					t.Fatal(err)
				}
			case *S3Backend:
				if _, err := b.client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key)}); err != nil {
					t.Fatal(err)
				}
			default:
				t.Fatalf("no way to delete the export of %T", b)
			}
			m := acme()
			m.CustomerID = "globex"
			_, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutCustomer(m)
				return nil
			})
			if !errors.Is(err, ErrNoExport) || !strings.Contains(err.Error(), "deleted while this process used it") {
				t.Errorf("a creation after the export was deleted = %v, want ErrNoExport naming the loss", err)
			}
			if _, _, err := NewClient(b).Read(t.Context()); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("the store after the refused creation: Read = %v, want no export", err)
			}
			// A new Client (a new provider process) may start a new export.
			if _, err := NewClient(b).Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
				d.PutCustomer(m)
				return nil
			}); err != nil {
				t.Errorf("a new Client's creation = %v, want a new export", err)
			}
		})
	}
}

// noVersionSave is a store whose writes do not answer with the new
// version, as an S3-compatible store may leave the ETag out of its answer
// to PutObject.
type noVersionSave struct{ Backend }

func (b noVersionSave) Save(ctx context.Context, data []byte, ifMatch string) (string, error) {
	_, err := b.Backend.Save(ctx, data, ifMatch)
	return "", err
}

// TestClient_Update_afterWriteWithoutVersion: after a write whose answer
// had no version, the next write reads the version first.
func TestClient_Update_afterWriteWithoutVersion(t *testing.T) {
	t.Parallel()
	c := NewClient(noVersionSave{NewFileBackend(filepath.Join(t.TempDir(), "psa-mappings.json"))})
	for i := range 3 {
		if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
			d.PutCustomer(CustomerMapping{Source: "sophos", CustomerID: fmt.Sprint(i), CompanyID: "1", ContractID: "2"})
			return nil
		}); err != nil {
			t.Fatalf("write %d: %v", i+1, err)
		}
	}
	if doc, _, err := c.Read(t.Context()); err != nil || len(doc.CustomerMappings) != 3 {
		t.Errorf("Read = %v, %v; want 3 customer mappings", doc, err)
	}
}

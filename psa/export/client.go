package export

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// maxConflicts bounds how often one batch of changes is re-applied after
// losing a compare-and-swap before Update gives up.
const maxConflicts = 100

// Client reads and updates the export kept in a Backend. It is what the
// Terraform provider uses for every store.
//
// Every write is a compare-and-swap on the version that was read: when
// another writer saved first, the Client re-reads the export and re-applies
// the change, so concurrent writers (the resources of one apply, or two
// applies) never lose each other's updates.
//
// Concurrent Update calls on one Client are committed together: while one
// write is in flight, the changes that arrive wait and then go to the store
// as one write. Terraform applies ten resources at a time, so an apply of a
// thousand mappings makes about a hundred writes, not a thousand; on a store
// 20 ms away that is what keeps S3 and psa-syncd close to a local file.
//
// The Client decodes each version of the export once: it keeps the last
// version it read or wrote, asks the store for a newer one with a
// conditional read, and concurrent reads share one request.
//
// A Client is safe for concurrent use. Documents it returns are shared and
// must not be modified; Clone one to change it.
type Client struct {
	backend Backend
	now     func() time.Time

	reads singleflight.Group

	mu      sync.Mutex
	version string    // the version of doc; "" when nothing is cached
	doc     *Document // the decoded export at version, never modified
	pending []*change // changes waiting for the next write
	leading bool      // an Update is writing the pending changes
	// existed is whether this Client has read or written an export: the
	// store then cannot be new, and an export missing later was lost.
	existed bool
}

// ErrNoExport means that the store holds no export where one must exist:
// UpdateExisting returns an error matching it, and fs.ErrNotExist, when the
// export it was to change is not there.
var ErrNoExport = errors.New("export: the store holds no export")

// noExportError is the error of UpdateExisting for a store without an
// export, and of every change to a store whose export the Client had read
// or written before (lost).
type noExportError struct {
	store string
	lost  bool
}

func (e *noExportError) Error() string {
	if e.lost {
		return prefix(e.store) + "the export was deleted while this process used it, and a new export holding only this change " +
			"would drop every other entry of the lost one; restore the export (from a backup, S3 object versioning or the last " +
			"CI artifact) and plan again"
	}
	return prefix(e.store) + "the store holds no export, so the entry to change or remove is not there, and a new export " +
		"holding only this change would drop every other entry of the lost one; restore the export (from a backup, " +
		"S3 object versioning or the last CI artifact), or correct the store's URL if it names the wrong place"
}

// Is reports whether target is ErrNoExport or fs.ErrNotExist.
func (e *noExportError) Is(target error) bool {
	return target == ErrNoExport || target == fs.ErrNotExist
}

// change is one Update call waiting to be written.
type change struct {
	system   psa.System
	instance string
	fn       func(*Document) error
	// existing is whether the change needs an export to change
	// (UpdateExisting).
	existing bool

	done chan struct{}
	doc  *Document
	err  error
}

// ClientOption configures a Client.
type ClientOption func(*Client)

// WithClientClock sets the clock Update uses for updated_at. The default
// is time.Now.
func WithClientClock(now func() time.Time) ClientOption {
	return func(c *Client) { c.now = now }
}

// NewClient returns a Client for the export in b.
func NewClient(b Backend, opts ...ClientOption) *Client {
	c := &Client{backend: b, now: time.Now}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Backend returns the store the Client reads and writes.
func (c *Client) Backend() Backend { return c.backend }

// String names the store, as Backend.String does.
func (c *Client) String() string { return c.backend.String() }

// Read returns the export as the store holds it now, with its version. A
// store without an export gives an error matching fs.ErrNotExist; an export
// that is not valid JSON or not a valid document gives a *SyntaxError or
// *ValidationError naming the store.
func (c *Client) Read(ctx context.Context) (*Document, string, error) {
	type result struct {
		doc     *Document
		version string
	}
	v, err, _ := c.reads.Do("", func() (any, error) {
		doc, version, err := c.load(ctx)
		return result{doc, version}, err
	})
	if err != nil {
		return nil, "", err
	}
	r := v.(result) //nolint:forcetypeassert // the function above returns only result
	return r.doc, r.version, nil
}

// load reads the export, asking the store only for a version newer than the
// cached one.
func (c *Client) load(ctx context.Context) (*Document, string, error) {
	c.mu.Lock()
	have, cached := c.version, c.doc
	c.mu.Unlock()
	b, err := c.backend.Load(ctx, have)
	switch {
	case errors.Is(err, ErrNotModified):
		return cached, have, nil
	case err != nil:
		return nil, "", err
	}
	c.mu.Lock()
	version, doc := c.version, c.doc
	c.mu.Unlock()
	if doc != nil && version == b.Version {
		return doc, version, nil // written by this Client while the load ran
	}
	doc, err = Decode(b.Data)
	if err != nil {
		return nil, "", located(c.backend.String(), err)
	}
	c.remember(b.Version, doc)
	return doc, b.Version, nil
}

func (c *Client) remember(version string, doc *Document) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.version, c.doc = version, doc
	if doc != nil {
		c.existed = true
	}
}

// lost reports whether the Client had read or written an export before.
func (c *Client) lost() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.existed
}

// cached returns the cached export, reading it when nothing is cached;
// read reports that it did.
func (c *Client) cached(ctx context.Context) (doc *Document, version string, read bool, err error) {
	c.mu.Lock()
	version, doc = c.version, c.doc
	c.mu.Unlock()
	if doc != nil {
		return doc, version, false, nil
	}
	doc, version, err = c.Read(ctx)
	return doc, version, true, err
}

// Update changes the export with fn and writes it if fn changed it, as a
// compare-and-swap that is retried on conflict: fn may run more than once,
// each time on the export as it is then, so it must decide from the
// document it is given (for example "add the mapping unless it is there"),
// and it must be quick and must not call Update.
//
// A store without an export starts from New(system, instance), and nothing
// is created when fn leaves that empty document unchanged; but a store
// whose export this Client read or wrote before, and that holds none now,
// fails every change with an error matching ErrNoExport (the export was
// lost during the apply, and a new one would hold only the changes made
// after). Update refuses
// an export of another PSA system, or of another instance of the same
// system (see SameInstance; an empty instance in the export, or a bare host
// of the same tenant, is replaced by instance, and a bare host instance
// never replaces a tenant in the export; an empty instance argument
// accepts any), and never replaces an export it could not read or
// decode. An error from fn is returned unchanged and that change is not
// written; a change that makes the document invalid gets the
// *ValidationError. Otherwise Update increments Revision, sets UpdatedAt to
// the current time in UTC (to the second) and saves the document.
//
// When fn leaves the export as it is, nothing is written. A change decided
// on the Client's cached export is first checked with a conditional read,
// and applied again to a newer export the store holds, so that "nothing to
// do" is never an answer about an old version.
//
// Update returns the document as it is now stored.
func (c *Client) Update(ctx context.Context, system psa.System, instance string, fn func(*Document) error) (*Document, error) {
	return c.update(ctx, &change{system: system, instance: instance, fn: fn, done: make(chan struct{})})
}

// UpdateExisting is Update for a change to an export that must exist
// already: the change or removal of an entry written before. When the store
// holds no export, UpdateExisting writes nothing and returns an error
// matching ErrNoExport and fs.ErrNotExist that names the store. Starting a
// new export there, as Update does, would leave every other entry of a lost
// export out of it, and psa-syncd would stop syncing them.
func (c *Client) UpdateExisting(ctx context.Context, system psa.System, instance string, fn func(*Document) error) (*Document, error) {
	return c.update(ctx, &change{system: system, instance: instance, fn: fn, existing: true, done: make(chan struct{})})
}

func (c *Client) update(ctx context.Context, ch *change) (*Document, error) {
	c.mu.Lock()
	c.pending = append(c.pending, ch)
	lead := !c.leading
	c.leading = true
	c.mu.Unlock()
	if lead {
		c.writePending(ctx)
	}
	<-ch.done
	return ch.doc, ch.err
}

// writePending writes the pending changes, a batch of one system and
// instance at a time, until none are left. The Update that found no write
// in flight runs it with its own context.
func (c *Client) writePending(ctx context.Context) {
	for {
		c.mu.Lock()
		if len(c.pending) == 0 {
			c.leading = false
			c.mu.Unlock()
			return
		}
		first := c.pending[0]
		var batch, rest []*change
		for _, ch := range c.pending {
			if ch.system == first.system && ch.instance == first.instance {
				batch = append(batch, ch)
			} else {
				rest = append(rest, ch)
			}
		}
		c.pending = rest
		c.mu.Unlock()

		c.commit(ctx, batch)
		for _, ch := range batch {
			close(ch.done)
		}
	}
}

// commit applies a batch of changes to the export and saves the result,
// re-reading and re-applying on conflict.
func (c *Client) commit(ctx context.Context, batch []*change) {
	fail := func(err error) {
		for _, ch := range batch {
			ch.err = err
		}
	}
	system, instance := batch[0].system, batch[0].instance
	name := c.backend.String()
	current := "" // a version this commit found in the store
	for attempt := 0; ; attempt++ {
		old, version, read, err := c.cached(ctx)
		exists, todo := err == nil, batch
		switch {
		case errors.Is(err, fs.ErrNotExist) && c.lost():
			// Deleted behind this process's back (during an apply): a
			// new export would hold only this batch.
			fail(&noExportError{store: name, lost: true})
			return
		case errors.Is(err, fs.ErrNotExist):
			old, version = New(system, instance), ""
			if todo = withoutExport(name, batch); len(todo) == 0 {
				return
			}
		case err != nil:
			fail(err)
			return
		}
		if read {
			current = version
		}
		if old.PSA.System != system {
			fail(fmt.Errorf("%sthe export belongs to PSA system %q, not %q; use one export per PSA system", prefix(name), old.PSA.System, system))
			return
		}
		if instance != "" && old.PSA.Instance != "" && !SameInstance(old.PSA.Instance, instance) {
			fail(fmt.Errorf("%sthe export belongs to %s instance %q, not %q; use one export per PSA instance", prefix(name), system, old.PSA.Instance, instance))
			return
		}

		d := applyBatch(name, old, instance, todo)
		if contentEqual(old, d) {
			// Nothing to write; a missing export stays missing. A write
			// would have found a newer export by its conflict, but this
			// decision is made without one: on a cached export that is
			// not the one the store holds now, it could report a removal
			// done while another writer has added the entry again, or an
			// entry adopted that another writer removed. So it is checked
			// with a conditional read (a digest, or a 304) unless this
			// commit has just read that version.
			if version != current {
				switch latest, err := c.latest(ctx); {
				case errors.Is(err, fs.ErrNotExist):
					c.remember("", nil) // the next attempt reads that
					continue
				case err != nil:
					fail(err)
					return
				case latest != version:
					current = latest // and the cache holds it
					continue
				}
			}
			for _, ch := range todo {
				ch.doc = old
			}
			return
		}
		if exists && version == "" && !read {
			// This Client's own write, to a store that did not answer with
			// the new version: read it.
			c.remember("", nil)
			continue
		}
		if exists && version == "" {
			// The write must send the version back (If-Match); without
			// it, it would be a create-only write, refused however often
			// it is tried.
			fail(fmt.Errorf("%sthe store gave the export without its version (psa-syncd: its answer had no ETag; does a "+
				"proxy in front of it drop the header?), so no conditional write can change it", prefix(name)))
			return
		}
		d.Revision = old.Revision + 1
		d.UpdatedAt = c.now().UTC().Truncate(time.Second)
		data, err := d.Encode()
		if err != nil {
			fail(located(name, err))
			return
		}
		newVersion, err := c.backend.Save(ctx, data, version)
		if errors.Is(err, ErrConflict) && attempt < maxConflicts {
			// Another writer saved first: forget the cached export so the
			// next attempt reads theirs, and back off a little so that two
			// busy writers do not keep colliding.
			c.remember("", nil)
			if err := sleep(ctx, backoff(attempt)); err != nil {
				fail(err)
				return
			}
			continue
		}
		if err != nil {
			for _, ch := range batch {
				if ch.err == nil {
					ch.err = err
				}
			}
			return
		}
		c.remember(newVersion, d)
		for _, ch := range batch {
			if ch.err == nil {
				ch.doc = d
			}
		}
		return
	}
}

// latest returns the version the store holds now, reading it into the
// cache when it is not the cached one.
func (c *Client) latest(ctx context.Context) (string, error) {
	_, version, err := c.load(ctx)
	return version, err
}

// withoutExport fails the changes of batch that need an existing export,
// for a store that holds none, and returns the others. It runs on every
// attempt, so a change refused on one is tried again when a conflict shows
// that another writer created the export meanwhile.
func withoutExport(name string, batch []*change) []*change {
	var rest []*change
	for _, ch := range batch {
		if ch.existing {
			ch.err = &noExportError{store: name}
			continue
		}
		ch.err = nil
		rest = append(rest, ch)
	}
	return rest
}

// applyBatch returns a copy of old with the batch's changes applied and sets
// each change's error. It runs them all on one copy and validates the result
// once; only when a change fails, or the result is invalid, does it apply
// them again one at a time, each on a copy of its own and validated, so
// that only the changes at fault are refused. A batch holds the changes of
// ten resources, and copying and validating a document of a thousand
// mappings for each of them was most of a commit's allocations.
func applyBatch(name string, old *Document, instance string, batch []*change) *Document {
	start := func() *Document {
		d := old.Clone()
		// Records the tenant in an export written before tenants were,
		// and the new host of a tenant that moved; never drops a tenant.
		d.PSA.Instance = RecordedInstance(d.PSA.Instance, instance)
		return d
	}
	d, failed := start(), false
	for _, ch := range batch {
		if ch.fn(d) != nil {
			failed = true
			break
		}
	}
	if !failed && d.PSA.System == old.PSA.System && d.Validate() == nil {
		for _, ch := range batch {
			ch.err = nil
		}
		return d
	}
	d = start()
	for _, ch := range batch {
		ch.err = applyChange(name, d, ch)
	}
	return d
}

// applyChange runs one change's fn on d. When fn fails, or leaves d
// invalid or for another system, d is restored and the error returned.
func applyChange(name string, d *Document, ch *change) error {
	before := d.Clone()
	restore := func() { *d = *before }
	if err := ch.fn(d); err != nil {
		restore()
		return err
	}
	if d.PSA.System != before.PSA.System {
		restore()
		return fmt.Errorf("%sthe update changed psa.system from %q to %q, which is not allowed", prefix(name), before.PSA.System, d.PSA.System)
	}
	if err := d.Validate(); err != nil {
		restore()
		return located(name, err)
	}
	return nil
}

// backoff returns a jittered wait of up to 5 ms times the attempt, at most
// 100 ms.
func backoff(attempt int) time.Duration {
	if attempt == 0 {
		return 0
	}
	limit := min(time.Duration(attempt)*5*time.Millisecond, 100*time.Millisecond)
	return rand.N(limit)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

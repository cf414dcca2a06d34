package daemon

import (
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
)

// planMemory holds the plan of the last pass, so that read-only API
// requests can show what psa-syncd is about to do (or just did) without
// asking the PSA: an unauthenticated request must never spend the PSA's
// request budget. The daemon also keeps it in the state database (see
// Daemon.recordPlan), so that it survives a restart and a standby that
// takes over shows it. It is safe for concurrent use.
type planMemory struct {
	mu   sync.Mutex
	plan *usage. // nil before the first pass
		Plan
	// customer is the only customer plan covers, or "" when it covers
	// every customer with usage sync on.
	customer string
	// newest is the latest ComputedAt of the plans recorded, one
	// customer's merged into the plan included.
	newest time.Time
}

// record keeps p, the plan of a pass for customer ("" for all). A pass for
// one customer replaces that customer's lines in the plan of the last full
// pass, so that "sync now" for one customer does not hide the others,
// unless it is of another period or effective date: the full pass's lines
// are then another month's, and its header (period, effective date, when
// and by which run) would be shown over the customer's lines, so the
// customer's plan replaces it.
func (m *planMemory) record(p *usage.Plan, customer string) {
	if p == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.ComputedAt.After(m.newest) {
		m.newest = p.ComputedAt
	}
	if customer == "" || m.plan == nil || m.customer != "" ||
		p.Period != m.plan.Period || !p.EffectiveDate.Equal(m.plan.EffectiveDate) {
		m.plan, m.customer = p, customer
		return
	}
	merged := *m.plan
	merged.Changes = slices.DeleteFunc(slices.Clone(m.plan.Changes), func(c usage.Change) bool { return c.CustomerID == customer })
	merged.Changes = append(merged.Changes, p.Changes...)
	slices.SortStableFunc(merged.Changes, func(a, b usage.Change) int {
		return cmp.Or(strings.Compare(strings.ToLower(a.CustomerName), strings.ToLower(b.CustomerName)), strings.Compare(a.CustomerID, b.CustomerID))
	})
	merged.Failures = slices.DeleteFunc(slices.Clone(m.plan.Failures), func(f usage.Failure) bool { return f.CustomerID == customer })
	merged.Failures = append(merged.Failures, p.Failures...)
	merged.ContractsEnding = slices.DeleteFunc(slices.Clone(m.plan.ContractsEnding), func(c usage.ContractEnding) bool { return c.CustomerID == customer })
	merged.ContractsEnding = append(merged.ContractsEnding, p.ContractsEnding...)
	merged.Renewals = slices.DeleteFunc(slices.Clone(m.plan.Renewals), func(r usage.ContractRenewal) bool { return r.CustomerID == customer })
	merged.Renewals = append(merged.Renewals, p.Renewals...)
	m.plan = &merged
}

// setSurge sets the Surge of the plan of the last pass over all customers,
// into which passes for one customer merged their lines, to the surge
// guard's record (nil when it holds no line): a pass for one customer
// (an approval of one line) changes the lines held, and their review
// code, without a Surge of its own, and the full pass's code would be
// stale (an approval of the surge with it writes nothing). A record of
// another billing month leaves the plan's as it is.
func (m *planMemory) setSurge(rec *usage.SurgeRecord) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.plan == nil || m.customer != "" || (rec != nil && rec.Period != m.plan.Period.String()) {
		return
	}
	var s *usage.SurgeHold
	if rec != nil && rec.Lines > 0 {
		h := rec.SurgeHold
		s = &h
	}
	if s == nil && m.plan.Surge == nil {
		return
	}
	p := *m.plan
	p.Surge = s
	m.plan = &p
}

// recordFresh keeps p, a plan for every customer that no pass made (POST
// /api/v1/plan), unless a plan computed after p was recorded: a pass that
// ended while p was being computed, whose plan read the usage and the PSA
// later, and whose lines p would show as still to be written. It reports
// whether it kept p.
func (m *planMemory) recordFresh(p *usage.Plan) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if p.ComputedAt.Before(m.newest) {
		return false
	}
	m.plan, m.customer, m.newest = p, "", p.ComputedAt
	return true
}

// lastPlanSnapshot is the name of the state database snapshot that holds
// the last plan.
const lastPlanSnapshot = "last_plan"

// storedPlan is the last plan as the state database keeps it. Its JSON
// holds the plan in columns (usage.Plan.MarshalColumns), gzip-compressed
// (plan_columns): the plan of a pass over 100,000 lines is some 50 MB of
// JSON, 8 MB in columns, and compresses to about half a MB, and the
// snapshot is written after every pass. Snapshots written before hold the
// plan's JSON gzip-compressed (plan_gzip), or as JSON (plan), which restore
// still reads.
type storedPlan struct {
	Customer string
	Plan     *usage.Plan
}

// storedPlanJSON is the JSON form of a storedPlan.
type storedPlanJSON struct {
	Customer    string      `json:"customer"`
	Plan        *usage.Plan `json:"plan,omitempty"`
	PlanGzip    []byte      `json:"plan_gzip,omitempty"`
	PlanColumns []byte      `json:"plan_columns,omitempty"`
}

// planPartBytes is how many bytes of a plan's columns make one part, which
// a core compresses as a gzip member of its own (see storedPlan.MarshalJSON).
const planPartBytes = 1 << 20

// MarshalJSON writes the plan in columns, compressed. The columns are
// compressed as they are written, in parts of planPartBytes, up to one part
// per core at a time, each a gzip member of its own: the members one after
// another are one gzip stream, which gzip.Reader reads whole. At 100,000
// changes this takes some 35 ms after every pass, which psa-syncd sync waits
// for before it exits (the plan's indented JSON, stored until commit
// 546edb7, took 90 ms on two cores), and holds a few parts of the columns at
// a time, not their 8 MB beside the plan (see BenchmarkStoredPlan).
func (s storedPlan) MarshalJSON() ([]byte, error) {
	v := storedPlanJSON{Customer: s.Customer}
	if s.Plan != nil {
		zw := newGzipParts(planPartBytes, runtime.GOMAXPROCS(0))
		err := s.Plan.WriteColumns(zw)
		if v.PlanColumns, err = zw.close(err); err != nil {
			return nil, err
		}
	}
	return json.Marshal(v)
}

// gzipParts is an io.Writer that compresses what is written to it in parts
// of partBytes, each a gzip member of its own, up to cores parts at a time,
// and close returns the members in the order of the parts. The parts'
// buffers and gzip writers are used again from part to part.
type gzipParts struct {
	partBytes int
	// slots holds a gzip writer (nil until one is made) for each part that
	// may be compressed at a time; free holds the buffers of parts
	// compressed.
	slots   chan *gzip.Writer
	free    chan []byte
	wg      sync.WaitGroup
	part    []byte      // the part being filled
	members []*gzipPart // one for each part handed on, in order
}

// gzipPart is one part's gzip member, or the error that compressing it
// gave; the goroutine compressing it writes it, close reads it.
type gzipPart struct {
	member bytes.Buffer
	err    error
}

func newGzipParts(partBytes, cores int) *gzipParts {
	cores = max(1, cores)
	g := &gzipParts{partBytes: partBytes, slots: make(chan *gzip.Writer, cores), free: make(chan []byte, cores+1)}
	for range cores {
		g.slots <- nil
	}
	return g
}

// Write copies p into the part being filled, handing each full part on.
func (g *gzipParts) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if g.part == nil {
			select {
			case g.part = <-g.free:
			default:
				g.part = make([]byte, 0, g.partBytes)
			}
		}
		k := min(len(p), g.partBytes-len(g.part))
		g.part, p = append(g.part, p[:k]...), p[k:]
		if len(g.part) == g.partBytes {
			g.compress()
		}
	}
	return n, nil
}

// compress compresses the part being filled once a slot is free, without
// waiting for it to finish.
func (g *gzipParts) compress() {
	data, m := g.part, new(gzipPart)
	g.part = nil
	g.members = append(g.members, m)
	zw := <-g.slots
	g.wg.Go(func() {
		var err error
		if zw == nil {
			zw, err = gzip.NewWriterLevel(&m.member, gzip.BestSpeed)
		} else {
			zw.Reset(&m.member)
		}
		if err == nil {
			if _, err = zw.Write(data); err == nil {
				err = zw.Close()
			}
		}
		m.err = err
		g.free <- data[:0]
		g.slots <- zw
	})
}

// close compresses what is left, waits for every part and returns the
// members one after another, or err, the writer's error, when it is not
// nil.
func (g *gzipParts) close(err error) ([]byte, error) {
	if len(g.part) > 0 || len(g.members) == 0 {
		g.compress()
	}
	g.wg.Wait()
	size := 0
	for _, m := range g.members {
		err = errors.Join(err, m.err)
		size += m.member.Len()
	}
	if err != nil {
		return nil, err
	}
	z := make([]byte, 0, size)
	for _, m := range g.members {
		z = append(z, m.member.Bytes()...)
	}
	return z, nil
}

// UnmarshalJSON reads a plan stored in columns, or as the earlier forms.
func (s *storedPlan) UnmarshalJSON(b []byte) error {
	var v storedPlanJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Customer, s.Plan = v.Customer, v.Plan
	switch {
	case len(v.PlanColumns) > 0:
		data, err := gunzip(v.PlanColumns)
		if err != nil {
			return fmt.Errorf("the last plan: %w", err)
		}
		if s.Plan, err = usage.UnmarshalColumns(data); err != nil {
			return fmt.Errorf("the last plan: %w", err)
		}
	case len(v.PlanGzip) > 0:
		data, err := gunzip(v.PlanGzip)
		if err != nil {
			return fmt.Errorf("the last plan: %w", err)
		}
		s.Plan = new(usage.Plan)
		if err := json.Unmarshal(data, s.Plan); err != nil {
			return fmt.Errorf("the last plan: %w", err)
		}
	}
	return nil
}

// maxStoredPlan bounds a stored plan once decompressed: the plan of a pass
// over 100,000 lines is some 8 MB in columns, 50 MB as the JSON of the
// earlier form. A snapshot that decompresses to more is damaged or not
// psa-syncd's (a few hundred KB of gzip can decompress to GBs), and is
// refused before it takes all the memory there is.
const maxStoredPlan = 256 << 20

// gunzip returns the bytes of a gzip stream of one or more members, of at
// most maxStoredPlan bytes.
func gunzip(z []byte) ([]byte, error) {
	data, err := sizecap.Gunzip(z, maxStoredPlan)
	if errors.Is(err, sizecap.ErrDecompressedTooLarge) {
		return nil, fmt.Errorf("it decompresses to more than %s, the most psa-syncd reads of a stored plan: "+
			"the state database's snapshot %s is damaged or was not written by psa-syncd", sizecap.Format(maxStoredPlan), lastPlanSnapshot)
	}
	return data, err
}

// renewals returns the renewals of the plan held (a plan for one
// customer lists that customer's only), or none.
func (m *planMemory) renewals() []usage.ContractRenewal {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.plan == nil {
		return nil
	}
	return m.plan.Renewals
}

// held reports whether the memory holds a plan.
func (m *planMemory) held() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.plan != nil
}

// stored returns what the memory holds, for the state database.
func (m *planMemory) stored() storedPlan {
	m.mu.Lock()
	defer m.mu.Unlock()
	return storedPlan{Customer: m.customer, Plan: m.plan}
}

// restore fills the memory with a stored plan. A memory that holds a
// plan keeps it: callers restore when it held none, and a pass may have
// recorded one since (a ticket pass restores for its renewals while a
// usage pass ends), which the plan read from the database before it is
// older than.
func (m *planMemory) restore(s storedPlan) {
	if s.Plan == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.plan != nil {
		return
	}
	m.plan, m.customer = s.Plan, s.Customer
	if s.Plan.ComputedAt.After(m.newest) {
		m.newest = s.Plan.ComputedAt
	}
}

// get returns the last plan, limited to one customer when customer is not
// "". ok is false when no pass has recorded a plan that covers customer.
func (m *planMemory) get(customer string) (p *usage.Plan, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.plan == nil || (m.customer != "" && m.customer != customer) {
		return nil, false
	}
	if customer == "" {
		return m.plan, true
	}
	return planForCustomer(m.plan, customer), true
}

// planForCustomer returns a copy of p with only customer's lines and
// failures.
func planForCustomer(p *usage.Plan, customer string) *usage.Plan {
	out := *p
	out.Changes = []usage.Change{}
	for _, c := range p.Changes {
		if c.CustomerID == customer {
			out.Changes = append(out.Changes, c)
		}
	}
	out.Failures = nil
	for _, f := range p.Failures {
		if f.CustomerID == customer {
			out.Failures = append(out.Failures, f)
		}
	}
	out.ContractsEnding = nil
	for _, c := range p.ContractsEnding {
		if c.CustomerID == customer {
			out.ContractsEnding = append(out.ContractsEnding, c)
		}
	}
	out.Renewals = nil
	for _, r := range p.Renewals {
		if r.CustomerID == customer {
			out.Renewals = append(out.Renewals, r)
		}
	}
	out.Customers = 1
	return &out
}

package daemon

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
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
}

// record keeps p, the plan of a pass for customer ("" for all). A pass for
// one customer replaces that customer's lines in the plan of the last full
// pass, so that "sync now" for one customer does not hide the others.
func (m *planMemory) record(p *usage.Plan, customer string) {
	if p == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if customer == "" || m.plan == nil || m.customer != "" {
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
	m.plan = &merged
}

// lastPlanSnapshot is the name of the state database snapshot that holds
// the last plan.
const lastPlanSnapshot = "last_plan"

// storedPlan is the last plan as the state database keeps it. Its JSON
// holds the plan gzip-compressed (plan_gzip): the plan of a pass over
// 100,000 lines is some 50 MB of JSON, which compresses to a few, and the
// snapshot is written after every pass. The plan is compressed as it is
// encoded, so its JSON is never in memory as a whole. Snapshots written
// before hold the plan as JSON (plan), which restore still reads.
type storedPlan struct {
	Customer string
	Plan     *usage.Plan
}

// storedPlanJSON is the JSON form of a storedPlan.
type storedPlanJSON struct {
	Customer string      `json:"customer"`
	Plan     *usage.Plan `json:"plan,omitempty"`
	PlanGzip []byte      `json:"plan_gzip,omitempty"`
}

// planPartChanges is how many changes of a plan a core encodes and
// compresses at least (see storedPlan.MarshalJSON).
const planPartChanges = 10_000

// MarshalJSON writes the plan compressed. A large plan is encoded and
// compressed in parts, one per core (usage.Plan.WriteJSONSplit), each a
// gzip member of its own: the members one after another are one gzip
// stream, which gzip.Reader reads as the plan's JSON. At 100,000 changes
// this is a fifth of a second of CPU after every pass, which psa-syncd
// sync waits for before it exits.
func (s storedPlan) MarshalJSON() ([]byte, error) {
	v := storedPlanJSON{Customer: s.Customer}
	if s.Plan != nil {
		parts := max(1, min(runtime.GOMAXPROCS(0), len(s.Plan.Changes)/planPartChanges))
		bufs := make([]bytes.Buffer, parts)
		zws := make([]*gzip.Writer, parts)
		bws := make([]*bufio.Writer, parts)
		ws := make([]io.Writer, parts)
		for k := range parts {
			zw, err := gzip.NewWriterLevel(&bufs[k], gzip.BestSpeed)
			if err != nil {
				return nil, err
			}
			zws[k], bws[k] = zw, bufio.NewWriterSize(zw, 64<<10)
			ws[k] = bws[k]
		}
		if err := s.Plan.WriteJSONSplit(ws, "", "\t"); err != nil {
			return nil, err
		}
		for k := range parts {
			if err := bws[k].Flush(); err != nil {
				return nil, err
			}
			if err := zws[k].Close(); err != nil {
				return nil, err
			}
			v.PlanGzip = append(v.PlanGzip, bufs[k].Bytes()...)
		}
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads a compressed plan, or one stored as JSON.
func (s *storedPlan) UnmarshalJSON(b []byte) error {
	var v storedPlanJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Customer, s.Plan = v.Customer, v.Plan
	if len(v.PlanGzip) == 0 {
		return nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(v.PlanGzip))
	if err != nil {
		return fmt.Errorf("the last plan: %w", err)
	}
	s.Plan = new(usage.Plan)
	if err := json.NewDecoder(zr).Decode(s.Plan); err != nil {
		return fmt.Errorf("the last plan: %w", err)
	}
	return nil
}

// stored returns what the memory holds, for the state database.
func (m *planMemory) stored() storedPlan {
	m.mu.Lock()
	defer m.mu.Unlock()
	return storedPlan{Customer: m.customer, Plan: m.plan}
}

// restore replaces what the memory holds with a stored plan.
func (m *planMemory) restore(s storedPlan) {
	if s.Plan == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.plan, m.customer = s.Plan, s.Customer
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
	out.Customers = 1
	return &out
}

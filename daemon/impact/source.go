package impact

import (
	"context"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// onceSource fetches a period's usage once for both plans, so that the
// current and the proposed mappings are compared on the same usage (and the
// vendor is asked once). When there is no source or the fetch fails, it
// keeps the error and answers with standIn: one unit of every mapped
// product for every mapped customer, so that the engine still lists every
// line the mappings could set. The report then shows their quantities as
// not computed instead of failing.
type onceSource struct {
	source.Source
	name    string
	standIn []source.Record

	mu      sync.Mutex
	fetched map[source.Period]*source.Report
	err     error
}

func newOnceSource(src source.Source, name string) *onceSource {
	return &onceSource{Source: src, name: name, fetched: map[source.Period]*source.Report{}}
}

func (s *onceSource) Name() string { return s.name }

func (s *onceSource) Fetch(ctx context.Context, p source.Period) (*source.Report, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.fetched[p]; ok {
		return r, nil
	}
	var r *source.Report
	if s.Source != nil && s.err == nil {
		r, s.err = s.Source.Fetch(ctx, p)
	}
	if r == nil || s.err != nil || s.Source == nil {
		r = &source.Report{Source: s.name, Period: p, Records: s.standIn}
	}
	s.fetched[p] = r
	return r, nil
}

// standInUsage is one unit of every product mapped in any of docs for every
// customer mapped in any of them, of source name.
func standInUsage(name string, docs ...*export.Document) []source.Record {
	customers, products := map[string]bool{}, map[string]bool{}
	for _, d := range docs {
		for _, cm := range d.CustomerMappings {
			if cm.Source == name {
				customers[cm.CustomerID] = true
			}
		}
		for _, pm := range d.ProductMappings {
			if pm.Source == name {
				products[pm.Product] = true
			}
		}
	}
	var out []source.Record
	for c := range customers {
		for p := range products {
			out = append(out, source.Record{CustomerID: c, Product: p, Quantity: 1, Where: "stand-in: usage not read"})
		}
	}
	return out
}

// failed returns the error of the fetch, if it failed.
func (s *onceSource) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// records returns the usage fetched for p: nil when none was fetched, the
// stand-in when usage could not be read.
func (s *onceSource) records(p source.Period) []source.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r := s.fetched[p]; r != nil {
		return r.Records
	}
	return nil
}

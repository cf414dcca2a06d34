package impact

import (
	"context"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// onceSource fetches a period's usage once for both plans, so that the
// current and the proposed mappings are compared on the same usage (and the
// vendor is asked once). When the fetch fails, it answers with no usage and
// keeps the error: the report then says the quantities under the mappings
// could not be computed, instead of failing.
type onceSource struct {
	source.Source
	name string

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
	if r == nil || s.err != nil {
		r = &source.Report{}
	}
	s.fetched[p] = r
	return r, nil
}

// failed returns the error of the fetch, if it failed.
func (s *onceSource) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

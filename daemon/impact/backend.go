package impact

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// errReadOnly is what every write through a readOnly backend returns. The
// engine's Plan never writes; this makes sure of it.
var errReadOnly = errors.New("impact: the billing-impact report never writes to the PSA")

// readOnly is the backend the engine plans against twice (current and
// proposed mappings). It passes reads to the PSA, remembers the contract
// lines it read (the report takes their own unit prices and knows which
// contracts were read at all), reads each contract and service once, and
// refuses every write. Placeholder ids of values known only after apply
// never reach the PSA.
type readOnly struct {
	psa.Backend

	mu         sync.Mutex
	lines      map[psa.LineKey]psa.ContractLine
	byContract map[string][]psa.ContractLine
	read       map[string]bool // contracts read successfully
	services   map[string]*psa.Service
}

func newReadOnly(be psa.Backend) *readOnly {
	return &readOnly{Backend: be, lines: map[psa.LineKey]psa.ContractLine{}, byContract: map[string][]psa.ContractLine{},
		read: map[string]bool{}, services: map[string]*psa.Service{}}
}

// ReadLines reads the contracts not read yet in one bulk read and answers
// from what it remembers.
func (r *readOnly) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	r.mu.Lock()
	var missing []string
	for _, id := range contractIDs {
		if !r.read[id] && !isUnknown(id) {
			missing = append(missing, id)
		}
	}
	r.mu.Unlock()
	if len(missing) > 0 {
		got, err := r.Backend.ReadLines(ctx, missing, asOf)
		if err != nil {
			return got, err
		}
		r.mu.Lock()
		for _, l := range got {
			r.lines[l.Key()] = l
			r.byContract[l.ContractID] = append(r.byContract[l.ContractID], l)
		}
		for _, id := range missing {
			r.read[id] = true
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []psa.ContractLine
	for _, id := range contractIDs {
		out = append(out, r.byContract[id]...)
	}
	return out, nil
}

// GetContract answers for a contract id known only after apply with an
// active recurring contract: the provider checks it at plan time, and the
// report cannot read it.
func (r *readOnly) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	if isUnknown(id) {
		return &psa.Contract{ID: id, Name: id, Active: true, Recurring: true}, nil
	}
	return r.Backend.GetContract(ctx, id)
}

// CheckWrites passes the check of the contracts a plan would write to on
// to a PSA that makes one (psa.WriteChecker: ConnectWise reads the
// agreements' status), so that the report shows a cancelled agreement as
// the pass would: failed, not updated. It writes nothing. Contracts known
// only after apply are not checked.
func (r *readOnly) CheckWrites(ctx context.Context, contractIDs []string) (map[string]error, error) {
	wc, ok := r.Backend.(psa.WriteChecker)
	if !ok {
		return nil, nil
	}
	var known []string
	for _, id := range contractIDs {
		if !isUnknown(id) {
			known = append(known, id)
		}
	}
	if len(known) == 0 {
		return nil, nil
	}
	return wc.CheckWrites(ctx, known)
}

// GetService reads a service once.
func (r *readOnly) GetService(ctx context.Context, id string) (*psa.Service, error) {
	if isUnknown(id) {
		return nil, fmt.Errorf("service %s: %w", id, psa.ErrNotFound)
	}
	r.mu.Lock()
	s, ok := r.services[id]
	r.mu.Unlock()
	if ok {
		return s, nil
	}
	s, err := r.Backend.GetService(ctx, id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.services[id] = s
	r.mu.Unlock()
	return s, nil
}

// line returns the line as read from the PSA, and whether its contract was
// read (a contract read without the line has none: 0 units).
func (r *readOnly) line(k psa.LineKey) (psa.ContractLine, bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l, ok := r.lines[k]
	return l, ok, r.read[k.ContractID]
}

func (r *readOnly) CreateService(context.Context, *psa.Service) (*psa.Service, error) {
	return nil, errReadOnly
}

func (r *readOnly) UpdateService(context.Context, *psa.Service) (*psa.Service, error) {
	return nil, errReadOnly
}

func (r *readOnly) DeactivateService(context.Context, string) error { return errReadOnly }

func (r *readOnly) DeleteService(context.Context, string) error { return errReadOnly }

func (r *readOnly) SetQuantity(context.Context, psa.SetQuantityRequest) (*psa.ContractLine, error) {
	return nil, errReadOnly
}

// offline stands in for the PSA when there are no credentials (a pull
// request from a fork) or the PSA cannot be reached: it reads nothing.
// ReadLines answers psa.ErrNotSupported, so that the engine plans every
// line with an unknown current quantity, as it does for a PSA that cannot
// report one; contracts are taken as the provider checked them at plan
// time.
type offline struct {
	system psa.System
}

func (o offline) System() psa.System                          { return o.system }
func (o offline) Instance() string                            { return "" }
func (o offline) Ping(context.Context) error                  { return errOffline }
func (o offline) Budget(context.Context) (*psa.Budget, error) { return nil, psa.ErrNotSupported }
func (o offline) CreateService(context.Context, *psa.Service) (*psa.Service, error) {
	return nil, errReadOnly
}
func (o offline) GetService(context.Context, string) (*psa.Service, error) { return nil, errOffline }
func (o offline) UpdateService(context.Context, *psa.Service) (*psa.Service, error) {
	return nil, errReadOnly
}
func (o offline) DeactivateService(context.Context, string) error { return errReadOnly }
func (o offline) DeleteService(context.Context, string) error     { return errReadOnly }
func (o offline) FindServices(context.Context, string) ([]psa.Service, error) {
	return nil, errOffline
}
func (o offline) GetCompany(context.Context, string) (*psa.Company, error) { return nil, errOffline }
func (o offline) FindCompanies(context.Context, string) ([]psa.Company, error) {
	return nil, errOffline
}
func (o offline) GetContract(_ context.Context, id string) (*psa.Contract, error) {
	return &psa.Contract{ID: id, Active: true, Recurring: true}, nil
}
func (o offline) FindContracts(context.Context, psa.ContractQuery) ([]psa.Contract, error) {
	return nil, errOffline
}
func (o offline) ReadLines(context.Context, []string, time.Time) ([]psa.ContractLine, error) {
	return nil, psa.ErrNotSupported
}
func (o offline) SetQuantity(context.Context, psa.SetQuantityRequest) (*psa.ContractLine, error) {
	return nil, errReadOnly
}

var errOffline = errors.New("impact: the PSA is not available to this report")

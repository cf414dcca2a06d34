package impact

import (
	"context"
	"errors"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// errReadOnly is what every write through a readOnly backend returns. The
// engine's Plan never writes; this makes sure of it.
var errReadOnly = errors.New("impact: the billing-impact report never writes to the PSA")

// Ensure readOnly passes on the optional interfaces that change what the
// engine's Plan reads. The engine also asks its backend for
// psa.ConcurrencyLimiter (the writes in flight), psa.ServicePreloader (a
// read before the writes) and psa.EndpointBudgeter (metrics after the
// writes); a plan writes nothing and records no metrics, so readOnly
// leaves them out on purpose.
var (
	_ psa.ServiceLineReader = (*readOnly)(nil)
	_ psa.BulkReader        = (*readOnly)(nil)
	_ psa.WriteChecker      = (*readOnly)(nil)
)

// readOnly is the backend the engine plans against twice (current and
// proposed mappings). It passes reads to the PSA, remembers the contract
// lines it read (the report takes their own unit prices and knows which
// contracts were read at all), reads each contract and service once, and
// refuses every write. Placeholder ids of values known only after apply
// never reach the PSA.
//
// Embedding psa.Backend promotes only its methods, so every optional
// interface the engine looks for must be passed on here by hand, or the
// engine behaves as it would with a PSA that lacks it.
type readOnly struct {
	psa.Backend

	mu       sync.Mutex
	read     map[string]*readLines // by contract id, as asked; contracts read successfully
	services map[string]*psa.Service
	// contracts holds the contracts read from the PSA (not those known
	// only after apply), by id.
	contracts map[string]*psa.Contract
	// activeAfter, set once the plan under the current mappings is made,
	// holds the planned `active` of the psa_service resources by id:
	// the plan under the proposed mappings sees the services as the apply
	// leaves them. A service made inactive by hand and active again by
	// the plan (the fix the provider's warning names) has its lines
	// written by the pass after apply, not failed as the PSA's read says.
	activeAfter map[string]bool
}

// readLines is what readOnly read of one contract's lines.
type readLines struct {
	lines []psa.ContractLine
	// all is set when the lines were read with ReadLines, which fails a
	// contract over a problem with any line (a ConnectWise addition with a
	// fractional quantity); checked holds the services named to
	// ReadServiceLines, which leaves out the problem lines of others. A
	// service's line missing from lines is known to be absent only if all
	// is set or the service was checked.
	all     bool
	checked map[string]bool
}

// covers reports whether the read answers a read of the lines of services
// serviceIDs (all: of every service). A read that found no problem with
// the lines of some services finds none with the lines of fewer.
func (rl *readLines) covers(all bool, serviceIDs []string) bool {
	if rl.all {
		return true
	}
	if all {
		return false
	}
	for _, s := range serviceIDs {
		if !rl.checked[s] && !isUnknown(s) {
			return false
		}
	}
	return true
}

func newReadOnly(be psa.Backend) *readOnly {
	return &readOnly{Backend: be, read: map[string]*readLines{}, services: map[string]*psa.Service{}, contracts: map[string]*psa.Contract{}}
}

// ReadLines reads the contracts not read yet in one bulk read and answers
// from what it remembers.
func (r *readOnly) ReadLines(ctx context.Context, contractIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	return r.readLines(ctx, contractIDs, true, nil, asOf)
}

// ReadServiceLines reads like ReadLines, for the services serviceIDs (see
// psa.ServiceLineReader): through the PSA's ReadServiceLines where it has
// one, so that a line of another service that cannot be represented (a
// ConnectWise addition of labour billed in half hours) fails a customer in
// the report no more than it does in a pass. A contract read for some
// services is read again for a plan that manages others.
func (r *readOnly) ReadServiceLines(ctx context.Context, contractIDs, serviceIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	return r.readLines(ctx, contractIDs, false, serviceIDs, asOf)
}

// readLines reads the lines of the contracts not read yet for the services
// serviceIDs (all: every service) in one bulk read, and answers from what
// it remembers. A contract the PSA reports a problem with (a per-contract
// error, see psa.ServiceLineReader) is not remembered; the others of the
// read are.
func (r *readOnly) readLines(ctx context.Context, contractIDs []string, all bool, serviceIDs []string, asOf time.Time) ([]psa.ContractLine, error) {
	var known []string
	for _, s := range serviceIDs {
		if !isUnknown(s) {
			known = append(known, s)
		}
	}
	r.mu.Lock()
	var missing []string
	for _, id := range contractIDs {
		if rl := r.read[id]; (rl == nil || !rl.covers(all, known)) && !isUnknown(id) && !slices.Contains(missing, id) {
			missing = append(missing, id)
		}
	}
	r.mu.Unlock()
	var readErr error
	var ce interface{ ContractErrors() map[string]error }
	if len(missing) > 0 {
		var got []psa.ContractLine
		var err error
		sr, ok := r.Backend.(psa.ServiceLineReader)
		if all || !ok {
			// A PSA without ReadServiceLines checks every line.
			all = true
			got, err = r.Backend.ReadLines(ctx, missing, asOf)
		} else {
			got, err = sr.ReadServiceLines(ctx, missing, known, asOf)
		}
		switch {
		case err == nil:
		case errors.As(err, &ce):
			// The other contracts were read: remember them, and
			// return the error with their lines.
			readErr = err
		default:
			return got, err
		}
		byContract := map[string][]psa.ContractLine{}
		for _, l := range got {
			byContract[l.ContractID] = append(byContract[l.ContractID], l)
		}
		r.mu.Lock()
		for _, id := range missing {
			if ce != nil && ce.ContractErrors()[id] != nil {
				continue
			}
			rl := r.read[id]
			if rl == nil {
				rl = &readLines{checked: map[string]bool{}}
				r.read[id] = rl
			}
			rl.lines = byContract[id]
			rl.all = rl.all || all
			for _, s := range known {
				rl.checked[s] = true
			}
		}
		r.mu.Unlock()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []psa.ContractLine
	for _, id := range contractIDs {
		// A contract this read failed has no lines in the answer, even
		// if it was read for fewer services before.
		if rl := r.read[id]; rl != nil && (ce == nil || ce.ContractErrors()[id] == nil) {
			out = append(out, rl.lines...)
		}
	}
	return out, readErr
}

// GetContracts reads the contracts in bulk where the PSA can
// (psa.BulkReader), so that the report checks contracts in as few
// requests as a pass does. A contract id known only after apply is
// answered as GetContract answers it; without a bulk read, the result
// holds only those, and the engine reads the others one by one.
func (r *readOnly) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
	var known []string
	for _, id := range ids {
		if isUnknown(id) {
			out[id] = unknownContract(id)
		} else {
			known = append(known, id)
		}
	}
	if br, ok := r.Backend.(psa.BulkReader); ok && len(known) > 0 {
		got, err := br.GetContracts(ctx, known)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		maps.Copy(r.contracts, got)
		r.mu.Unlock()
		maps.Copy(out, got)
	}
	return out, nil
}

// readContracts returns the contracts ids as read from the PSA: those the
// engine's plans read already, and the others in one bulk read
// (psa.BulkReader), which the report makes once for all its lines. Ids
// known only after apply, and contracts the PSA did not return, are
// absent; without a bulk read, so is every contract not read yet.
func (r *readOnly) readContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	out := map[string]*psa.Contract{}
	var missing []string
	r.mu.Lock()
	for _, id := range ids {
		switch ct, ok := r.contracts[id]; {
		case ok:
			out[id] = ct
		case !isUnknown(id) && !slices.Contains(missing, id):
			missing = append(missing, id)
		}
	}
	r.mu.Unlock()
	if len(missing) == 0 {
		return out, nil
	}
	got, err := r.GetContracts(ctx, missing)
	if err != nil {
		return out, err
	}
	for _, id := range missing {
		if ct := got[id]; ct != nil {
			out[id] = ct
		}
	}
	return out, nil
}

// GetServices reads the services in bulk where the PSA can, and remembers
// them for GetService. A service id known only after apply is a service
// the plan creates: it is there, active (unknownService), not read.
func (r *readOnly) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	out := map[string]*psa.Service{}
	var missing []string
	r.mu.Lock()
	for _, id := range ids {
		switch s, ok := r.services[id]; {
		case ok:
			out[id] = s
		case isUnknown(id):
			out[id] = unknownService(id)
		default:
			missing = append(missing, id)
		}
	}
	r.mu.Unlock()
	if br, ok := r.Backend.(psa.BulkReader); ok && len(missing) > 0 {
		got, err := br.GetServices(ctx, missing)
		if err != nil {
			return nil, err
		}
		r.mu.Lock()
		maps.Copy(r.services, got)
		r.mu.Unlock()
		maps.Copy(out, got)
	}
	for id, s := range out {
		if s != nil {
			out[id] = r.planned(s)
		}
	}
	return out, nil
}

// planned returns s as the apply leaves it (activeAfter), s itself where
// the plan does not set its `active`: a copy, never the service read.
func (r *readOnly) planned(s *psa.Service) *psa.Service {
	r.mu.Lock()
	active, ok := r.activeAfter[s.ID]
	r.mu.Unlock()
	if !ok || s.Active == active {
		return s
	}
	c := *s
	c.Active = active
	return &c
}

// GetCompanies reads the companies in bulk where the PSA can. A company
// id known only after apply is absent.
func (r *readOnly) GetCompanies(ctx context.Context, ids []string) (map[string]*psa.Company, error) {
	var known []string
	for _, id := range ids {
		if !isUnknown(id) {
			known = append(known, id)
		}
	}
	br, ok := r.Backend.(psa.BulkReader)
	if !ok || len(known) == 0 {
		return map[string]*psa.Company{}, nil
	}
	return br.GetCompanies(ctx, known)
}

// GetContract answers for a contract id known only after apply with an
// active recurring contract: the provider checks it at plan time, and the
// report cannot read it.
func (r *readOnly) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	if isUnknown(id) {
		return unknownContract(id), nil
	}
	ct, err := r.Backend.GetContract(ctx, id)
	if err == nil {
		r.mu.Lock()
		r.contracts[id] = ct
		r.mu.Unlock()
	}
	return ct, err
}

// unknownService is the service GetService and GetServices answer for id,
// known only after apply: one the plan creates, active.
func unknownService(id string) *psa.Service {
	return &psa.Service{ID: id, Active: true}
}

// unknownContract is the contract GetContract answers for id, known only
// after apply.
func unknownContract(id string) *psa.Contract {
	return &psa.Contract{ID: id, Name: id, Active: true, Recurring: true}
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

// GetService reads a service once. A service id known only after apply
// is that of a service the plan creates (unknownService): never taken for
// one deleted in the PSA (the engine marks a mapped service the PSA does
// not find gone, and fails its lines).
func (r *readOnly) GetService(ctx context.Context, id string) (*psa.Service, error) {
	if isUnknown(id) {
		return unknownService(id), nil
	}
	r.mu.Lock()
	s, ok := r.services[id]
	r.mu.Unlock()
	if ok {
		return r.planned(s), nil
	}
	s, err := r.Backend.GetService(ctx, id)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.services[id] = s
	r.mu.Unlock()
	return r.planned(s), nil
}

// line returns the line as read from the PSA, and whether its contract was
// read for its service (a contract read without the line has none: 0
// units). A contract read only for other services may have left the line
// out (a ConnectWise addition with a fractional quantity).
func (r *readOnly) line(k psa.LineKey) (psa.ContractLine, bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	rl := r.read[k.ContractID]
	if rl == nil {
		return psa.ContractLine{}, false, false
	}
	// A later line replaces an earlier one with the same key, as in the
	// engine's index.
	for i := len(rl.lines) - 1; i >= 0; i-- {
		if l := rl.lines[i]; l.Key() == k {
			return l, true, true
		}
	}
	return psa.ContractLine{}, false, rl.all || rl.checked[k.ServiceID]
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

package tickets

import (
	"context"
	"errors"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// ErrNotLeader is matched by the error of a Store write refused because
// this psa-syncd is not, or is no longer, the active instance of a shared
// state database (another one holds the leadership lock). A store that is
// shared by several processes refuses the writes of every instance but the
// active one: the engine records a create, close or note (state.DB: any
// ticket record) before it sends it, so an instance that lost the lock
// does not send it.
//
// On such an error the engine stops the pass: it makes no further PSA call,
// not even a read or a write that no record precedes, and Pass returns an
// error matching ErrNotLeader. What the pass had stored is settled by the
// active instance, as after a crash.
var ErrNotLeader = errors.New("tickets: this psa-syncd is not the active instance, so it sends no ticket writes")

// fence remembers the first ErrNotLeader of a pass: from then on the
// engine's store and PSA refuse every call with it.
type fence struct {
	mu  sync.Mutex
	err error
}

func (f *fence) reset() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = nil
}

// lost returns the ErrNotLeader error that stopped the pass, if any.
func (f *fence) lost() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.err
}

// check records err when it matches ErrNotLeader, and returns it.
func (f *fence) check(err error) error {
	if errors.Is(err, ErrNotLeader) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.err == nil {
			f.err = err
		}
	}
	return err
}

// fencedStore is the engine's Store: it stops the pass at the first write
// refused with ErrNotLeader, and refuses every call after it.
type fencedStore struct {
	Store
	f *fence
}

func (s fencedStore) CreateTicketIntent(r Record) error {
	if err := s.f.lost(); err != nil {
		return err
	}
	return s.f.check(s.Store.CreateTicketIntent(r))
}

func (s fencedStore) PutTicketRecord(r Record) error {
	if err := s.f.lost(); err != nil {
		return err
	}
	return s.f.check(s.Store.PutTicketRecord(r))
}

func (s fencedStore) DeleteTicketRecord(r Record) error {
	if err := s.f.lost(); err != nil {
		return err
	}
	return s.f.check(s.Store.DeleteTicketRecord(r))
}

func (s fencedStore) ForgetTicketRecord(r Record) error {
	if err := s.f.lost(); err != nil {
		return err
	}
	return s.f.check(s.Store.ForgetTicketRecord(r))
}

func (s fencedStore) TicketRecords(source, customerID string) ([]Record, error) {
	if err := s.f.lost(); err != nil {
		return nil, err
	}
	return s.Store.TicketRecords(source, customerID)
}

func (s fencedStore) TicketIntents() ([]Record, error) {
	if err := s.f.lost(); err != nil {
		return nil, err
	}
	return s.Store.TicketIntents()
}

// fencedTicketer is the engine's PSA: once a store write was refused with
// ErrNotLeader, it refuses every call without sending it. Before each
// write it also asks lease (Config.Fence), when set, whose ErrNotLeader
// stops the pass in the same way; and it asks again before each attempt
// that the PSA client sends of it (psa.WithWriteGate): a client that waits
// out a Retry-After of up to five minutes before sending a throttled write
// again would otherwise send it after the lease ran out, when another
// instance may have taken over and sent it too.
type fencedTicketer struct {
	psa.Ticketer
	f     *fence
	lease func() error
}

// write returns the error that refuses a write: the pass's ErrNotLeader,
// or the lease's.
func (t fencedTicketer) write() error {
	if err := t.f.lost(); err != nil {
		return err
	}
	if t.lease == nil {
		return nil
	}
	return t.f.check(t.lease())
}

func (t fencedTicketer) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (*psa.Ticket, error) {
	if err := t.write(); err != nil {
		return nil, err
	}
	return t.Ticketer.CreateTicket(psa.WithWriteGate(ctx, t.write), req)
}

func (t fencedTicketer) GetTicket(ctx context.Context, id string) (*psa.Ticket, error) {
	if err := t.f.lost(); err != nil {
		return nil, err
	}
	return t.Ticketer.GetTicket(ctx, id)
}

func (t fencedTicketer) FindTickets(ctx context.Context, q psa.TicketQuery) ([]psa.Ticket, error) {
	if err := t.f.lost(); err != nil {
		return nil, err
	}
	return t.Ticketer.FindTickets(ctx, q)
}

func (t fencedTicketer) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (*psa.Ticket, error) {
	if err := t.write(); err != nil {
		return nil, err
	}
	return t.Ticketer.SetTicketStatus(psa.WithWriteGate(ctx, t.write), u)
}

func (t fencedTicketer) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	if err := t.write(); err != nil {
		return err
	}
	return t.Ticketer.AddTicketNote(psa.WithWriteGate(ctx, t.write), n)
}

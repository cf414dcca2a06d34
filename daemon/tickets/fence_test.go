package tickets_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// deposableStore is the state database of an instance that loses the
// leadership lock when deposed is set: from then on its writes are
// refused, as state.DB refuses them on a shared PostgreSQL database.
type deposableStore struct {
	*state.DB
	deposed atomic.Bool
	refused atomic.Int64
}

func (s *deposableStore) refuse() error {
	if s.deposed.Load() {
		s.refused.Add(1)
		return fmt.Errorf("storing a ticket record: %w", tickets.ErrNotLeader)
	}
	return nil
}

func (s *deposableStore) CreateTicketIntent(r tickets.Record) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.DB.CreateTicketIntent(r)
}

func (s *deposableStore) PutTicketRecord(r tickets.Record) error {
	if err := s.refuse(); err != nil {
		return err
	}
	return s.DB.PutTicketRecord(r)
}

// A store write refused with ErrNotLeader stops the pass at once: Pass
// returns an error matching it and the engine makes no PSA call after it,
// not even one (a reopen) that no record write of its own would precede.
func TestEngine_notLeaderStopsPass(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	st := &deposableStore{DB: e.db}
	r := routings[psa.SystemAutotask]
	r.OnReturn = export.OnReturnReopen
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: st, Alerts: e.sophosAlerts(), Routing: r,
		Now: func() time.Time { return e.now }})
	if err != nil {
		t.Fatal(err)
	}
	a := e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	e.pass(eng)
	e.sophos.ResolveAlert(acme, a.ID)
	if rep := e.pass(eng); rep.Totals().Closed != 1 {
		t.Fatalf("pass after resolving = %+v", rep.Customers)
	}

	// The instance is deposed. A new alert, raised earlier than a's return
	// and so handled first, and a's return (a reopen within the window).
	st.deposed.Store(true)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "New threat", RaisedAt: "2020-01-01T00:00:00.000"})
	e.raiseAgain(a)
	e.now = e.now.Add(time.Hour)
	e.psaSim.ResetRequests()
	rep, err := eng.Pass(t.Context(), e.customers(), false)
	if !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("Pass of a deposed instance = %v, want an error matching ErrNotLeader", err)
	}
	if tot := rep.Totals(); tot.Created != 0 || tot.Reopened != 0 {
		t.Errorf("deposed pass = %+v, want nothing created or reopened", tot)
	}
	if n := st.refused.Load(); n != 1 {
		t.Errorf("%d store writes tried after the first refusal, want only that one", n)
	}
	for _, req := range e.psaSim.Requests() {
		if req.Method != http.MethodGet {
			t.Errorf("the deposed instance sent %s %s", req.Method, req.Path)
		}
	}
	if got := e.tickets(); len(got) != 1 || !got[0].closed {
		t.Errorf("tickets = %+v, want a's, still closed", got)
	}
}

// The lease (Config.Fence) is asked right before each write: once it
// refuses with ErrNotLeader (the lock's session stopped answering, and the
// instance may have been deposed without knowing it yet), the write is not
// sent, and the pass stops as at a refused record, although the record
// before the write was stored.
func TestEngine_fenceRefusalStopsPassBeforeTheWrite(t *testing.T) {
	t.Parallel()
	e := newEnv(t, psa.SystemAutotask)
	var expired atomic.Bool
	var asked atomic.Int64
	fence := func() error {
		asked.Add(1)
		if expired.Load() {
			return fmt.Errorf("the lock's session has not answered for 6s: %w", tickets.ErrNotLeader)
		}
		return nil
	}
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: e.backend, Store: e.db, Alerts: e.sophosAlerts(),
		Routing: routings[psa.SystemAutotask], Now: func() time.Time { return e.now }, Fence: fence})
	if err != nil {
		t.Fatal(err)
	}
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
	if rep := e.pass(eng); rep.Totals().Created != 1 {
		t.Fatalf("pass with a fresh lease = %+v, want the ticket created", rep.Customers)
	}

	expired.Store(true)
	asked.Store(0)
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "New threat"})
	e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Another threat"})
	e.psaSim.ResetRequests()
	rep, err := eng.Pass(t.Context(), e.customers(), false)
	if !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("Pass with a lease that ran out = %v, want an error matching ErrNotLeader", err)
	}
	if tot := rep.Totals(); tot.Created != 0 {
		t.Errorf("pass with a lease that ran out = %+v, want nothing created", tot)
	}
	if n := asked.Load(); n != 1 {
		t.Errorf("fence asked %d times after it refused, want once: the pass stops at the refusal", n)
	}
	for _, req := range e.psaSim.Requests() {
		if req.Method != http.MethodGet && !strings.HasSuffix(req.Path, "/query") { // Autotask searches are POSTs
			t.Errorf("the instance whose lease ran out sent %s %s", req.Method, req.Path)
		}
	}
	if got := e.tickets(); len(got) != 1 {
		t.Errorf("tickets = %+v, want only the first", got)
	}
}

package tickets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// inFlight is the PSA of an active instance about to be deposed: once
// armed, its first write of one kind ("create", "status" or "note") passed
// the lease and is on its way, held before the PSA gets it until release
// is closed, while the instance that takes over runs its pass.
type inFlight struct {
	psa.Ticketer
	notes psa.TicketNoteLister

	mu      sync.Mutex
	op      string
	arrived chan struct{}
	release chan struct{}
}

// arm holds the next write of kind op.
func (h *inFlight) arm(op string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.op, h.arrived, h.release = op, make(chan struct{}), make(chan struct{})
}

func (h *inFlight) hold(op string) {
	h.mu.Lock()
	if h.op != op {
		h.mu.Unlock()
		return
	}
	h.op = ""
	arrived, release := h.arrived, h.release
	h.mu.Unlock()
	close(arrived)
	<-release
}

func (h *inFlight) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (*psa.Ticket, error) {
	h.hold("create")
	return h.Ticketer.CreateTicket(ctx, req)
}

func (h *inFlight) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (*psa.Ticket, error) {
	h.hold("status")
	return h.Ticketer.SetTicketStatus(ctx, u)
}

func (h *inFlight) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	h.hold("note")
	return h.Ticketer.AddTicketNote(ctx, n)
}

func (h *inFlight) TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error) {
	return h.notes.TicketNoteTexts(ctx, ticketID)
}

// takeover is two instances over one state database and one PSA: old,
// the active one, whose writes inFlight can hold and whose store refuses
// its writes once deposed, and the instance that takes over, built by
// takeOver.
type takeover struct {
	e     *env
	psa   *inFlight
	store *deposableStore
	old   *tickets.Engine
	r     export.Tickets
}

// takeoverSettleTime is both instances' policies.settle_time.
const takeoverSettleTime = 2 * time.Minute

func newTakeover(t *testing.T, system psa.System, r export.Tickets) *takeover {
	e := newEnv(t, system)
	notes, ok := e.backend.(psa.TicketNoteLister)
	if !ok {
		t.Fatalf("the %s backend lists no ticket notes", system)
	}
	tk := &takeover{e: e, psa: &inFlight{Ticketer: e.backend, notes: notes}, store: &deposableStore{DB: e.db}, r: r}
	tk.old = tk.engine(tk.psa, tk.store, time.Time{})
	return tk
}

func (tk *takeover) engine(p psa.Ticketer, st tickets.Store, activeSince time.Time) *tickets.Engine {
	e := tk.e
	c, err := sophos.NewClient(sophos.WithCredentials(e.sophos.ClientID(), e.sophos.ClientSecret()), sophos.WithAuthURL(e.sophos.AuthURL()),
		sophos.WithBaseURL(e.sophos.APIURL()), sophos.WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		e.t.Fatal(err)
	}
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: p, Store: st, Alerts: tickets.NewSophosAlerts(c), Routing: tk.r,
		Now: func() time.Time { return e.now }, SettleTime: takeoverSettleTime, ActiveSince: activeSince})
	if err != nil {
		e.t.Fatal(err)
	}
	return eng
}

// cut runs a pass of the old instance until its write of kind op is on its
// way, then, after the old instance's pass spent slow (how long its pass
// took before the write), deposes it and runs a pass of the instance that
// takes over meanwhile, and only then lets the old instance's write reach
// the PSA. It returns the new instance, whose passes go on.
func (tk *takeover) cut(t *testing.T, op string, slow time.Duration) (*tickets.Engine, tickets.CustomerReport) {
	t.Helper()
	tk.psa.arm(op)
	done := make(chan error, 1)
	go func() {
		_, err := tk.old.Pass(context.WithoutCancel(t.Context()), tk.e.customers(), false)
		done <- err
	}()
	select {
	case <-tk.psa.arrived:
	case err := <-done:
		t.Fatalf("the old instance's pass ended before its %s was sent: %v", op, err)
	}
	tk.e.now = tk.e.now.Add(slow)
	tk.store.deposed.Store(true)
	eng := tk.engine(tk.e.backend, tk.e.db, tk.e.now)
	cr := tk.e.pass(eng).Customers[0]
	close(tk.psa.release)
	if err := <-done; !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("the old instance's pass = %v, want it stopped with ErrNotLeader at its record after the write", err)
	}
	return eng, cr
}

// A ticket write the deposed instance sent before its lease ran out may
// reach the PSA after the instance that took over looked for it: that
// instance leaves every create, close, note or reopen whose outcome is
// unknown as it is for policies.settle_time after the takeover (and after
// its record), and then finds it applied, rather than sending the same
// ticket, note or reopen a second time (385a541's gap). On every PSA.
func TestEngine_takeoverWithAWriteOnItsWay(t *testing.T) {
	t.Parallel()
	for _, sys := range psa.Systems {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			t.Run("create", func(t *testing.T) {
				t.Parallel()
				tk := newTakeover(t, sys, routings[sys])
				tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
				// The search before the create took 3 minutes (a throttled
				// PSA), so the intent is older than settle_time when the
				// create leaves, and the instance takes over.
				eng, cr := tk.cut(t, "create", 3*time.Minute)
				if cr.Created != 0 || cr.Adopted != 0 || cr.Err != nil {
					t.Errorf("pass of the instance that took over = %+v, want the create left for settle_time", cr)
				}
				tk.e.now = tk.e.now.Add(takeoverSettleTime)
				if cr := tk.e.pass(eng).Customers[0]; cr.Created != 0 || cr.Adopted != 1 || cr.Err != nil {
					t.Errorf("pass after settle_time = %+v, want the old instance's ticket adopted", cr)
				}
				if got := tk.e.tickets(); len(got) != 1 {
					t.Errorf("tickets = %+v, want one", got)
				}
			})
			t.Run("close", func(t *testing.T) {
				t.Parallel()
				tk := newTakeover(t, sys, routings[sys])
				a := tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
				tk.e.pass(tk.old)
				tk.e.sophos.ResolveAlert(acme, a.ID)
				eng, _ := tk.cut(t, "status", 0)
				tk.e.now = tk.e.now.Add(takeoverSettleTime)
				if cr := tk.e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil {
					t.Errorf("pass after settle_time = %+v, want the old instance's close recorded", cr)
				}
				tk.oneNote(t, "resolved in Sophos Central")
			})
			t.Run("resolve note", func(t *testing.T) {
				t.Parallel()
				r := routings[sys]
				r.OnResolve = export.OnResolveNote
				tk := newTakeover(t, sys, r)
				a := tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
				tk.e.pass(tk.old)
				tk.e.sophos.ResolveAlert(acme, a.ID)
				eng, _ := tk.cut(t, "note", 0)
				tk.e.now = tk.e.now.Add(takeoverSettleTime)
				if cr := tk.e.pass(eng).Customers[0]; cr.Noted != 1 || cr.Err != nil {
					t.Errorf("pass after settle_time = %+v, want the old instance's note found", cr)
				}
				tk.oneNote(t, "resolved in Sophos Central")
			})
			t.Run("reopen", func(t *testing.T) {
				t.Parallel()
				r := routings[sys]
				r.OnReturn = export.OnReturnReopen
				tk := newTakeover(t, sys, r)
				a := tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Health check"})
				tk.e.pass(tk.old)
				tk.e.sophos.ResolveAlert(acme, a.ID)
				tk.e.now = tk.e.now.Add(time.Minute)
				tk.e.pass(tk.old)
				tk.e.now = tk.e.now.Add(time.Hour)
				tk.e.sophos.AddAlert(acme, sophostest.Alert{ID: a.ID, Severity: "high", Description: "Health check"})
				eng, _ := tk.cut(t, "status", 0)
				tk.e.now = tk.e.now.Add(takeoverSettleTime)
				if cr := tk.e.pass(eng).Customers[0]; cr.Created != 0 || cr.Err != nil {
					t.Errorf("pass after settle_time = %+v, want the old instance's reopen found", cr)
				}
				if got := tk.e.tickets(); len(got) != 1 || got[0].closed {
					t.Errorf("tickets = %+v, want one, open", got)
				}
				tk.oneNote(t, "raised again in Sophos Central")
			})
			t.Run("summary note", func(t *testing.T) {
				t.Parallel()
				r := routings[sys]
				r.MaxPerCustomer = 1
				tk := newTakeover(t, sys, r)
				tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 1"})
				tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 2"})
				tk.e.pass(tk.old)
				tk.e.now = tk.e.now.Add(time.Minute)
				// One more alert gets a ticket of its own, the other goes
				// into the summary ticket's note.
				tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 3"})
				tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Threat 4"})
				eng, _ := tk.cut(t, "note", 0)
				tk.e.now = tk.e.now.Add(takeoverSettleTime)
				if cr := tk.e.pass(eng).Customers[0]; cr.Err != nil {
					t.Errorf("pass after settle_time = %+v", cr)
				}
				tk.oneNote(t, "More alerts were raised than psa-syncd files")
				if got := tk.e.tickets(); len(got) != 3 {
					t.Errorf("tickets = %+v, want two alerts' and the summary", got)
				}
			})
		})
	}
}

// oneNote fails unless exactly one note on the PSA's tickets contains s.
func (tk *takeover) oneNote(t *testing.T, s string) {
	t.Helper()
	if n := tk.e.countNotes(s); n != 1 {
		var all []string
		for _, tkt := range tk.e.tickets() {
			all = append(all, fmt.Sprintf("%d: %q", tkt.id, tkt.notes))
		}
		t.Errorf("%d notes contain %q, want 1; notes: %s", n, s, strings.Join(all, "; "))
	}
}

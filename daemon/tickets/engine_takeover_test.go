package tickets_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

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
	lose    func() // set by arm for a write whose answer is lost
	arrived chan struct{}
	release chan struct{}
}

// arm holds the next write of kind op; with lose set, it sends it instead,
// calls lose and returns a lost answer.
func (h *inFlight) arm(op string, lose func()) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.op, h.lose, h.arrived, h.release = op, lose, make(chan struct{}), make(chan struct{})
}

// write sends the write of kind op through send, as armed.
func (h *inFlight) write(op string, send func() error) error {
	h.mu.Lock()
	if h.op != op {
		h.mu.Unlock()
		return send()
	}
	h.op = ""
	lose, arrived, release := h.lose, h.arrived, h.release
	h.mu.Unlock()
	if lose != nil {
		err := send()
		lose()
		return fmt.Errorf("the answer was lost (%v): %w", err, psa.ErrOutcomeUnknown)
	}
	close(arrived)
	<-release
	return send()
}

func (h *inFlight) CreateTicket(ctx context.Context, req psa.CreateTicketRequest) (t *psa.Ticket, err error) {
	err = h.write("create", func() error { t, err = h.Ticketer.CreateTicket(ctx, req); return err })
	return t, err
}

func (h *inFlight) SetTicketStatus(ctx context.Context, u psa.TicketStatusUpdate) (t *psa.Ticket, err error) {
	err = h.write("status", func() error { t, err = h.Ticketer.SetTicketStatus(ctx, u); return err })
	return t, err
}

func (h *inFlight) AddTicketNote(ctx context.Context, n psa.TicketNote) error {
	return h.write("note", func() error { return h.Ticketer.AddTicketNote(ctx, n) })
}

func (h *inFlight) TicketNoteTexts(ctx context.Context, ticketID string) ([]string, error) {
	return h.notes.TicketNoteTexts(ctx, ticketID)
}

// takeover is two instances over one state database and one PSA: old,
// the active one, whose writes inFlight can hold and whose store refuses
// its writes once deposed (as does its lease, Config.Fence), and the
// instance that takes over, built by cut.
type takeover struct {
	e     *env
	psa   *inFlight
	store *intentStore
	old   *tickets.Engine
	r     export.Tickets
}

// intentStore is the old instance's store: deposed once it stored the
// record after is set for (its lease runs out right after).
type intentStore struct {
	*deposableStore
	mu    sync.Mutex
	after func(tickets.Record) bool
}

func (s *intentStore) stored(r tickets.Record) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.after != nil && s.after(r) {
		s.deposed.Store(true)
	}
}

func (s *intentStore) CreateTicketIntent(r tickets.Record) error {
	err := s.deposableStore.CreateTicketIntent(r)
	if err == nil {
		s.stored(r)
	}
	return err
}

func (s *intentStore) PutTicketRecord(r tickets.Record) error {
	err := s.deposableStore.PutTicketRecord(r)
	if err == nil {
		s.stored(r)
	}
	return err
}

// takeoverSettleTime is both instances' policies.settle_time.
const takeoverSettleTime = 2 * time.Minute

func newTakeover(t *testing.T, system psa.System, r export.Tickets) *takeover {
	e := newEnv(t, system)
	notes, ok := e.backend.(psa.TicketNoteLister)
	if !ok {
		t.Fatalf("the %s backend lists no ticket notes", system)
	}
	tk := &takeover{e: e, psa: &inFlight{Ticketer: e.backend, notes: notes}, store: &intentStore{deposableStore: &deposableStore{DB: e.db}}, r: r}
	tk.old = tk.engine(tk.psa, tk.store, time.Time{}, func() error {
		if tk.store.deposed.Load() {
			return fmt.Errorf("the lease ran out: %w", tickets.ErrNotLeader)
		}
		return nil
	})
	return tk
}

func (tk *takeover) engine(p psa.Ticketer, st tickets.Store, activeSince time.Time, fence func() error) *tickets.Engine {
	e := tk.e
	eng, err := tickets.New(tickets.Config{System: e.system, PSA: p, Store: st, Alerts: e.sophosAlerts(), Routing: tk.r,
		Now: func() time.Time { return e.now }, SettleTime: takeoverSettleTime, ActiveSince: activeSince, Fence: fence})
	if err != nil {
		e.t.Fatal(err)
	}
	return eng
}

// step is where the takeover cuts the old instance's pass off.
type step string

const (
	// onItsWay: the write passed the lease and is on its way; it reaches
	// the PSA after the new instance's first pass.
	onItsWay step = "on its way"
	// notSent: the intent is recorded, and the lease ran out before the
	// write.
	notSent step = "not sent"
	// answerLost: the PSA applied the write, its answer was lost, and the
	// instance was deposed before recording anything more.
	answerLost step = "answer lost"
)

var steps = []step{onItsWay, notSent, answerLost}

// cut runs a pass of the old instance, whose write of kind op (its record
// matching intent) the takeover cuts off at st, after the old instance's
// pass spent slow (how long its pass took before the write). The new
// instance then takes over and runs a pass; an old write on its way
// reaches the PSA after it. It returns the new instance, whose passes go
// on, and the report of its first pass.
func (tk *takeover) cut(t *testing.T, st step, op string, intent func(tickets.Record) bool, slow time.Duration) (*tickets.Engine, tickets.CustomerReport) {
	t.Helper()
	switch st {
	case onItsWay:
		tk.psa.arm(op, nil)
	case notSent:
		tk.store.mu.Lock()
		tk.store.after = intent
		tk.store.mu.Unlock()
	case answerLost:
		tk.psa.arm(op, func() { tk.store.deposed.Store(true) })
	}
	done := make(chan error, 1)
	go func() {
		_, err := tk.old.Pass(context.WithoutCancel(t.Context()), tk.e.customers(), false)
		done <- err
	}()
	if st == onItsWay {
		select {
		case <-tk.psa.arrived:
		case err := <-done:
			t.Fatalf("the old instance's pass ended before its %s was sent: %v", op, err)
		}
	} else if err := <-done; err != nil && !errors.Is(err, tickets.ErrNotLeader) {
		t.Fatalf("the old instance's pass = %v, want it stopped with ErrNotLeader, or ended", err)
	}
	if !tk.store.deposed.Load() {
		tk.store.deposed.Store(true)
		if st != onItsWay {
			t.Fatalf("the old instance's pass sent no %s", op)
		}
	}
	tk.e.now = tk.e.now.Add(slow)
	eng := tk.engine(tk.e.backend, tk.e.db, tk.e.now, nil)
	cr := tk.e.pass(eng).Customers[0]
	if st == onItsWay {
		close(tk.psa.release)
		if err := <-done; !errors.Is(err, tickets.ErrNotLeader) {
			t.Errorf("the old instance's pass = %v, want it stopped with ErrNotLeader at its record after the write", err)
		}
	}
	return eng, cr
}

// A ticket write the deposed instance sent before its lease ran out may
// reach the PSA after the instance that took over looked for it: that
// instance leaves every create, close, note or reopen whose outcome is
// unknown as it is for policies.settle_time after the takeover (and after
// its record), and then finds it applied, rather than sending the same
// ticket, note or reopen a second time (385a541's gap). So is a write the
// lease stopped after its record (sent then, once), and one whose answer
// was lost (found, not sent again). On every PSA.
func TestEngine_takeoverAtEachStepOfAWrite(t *testing.T) {
	t.Parallel()
	creating := func(r tickets.Record) bool { return r.State == tickets.StateCreating }
	inState := func(s string) func(tickets.Record) bool { return func(r tickets.Record) bool { return r.State == s } }
	for _, sys := range psa.Systems {
		for _, st := range steps {
			t.Run(string(sys)+"/"+string(st), func(t *testing.T) {
				t.Parallel()
				t.Run("create", func(t *testing.T) {
					t.Parallel()
					tk := newTakeover(t, sys, routings[sys])
					a := tk.e.sophos.AddAlert(acme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
					// The search before the create took 3 minutes (a
					// throttled PSA), so the intent is older than
					// settle_time when the create leaves, and the instance
					// takes over.
					eng, first := tk.cut(t, st, "create", creating, 3*time.Minute)
					if first.Created != 0 || first.Err != nil {
						t.Errorf("pass of the instance that took over = %+v, want the create left for settle_time (or the ticket found)", first)
					}
					tk.e.now = tk.e.now.Add(takeoverSettleTime)
					cr := tk.e.pass(eng).Customers[0]
					if st != answerLost {
						// The create never reached the PSA, and the customer
						// has no other ticket to check the search with: it
						// waits for an operator who finds no ticket.
						if cr.Created != 0 || cr.Err == nil || !strings.Contains(cr.Err.Error(), "resolve -ticket REF -not-posted") {
							t.Errorf("pass after settle_time = %+v, want the create held for an operator", cr)
						}
						tk.e.notPosted("sc:" + a.ID)
						cr = tk.e.pass(eng).Customers[0]
					}
					if first.Adopted+cr.Created+cr.Adopted != 1 || cr.Err != nil {
						t.Errorf("pass after settle_time = %+v, want the ticket created or adopted", cr)
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
					eng, _ := tk.cut(t, st, "status", inState(tickets.StateClosing), 0)
					tk.e.now = tk.e.now.Add(takeoverSettleTime)
					if cr := tk.e.pass(eng).Customers[0]; cr.Closed != 1 || cr.Err != nil {
						t.Errorf("pass after settle_time = %+v, want the close recorded", cr)
					}
					if got := tk.e.tickets(); len(got) != 1 || !got[0].closed {
						t.Errorf("tickets = %+v, want one, closed", got)
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
					eng, _ := tk.cut(t, st, "note", inState(tickets.StateNoting), 0)
					tk.e.now = tk.e.now.Add(takeoverSettleTime)
					if cr := tk.e.pass(eng).Customers[0]; cr.Noted != 1 || cr.Err != nil {
						t.Errorf("pass after settle_time = %+v, want the note recorded", cr)
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
					tk.e.raiseAgain(a)
					eng, _ := tk.cut(t, st, "status", inState(tickets.StateReopening), 0)
					tk.e.now = tk.e.now.Add(takeoverSettleTime)
					if cr := tk.e.pass(eng).Customers[0]; cr.Created != 0 || cr.Err != nil {
						t.Errorf("pass after settle_time = %+v, want the ticket reopened, once", cr)
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
					eng, _ := tk.cut(t, st, "note", func(r tickets.Record) bool { return len(r.NoteAlerts) > 0 }, 0)
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

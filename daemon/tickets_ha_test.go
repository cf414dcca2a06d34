package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	neturl "net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestDaemon_TicketPass_deposedSendsNothing: the active instance's lock
// session ends while its other connections work, and before its watch
// notices (lock_interval is an hour here; 2 s by default). Its ticket
// passes must send no create: the state database refuses the create
// intent, the pass stops with ErrNotLeader, the scheduled pass logs it and
// records nothing over the active instance's status. The instance that
// takes over creates the ticket, once.
func TestDaemon_TicketPass_deposedSendsNothing(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	a, sim, sop := ttSetupWith(t, routing, true, fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 1h\n", url))
	logs := &syncBuffer{}
	a.logger = slog.New(slog.NewTextHandler(logs, nil))
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	alert := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})

	dtCutLeadership(t, url)
	sim.ResetRequests()
	rep, err := a.TicketPass(t.Context(), false)
	if !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("ticket pass of the deposed instance = %+v, %v; want an error matching tickets.ErrNotLeader", rep.Totals(), err)
	}
	a.scheduledTicketPass(t.Context())
	if !strings.Contains(logs.String(), "Ticket pass stopped: this psa-syncd is no longer the active instance") {
		t.Errorf("the scheduled pass of the deposed instance did not log that it stopped; logs:\n%s", logs)
	}
	for _, r := range sim.Requests() {
		if r.Method != http.MethodGet {
			t.Errorf("the deposed instance sent %s %s", r.Method, r.Path)
		}
	}
	if got := sim.Autotask().Tickets(); len(got) != 0 {
		t.Fatalf("tickets after the deposed instance's passes = %+v, want none", got)
	}
	if st, err := a.TicketStatuses(); err != nil || len(st) != 0 {
		t.Errorf("ticket statuses after the deposed instance's pass = %+v, %v; want none recorded", st, err)
	}

	b := ttTakeOver(t, a, nil)
	if rep, err := b.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("ticket pass of the instance that took over = %+v, %v; want the ticket created", rep.Totals(), err)
	}
	if got := sim.Autotask().Tickets(); len(got) != 1 || got[0].ExternalID != "sc:"+alert.ID {
		t.Errorf("tickets = %+v, want one for the alert", got)
	}
}

// TestDaemon_TicketPass_stoppedByLostLeadershipRecordsNothing: an active
// instance usually learns that it lost the leadership from its lock check,
// which stops its passes (their context ends with errLostLeadership)
// before a ticket pass has met a refused record. Such a pass must not
// record its customers as failed ("context canceled") over the ticket
// status of the instance that took over, as a pass refused by a record
// (tickets.ErrNotLeader) does not: GET /api/v1/customers and the status
// page showed every ticket customer failed after a failover.
func TestDaemon_TicketPass_stoppedByLostLeadershipRecordsNothing(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	a, _, sop := ttSetupWith(t, routing, true, fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 1h\n", url))
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})

	dtCutLeadership(t, url)
	b := ttTakeOver(t, a, nil)
	b.scheduledTicketPass(t.Context())
	want, err := b.TicketStatuses()
	if err != nil || want[ticketStatusKey("sophos", ttAcme)].Result != "succeeded" {
		t.Fatalf("ticket statuses after the pass of the instance that took over = %+v, %v; want acme succeeded", want, err)
	}

	// a's lock check notices the loss: its passes are stopped.
	ctx, stop := context.WithCancelCause(t.Context())
	stop(errLostLeadership)
	a.scheduledTicketPass(ctx)
	if got, err := b.TicketStatuses(); err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ticket statuses after the deposed instance's stopped pass = %+v, %v; want those of the active instance's pass, %+v", got, err, want)
	}
}

// TestDaemon_TicketPass_leaseStopsTheCreate: the network between the
// active instance and PostgreSQL starts dropping everything after a ticket
// pass recorded its create intent, while it searches the PSA for the
// ticket. Its lock check waits query_timeout before it knows, while the
// server ends the silent session and a standby may take over after the
// session's bound: the create must not be sent once the lock's session has
// not answered for half that bound, and the pass stops as at a refused
// record.
func TestDaemon_TicketPass_leaseStopsTheCreate(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	u, err := neturl.Parse(url)
	if err != nil {
		t.Fatal(err)
	}
	dbNet := pgtest.NewBlackhole(t, u.Host)
	u.Host = dbNet.Addr()
	search := &ttHoldSearch{arrived: make(chan struct{}, 1), release: make(chan struct{})}
	var releaseOnce sync.Once
	release := func() { releaseOnce.Do(func() { close(search.release) }) }
	t.Cleanup(release)
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), ClosedStatusID: "5", OnResolve: export.OnResolveClose}
	a, sim, sop := ttSetupOptions(t, routing, true,
		fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\n  query_timeout: 8s\n", u.String()),
		Options{HTTPClient: &http.Client{Timeout: time.Minute, Transport: search}})
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	type result struct {
		rep tickets.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := a.TicketPass(context.WithoutCancel(t.Context()), false)
		done <- result{rep, err}
	}()
	select {
	case <-search.arrived: // the create intent is recorded; the search before the create is on its way
	case r := <-done:
		t.Fatalf("the ticket pass ended before searching for the ticket: %+v, %v", r.rep.Totals(), r.err)
	}

	dbNet.Freeze() // the network to the database drops everything
	cut := time.Now()
	for a.db.CheckFence() == nil {
		if time.Since(cut) > 8*time.Second {
			t.Fatal("the lease did not run out within 8 s of the cut")
		}
		time.Sleep(50 * time.Millisecond)
	}
	release() // the search answers: no ticket yet
	select {
	case r := <-done:
		if !errors.Is(r.err, tickets.ErrNotLeader) {
			t.Errorf("ticket pass after the lease ran out = %+v, %v; want an error matching tickets.ErrNotLeader", r.rep.Totals(), r.err)
		}
	case <-time.After(30 * time.Second):
		t.Error("the ticket pass did not end after the lease ran out")
	}
	if got := sim.Autotask().Tickets(); len(got) != 0 {
		t.Errorf("tickets = %+v, want none: the lock's session had not answered for %s, so another instance may have "+
			"taken over and be creating the same ticket", got, time.Since(cut).Round(time.Second))
	}
	dbNet.Cut()
}

// ttHoldSearch is the daemon's transport: it holds its first ticket
// search until release is closed.
type ttHoldSearch struct {
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
}

func (h *ttHoldSearch) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/tickets/query") {
		h.once.Do(func() {
			h.arrived <- struct{}{}
			<-h.release
		})
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestDaemon_TicketPass_takeoverLeavesANoteOnItsWay: the active instance
// records a resolve note and sends it; the request is on its way (held
// here) when the instance loses the leadership and a standby takes over.
// The new active instance's pass must not look for the note yet, which it
// would not find, and send it a second time: it leaves it for
// policies.settle_time after the takeover, and then finds the deposed
// instance's note on the ticket (385a541's gap). The deposed instance's
// clock is 10 minutes behind: the note's record looks older than
// policies.settle_time to the new instance, which counts from its own
// takeover.
func TestDaemon_TicketPass_takeoverLeavesANoteOnItsWay(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	hold := &ttHoldNote{arrived: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(hold.let)
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	a, sim, sop := ttSetupOptions(t, routing, true,
		fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 1h\npolicies:\n  ticket_resolve_after: 0s\n", url),
		Options{HTTPClient: &http.Client{Timeout: time.Minute, Transport: hold}, Now: func() time.Time { return time.Now().Add(-10 * time.Minute) }})
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	alert := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := a.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("first pass = %+v, %v; want the ticket created", rep.Totals(), err)
	}
	sop.ResolveAlert(ttAcme, alert.ID)
	hold.armed.Store(true)
	done := make(chan error, 1)
	go func() {
		_, err := a.TicketPass(context.WithoutCancel(t.Context()), false)
		done <- err
	}()
	select {
	case <-hold.arrived: // the resolve note is recorded and on its way
	case err := <-done:
		t.Fatalf("the pass ended before sending the resolve note: %v", err)
	}

	dtCutLeadership(t, url)
	var offset atomic.Int64
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }
	b := ttTakeOver(t, a, clock)
	rep, err := b.TicketPass(t.Context(), false)
	if tot := rep.Totals(); err != nil || tot.Noted != 0 || !slices.ContainsFunc(tot.Notices, func(n string) bool { return strings.Contains(n, "policies.settle_time") }) {
		t.Errorf("pass right after the takeover = %+v, %v; want the resolve note left for policies.settle_time", tot, err)
	}
	hold.let() // the deposed instance's note reaches the PSA
	if err := <-done; !errors.Is(err, tickets.ErrNotLeader) {
		t.Errorf("the deposed instance's pass = %v, want it stopped at its record after the note (tickets.ErrNotLeader)", err)
	}

	offset.Store(int64(b.cfg.Load().Policies.SettleTime))
	if rep, err := b.TicketPass(t.Context(), false); err != nil || rep.Totals().Noted != 1 {
		t.Errorf("pass policies.settle_time after the takeover = %+v, %v; want the deposed instance's note found", rep.Totals(), err)
	}
	n := 0
	for _, tk := range sim.Autotask().Tickets() {
		for _, note := range sim.Autotask().TicketNotes(tk.ID) {
			if strings.Contains(note.Description, "resolved in Sophos Central") {
				n++
			}
		}
	}
	if n != 1 {
		t.Errorf("%d resolve notes on the ticket, want 1", n)
	}
}

// ttHoldNote is the daemon's transport: once armed, it holds the first
// ticket note it sends until let is called.
type ttHoldNote struct {
	armed   atomic.Bool
	arrived chan struct{}
	release chan struct{}
	once    sync.Once
	letOnce sync.Once
}

func (h *ttHoldNote) let() { h.letOnce.Do(func() { close(h.release) }) }

func (h *ttHoldNote) RoundTrip(r *http.Request) (*http.Response, error) {
	if h.armed.Load() && r.Method == http.MethodPost && strings.HasSuffix(strings.ToLower(r.URL.Path), "/notes") {
		h.once.Do(func() {
			close(h.arrived)
			<-h.release
		})
	}
	return http.DefaultTransport.RoundTrip(r)
}

// TestDaemon_ticketsAPI_stopsAtLostLeadership: a ticket pass requested
// through POST /api/v1/tickets runs with the request's context. Its PSA
// client waits out a Retry-After before sending a resolve note again when
// the instance loses the leadership: the pass must end there, as a
// scheduled pass does, without sending the note, which the instance that
// takes over sends (once) after policies.settle_time. It used to be sent
// once the wait was over, however long after the takeover.
func TestDaemon_ticketsAPI_stopsAtLostLeadership(t *testing.T) {
	t.Parallel()
	url, err := pgtest.New(t).CreateDatabase(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	routing := &export.Tickets{Enabled: true, QueueID: dtID(psatest.AutotaskQueueMonitoringAlert), OnResolve: export.OnResolveNote}
	a, sim, sop := ttSetupWith(t, routing, true, "  api_token: "+ttToken+"\n"+
		fmt.Sprintf("state:\n  driver: postgres\n  url: %q\n  lock_interval: 100ms\npolicies:\n  ticket_resolve_after: 0s\n", url))
	if err := a.BecomeActive(t.Context()); err != nil {
		t.Fatal(err)
	}
	alert := sop.AddAlert(ttAcme, sophostest.Alert{Severity: "high", Description: "Malware on PC-1"})
	if rep, err := a.TicketPass(t.Context(), false); err != nil || rep.Totals().Created != 1 {
		t.Fatalf("first pass = %+v, %v; want the ticket created", rep.Totals(), err)
	}
	ticket := sim.Autotask().Tickets()[0].ID
	notes := fmt.Sprintf("/ATServicesRest/V1.0/Tickets/%d/Notes", ticket)
	sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: notes, Status: http.StatusTooManyRequests, RetryAfter: time.Minute, Times: 1})
	sop.ResolveAlert(ttAcme, alert.ID)
	srv := httptest.NewServer(a.Handler())
	defer srv.Close()
	type answer struct {
		code int
		body string
	}
	done := make(chan answer, 1)
	go func() {
		code, body, _ := ttPost(t, srv.URL, ttToken, `{"dry_run": false}`)
		done <- answer{code, body}
	}()
	throttled := func() bool {
		for _, r := range sim.Requests() {
			if r.Method == http.MethodPost && strings.EqualFold(r.Path, notes) {
				return true
			}
		}
		return false
	}
	for !throttled() {
		select {
		case got := <-done:
			t.Fatalf("the pass ended before sending its note: %d %s", got.code, got.body)
		case <-time.After(10 * time.Millisecond):
		}
	}

	dtCutLeadership(t, url) // while the client waits a minute to send the note again
	got := <-done
	if got.code != http.StatusServiceUnavailable || !strings.Contains(got.body, "no longer the active instance") {
		t.Errorf("POST /api/v1/tickets that lost the leadership = %d %s; want 503", got.code, got.body)
	}
	for _, r := range sim.Requests() {
		if r.Method == http.MethodPost && strings.EqualFold(r.Path, notes) && r.Status != http.StatusTooManyRequests {
			t.Errorf("the instance that lost the leadership sent the note again at %s (answered %d)", r.Time.Format(time.RFC3339), r.Status)
		}
	}
}

// ttTakeOver starts a second instance on a's configuration (its clock now,
// time.Now when nil) and has it take the leadership over once a's lock is
// gone, within 10 s.
func ttTakeOver(t *testing.T, a *Daemon, now func() time.Time) *Daemon {
	t.Helper()
	cfg, err := Load(a.configPath, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, a.configPath, Options{Registry: prometheus.NewRegistry(), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	if err := b.Reload(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := b.BecomeActive(t.Context())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("taking over: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b
}

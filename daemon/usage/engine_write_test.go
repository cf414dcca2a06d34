package usage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// addCustomers adds n customers with a contract each to h, mapped with usage
// sync on, and returns usage rows that set both of h's services on each
// contract (lines that do not exist yet, so every one is written).
func (h *etHarness) addCustomers(n int) []string {
	var rows []string
	for i := range n {
		company := h.at.AddCompany(fmt.Sprintf("Many %d", i))
		contract := h.at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
		cust := fmt.Sprintf("many-%d", i)
		h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: cust, CompanyID: etID(company), ContractID: etID(contract), UsageSync: true})
		rows = append(rows, fmt.Sprintf("%s,,CIXA-MSP,%d", cust, i+1), fmt.Sprintf("%s,,MDR,%d", cust, i+2))
	}
	return rows
}

// TestEngine_Sync_intentCommittedBeforeItsWrite checks, as each adjustment
// POST leaves psa-syncd, that the state database already holds its intent
// as open: the intents that the pass opens in batches ahead of the writes
// are committed before any of their writes is sent.
func TestEngine_Sync_intentCommittedBeforeItsWrite(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage(h.addCustomers(20)...)
	var posts atomic.Int64
	h.rt.beforeSend = func(r *http.Request) {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/ContractServiceAdjustments") {
			return
		}
		posts.Add(1)
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		var adj struct {
			ContractID int64 `json:"contractID"`
			ServiceID  int64 `json:"serviceID"`
		}
		if err := json.Unmarshal(body, &adj); err != nil {
			t.Error(err)
			return
		}
		open, err := h.db.OpenIntents()
		if err != nil {
			t.Error(err)
			return
		}
		for _, in := range open {
			if in.ContractID == etID(adj.ContractID) && in.ServiceID == etID(adj.ServiceID) {
				return
			}
		}
		t.Errorf("adjustment of contract %d service %d sent without an open intent in the state database", adj.ContractID, adj.ServiceID)
	}
	res := h.sync(PassOptions{})
	h.rt.beforeSend = nil
	if res.Run.Updated != 40 || posts.Load() != 40 {
		t.Fatalf("pass updated %d lines with %d posts, want 40", res.Run.Updated, posts.Load())
	}
	open, err := h.db.OpenIntents()
	if err != nil || len(open) != 0 {
		t.Errorf("open intents after the pass = %+v, %v; want none", open, err)
	}
	ledger, err := h.db.Ledger(0)
	if err != nil || len(ledger) != 40 {
		t.Errorf("ledger holds %d entries (%v), want 40: every intent closed as done", len(ledger), err)
	}
}

// TestEngine_Sync_budgetReadOncePerPass counts the ThresholdInformation
// requests: one before the first write of a pass, whatever its number of
// writes, and none in a pass that writes nothing.
func TestEngine_Sync_budgetReadOncePerPass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithHourlyLimit(10_000))
	h.writeUsage(h.addCustomers(30)...)
	thresholdReads := func() int {
		n := 0
		for _, r := range h.sim.Requests() {
			if strings.Contains(r.Path, "ThresholdInformation") {
				n++
			}
		}
		return n
	}
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Updated != 60 {
		t.Fatalf("first pass updated %d lines, want 60", res.Run.Updated)
	}
	if n := thresholdReads(); n != 1 {
		t.Errorf("a pass of 60 writes read the budget %d times, want 1", n)
	}
	h.sim.ResetRequests()
	if res := h.sync(PassOptions{}); res.Run.Updated != 0 {
		t.Fatalf("second pass updated %d lines, want 0", res.Run.Updated)
	}
	if n := thresholdReads(); n != 0 {
		t.Errorf("a pass without writes read the budget %d times, want 0", n)
	}
	if got := h.metric(h.m.APIBudgetRemaining.WithLabelValues("")); got <= 9_000 {
		t.Errorf("api_budget_remaining = %v, want the budget read by the first pass", got)
	}
}

// TestEngine_Sync_budgetGaugeCountsThePassOwnRequests: the tenant has 30%
// of its hourly budget left when the pass starts, and the pass's own 120
// writes take it below 20%. psa_sync_api_budget_remaining, which
// PsaSyncAPIBudgetLow reads ("less than 20% of the PSA's hourly budget was
// left at the last pass"), must show what the pass left (the gate's
// estimate when the writes end), not the budget read before the first
// write; and the pass makes no request for it.
func TestEngine_Sync_budgetGaugeCountsThePassOwnRequests(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithHourlyLimit(1000))
	h.pol.BudgetReserve = 10
	h.writeUsage(h.addCustomers(60)...)
	h.at.SetHourlyCount(700)
	res := h.sync(PassOptions{})
	if res.Run.Updated != 120 {
		t.Fatalf("pass updated %d lines, want 120", res.Run.Updated)
	}
	left := 1000 - h.at.HourlyCount()
	got := h.metric(h.m.APIBudgetRemaining.WithLabelValues(""))
	if got > float64(left) || got < float64(left)-2*requestsPerWrite {
		t.Errorf("after the pass psa_sync_api_budget_remaining = %v, but the tenant has %d left: "+
			"the gauge must count the pass's own %d requests", got, left, res.Run.Requests)
	}
}

// fakeBudget is a PSA whose budget is limit less the requests counted by
// used; Budget counts its calls and, when gate is set, waits for it.
type fakeBudget struct {
	psa.Backend
	limit int
	used  *atomic.Int64
	calls atomic.Int64
	gate  chan struct{}
	// entered receives a value when a Budget call begins, if set.
	entered chan struct{}
	// err, when set, fails the reads (each still a request).
	err atomic.Pointer[error]
}

func (b *fakeBudget) Budget(context.Context) (*psa.Budget, error) {
	b.calls.Add(1)
	if b.entered != nil {
		b.entered <- struct{}{}
	}
	if b.gate != nil {
		<-b.gate
	}
	b.used.Add(1) // the read is a request itself
	if err := b.err.Load(); err != nil {
		return nil, *err
	}
	return &psa.Budget{Limit: b.limit, Used: int(b.used.Load())}, nil
}

// newTestGate returns a gate over b with a reserve of testGateReserve,
// whose request count is b.used, as the engine's is the process's request
// counter.
func newTestGate(b *fakeBudget) *budgetGate {
	m := NewMetrics(prometheus.NewRegistry(), psa.SystemAutotask)
	m.Requests = b.used.Load
	return &budgetGate{be: b, reserve: testGateReserve, metrics: m, logger: slog.New(slog.DiscardHandler)}
}

// testGateReserve is the budget reserve of newTestGate's gates.
const testGateReserve = 500

func TestBudgetGate_readsRarelyFarFromTheReserve(t *testing.T) {
	t.Parallel()
	b := &fakeBudget{limit: 1_000_000, used: new(atomic.Int64)}
	g := newTestGate(b)
	for range 2500 {
		if !g.allow(t.Context()) {
			t.Fatal("a write was refused far from the reserve")
		}
		b.used.Add(1) // the write
		g.sent()
		g.wait() // for a recheck started by this write, in the background
	}
	if n := b.calls.Load(); n != 3 {
		t.Errorf("2,500 writes read the budget %d times, want 3 (before the first, then every %d)", n, budgetRecheckEvery)
	}
}

// TestBudgetGate_writesFailingInARowStopTheWrites checks which failures
// stop the writes of a pass: those that concern the whole PSA, on
// contracts in a row beyond the writes in flight, and never a line's own
// (a contract not found, a refused value), however many, nor failures with
// a success between them, nor the failures of one contract's many lines.
func TestBudgetGate_writesFailingInARowStopTheWrites(t *testing.T) {
	t.Parallel()
	g := newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	revoked := fmt.Errorf("autotask: POST ContractServiceAdjustments: 401: %w", psa.ErrUnauthorized)
	for i := range 20 {
		c := strconv.Itoa(i)
		if g.wrote(fmt.Errorf("contract %s: %w", c, psa.ErrNotFound), c, 2) || g.wrote(&psa.ValidationError{Messages: []string{"bad"}}, c, 2) {
			t.Fatal("a line's own failures stopped the writes")
		}
	}
	for range 20 {
		if g.wrote(revoked, "7", 2) {
			t.Fatal("the failures of one contract's lines stopped the writes")
		}
	}
	for _, c := range []string{"1", "2"} {
		g.wrote(revoked, c, 2)
	}
	if g.wrote(nil, "4", 2) || g.stopped() {
		t.Fatal("failures on three contracts and a success stopped the writes")
	}
	for i, c := range []string{"5", "6", "6", "8", "9"} {
		if stopped := g.wrote(revoked, c, 2); stopped != (i == 4) {
			t.Fatalf("failure %d in a row: stopped = %v, want %v", i+1, stopped, i == 4)
		}
	}
	if err := g.failure(); !g.stopped() || err == nil || !strings.Contains(err.Error(), "the PSA failed the writes to the 4 contracts before it, the last with: autotask: POST ContractServiceAdjustments: 401") {
		t.Errorf("stopped = %v, failure = %v", g.stopped(), err)
	}
	if g.wrote(revoked, "10", 2) {
		t.Error("a write in flight when the writes stopped reported stopping them again")
	}
}

// TestBudgetGate_sameServerRefusalInARowStopsTheWrites checks that
// refusals of the writes that the PSA answered with a server error stop
// the writes when they say the same for the contracts in a row (a tenant
// failing every write), and never when each says its own (Autotask's
// refusal of one record), nor when a 4xx refused them.
func TestBudgetGate_sameServerRefusalInARowStopsTheWrites(t *testing.T) {
	t.Parallel()
	g := newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	refusal := func(status int, msg string) error {
		return &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{msg}, Status: status}
	}
	for i := range 20 {
		c := strconv.Itoa(i)
		if g.wrote(refusal(http.StatusInternalServerError, "Contract "+c+" is not active."), c, 2) ||
			g.wrote(refusal(http.StatusBadRequest, "Quantity is out of range."), c, 2) || g.wrote(refusal(0, "Quantity is out of range."), c, 2) {
			t.Fatal("refusals of the writes' own records stopped the writes")
		}
	}
	broken := refusal(http.StatusInternalServerError, "Object reference not set to an instance of an object.")
	for i, c := range []string{"20", "21", "21", "22", "23"} {
		if stopped := g.wrote(broken, c, 2); stopped != (i == 4) {
			t.Fatalf("refusal %d in a row: stopped = %v, want %v", i+1, stopped, i == 4)
		}
	}
	if err := g.failure(); err == nil || !strings.Contains(err.Error(), "the 4 contracts before it, the last with: autotask: Object reference not set") {
		t.Errorf("failure = %v", err)
	}
}

func TestBudgetGate_stopsAtTheReserve(t *testing.T) {
	t.Parallel()
	b := &fakeBudget{limit: 10_000, used: new(atomic.Int64)}
	b.used.Store(10_000 - 500 - 40)
	g := newTestGate(b)
	writes := 0
	for g.allow(t.Context()) {
		writes++
		b.used.Add(1)
		g.sent()
		if writes > 100 {
			t.Fatal("the gate never stopped")
		}
	}
	if left := 10_000 - int(b.used.Load()); left < 500 {
		t.Errorf("%d requests left after the writes, below the reserve of 500", left)
	}
	if writes < 30 {
		t.Errorf("%d writes allowed with 40 requests above the reserve, want at least 30", writes)
	}
	if n := b.calls.Load(); n > 3 {
		t.Errorf("the budget was read %d times, want at most 3: before the first write and near the reserve", n)
	}
	if !g.stopped() {
		t.Error("gate not stopped after refusing a write")
	}
}

// TestEngine_Sync_throttledWritesStopThePass: Autotask answers every
// adjustment 429 with a Retry-After of ten minutes, over the five minutes a
// client waits, and without the wording of the hourly threshold, which the
// reference leaves undocumented. The pass stops writing at the first
// refusal, as it does for a 429 it recognises as the hourly limit, instead
// of sending every remaining write into it.
func TestEngine_Sync_throttledWritesStopThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.WriteConcurrency = 1
	h.writeUsage(h.addCustomers(20)...)
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusTooManyRequests, RetryAfter: 10 * time.Minute})
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if n := h.adjustmentPosts(); n != 1 {
		t.Errorf("the pass sent %d adjustments after Autotask answered 429 \"retry after 10 minutes\" (run %s, %d failed lines); want 1",
			n, res.Run.Result, res.Run.Failed)
	}
	if res.Run.Result != state.RunPartial || res.Run.Failed != 1 {
		t.Errorf("run = %s with %d failed lines, want partial with 1 (the others skipped)", res.Run.Result, res.Run.Failed)
	}
	for _, c := range res.Plan.Changes {
		if c.Action == ActionSkipped && !strings.Contains(c.Reason, "retry after 10m0s") {
			t.Errorf("skipped line reason = %q, want it to say when Autotask takes requests again", c.Reason)
			break
		}
	}
}

// TestEngine_Sync_threadLimitSharedSlowsThePass: another process of the
// same Autotask integration code (a terraform apply, say) holds the
// adjustments endpoint's three threads while the pass writes, so Autotask
// refuses the pass's first adjustment for its thread threshold three times
// as often as the client retries other failures. The pass waits for a free
// thread and writes every line, rather than stopping its writes as at the
// rate limit and leaving the customers for a later pass.
func TestEngine_Sync_threadLimitSharedSlowsThePass(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	// The harness's backend, with retries that do not sleep for seconds.
	user, secret, code := h.at.Credentials()
	c, err := autotask.NewClient(autotask.WithBaseURL(h.sim.AutotaskBaseURL()), autotask.WithCredentials(user, secret, code),
		autotask.WithHTTPClient(&http.Client{Transport: h.rt}), autotask.WithBackoff(time.Millisecond, 2*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	h.be = autotask.NewBackend(c)
	h.pol.WriteConcurrency = 1
	h.writeUsage(h.addCustomers(10)...)
	refusals := 3 * autotask.DefaultMaxRetries
	h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: etAdjustPath, Status: http.StatusTooManyRequests, Times: refusals,
		Body: `{"errors":["Thread Threshold Exceeded - The Autotask API thread threshold of 3 threads has been exceeded for the ContractServiceAdjustments endpoint of this integration. Internal code: Itgenatr005"]}`})
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	if res.Run.Result != state.RunSuccess || res.Run.Failed != 0 {
		t.Errorf("run = %s with %d failed lines, want success with none", res.Run.Result, res.Run.Failed)
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionUpdate {
			t.Errorf("line %s/%s = %s (%s), want updated", c.ContractID, c.ServiceID, c.Action, c.Reason)
		}
	}
	if n, want := h.adjustmentPosts(), refusals+20; n != want {
		t.Errorf("adjustments sent = %d, want %d: the 20 lines and the %d refused", n, want, refusals)
	}
}

// A pass whose write Autotask refused for its thread limit until the
// client stopped waiting says that another process holds the threads, not
// that the retries ran out (which max_retries would not change).
func TestThrottleReason_waitedForThreads(t *testing.T) {
	t.Parallel()
	got := throttleReason(&psa.RateLimitError{System: psa.SystemAutotask, Waited: 5 * time.Minute, Message: "Thread Threshold Exceeded"})
	if !strings.Contains(got, "requests in flight for 5m0s") || !strings.Contains(got, "another process") || strings.Contains(got, "client's retries") {
		t.Errorf("reason = %q, want the 5 minutes waited for another process's requests in flight", got)
	}
	if got := throttleReason(&psa.RateLimitError{System: psa.SystemConnectWise}); !strings.Contains(got, "client's retries") {
		t.Errorf("reason of a 429 after the retries = %q, want the retries named", got)
	}
	if got := throttleReason(&psa.RateLimitError{System: psa.SystemConnectWise, Waited: 5 * time.Minute}); strings.Contains(got, "another process") || !strings.Contains(got, "for 5m0s") {
		t.Errorf("reason of a ConnectWise read throttled for 5m = %q, want the wait, and no other process blamed", got)
	}
}

// TestBudgetGate_readIsSingleFlight checks that writers waiting for the
// budget share one read, and that the gate's lock is not held during it.
func TestBudgetGate_readIsSingleFlight(t *testing.T) {
	t.Parallel()
	b := &fakeBudget{limit: 10_000, used: new(atomic.Int64), gate: make(chan struct{}), entered: make(chan struct{}, 8)}
	g := newTestGate(b)
	var wg sync.WaitGroup
	var allowed atomic.Int64
	for range 3 {
		wg.Go(func() {
			if g.allow(t.Context()) {
				allowed.Add(1)
			}
		})
	}
	<-b.entered
	// The read is in progress: the lock is free.
	if g.stopped() || g.reason() != "" {
		t.Error("gate stopped during its first read")
	}
	close(b.gate)
	wg.Wait()
	if n := b.calls.Load(); n != 1 {
		t.Errorf("3 writers read the budget %d times, want 1", n)
	}
	if allowed.Load() != 3 {
		t.Errorf("%d of 3 writes allowed", allowed.Load())
	}
}

// TestEngine_Sync_cancelledWithIntentsOpenedAhead cancels a pass while
// intents opened ahead wait for their writes: those writes are not sent,
// their intents are closed as failed (so no reconciliation or review is
// needed), and the lines are reported as skipped.
func TestEngine_Sync_cancelledWithIntentsOpenedAhead(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.WriteConcurrency = 1
	h.writeUsage(h.addCustomers(10)...)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var posts atomic.Int64
	h.rt.beforeSend = func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/ContractServiceAdjustments") && posts.Add(1) == 3 {
			cancel()
		}
	}
	res, err := h.engine().Sync(ctx, h.doc, PassOptions{})
	h.rt.beforeSend = nil
	if err != nil {
		t.Fatal(err)
	}
	var updated, skipped int
	for _, c := range res.Plan.Changes {
		switch c.Action {
		case ActionUpdate:
			updated++
		case ActionSkipped:
			skipped++
			if !strings.Contains(c.Reason, "cancelled") {
				t.Errorf("skipped change %+v does not say the pass was cancelled", c)
			}
		}
	}
	// The third write is cancelled as it is sent (failed, outcome
	// unknown); the 17 after it are skipped.
	if updated != 2 || skipped != 17 || h.adjustmentPosts() > 3 {
		t.Errorf("updated %d, skipped %d, posts %d; want 2 written and 17 skipped", updated, skipped, h.adjustmentPosts())
	}
	open, err := h.db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	// The third write was cancelled in flight: its outcome is unknown and
	// its intent stays open; the intents opened ahead of it are closed.
	if len(open) > 1 {
		t.Errorf("open intents after the cancelled pass = %+v, want at most the one in flight", open)
	}
	// The pass did not cover what it was meant to: it is recorded as
	// interrupted, like the pass of a killed process, so that the
	// schedule catches it up and the last-run metrics show a failure.
	stored, _, err := h.db.Run(res.Run.ID)
	if err != nil || !stored.Interrupted() || !res.Run.Interrupted() {
		t.Errorf("run of the cancelled pass = %+v (stored %+v, %v), want it interrupted", res.Run, stored, err)
	}
}

// TestEngine_Sync_cancelCauseInRunError: the reason a pass was stopped
// (psa-syncd's shutdown timeout) is in the interrupted run's error.
func TestEngine_Sync_cancelCauseInRunError(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage(h.addCustomers(3)...)
	ctx, cancel := context.WithCancelCause(t.Context())
	defer cancel(nil)
	// On the first write: Autotask queries are POSTs too, and one may
	// go out while the usage is still being read.
	h.rt.beforeSend = func(r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/ContractServiceAdjustments") {
			cancel(errors.New("psa-syncd shut down"))
		}
	}
	res, err := h.engine().Sync(ctx, h.doc, PassOptions{})
	h.rt.beforeSend = nil
	if err != nil {
		t.Fatal(err)
	}
	if !res.Run.Interrupted() || res.Run.Result != state.RunFailure || !strings.Contains(res.Run.Error, "stopped before it ended: psa-syncd shut down") {
		t.Errorf("run = %+v, want an interrupted failure naming the cause", res.Run)
	}
}

// limitedBackend is a PSA whose client keeps n requests in flight.
type limitedBackend struct {
	psa.Backend
	n int
}

func (b limitedBackend) MaxConcurrency() int { return b.n }

func TestNewEngine_writeConcurrency(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name   string
		be     psa.Backend
		policy int
		want   int
	}{
		{"the client's bound", limitedBackend{n: 8}, 0, 8},
		{"the policy wins", limitedBackend{n: 8}, 2, 2},
		{"an unbounded client", limitedBackend{n: 0}, 0, DefaultWriteConcurrency},
		{"a backend that does not say", fakeBudget{}.Backend, 0, DefaultWriteConcurrency},
	} {
		e := NewEngine(EngineOptions{Backend: tt.be, Policies: Policies{WriteConcurrency: tt.policy}})
		if got := e.policies.WriteConcurrency; got != tt.want {
			t.Errorf("%s: write concurrency = %d, want %d", tt.name, got, tt.want)
		}
	}
}

// TestEngineSystems_writeConcurrency checks the default writes in flight
// against each PSA's client: Autotask's thread limit, ConnectWise's client
// default, and DefaultWriteConcurrency for Kaseya BMS, whose client has no
// bound.
func TestEngineSystems_writeConcurrency(t *testing.T) {
	t.Parallel()
	want := map[psa.System]int{psa.SystemAutotask: 3, psa.SystemConnectWise: 8, psa.SystemKaseyaBMS: DefaultWriteConcurrency}
	for _, sys := range sysSystems {
		h := newSysHarness(t, sys)
		if got := h.engine().policies.WriteConcurrency; got != want[sys] {
			t.Errorf("%s: write concurrency = %d, want %d", sys, got, want[sys])
		}
	}
}

// TestEngine_Sync_commitsDoNotGrowWithCustomers counts the state database's
// commits in a pass that writes no line: the run, the snapshots and the
// statuses of every customer in one batch, the same for 60 customers as
// for 2.
func TestEngine_Sync_commitsDoNotGrowWithCustomers(t *testing.T) {
	t.Parallel()
	commits := func(more int) int64 {
		h := newETHarness(t)
		rows := append(h.addCustomers(more), "cust-a,Acme,CIXA-MSP,4", "cust-b,Globex,MDR,2")
		h.writeUsage(rows...)
		h.sync(PassOptions{}) // writes every line
		c0 := h.db.Commits()
		res := h.sync(PassOptions{})
		if res.Run.Updated != 0 || res.Run.Customers != 2+more {
			t.Fatalf("second pass = %+v, want %d customers and nothing updated", res.Run, 2+more)
		}
		if cs := h.status("cust-b"); cs.RunID != etID(res.Run.ID) {
			t.Errorf("status of cust-b = %+v, want it from run %d", cs, res.Run.ID)
		}
		return h.db.Commits() - c0
	}
	few, many := commits(0), commits(58)
	if few != many {
		t.Errorf("a pass over 2 customers made %d commits, over 60 customers %d; want the same", few, many)
	}
	// The run's start and end count since they go through the group
	// committer (the leadership fence); they were committed, uncounted,
	// outside it before.
	if many > 7 {
		t.Errorf("a pass without writes made %d commits, want at most 7 (the run's start and end, snapshots, one for all statuses)", many)
	}
}

// TestEngineKaseyaBMS_fewIntentsOpenAhead checks, as each line post leaves
// psa-syncd, how many intents are open: with Kaseya BMS, whose lines cannot
// be read back, every intent a crash leaves open waits for an operator, so
// at most one intent per sender waits beside the ones in flight.
func TestEngineKaseyaBMS_fewIntentsOpenAhead(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemKaseyaBMS)
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-a,Acme,MDR,5", "cust-b,Globex,CIXA-MSP,10", "cust-b,Globex,MDR,3")
	var mu sync.Mutex
	most, posts := 0, 0
	h.rt.beforeSend = func(r *http.Request) {
		p := strings.ToLower(r.URL.Path)
		if r.Method != http.MethodPost || !strings.Contains(p, "/recurringservices/") || !strings.HasSuffix(p, "/services") {
			return
		}
		open, err := h.db.OpenIntents()
		if err != nil {
			t.Error(err)
			return
		}
		mu.Lock()
		posts++
		most = max(most, len(open))
		mu.Unlock()
	}
	res := h.sync(PassOptions{})
	h.rt.beforeSend = nil
	if res.Run.Updated != 4 || posts != 4 {
		t.Fatalf("pass updated %d lines with %d posts, want 4", res.Run.Updated, posts)
	}
	if most < 1 || most > 2 {
		t.Errorf("up to %d intents open while a line was posted, want 1 or 2 (the one in flight and at most one ahead)", most)
	}
}

// TestEngine_Sync_intentsOpenInBatches checks that a pass that writes 60
// lines, 3 at a time, records their intents in batches of one per sender
// at least: the window of 9, then 3 or more each, so 18 batches at most.
// The count depends neither on the scheduling nor on the pass's other
// commits: the engine hands the writer every write at once (the backend
// preloads services, see earlyWrites), so that no batch is cut short by
// writes not handed over yet, and the batches are told apart by the
// creation time of their intents (the clock moves at each reading), seen
// open as each write is sent. Recording each intent as soon as the window
// had room made 35 to 46 batches.
func TestEngine_Sync_intentsOpenInBatches(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithLatency(20*time.Millisecond), psatest.WithThreadLimit(psatest.DefaultThreadLimit))
	h.pol.WriteConcurrency = 3
	var ticks atomic.Int64
	h.now = func() time.Time { return etNow.Add(time.Duration(ticks.Add(1)) * time.Millisecond) }
	at, ok := h.be.(*autotask.Backend)
	if !ok {
		t.Fatalf("backend %T, want *autotask.Backend", h.be)
	}
	be := &batchWatcher{Backend: at, db: h.db, batches: map[time.Time]map[int64]bool{}}
	h.be = be
	h.writeUsage(h.addCustomers(30)...)
	res := h.sync(PassOptions{})
	if res.Run.Updated != 60 {
		t.Fatalf("pass updated %d lines, want 60", res.Run.Updated)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if be.err != nil {
		t.Fatal(be.err)
	}
	var sizes []int
	for _, ids := range be.batches {
		sizes = append(sizes, len(ids))
	}
	if n, most := len(sizes), 1+(60-9+2)/3; n > most {
		t.Errorf("the intents of 60 writes were recorded in %d batches, want at most %d: not in batches of one per sender (sizes %v)", n, most, sizes)
	}
}

// batchWatcher is an Autotask backend that preloads services (doing
// nothing), so that the engine hands its writer the writes of a pass at
// once, and that records, as each write is sent, the creation times of the
// intents open in db, and the intents of each: the engine gives each batch
// one creation time.
type batchWatcher struct {
	*autotask.Backend
	db *state.DB

	mu      sync.Mutex
	batches map[time.Time]map[int64]bool
	err     error
}

func (b *batchWatcher) PreloadServices(_ context.Context, _ []string, kept []psa.KeptService) ([]psa.KeptService, error) {
	return kept, nil
}

func (b *batchWatcher) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	open, err := b.db.OpenIntents()
	b.mu.Lock()
	if err != nil {
		b.err = err
	}
	for _, in := range open {
		if b.batches[in.Created] == nil {
			b.batches[in.Created] = map[int64]bool{}
		}
		b.batches[in.Created][in.ID] = true
	}
	b.mu.Unlock()
	return b.Backend.SetQuantity(ctx, req)
}

// TestBudgetGate_recheckDoesNotHoldWrites: the read after
// budgetRecheckEvery writes, far from the reserve, is made while the
// writes go on, and wait waits for it.
func TestBudgetGate_recheckDoesNotHoldWrites(t *testing.T) {
	t.Parallel()
	b := &fakeBudget{limit: 1_000_000, used: new(atomic.Int64), entered: make(chan struct{}, 8)}
	g := newTestGate(b)
	for range budgetRecheckEvery {
		if !g.allow(t.Context()) {
			t.Fatal("a write was refused far from the reserve")
		}
		b.used.Add(1)
		g.sent()
	}
	<-b.entered // the first read
	b.gate = make(chan struct{})
	// This write finds the recheck due: it starts the read and goes on.
	for i := range 10 {
		if !g.allow(t.Context()) {
			t.Fatalf("write %d after the recheck started was refused", i)
		}
		b.used.Add(1)
		g.sent()
	}
	<-b.entered // the recheck is in progress, held by b.gate
	if n := b.calls.Load(); n != 2 {
		t.Errorf("the budget was read %d times, want 2 (the first read and one recheck)", n)
	}
	close(b.gate)
	g.wait()
	if g.stopped() {
		t.Error("gate stopped by a recheck far from the reserve")
	}
}

func TestBudgetGate_contractsThatFailedAloneDoNotStopTheWrites(t *testing.T) {
	t.Parallel()
	var f FailingContracts
	record := func(g *budgetGate) {
		failed, succeeded := g.outcomes()
		f.update(psa.SystemAutotask, failed, succeeded)
	}
	forbidden := fmt.Errorf("autotask: POST ContractServiceAdjustments: 403: %w", psa.ErrUnauthorized)
	// A pass where 1-4 fail and stop the writes: nothing tells their
	// failures apart from the PSA's.
	g := newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	for _, c := range []string{"1", "2", "3", "4"} {
		g.wrote(forbidden, c, 2)
	}
	if !g.stopped() {
		t.Fatal("four contracts failing in a row did not stop the writes")
	}
	record(g)
	if got := f.of(psa.SystemAutotask); len(got) != 4 || got["1"] {
		t.Fatalf("failing after a pass without a success = %v, want 1-4 not alone", got)
	}
	// The next pass writes 5 first, which succeeds; 1-4 fail after it.
	g = newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	g.failing = f.of(psa.SystemAutotask)
	g.wrote(nil, "5", 2)
	for _, c := range []string{"1", "2", "3", "4"} {
		g.wrote(forbidden, c, 2)
	}
	record(g)
	if got := f.of(psa.SystemAutotask); len(got) != 4 || !got["1"] || !got["4"] {
		t.Fatalf("failing after a pass where another write succeeded = %v, want 1-4 alone", got)
	}
	// Their failures no longer count; the others' still do.
	g = newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	g.failing = f.of(psa.SystemAutotask)
	for _, c := range []string{"1", "2", "3", "4", "1", "2"} {
		if g.wrote(forbidden, c, 2) {
			t.Fatalf("contract %s, which failed alone before, stopped the writes", c)
		}
	}
	for i, c := range []string{"6", "7", "8", "9"} {
		if stopped := g.wrote(forbidden, c, 2); stopped != (i == 3) {
			t.Fatalf("failure %d in a row of other contracts: stopped = %v, want %v", i+1, stopped, i == 3)
		}
	}
	// A success takes a contract out; failing is per system.
	f.update(psa.SystemAutotask, nil, map[string]bool{"1": true})
	if got := f.of(psa.SystemAutotask); len(got) != 3 || got["1"] {
		t.Errorf("failing after 1 succeeded = %v", got)
	}
	if got := f.of(psa.SystemConnectWise); len(got) != 0 {
		t.Errorf("failing of another system = %v, want none", got)
	}
}

// TestEngine_Sync_budgetUnreadStopsTheWritesNearTheLimit: Autotask answers
// ThresholdInformation 500 all pass long, at month end with the tenant
// 1,000 requests from its hourly limit (reserve 500). Read once and then
// only after 1,000 writes, the budget was unknown for the whole pass, and
// its 300 writes spent the reserve kept for the tenant's other
// integrations. The gate reads it again every budgetRereadUnknown writes
// and stops the writes after budgetReadsFailedToStop failed reads, as at
// the reserve; the pass after the fault writes the rest.
func TestEngine_Sync_budgetUnreadStopsTheWritesNearTheLimit(t *testing.T) {
	t.Parallel()
	h := newETHarness(t, psatest.WithHourlyLimit(10_000))
	h.writeUsage(h.addCustomers(150)...)
	h.at.SetHourlyCount(9_000)
	h.sim.AddFault(psatest.Fault{Path: "/ATServicesRest/V1.0/ThresholdInformation", Status: http.StatusInternalServerError})
	res := h.sync(PassOptions{})
	if left := 10_000 - h.at.HourlyCount(); left < h.pol.BudgetReserve {
		t.Errorf("the pass left %d requests of the tenant's hourly budget, below the reserve of %d (%d lines written)", left, h.pol.BudgetReserve, res.Run.Updated)
	}
	if most := budgetRereadUnknown * budgetReadsFailedToStop; res.Run.Updated == 0 || res.Run.Updated > most {
		t.Errorf("the pass wrote %d lines without knowing the budget, want between 1 and %d", res.Run.Updated, most)
	}
	if res.Run.Result != state.RunPartial {
		t.Errorf("run = %+v, want partial", res.Run)
	}
	// The stop is counted as budget_unknown, not as the reserve reached
	// (which would send the operator to lower the request load), and
	// psa_sync_api_budget_unknown says the budget gauges are not current:
	// remaining and limit stayed 0, and PsaSyncAPIBudgetLow was silent.
	if got := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopBudgetUnknown)); got != 1 {
		t.Errorf("pass_stops_total{reason=%q} = %v, want 1", StopBudgetUnknown, got)
	}
	if got := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopBudgetReserve)); got != 0 {
		t.Errorf("pass_stops_total{reason=%q} = %v, want 0: the budget was never read", StopBudgetReserve, got)
	}
	if got := testutil.ToFloat64(h.m.APIBudgetUnknown); got != 1 {
		t.Errorf("api_budget_unknown after the pass that could not read the budget = %v, want 1", got)
	}
	for _, c := range res.Plan.Changes {
		if c.Action == ActionSkipped && !strings.Contains(c.Reason, "could not be read: 3 reads of it in a row failed, the last with:") {
			t.Errorf("skipped line reason = %q, want it to say the budget could not be read", c.Reason)
			break
		}
	}
	if !strings.Contains(res.Run.Error, "API budget could not be read") || strings.Contains(res.Run.Error, "reserve reached") {
		t.Errorf("run error = %q, want it to say the budget could not be read, not that the reserve was reached", res.Run.Error)
	}
	statuses, err := h.db.CustomerStatuses()
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, cs := range statuses {
		if cs.Result != state.CustomerSkipped {
			continue
		}
		if skipped++; !strings.Contains(cs.Error, "budget could not be read") || strings.Contains(cs.Hint, "budget_reserve") {
			t.Errorf("skipped customer %s: %q (hint %q), want the budget unread, not the reserve", cs.CustomerID, cs.Error, cs.Hint)
			break
		}
	}
	if skipped == 0 {
		t.Error("no customer skipped")
	}
	h.sim.ClearFaults()
	h.at.SetHourlyCount(0)
	if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess || res.Run.Updated != 300-res.Run.Unchanged {
		t.Errorf("the pass after the fault = %+v, want the remaining lines written", res.Run)
	}
	if got := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopBudgetUnknown)); got != 1 {
		t.Errorf("pass_stops_total{reason=%q} after a pass that ended by itself = %v, want 1", StopBudgetUnknown, got)
	}
	if got := testutil.ToFloat64(h.m.APIBudgetUnknown); got != 0 {
		t.Errorf("api_budget_unknown after a pass that read the budget = %v, want 0", got)
	}
}

// TestBudgetGate_failedRecheckKeepsTheEstimate: the budget read before the
// first write leaves 1,500 requests above the reserve, and the recheck
// after budgetRecheckEvery writes fails. The estimate from the first read
// stands and stops the writes at the reserve; it used to be dropped, and
// the writes went on unchecked for another budgetRecheckEvery writes.
func TestBudgetGate_failedRecheckKeepsTheEstimate(t *testing.T) {
	t.Parallel()
	b := &fakeBudget{limit: 10_000, used: new(atomic.Int64)}
	b.used.Store(10_000 - testGateReserve - 1500)
	g := newTestGate(b)
	writes := 0
	for g.allow(t.Context()) {
		if writes++; writes == 1 {
			err := errors.New("autotask: GET ThresholdInformation: 500 Internal Server Error")
			b.err.Store(&err)
		}
		b.used.Add(1)
		g.sent()
		g.wait()
		if writes > 2000 {
			break
		}
	}
	if left := 10_000 - int(b.used.Load()); left < testGateReserve {
		t.Errorf("%d requests left after %d writes, below the reserve of %d", left, writes, testGateReserve)
	}
	if !g.stopped() {
		t.Error("gate not stopped: want stopped at the reserve estimated from the first read")
	}
}

// TestEngine_Sync_failingContractsOfUnmappedContractsForgotten: the state
// database holds, as failing, a contract no longer in the export (its
// customer was unmapped) and a mapped one. No pass writes to the first to
// take it out: a pass that writes forgets it, and keeps the other.
func TestEngine_Sync_failingContractsOfUnmappedContractsForgotten(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage(h.addCustomers(2)...)
	mapped := etID(h.contractA)
	if err := h.db.PutFailingContracts(psa.SystemAutotask, map[string]bool{"424242": true, mapped: true}); err != nil {
		t.Fatal(err)
	}
	if res := h.sync(PassOptions{}); res.Run.Updated != 4 {
		t.Fatalf("pass = %+v, want 4 lines updated", res.Run)
	}
	if got, err := h.db.FailingContracts(psa.SystemAutotask); err != nil || len(got) != 1 || !got[mapped] {
		t.Errorf("failing contracts after the pass = %v, %v; want only the mapped %s", got, err, mapped)
	}
}

// TestBudgetGate_refusalsWithRequestIDsAreTheSame: a tenant (or a proxy)
// that fails every write with a server error whose message carries a
// request id, a correlation GUID or a time answers each write with
// another text. Compared as they were, no two refusals were the same and
// the writes never stopped, each failing after its retries; compared
// without those parts, they stop as the same refusal does. A refusal
// naming its own record still stops nothing.
func TestBudgetGate_refusalsWithRequestIDsAreTheSame(t *testing.T) {
	t.Parallel()
	for name, msg := range map[string]func(i int) string{
		"request id": func(i int) string { return fmt.Sprintf("An unexpected error occurred, request id %d.", 1000+i) },
		"guid": func(i int) string {
			return fmt.Sprintf("Internal error (correlation %08x-0b1d-4e8a-9a77-2f0c1d3e4b5a)", 0x5f2a9c10+i)
		},
		"time and id": func(i int) string { return fmt.Sprintf("Timeout at 2026-12-06T07:52:%02dZ; Error ID: %d", i, 77+i) },
	} {
		g := newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
		for i, c := range []string{"20", "21", "22", "23"} {
			err := &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{msg(i)}, Status: http.StatusInternalServerError}
			if stopped := g.wrote(err, c, 2); stopped != (i == 3) {
				t.Errorf("%s: refusal %d in a row (%q): stopped = %v, want %v", name, i+1, msg(i), stopped, i == 3)
			}
		}
	}
	g := newTestGate(&fakeBudget{limit: 1_000_000, used: new(atomic.Int64)})
	for i := range 20 {
		c := strconv.Itoa(100 + i)
		err := &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{"Contract " + c + " is not active, request id " + strconv.Itoa(i)}, Status: http.StatusInternalServerError}
		if g.wrote(err, c, 2) {
			t.Fatal("refusals naming their own contracts stopped the writes")
		}
	}
}

// TestRefusalKey_bareRequestNumbers: a refusal naming a per-request
// number right after "error", "request" or the like ("Error 48213: ...",
// "request 1234567 failed") reads the same as the next one; a number no
// such word names (a record's id), a short error code and a labelled
// record id still tell refusals apart. Before, "Error 48213" and "Error
// 48214" were two refusals, and the writes and reads never stopped.
func TestRefusalKey_bareRequestNumbers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		a, b  string
		alike bool
	}{
		{"Error 48213: An unexpected error occurred.", "Error 48214: An unexpected error occurred.", true},
		{"error #1234567 - try again later", "error #1234999 - try again later", true},
		{"request 1234567 failed", "request 7654321 failed", true},
		{"Incident: 99881 logged, contact support", "Incident: 99882 logged, contact support", true},
		{"Error 48213: contract 29684183 is not active", "Error 48214: contract 29684190 is not active", false},
		{"29684183: quantity below the units billed", "29684190: quantity below the units billed", false},
		{"service 30000012 is inactive", "service 30000013 is inactive", false},
		{"reference 29684183 is closed", "reference 29684190 is closed", false},
		{"Error 1234: timeout", "Error 1235: timeout", false}, // a code, not a request's number
		{"Error 48213: timeout", "Error 48214: quota exceeded", false},
	} {
		if got := refusalKey(tc.a) == refusalKey(tc.b); got != tc.alike {
			t.Errorf("refusalKey(%q) == refusalKey(%q) is %v, want %v (keys %q, %q)", tc.a, tc.b, got, tc.alike, refusalKey(tc.a), refusalKey(tc.b))
		}
	}
}

// TestLineReader_refusalsWithRequestIDsAreTheSame: the reads' stop
// compares refusals as the writes' does (see
// TestBudgetGate_refusalsWithRequestIDsAreTheSame).
func TestLineReader_refusalsWithRequestIDsAreTheSame(t *testing.T) {
	t.Parallel()
	r := &lineReader{}
	for i := range readsFailedToStop {
		err := &psa.ValidationError{System: psa.SystemAutotask, Messages: []string{fmt.Sprintf("An unexpected error occurred, request id %d.", 5000+i)}, Status: http.StatusInternalServerError}
		r.refused(strconv.Itoa(i), err)
	}
	if r.readsStopped() == nil {
		t.Errorf("%d reads refused with one message but for its request id did not stop the reads", readsFailedToStop)
	}
}

package usage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// requestsPerWrite is how many PSA requests one write may cost (an Autotask
// adjustment on a new line reads the service's price and posts). The
// budget gate counts it for each write in flight, whose requests the
// request counter may not have seen yet, and for each write when there is
// no request counter.
const requestsPerWrite = 2

// budgetRecheckEvery is how many writes may pass between two reads of the
// budget while the estimate stays clear of the reserve. The estimate counts
// every request of this process, so a re-read only catches what other
// integrations of the tenant spent meanwhile; each costs a request itself.
const budgetRecheckEvery = 1000

// budgetRereadUnknown is how many writes may pass between two reads of the
// budget while it is not known (the reads failed): the writes wait for
// each such read, so that a pass does not spend budgetRecheckEvery writes
// of a tenant that may be near its limit without looking.
const budgetRereadUnknown = 50

// budgetReadsFailedToStop is after how many failed reads in a row, the
// budget never read this pass, the gate stops the writes as at the
// reserve: a pass at month end, with the tenant near its limit, would
// otherwise spend the reserve kept for the tenant's other integrations
// (and then the limit) without seeing it. The next pass reads it again.
const budgetReadsFailedToStop = 3

// budgetGate stops writes when the PSA's remaining hourly budget reaches the
// reserve. It reads the budget before the first write and then estimates
// it: the remaining budget at the last read, less the requests this process
// has sent since (Metrics.Requests; without a counter, requestsPerWrite per
// write) and requestsPerWrite per write in flight. It reads the budget again
// when the estimate nears the reserve, or after budgetRecheckEvery writes.
// While the budget is not known (its reads failed), it reads it again every
// budgetRereadUnknown writes, and stops the writes after
// budgetReadsFailedToStop failed reads in a row. One read is made at a time, without holding the lock: writes that need
// it (the first, and those near the reserve) wait for it, the others go on.
// The read after budgetRecheckEvery writes, far from the reserve, is made in
// the background and no write waits for it; wait waits for it at the end
// of the pass.
type budgetGate struct {
	be      psa.Backend
	reserve int
	metrics *Metrics
	logger  *slog.Logger
	// progressed, when set, is called after a read of the budget that
	// got an answer: the pass's progress (Engine.progressed), as every
	// read of its plan is, so that a pass waiting near the reserve on
	// reads that succeed is not taken for a missed one.
	progressed func()

	mu          sync.Mutex
	unsupported bool
	known       bool // a read succeeded
	read        bool // the budget was read (or tried) at least once
	halted      bool
	why         string
	// readsFailed counts the reads that failed since the last that
	// succeeded, and unread is set when they stopped the writes.
	readsFailed int
	unread      *budgetUnreadError
	// remaining is the budget left at the last read, when the request
	// counter stood at base.
	remaining int
	base      int64
	// writes counts the writes allowed since the last read, inflight
	// those not yet sent.
	writes, inflight int
	// failedInRow holds the contracts of the writes that failed for a
	// reason that concerns the whole PSA since the last one that
	// succeeded, and refusedInRow those of the writes that the PSA refused
	// since with one server error whose messages are refusal (see
	// serverRefusal); failed is set when either stopped the writes (see
	// wrote).
	failedInRow, refusedInRow map[string]bool
	refusal                   string
	failed                    *writesStoppedError
	// failing holds the contracts whose writes failed for such a reason
	// at earlier passes (FailingContracts.of): the failures of those that
	// failed while other writes succeeded do not count toward the stop.
	// failedPass and succeeded hold the contracts of this pass's writes
	// that failed for such a reason and of those that succeeded.
	failing               map[string]bool
	failedPass, succeeded map[string]bool
	// reading is closed when the read in progress ends; nil when none is.
	reading chan struct{}
	// rechecks tracks the background reads.
	rechecks sync.WaitGroup
}

// BudgetGate is the budget gate of the usage passes' writes for the other
// writers of the same PSA, psa-syncd's ticket passes, so that those stop at
// a reserve too (policies.ticket_budget_reserve): it reads the budget (psa.Backend.Budget)
// before the first write, estimates it from the process's requests
// (Metrics.Requests) since, reads it again near the reserve, and refuses
// writes once the estimate reaches the reserve, as a pass's writer does. It
// is for writes sent one at a time; a PSA that reports no budget
// (psa.ErrNotSupported) is not gated.
type BudgetGate struct {
	g *budgetGate
	// setting names the reserve in the refusals (Allow).
	setting string
}

// NewBudgetGate returns a gate over be's hourly budget that keeps reserve
// requests, the value of the setting named setting (such as
// policies.ticket_budget_reserve), counting the requests of m (without a
// request counter, requestsPerWrite per write). Its reads set
// psa_sync_api_budget_remaining.
func NewBudgetGate(be psa.Backend, reserve int, setting string, m *Metrics, logger *slog.Logger) *BudgetGate {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &BudgetGate{g: &budgetGate{be: be, reserve: reserve, metrics: m, logger: logger}, setting: setting}
}

// Allow reports whether one more write may be sent, the one before it
// being done. When it may not, why says why: the PSA's hourly budget
// reached the reserve (named by its setting), it could not be read
// (budgetReadsFailedToStop reads in a row failed; see Unknown), or ctx
// ended.
func (b *BudgetGate) Allow(ctx context.Context) (ok bool, why string) {
	if b.g.allow(ctx) {
		b.g.sent()
		return true, ""
	}
	if !b.g.stopped() && ctx.Err() != nil {
		return false, "the pass was cancelled"
	}
	if u := b.g.unreadable(); u != nil {
		return false, fmt.Sprintf("%s: %d reads of it in a row failed, the last with: %v; the writes stopped as at the reserve, %s (%d)",
			skipReasonBudgetUnknown, u.n, u.last, b.setting, b.g.reserve)
	}
	return false, fmt.Sprintf("%s, %s (%d)", skipReasonBudget, b.setting, b.g.reserve)
}

// Unknown reports whether the gate stopped the writes because the PSA's
// budget could not be read, not because it reached the reserve: the
// operator's fix is the PSA's answer (psa_sync_api_budget_unknown), not
// the request load or the reserve.
func (b *BudgetGate) Unknown() bool { return b.g.unreadable() != nil }

// Record sets psa_sync_api_budget_remaining to the estimate once the
// writes are done (see budgetGate.record); it makes no request.
func (b *BudgetGate) Record() {
	b.g.wait()
	b.g.record()
}

// allow reports whether one more write may be sent. The caller calls sent
// after the write when allow returned true.
func (g *budgetGate) allow(ctx context.Context) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	for {
		switch {
		case g.halted:
			return false
		case g.unsupported:
			return true
		case g.due():
			if g.reading != nil {
				wait := g.reading
				g.mu.Unlock()
				select {
				case <-wait:
				case <-ctx.Done():
				}
				g.mu.Lock()
				if ctx.Err() != nil {
					return false
				}
				continue
			}
			g.readBudget(ctx)
			continue
		}
		if g.recheckDue() && g.reading == nil {
			g.recheck(ctx)
		}
		g.writes++
		g.inflight++
		return true
	}
}

// recheckDue reports whether budgetRecheckEvery writes have passed since
// the last read, so that the budget should be read again to catch what
// other integrations spent, though the estimate is clear of the reserve.
// g.mu is held.
func (g *budgetGate) recheckDue() bool {
	return g.read && g.writes >= budgetRecheckEvery
}

// recheck reads the budget in the background. g.mu is held; the read
// marks itself in progress (reading) before g.mu is released, so that no
// second one starts.
func (g *budgetGate) recheck(ctx context.Context) {
	done := make(chan struct{})
	g.reading = done
	g.rechecks.Go(func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		g.readBudgetMarked(ctx, done)
	})
}

// wait waits for a background read to end.
func (g *budgetGate) wait() { g.rechecks.Wait() }

// record sets psa_sync_api_budget_remaining to the estimate once the
// writes of the pass are done: the gauge read before the first write does
// not count the pass's own requests, and PsaSyncAPIBudgetLow would not see
// a pass that spent the budget down. It makes no request: another read
// would cost one, and the estimate counts every request of this process
// since the last read (what other integrations of the tenant spent since
// is only seen by the next read).
func (g *budgetGate) record() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.known || g.unsupported || g.metrics == nil {
		return
	}
	g.metrics.APIBudgetRemaining.WithLabelValues("").Set(float64(max(g.estimate(), 0)))
	g.metrics.budgetChecked()
}

// sent records that a write allowed by allow is done.
func (g *budgetGate) sent() {
	g.mu.Lock()
	g.inflight--
	g.mu.Unlock()
}

// due reports whether the budget must be read before the next write. g.mu
// is held.
func (g *budgetGate) due() bool {
	if !g.read {
		return true
	}
	if !g.known {
		return g.writes >= budgetRereadUnknown
	}
	return g.estimate()-requestsPerWrite <= g.reserve
}

// estimate returns the requests left in the budget as far as this process
// knows. g.mu is held.
func (g *budgetGate) estimate() int {
	used := (g.writes - g.inflight) * requestsPerWrite
	if g.metrics != nil && g.metrics.Requests != nil {
		used = int(g.metrics.requests() - g.base)
	}
	return g.remaining - used - g.inflight*requestsPerWrite
}

// readBudget reads the budget with g.mu released, so that writes that need
// no read go on meanwhile. g.mu is held on entry and on return.
func (g *budgetGate) readBudget(ctx context.Context) {
	done := make(chan struct{})
	g.reading = done
	g.readBudgetMarked(ctx, done)
}

// readBudgetMarked is readBudget once the read is marked in progress with
// g.reading = done.
func (g *budgetGate) readBudgetMarked(ctx context.Context, done chan struct{}) {
	base := g.metrics.requests()
	g.mu.Unlock()
	b, err := g.be.Budget(ctx)
	g.mu.Lock()
	g.reading = nil
	close(done)
	g.read, g.writes = true, g.inflight
	switch {
	case errors.Is(err, psa.ErrNotSupported):
		g.unsupported = true
	case err != nil && ctx.Err() != nil:
		// The pass is cancelled; its writes are not sent.
	case err != nil && g.known:
		// The estimate from the last read stands; it is read again after
		// budgetRecheckEvery writes. Near the reserve, where the writes
		// wait for a read, it stops them as a read would.
		if g.estimate()-requestsPerWrite > g.reserve {
			g.logger.Warn("Could not read the PSA's API budget; estimating it from the last read", "err", err)
			break
		}
		g.logger.Warn("Stopping writes: the PSA's hourly API budget reached the reserve as estimated from the last read, which could not be renewed", "estimate", g.estimate(), "reserve", g.reserve, "err", err)
		g.halted = true
	case err != nil:
		// Not knowing the budget is no reason to stop at once: it is read
		// again after budgetRereadUnknown writes, and only
		// budgetReadsFailedToStop failures in a row stop the writes. The
		// gauges of the budget keep an older pass's values (or 0), which
		// no alert on them can tell from a budget read just now.
		if g.metrics != nil {
			g.metrics.APIBudgetUnknown.Set(1)
		}
		g.readsFailed++
		if g.readsFailed < budgetReadsFailedToStop {
			g.logger.Warn("Could not read the PSA's API budget; reading it again after a few writes", "err", err, "writes", budgetRereadUnknown)
			break
		}
		g.logger.Warn("Stopping writes: the PSA's API budget could not be read, so the pass does not know how far it is from the reserve", "reads", g.readsFailed, "reserve", g.reserve, "err", err)
		g.halted = true
		g.unread = &budgetUnreadError{n: g.readsFailed, last: err}
	default:
		// Writes sent during the read may or may not be in its count;
		// taking them as not counted errs on the safe side.
		g.known, g.remaining, g.base, g.readsFailed = true, b.Remaining(), base, 0
		if g.progressed != nil {
			g.progressed()
		}
		if g.metrics != nil {
			g.metrics.APIBudgetUnknown.Set(0)
			g.metrics.APIBudgetRemaining.WithLabelValues("").Set(float64(b.Remaining()))
			g.metrics.APIBudgetLimit.Set(float64(b.Limit))
			g.metrics.budgetChecked()
		}
		if g.estimate()-requestsPerWrite <= g.reserve {
			g.logger.Warn("Stopping writes: the PSA's hourly API budget reached the reserve", "remaining", b.Remaining(), "reserve", g.reserve)
			g.halted = true
		}
	}
}

// stop stops the writes of the pass: the PSA refused one for its rate
// limit, and why says so (and, where the PSA or the client knows, when the
// budget frees up). It reports whether this refusal is the first: writes
// in flight may be refused too, and the first one's reason stays.
func (g *budgetGate) stop(why string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.halted = true
	if g.why != "" {
		return false
	}
	g.why = why
	return true
}

// writesFailedToStop is on how many contracts, beyond the writes in
// flight, writes that fail in a row for a reason that concerns the whole
// PSA stop the writes of a pass: the writes in flight when the PSA went
// away (or revoked the credentials) all fail at once, and two more
// contracts failing after them leave no doubt. Every further write would
// fail too, each after its timeout and retries, and on Kaseya BMS each
// would wait for an operator's review. Contracts are counted, not writes,
// so that one contract whose lines all fail (a PSA error of its own) stops
// no other customer's writes.
const writesFailedToStop = 2

// wrote records the outcome of a write to contract that was sent, err its
// error or nil. Once writes to inFlight + writesFailedToStop contracts
// failed in a row for a reason that concerns the whole PSA (psaFailure),
// or were refused in a row with the same server error (serverRefusal), it
// stops the writes of the pass: the lines not sent yet fail with a
// *writesStoppedError. A contract whose writes failed so at an earlier
// pass while others succeeded is not counted: its failure is its own (a
// record that makes the PSA answer 403 or 500), and counting it would stop
// the other customers' writes at every pass. It reports whether this write
// stopped them.
func (g *budgetGate) wrote(err error, contract string, inFlight int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if err == nil {
		g.failedInRow, g.refusedInRow = nil, nil
		if g.succeeded == nil {
			g.succeeded = map[string]bool{}
		}
		g.succeeded[contract] = true
		return false
	}
	refusal, refused := serverRefusal(err)
	if !refused && !psaFailure(err) {
		return false
	}
	if g.failedPass == nil {
		g.failedPass = map[string]bool{}
	}
	g.failedPass[contract] = true
	if g.failing[contract] {
		return false
	}
	row := &g.failedInRow
	if refused {
		if refusal != g.refusal {
			g.refusedInRow, g.refusal = nil, refusal
		}
		row = &g.refusedInRow
	}
	if *row == nil {
		*row = map[string]bool{}
	}
	(*row)[contract] = true
	if g.failed != nil || len(*row) < inFlight+writesFailedToStop {
		return false
	}
	g.halted = true
	g.failed = &writesStoppedError{n: len(*row), last: err}
	return true
}

// outcomes returns the contracts of the pass's writes that failed for a
// reason that concerns the whole PSA and those whose writes succeeded.
func (g *budgetGate) outcomes() (failed, succeeded map[string]bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failedPass, g.succeeded
}

// FailingContracts holds, across passes, the contracts whose last writes
// failed for a reason that looks as if it concerned the whole PSA
// (psaFailure: a 403, an HTML 5xx, a dropped connection; serverRefusal: a
// 5xx refusal), so that a few contracts whose writes always fail so (a
// record that makes the PSA answer 500) cannot stop the other customers' writes at every
// pass: a pass writes their lines after the others', and does not count
// toward its stop (budgetGate.wrote) the failures of those that failed
// while other writes of a pass succeeded. A write that succeeds takes its
// contract out. A pass reads them from the state database before its
// writes and records them there after (state.DB.FailingContracts), so that
// a process that starts (a restarted daemon, each `psa-syncd sync`) knows
// the contracts the one before it learned. The zero value is empty and
// ready to use; it is safe for concurrent use.
type FailingContracts struct {
	mu sync.Mutex
	// alone holds, by system and contract, whether the contract's writes
	// failed while other writes of a pass succeeded.
	alone map[failingContract]bool
}

type failingContract struct {
	system   psa.System
	contract string
}

// of returns the failing contracts of system, each with whether it failed
// while other writes succeeded.
func (f *FailingContracts) of(system psa.System) map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for k, alone := range f.alone {
		if k.system == system {
			out[k.contract] = alone
		}
	}
	return out
}

// restore replaces the failing contracts of system with stored, as the
// state database holds them.
func (f *FailingContracts) restore(system psa.System, stored map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.alone {
		if k.system == system {
			delete(f.alone, k)
		}
	}
	if len(stored) > 0 && f.alone == nil {
		f.alone = map[failingContract]bool{}
	}
	for c, alone := range stored {
		f.alone[failingContract{system, c}] = alone
	}
}

// update records the outcomes of a pass's writes to system (see
// budgetGate.outcomes). A contract that failed while the writes to another
// succeeded failed alone, and stays so until a write to it succeeds.
func (f *FailingContracts) update(system psa.System, failed, succeeded map[string]bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	others := false
	for c := range succeeded {
		if !failed[c] {
			others = true
			delete(f.alone, failingContract{system, c})
		}
	}
	if len(failed) > 0 && f.alone == nil {
		f.alone = map[failingContract]bool{}
	}
	for c := range failed {
		k := failingContract{system, c}
		f.alone[k] = f.alone[k] || others
	}
}

// prune forgets the failing contracts of system that are not in mapped
// (idKey), the contracts of the export's customer mappings: no pass writes
// (or reads) them to take them out. A nil mapped forgets none.
func (f *FailingContracts) prune(system psa.System, mapped map[string]bool) {
	if mapped == nil {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for k := range f.alone {
		if k.system == system && !mapped[idKey(k.contract)] {
			delete(f.alone, k)
		}
	}
}

// failure returns why the PSA's failures stopped the writes, or nil.
func (g *budgetGate) failure() *writesStoppedError {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failed
}

// psaFailure reports whether a write's error concerns the whole PSA rather
// than its line (a contract or service not found, a value refused, a
// conflict) or the rate limit, which stops the writes by itself: refused
// credentials, an outage, a timeout, an answer lost or unusable. The
// caller leaves out the errors of a cancelled pass.
func psaFailure(err error) bool {
	return !isolatable(err) && !errors.Is(err, psa.ErrRateLimited)
}

// serverRefusal returns the PSA's messages when it refused a write with a
// server error (a *psa.ValidationError of a 5xx answer), and whether it
// did. Autotask refuses a write that breaks a business rule that way, as
// an error of the write's own record, but a tenant (or a proxy in front of
// it) that fails every request answers each the same: a refusal that
// concerns one record names it or differs from the next contract's, so
// only the same messages for the writes to several contracts in a row
// count toward the stop. A 4xx refusal always concerns its own write.
//
// The text returned is the messages with what differs from one request to
// the next taken out (see refusalKey), so that a tenant that fails every
// request with a message carrying a request id, a correlation id or a time
// is seen refusing them alike; the ids of records stay, so that a refusal
// naming its own contract or line stays its own.
func serverRefusal(err error) (string, bool) {
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || ve.Status < http.StatusInternalServerError {
		return "", false
	}
	return refusalKey(strings.Join(ve.Messages, "\n")), true
}

// Parts of a PSA's refusal that differ for each request: an id named as a
// request's, a correlation's, a trace's (and the like), a number of five
// digits or more right after one of those words ("Error 48213:", "request
// 1234567 failed"), a GUID, a long hex string, a date and time. Record ids
// ("contract 123") are no such part, and neither is a bare number that no
// such word names: a refusal may name its own record by a number alone
// ("29684183: quantity below the units billed") or as a reference
// ("reference 29684183", a purchase order's or a contract's), and taking
// those out
// would make the refusals of different records alike, stopping the writes
// of every customer after them.
var (
	requestNumberPattern = regexp.MustCompile(`(?i)\b(request|correlation|trace|tracking|activity|transaction|operation|log|event|incident|error)\s*[:#]?\s*\d{5,}\b`)
	requestIDPattern     = regexp.MustCompile(`(?i)\b(request|correlation|trace|tracking|activity|transaction|operation|log|event|incident|error|reference|ref)([ _-]?(id|no|number|key)\b|[ _-]?#)\s*(is\s+)?[:=#]?\s*["'(\[]?[0-9a-z](?:[0-9a-z_/-]|\.[0-9a-z])*`)
	guidPattern          = regexp.MustCompile(`(?i)\{?\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b\}?`)
	longHexPattern       = regexp.MustCompile(`(?i)\b[0-9a-f]*[0-9][0-9a-f]*[a-f][0-9a-f]*\b|\b[0-9a-f]*[a-f][0-9a-f]*[0-9][0-9a-f]*\b`)
	timePattern          = regexp.MustCompile(`\b\d{4}-\d{2}-\d{2}([T ]\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?(Z|\s?[+-]\d{2}:?\d{2})?)?\b|\b\d{1,2}:\d{2}:\d{2}(\.\d+)?(\s?[AP]M)?\b`)
)

// RefusalKey returns an error's text with the parts that differ for each
// request (request and correlation ids, GUIDs, long hex strings, times)
// replaced, so that the errors of requests refused alike compare equal:
// psa-syncd logs a mapping export store that keeps refusing its reads
// once, although a proxy in front of it names a new request id each time.
func RefusalKey(text string) string { return refusalKey(text) }

// refusalKey returns a refusal's text with the parts that differ for each
// request replaced, for comparing refusals (see serverRefusal).
func refusalKey(text string) string {
	text = guidPattern.ReplaceAllString(text, "<guid>")
	text = requestIDPattern.ReplaceAllString(text, "$1$2 <id>")
	text = requestNumberPattern.ReplaceAllString(text, "$1 <id>")
	text = longHexPattern.ReplaceAllStringFunc(text, func(h string) string {
		if len(h) < 16 {
			return h
		}
		return "<hex>"
	})
	return timePattern.ReplaceAllString(text, "<time>")
}

// writesStoppedError fails a line that a pass did not write because the
// PSA failed the writes before it (see budgetGate.wrote).
type writesStoppedError struct {
	n    int
	last error
}

func (e *writesStoppedError) Error() string {
	return fmt.Sprintf("not written: the PSA failed the writes to the %d contracts before it, the last with: %v", e.n, e.last)
}

// Is reports whether target is psa.ErrEndpointNotFound and the last
// failure was one, so that the line's hint says to check the base URL
// rather than that the pass will retry: every write would fail alike. It
// matches nothing else of the last failure, which is not the line's own.
func (e *writesStoppedError) Is(target error) bool {
	return target == psa.ErrEndpointNotFound && errors.Is(e.last, target)
}

// budgetUnreadError says why a pass stopped writing when it could not read
// the PSA's budget (see budgetReadsFailedToStop).
type budgetUnreadError struct {
	n    int
	last error
}

func (e *budgetUnreadError) Error() string {
	return fmt.Sprintf("as far as psa-syncd knows: %d reads of it in a row failed, the last with: %v", e.n, e.last)
}

// unreadable returns why the writes stopped when the budget could not be
// read, or nil.
func (g *budgetGate) unreadable() *budgetUnreadError {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.unread
}

// stopped reports whether the writes of the pass are stopped.
func (g *budgetGate) stopped() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.halted
}

// reason returns why writes were stopped by stop, or "".
func (g *budgetGate) reason() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.why
}

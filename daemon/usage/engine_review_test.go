package usage

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestEngineReview_reconcileSettlesOtherContractsDespiteOneUnreadableAgreement
// checks that one customer's agreement that can no longer be read (here
// given a second active addition of the product after a crash left intents
// open) does not keep the intents of other customers open: ConnectWise
// reports the ambiguous agreement in a *ContractErrors together with the
// lines of the others, and those lines settle their intents.
func TestEngineReview_reconcileSettlesOtherContractsDespiteOneUnreadableAgreement(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	agreementA, agreementB, product := mustParse(t, h.contractA), mustParse(t, h.contractB), mustParse(t, h.svcIntercept)
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: product, Quantity: 30})
	// Globex's PATCH from 5 to 10 reached ConnectWise; its answer did not.
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementB, ProductID: product, Quantity: 10})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: product, Quantity: 31})

	open := func(customer, contract string, before, after int64) state.Intent {
		t.Helper()
		in, err := h.db.OpenIntent(state.Intent{System: psa.SystemConnectWise, Source: "file", CustomerID: customer, ContractID: contract,
			ServiceID: h.svcIntercept, Before: before, After: after, BeforeKnown: true, EffectiveDate: etPeriodDay})
		if err != nil {
			t.Fatal(err)
		}
		return in
	}
	inA := open("cust-a", h.contractA, 30, 42)
	inB := open("cust-b", h.contractB, 5, 10)

	n, err := h.engine().Reconcile(t.Context())
	if err == nil {
		t.Errorf("Reconcile error = nil, want one naming agreement %s", h.contractA)
	}
	if n != 1 {
		t.Errorf("Reconcile settled %d intents, want 1 (Globex's)", n)
	}
	still, err := h.db.OpenIntents()
	if err != nil {
		t.Fatal(err)
	}
	if len(still) != 1 || still[0].ID != inA.ID {
		t.Errorf("open intents = %+v, want only %d (the ambiguous agreement's)", still, inA.ID)
	}
	le, ok, err := h.db.LastSet(h.contractB, h.svcIntercept)
	if err != nil || !ok || le.IntentID != inB.ID || le.After != 10 {
		t.Errorf("ledger for Globex's line = %+v, %v, %v; want the change 5 -> 10 of intent %d", le, ok, err, inB.ID)
	}

	// The next pass writes Globex as usual.
	h.writeUsage("cust-b,Globex,CIXA-MSP,12")
	h.sync(PassOptions{})
	h.wantUnits(h.contractB, h.svcIntercept, 12)
	if cs := h.status("cust-b"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-b = %+v, want succeeded", cs)
	}
}

// TestEngineReview_reconcileIgnoresUnmanagedAdditionProblems checks that
// an intent left open on an agreement is settled although the agreement
// also holds an addition of another product with a fractional quantity:
// only the intents' own products can keep them open.
func TestEngineReview_reconcileIgnoresUnmanagedAdditionProblems(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemConnectWise)
	cw := h.sim.ConnectWise()
	agreementA := mustParse(t, h.contractA)
	labour := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Onsite labour", Price: 100})
	// Acme's PATCH from 30 to 42 reached ConnectWise; its answer did not.
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: mustParse(t, h.svcIntercept), Quantity: 42})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: agreementA, ProductID: labour, Quantity: 1.5})
	in, err := h.db.OpenIntent(state.Intent{System: psa.SystemConnectWise, Source: "file", CustomerID: "cust-a", ContractID: h.contractA,
		ServiceID: h.svcIntercept, Before: 30, After: 42, BeforeKnown: true, EffectiveDate: etPeriodDay})
	if err != nil {
		t.Fatal(err)
	}

	n, err := h.engine().Reconcile(t.Context())
	if err != nil || n != 1 {
		t.Errorf("Reconcile = %d, %v; want 1 intent settled", n, err)
	}
	if still, err := h.db.OpenIntents(); err != nil || len(still) != 0 {
		t.Errorf("open intents = %+v, %v; want none", still, err)
	}
	le, ok, err := h.db.LastSet(h.contractA, h.svcIntercept)
	if err != nil || !ok || le.IntentID != in.ID || le.After != 42 {
		t.Errorf("ledger for Acme's line = %+v, %v, %v; want the change 30 -> 42 of intent %d", le, ok, err, in.ID)
	}
}

// TestEngineReview_atSetsThePeriod: a pass given At (a scheduled pass due
// at 23:59 on 31 October that runs after midnight) syncs the period and
// the day it was due in, not those of the clock, and its run says so.
func TestEngineReview_atSetsThePeriod(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.EffectiveDate = EffectiveToday
	h.writeUsage("cust-a,Acme,CIXA-MSP,4")
	h.now = func() time.Time { return time.Date(2026, time.November, 1, 0, 20, 0, 0, time.UTC) }
	due := time.Date(2026, time.October, 31, 23, 59, 0, 0, time.UTC)
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{DryRun: true, At: due})
	if err != nil {
		t.Fatal(err)
	}
	if res.Plan.Period.String() != "2026-10" || res.Run.Period != "2026-10" ||
		!res.Plan.EffectiveDate.Equal(time.Date(2026, time.October, 31, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("plan period %s, run period %s, effective date %s; want 2026-10, 2026-10 and 2026-10-31",
			res.Plan.Period, res.Run.Period, res.Plan.EffectiveDate.Format(time.DateOnly))
	}
	if !res.Plan.ComputedAt.Equal(h.now()) {
		t.Errorf("plan computed at %s, want the clock's %s", res.Plan.ComputedAt, h.now())
	}
}

// TestEngineReview_runPeriodIsThePlansPeriod checks that a pass that
// starts just before midnight on the last day of the month and computes its
// plan just after records the period whose usage it synced.
func TestEngineReview_runPeriodIsThePlansPeriod(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,4")
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, time.November, 30, 23, 59, 59, 0, time.UTC)
	var calls atomic.Int64
	e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m, Location: time.UTC,
		Now: func() time.Time { return start.Add(time.Duration(calls.Add(1)-1) * time.Second) }})
	res, err := e.Sync(t.Context(), h.doc, PassOptions{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if want := res.Plan.Period.String(); res.Run.Period != want {
		t.Errorf("run period = %s, want %s (the period the plan synced)", res.Run.Period, want)
	}
	stored, _, err := h.db.Run(res.Run.ID)
	if err != nil {
		t.Fatal(err)
	}
	if stored.Period != res.Plan.Period.String() {
		t.Errorf("stored run period = %s, want %s", stored.Period, res.Plan.Period)
	}
}

// cancelOnBudget cancels the pass when the budget gate first asks for the
// budget, as a shutdown that stops a running pass would.
type cancelOnBudget struct {
	psa.Backend
	cancel context.CancelFunc
}

func (b cancelOnBudget) Budget(context.Context) (*psa.Budget, error) {
	b.cancel()
	return nil, psa.ErrNotSupported
}

// TestEngineReview_cancelledPassSaysSo checks that lines a cancelled pass
// did not write give their customer a status that says the pass was
// cancelled, not that the PSA's hourly budget reached the reserve (whose
// hint, lowering budget_reserve, would send the operator the wrong way).
func TestEngineReview_cancelledPassSaysSo(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.pol.WriteConcurrency = 1
	h.writeUsage("cust-a,Acme,CIXA-MSP,4", "cust-b,Globex,CIXA-MSP,6")
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	e := NewEngine(EngineOptions{Backend: cancelOnBudget{Backend: h.be, cancel: cancel}, Source: src, State: h.db, Policies: h.pol,
		Metrics: h.m, Location: time.UTC, Now: func() time.Time { return etNow }})
	res, err := e.Sync(ctx, h.doc, PassOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := h.status("cust-b")
	if cs.Result != state.CustomerSkipped {
		t.Fatalf("status of cust-b = %+v, want skipped", cs)
	}
	for _, s := range []string{cs.Error, cs.Hint, res.Run.Error} {
		if strings.Contains(s, "budget") {
			t.Errorf("%q blames the API budget; the pass was cancelled", s)
		}
	}
	if !strings.Contains(cs.Error, "cancelled") {
		t.Errorf("status error %q does not say that the pass was cancelled", cs.Error)
	}
}

// A pass for one customer ("sync now") moves neither timestamp: it would
// hide that a full sync is stale, or (last run after last success) look
// like a failing sync.
func TestEngine_Sync_customerPassDoesNotRefreshLastSuccess(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	if res := h.sync(PassOptions{Customer: "cust-a"}); res.Run.Result != state.RunSuccess {
		t.Fatalf("run = %+v, want success", res.Run)
	}
	if got := h.metric(h.m.LastSuccessTimestamp); got != 0 {
		t.Errorf("last_success_timestamp_seconds after a one-customer pass = %v, want 0", got)
	}
	if got := h.metric(h.m.LastRunTimestamp); got != 0 {
		t.Errorf("last_run_timestamp_seconds after a one-customer pass = %v, want 0", got)
	}
	h.sync(PassOptions{})
	if got := h.metric(h.m.LastSuccessTimestamp); got == 0 {
		t.Error("last_success_timestamp_seconds after a full pass = 0, want it set")
	}
}

// A line that products of another usage source also feed, on a contract
// that source's customer also uses, is written by neither psa-syncd: each
// would set it to its own usage and undo the other's.
func TestEngine_Sync_lineFedByAnotherSourceIsNotWritten(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.doc.PutProduct(export.ProductMapping{Source: "passwordboss", Product: "PB-USERS", ServiceID: etID(h.svcIntercept), SyncEnabled: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "passwordboss", CustomerID: "pb-acme", CompanyID: "1", ContractID: etID(h.contractA), UsageSync: true})
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")

	res := h.sync(PassOptions{})
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "also fed by usage source passwordboss/pb-acme") {
		t.Errorf("change for cust-a = %+v, want failed: also fed by passwordboss", c)
	}
	if u := h.units(h.contractA, h.svcIntercept); u != 0 {
		t.Errorf("units on Acme's contract = %d, want 0 (not written)", u)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 7)
	if cs := h.status("cust-a"); cs.Result != state.CustomerFailed {
		t.Errorf("status of cust-a = %+v, want failed", cs)
	}

	// With the other source's product not synced, the line is this source's.
	h.doc.PutProduct(export.ProductMapping{Source: "passwordboss", Product: "PB-USERS", ServiceID: etID(h.svcIntercept), SyncEnabled: false})
	h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
}

// TestEngine_Sync_lineFedByAnotherSourceSpelledOtherwise checks that the
// other source's mappings name the same line when they spell its ids with
// a leading zero or a space, which the PSA reads as the same ids.
func TestEngine_Sync_lineFedByAnotherSourceSpelledOtherwise(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.doc.PutProduct(export.ProductMapping{Source: "passwordboss", Product: "PB-USERS", ServiceID: "0" + etID(h.svcIntercept), SyncEnabled: true})
	h.doc.PutCustomer(export.CustomerMapping{Source: "passwordboss", CustomerID: "pb-acme", CompanyID: "1", ContractID: " " + etID(h.contractA), UsageSync: true})
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")

	res := h.sync(PassOptions{})
	c := etFindChange(res.Plan, "cust-a", h.svcIntercept)
	if c == nil || c.Action != ActionFailed || !strings.Contains(c.Reason, "also fed by usage source passwordboss/pb-acme") {
		t.Errorf("change for cust-a = %+v, want failed: also fed by passwordboss", c)
	}
	if u := h.units(h.contractA, h.svcIntercept); u != 0 {
		t.Errorf("units on Acme's contract = %d, want 0 (not written)", u)
	}
	h.wantUnits(h.contractB, h.svcIntercept, 7)
}

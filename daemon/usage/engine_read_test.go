package usage

import (
	"context"
	"fmt"
	"math/bits"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// recordingReads records the contract ids of every ReadLines call and fails
// the calls that fail says to.
type recordingReads struct {
	psa.Backend
	fail func(call int, ids []string) error

	mu    sync.Mutex
	calls [][]string
}

func (b *recordingReads) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.mu.Lock()
	b.calls = append(b.calls, slices.Clone(ids))
	call := len(b.calls) - 1
	b.mu.Unlock()
	if b.fail != nil {
		if err := b.fail(call, ids); err != nil {
			return nil, err
		}
	}
	return b.Backend.ReadLines(ctx, ids, asOf)
}

// chunkedTenant gives the Autotask harness n customers, each with its own
// contract holding both services at 1 unit, and usage of 2 units for
// each, so that every line changes (the surge guard off).
func chunkedTenant(t *testing.T, n int) *sysHarness {
	h := newSysHarness(t, psa.SystemAutotask)
	// Every line doubles, which the surge guard holds for review (and
	// writes only once every customer is decided): these tests are of the
	// reads and the writes.
	h.pol.SurgeLinesPercent = 0
	at := h.sim.Autotask()
	customers := h.manyCustomers(n, func(i int) (string, string) {
		company := at.AddCompany(fmt.Sprintf("Customer %04d", i))
		contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed Services"})
		for _, svc := range []string{h.svcIntercept, h.svcMDR} {
			at.SetUnits(contract, mustParse(t, svc), 1, etPeriodDay)
		}
		return etID(company), etID(contract)
	})
	rows := make([]string, 0, 2*n)
	for _, cm := range customers {
		rows = append(rows, cm.CustomerID+","+cm.CustomerName+",CIXA-MSP,2", cm.CustomerID+","+cm.CustomerName+",MDR,2")
	}
	h.writeUsage(rows...)
	return h
}

// TestEngine_Plan_readsContractsInChunks checks that a pass reads the lines
// of its contracts in chunks of readChunk, in the order it decides the
// customers, each contract once, and decides every line of every chunk.
func TestEngine_Plan_readsContractsInChunks(t *testing.T) {
	t.Parallel()
	const n = 2*readChunk + 101
	h := chunkedTenant(t, n)
	rec := &recordingReads{Backend: h.be}
	h.be = rec
	h.sim.ResetRequests()

	p := h.plan()
	// The customers are named in the order of their ids, so the order they
	// are decided in is that of the export. The chunks are read at once,
	// so the calls may come in any order.
	var want []string
	for _, cm := range h.doc.CustomerMappings {
		want = append(want, cm.ContractID)
	}
	slices.SortFunc(rec.calls, func(a, b []string) int { return slices.Index(want, a[0]) - slices.Index(want, b[0]) })
	var sizes []int
	var order []string
	for _, ids := range rec.calls {
		sizes = append(sizes, len(ids))
		order = append(order, ids...)
	}
	if want := []int{readChunk, readChunk, 101}; !slices.Equal(sizes, want) {
		t.Errorf("ReadLines calls read %v contracts, want %v", sizes, want)
	}
	if !slices.Equal(order, want) {
		t.Errorf("the chunks read are not the contracts in the order the customers are decided in")
	}
	// Autotask answers 500 unit rows a page: the chunks cost no page more
	// than one read of every contract would.
	if got, bound := len(h.sim.Requests()), (2*n+499)/500+2; got > bound {
		t.Errorf("%d requests, want at most %d", got, bound)
	}
	if len(p.Changes) != 2*n {
		t.Fatalf("%d changes, want %d", len(p.Changes), 2*n)
	}
	for _, c := range p.Changes {
		if c.Action != ActionUpdate || !c.CurrentKnown || c.Current != 1 || c.Desired != 2 {
			t.Fatalf("change %+v, want an update of a known line from 1 to 2", c)
		}
	}
}

// TestEngine_Sync_chunkReadFailures checks that a contract whose read fails
// in a later chunk fails only its customer, and that a failure of the PSA
// as a whole fails the contracts of every chunk without reading them.
func TestEngine_Sync_chunkReadFailures(t *testing.T) {
	t.Parallel()
	const n = readChunk + 50
	t.Run("bad contract", func(t *testing.T) {
		t.Parallel()
		h := chunkedTenant(t, n)
		bad := h.doc.CustomerMappings[readChunk+7]
		bad.ContractID = "C-17"
		h.doc.PutCustomer(bad)
		res := h.sync(PassOptions{})
		if res.Run.Result != state.RunPartial || res.Run.Updated != 2*(n-1) {
			t.Errorf("run = %+v, want partial with %d lines updated", res.Run, 2*(n-1))
		}
		if cs := h.status(bad.CustomerID); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "C-17") {
			t.Errorf("status of %s = %+v, want failed on contract C-17", bad.CustomerID, cs)
		}
		if got := h.writes(); got != 2*(n-1) {
			t.Errorf("%d writes, want %d", got, 2*(n-1))
		}
	})
	t.Run("PSA down", func(t *testing.T) {
		t.Parallel()
		h := chunkedTenant(t, n)
		rec := &recordingReads{Backend: h.be, fail: func(int, []string) error {
			return fmt.Errorf("autotask: reading contract service units: %w", &psa.RateLimitError{System: psa.SystemAutotask, Hourly: true})
		}}
		h.be = rec
		res := h.sync(PassOptions{})
		if res.Run.Result != state.RunFailure || res.Run.Failed != n {
			t.Errorf("run = %+v, want failure with %d customers failed", res.Run, n)
		}
		if len(rec.calls) != 1 {
			t.Errorf("%d ReadLines calls, want 1: the chunks after a failure of the whole PSA are not read", len(rec.calls))
		}
		if got := h.writes(); got != 0 {
			t.Errorf("%d writes, want none", got)
		}
	})
}

// TestEngine_Sync_lastSuccessStaysStored checks that a customer that does
// not succeed, or any customer in a dry run, keeps the LastSuccess stored
// by an earlier pass, whether the pass reads the stored statuses one by one
// (few customers) or all at once.
func TestEngine_Sync_lastSuccessStaysStored(t *testing.T) {
	t.Parallel()
	for _, n := range []int{3, maxStatusReads + 5} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			h := chunkedTenant(t, n)
			h.pol.MaxDecreasePercent = 50
			src, err := file.New(file.Config{Path: h.usage})
			if err != nil {
				t.Fatal(err)
			}
			sync := func(at time.Time, o PassOptions) {
				t.Helper()
				e := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m,
					Location: time.UTC, Now: func() time.Time { return at }})
				if _, err := e.Sync(t.Context(), h.doc, o); err != nil {
					t.Fatalf("Sync: %v", err)
				}
			}
			first, second := etNow, etNow.Add(time.Hour)
			sync(first, PassOptions{})
			// The first customer's usage drops to 0: the decrease is held.
			customers := h.doc.CustomerMappings
			rows := []string{customers[0].CustomerID + "," + customers[0].CustomerName + ",CIXA-MSP,0"}
			for _, cm := range customers[1:] {
				rows = append(rows, cm.CustomerID+","+cm.CustomerName+",CIXA-MSP,2", cm.CustomerID+","+cm.CustomerName+",MDR,2")
			}
			h.writeUsage(rows...)
			sync(second, PassOptions{})
			sync(second.Add(time.Hour), PassOptions{DryRun: true})
			for i, cm := range customers {
				want := second
				if i == 0 {
					want = first
				}
				if cs := h.status(cm.CustomerID); !cs.LastSuccess.Equal(want) {
					t.Errorf("%s (%s): last success %v, want %v", cm.CustomerID, cs.Result, cs.LastSuccess, want)
				}
			}
		})
	}
}

// writeBeforeRead holds the second ReadLines call until a line has been
// written, or for at most a minute, and records whether a write came first.
type writeBeforeRead struct {
	psa.Backend
	wrote     chan struct{}
	writeOnce sync.Once

	mu        sync.Mutex
	reads     int
	readAfter bool // the second read began after a write
}

func (b *writeBeforeRead) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	b.writeOnce.Do(func() { close(b.wrote) })
	return b.Backend.SetQuantity(ctx, req)
}

func (b *writeBeforeRead) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.mu.Lock()
	b.reads++
	second := b.reads == 2
	b.mu.Unlock()
	if second {
		select {
		case <-b.wrote:
			b.mu.Lock()
			b.readAfter = true
			b.mu.Unlock()
		case <-time.After(time.Minute):
		}
	}
	return b.Backend.ReadLines(ctx, ids, asOf)
}

// TestEngine_Sync_writesWhileReading checks that a pass writes the lines of
// the customers it has decided while the next chunk of contracts is still
// being read, and still writes every line and records every outcome.
func TestEngine_Sync_writesWhileReading(t *testing.T) {
	t.Parallel()
	const n = readChunk + 50
	h := chunkedTenant(t, n)
	b := &writeBeforeRead{Backend: h.be, wrote: make(chan struct{})}
	h.be = b
	res := h.sync(PassOptions{})
	if !b.readAfter {
		t.Errorf("the second chunk's read did not wait for a write: the first chunk's lines were not written while reading")
	}
	if res.Run.Result != state.RunSuccess || res.Run.Updated != 2*n {
		t.Errorf("run = %+v, want success with %d lines updated", res.Run, 2*n)
	}
	if got := h.writes(); got != 2*n {
		t.Errorf("%d writes, want %d", got, 2*n)
	}
	for _, c := range res.Plan.Changes {
		if c.Action != ActionUpdate || c.Desired != 2 {
			t.Fatalf("change %+v, want an update to 2", c)
		}
	}
	if open, err := h.db.OpenIntents(); err != nil || len(open) != 0 {
		t.Errorf("open intents after the pass = %v, %v; want none", open, err)
	}
}

// TestEngineSystems_failingReadsStopThePass checks that a PSA that fails
// every read of a pass with the same server error (a broken tenant, a
// proxy: Autotask answers a 500 with errors[], which reads as a refusal of
// one contract) stops the reads after a few contracts, rather than split
// each chunk down to single contracts: some 2 requests a contract, every
// pass, out of the hourly API limit that the next passes and the ticket
// passes need. The contracts not read fail their customers, naming the
// PSA's answer and that the pass stopped reading. Kaseya BMS reads no
// lines (the ledger holds them).
func TestEngineSystems_failingReadsStopThePass(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, sys)
			const n = 300
			customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
			h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
			fault := psatest.Fault{Status: http.StatusInternalServerError, Body: `{"errors":["Object reference not set to an instance of an object."]}`}
			switch sys {
			case psa.SystemAutotask:
				fault.Path = etUnitsPath
			case psa.SystemConnectWise:
				base, err := url.Parse(h.sim.ConnectWiseBaseURL())
				if err != nil {
					t.Fatal(err)
				}
				fault.Method, fault.Path = http.MethodGet, base.Path+"finance/agreements/*"
				fault.Body = `{"code":"InternalServerError","message":"Object reference not set to an instance of an object."}`
			}
			h.sim.AddFault(fault)

			for pass := range 2 {
				h.sim.ResetRequests()
				res := h.sync(PassOptions{})
				// The contracts whose reads failed before the stop, each
				// read alone, and the batch reads that split down to them;
				// not the day's read of the contracts' companies (first
				// pass: readCompanyStates), which answers.
				got := 0
				for _, r := range h.sim.Requests() {
					if p := strings.ToLower(r.Path); !strings.HasSuffix(p, "/company/companies") && !strings.HasSuffix(p, "/companies/query") {
						got++
					}
				}
				if most := 3*(readsAhead+writesFailedToStop) + bits.Len(n); got > most {
					t.Errorf("pass %d: %d requests into the failure, want at most %d", pass, got, most)
				}
				if res.Run.Result != state.RunFailure {
					t.Errorf("pass %d: run = %+v, want failure", pass, res.Run)
				}
				if sys == psa.SystemAutotask && (!strings.Contains(res.Run.Error, "reads stopped") || !strings.Contains(res.Run.Error, "Object reference not set")) {
					t.Errorf("pass %d: run error %q, want it to say the reads stopped and the PSA's answer", pass, res.Run.Error)
				}
				if got := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopReadsFailed)); sys == psa.SystemAutotask && got != float64(pass+1) {
					t.Errorf("pass %d: pass_stops_total{reason=%q} = %v, want %d", pass, StopReadsFailed, got, pass+1)
				}
				last := customers[n-1].CustomerID
				if cs := h.status(last); cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "Object reference not set") ||
					(sys == psa.SystemAutotask && !strings.Contains(cs.Error, "stopped reading")) {
					t.Errorf("pass %d: status of %s = %s (%q), want failed naming the PSA's answer", pass, last, cs.Result, cs.Error)
				}
				if got := h.writes(); got != 0 {
					t.Errorf("pass %d: %d writes, want none", pass, got)
				}
			}

			h.sim.ClearFaults()
			if res := h.sync(PassOptions{}); res.Run.Result != state.RunSuccess {
				t.Errorf("run after the fault = %+v, want success", res.Run)
			}
		})
	}
}

// TestEngineAutotask_unitsQueryNotFoundFailsTheReadAtOnce checks that a 404
// to Autotask's unit query (a proxy, a base URL that is not the tenant's)
// fails every customer's read at once: a query finds no row of an unknown
// contract, so the 404 is not a contract's, and read as one it split each
// chunk down to single contracts (599 requests for 300 customers, every
// pass) and told every customer that its contract was not found.
func TestEngineAutotask_unitsQueryNotFoundFailsTheReadAtOnce(t *testing.T) {
	t.Parallel()
	h := newSysHarness(t, psa.SystemAutotask)
	const n = 300
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
	h.sim.AddFault(psatest.Fault{Path: etUnitsPath, Status: http.StatusNotFound, Body: "<html><body>404 Not Found</body></html>"})
	h.sim.ResetRequests()
	res := h.sync(PassOptions{})
	// Before it, the pass reads the contracts' end dates (one query, and
	// the picklists of their labels: checkContractEnds).
	units := 0
	for _, r := range h.sim.Requests() {
		if strings.HasPrefix(r.Path, strings.TrimSuffix(etUnitsPath, "*")) {
			units++
		}
	}
	if units != 1 {
		t.Errorf("%d unit queries, want 1", units)
	}
	if res.Run.Result != state.RunFailure || !strings.Contains(res.Run.Error, "404") {
		t.Errorf("run = %+v, want failure naming the 404", res.Run)
	}
	if cs := h.status(customers[n-1].CustomerID); !strings.Contains(cs.Error, "404") || strings.Contains(cs.Hint, "not found in") {
		t.Errorf("status = %q (hint %q), want the 404, not a contract not found", cs.Error, cs.Hint)
	}
}

// TestEngineAutotask_serverRefusalsOfContractsReadsFailOnlyThem checks
// that contracts whose reads Autotask refuses with a 500 and errors[],
// among many whose reads succeed, fail only their customers: the batch
// reads split down to them. A refusal naming its contract fails only it
// wherever it is in the chunk; the same answer for many contracts apart
// from one another stops no reads either, since the reads of the
// contracts between them succeed.
func TestEngineAutotask_serverRefusalsOfContractsReadsFailOnlyThem(t *testing.T) {
	t.Parallel()
	const n = 300
	for name, tc := range map[string]struct {
		bad   func(i int) bool
		named bool // the refusal names the contract
	}{
		"the first naming it":  {bad: func(i int) bool { return i == 0 }, named: true},
		"the second naming it": {bad: func(i int) bool { return i == 1 }, named: true},
		"one in the middle":    {bad: func(i int) bool { return i == n/2 }, named: true},
		"the last naming it":   {bad: func(i int) bool { return i == n-1 }, named: true},
		// More than stop the reads, each between contracts read fine.
		"every 20th with the same answer": {bad: func(i int) bool { return i%20 == 3 }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemAutotask)
			customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
			h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
			answer := map[string]string{}
			for i, cm := range customers {
				switch {
				case !tc.bad(i):
				case tc.named:
					answer[cm.ContractID] = "Contract " + cm.ContractID + ": Object reference not set to an instance of an object."
				default:
					answer[cm.ContractID] = "Object reference not set to an instance of an object."
				}
			}
			h.be = &recordingReads{Backend: h.be, fail: func(_ int, ids []string) error {
				for _, id := range ids {
					if msg, ok := answer[id]; ok {
						return fmt.Errorf("autotask: reading contract service units: %w", &psa.ValidationError{System: psa.SystemAutotask,
							Messages: []string{msg}, Status: http.StatusInternalServerError})
					}
				}
				return nil
			}}
			res := h.sync(PassOptions{})
			if res.Run.Result != state.RunPartial || res.Run.Failed != len(answer) {
				t.Errorf("run = %+v, want partial with %d customers failed", res.Run, len(answer))
			}
			for i, cm := range customers {
				cs := h.status(cm.CustomerID)
				if msg, ok := answer[cm.ContractID]; ok {
					if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, msg) || strings.Contains(cs.Error, "not read") {
						t.Errorf("status of %s = %s (%q), want failed with its contract's refusal", cm.CustomerID, cs.Result, cs.Error)
					}
					continue
				}
				if got, _ := h.units(cm.ContractID, h.svcIntercept); got != int64(2+i%7) {
					t.Errorf("%s: units of %s = %d, want %d (status %q)", cm.CustomerID, h.svcIntercept, got, 2+i%7, cs.Error)
				}
			}
		})
	}
}

// TestEngineAutotask_adjacentRefusedReadsStopOnlyOnePass: the reads of 10
// neighbouring contracts (in the read order), each alone, are refused with
// one generic 500, as a few broken records make Autotask answer. The first
// pass cannot tell them from a tenant that fails every read, and stops
// reading; the next passes, each made by a process of its own, remember
// that other reads succeeded around them and read the customers after
// them, which no pass read before.
func TestEngineAutotask_adjacentRefusedReadsStopOnlyOnePass(t *testing.T) {
	t.Parallel()
	const n, first = 300, 100
	h := newSysHarness(t, psa.SystemAutotask)
	customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
	h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
	bad := map[string]bool{}
	for _, cm := range customers[first : first+readsFailedToStop] {
		bad[cm.ContractID] = true
	}
	h.be = &recordingReads{Backend: h.be, fail: func(_ int, ids []string) error {
		for _, id := range ids {
			if bad[id] {
				return fmt.Errorf("autotask: reading contract service units: %w", &psa.ValidationError{System: psa.SystemAutotask,
					Messages: []string{"Object reference not set to an instance of an object."}, Status: http.StatusInternalServerError})
			}
		}
		return nil
	}}
	last := customers[n-1]
	if res := h.sync(PassOptions{}); !strings.Contains(res.Run.Error, "reads stopped") {
		t.Fatalf("first pass run = %+v, want the reads stopped", res.Run)
	}
	for pass := 2; pass <= 3; pass++ {
		res := h.sync(PassOptions{})
		if res.Run.Result != state.RunPartial || res.Run.Failed != len(bad) {
			t.Errorf("pass %d: run = %+v, want partial with the %d refused customers failed", pass, res.Run, len(bad))
		}
		if got, _ := h.units(last.ContractID, h.svcIntercept); got != int64(2+(n-1)%7) {
			t.Errorf("pass %d: units of the last customer's contract = %d, want %d (status %q)", pass, got, 2+(n-1)%7, h.status(last.CustomerID).Error)
		}
	}
	// A contract no longer mapped is forgotten.
	h.doc.CustomerMappings = slices.DeleteFunc(h.doc.CustomerMappings, func(cm export.CustomerMapping) bool { return bad[cm.ContractID] })
	h.sync(PassOptions{})
	if got, err := h.db.FailingReads(psa.SystemAutotask); err != nil || len(got) != 0 {
		t.Errorf("contracts whose reads fail after their mappings went = %v, %v; want none", got, err)
	}
}

// TestEngineAutotask_queryNotFoundIsNoRecordsNotFound checks that a 404 to
// the other Autotask queries of a pass (a proxy, a base URL that is not
// the tenant's) is not read as a record not found: the bulk contract check
// told every customer that its contract was not found (check
// contract_id), and the lookup of the service before each new line failed
// each write as a line's own error, one request each, every pass. The
// check now fails with the 404 for what it is, and the writes stop after
// a few, as for any failure of the whole PSA; the hint says to check
// base_url (it said the pass would retry).
func TestEngineAutotask_queryNotFoundIsNoRecordsNotFound(t *testing.T) {
	t.Parallel()
	const n = 40
	for name, path := range map[string]string{
		"contract check": "/ATServicesRest/V1.0/Contracts/query",
		"service lookup": "/ATServicesRest/V1.0/ContractServices/query",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemAutotask)
			customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
			h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
			h.sim.AddFault(psatest.Fault{Method: http.MethodPost, Path: path, Status: http.StatusNotFound, Body: "<html><body>404 Not Found</body></html>"})
			h.sim.ResetRequests()
			res := h.sync(PassOptions{})
			queries := 0
			for _, r := range h.sim.Requests() {
				if strings.EqualFold(r.Path, path) {
					queries++
				}
			}
			// The writes in flight, and two more contracts' (two lines
			// each); with room for the lines sent as the row closes.
			if most := 4 * (3 + writesFailedToStop); queries > most {
				t.Errorf("%d queries answered 404, want at most %d", queries, most)
			}
			if res.Run.Result != state.RunFailure {
				t.Errorf("run = %+v, want failure", res.Run)
			}
			cs := h.status(customers[n-1].CustomerID)
			if cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, "404") || strings.Contains(cs.Error, "not found in") || strings.Contains(cs.Hint, "contract_id") || !strings.Contains(cs.Hint, "base_url") {
				t.Errorf("status = %s %q (hint %q), want failed with the 404, not a contract not found", cs.Result, cs.Error, cs.Hint)
			}
		})
	}
}

// TestEngineConnectWise_agreementAnswersAlikeStopTheReads: ConnectWise
// reads each agreement's additions with a request of its own, and a 4xx
// or an answer that cannot be decoded fails only that agreement
// (psa.ContractErrors). A 403 for every agreement failed each customer
// separately, with no "reads stopped" and no hint, since such answers
// never counted toward the reads' stop. Now, when every agreement of a
// read fails alike, they count as server refusals do: the run says the
// reads stopped, pass_stops_total{reason="reads_failed"} counts it, and
// the customers' hint says to check ConnectWise. A proxy answering every
// agreement with an HTML page is no answer of ConnectWise at all
// (psa.ErrNotAPI): the whole read fails at once, as on Autotask, and the
// hint names the base URL setting. A few agreements refused while the
// others read (a security role that hides them) stay their customers' own
// failures, as does an agreement that is not found.
func TestEngineConnectWise_agreementAnswersAlikeStopTheReads(t *testing.T) {
	t.Parallel()
	const n = 40
	for _, tc := range []struct {
		name   string
		fault  psatest.Fault
		failed int // agreements answered so; 0: all
	}{
		{"proxy page", psatest.Fault{Status: http.StatusOK, Body: "<html><body>Please sign in to the proxy</body></html>"}, 0},
		{"403 for every agreement", psatest.Fault{Status: http.StatusForbidden,
			Body: `{"code":"Forbidden","message":"You do not have access to this agreement."}`}, 0},
		{"403 for a few agreements", psatest.Fault{Status: http.StatusForbidden,
			Body: `{"code":"Forbidden","message":"You do not have access to this agreement."}`}, 12},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newSysHarness(t, psa.SystemConnectWise)
			customers := h.manyCustomers(n, func(i int) (string, string) { return addSysContract(h, i) })
			h.writeUsage(usageRows(customers, func(int) int { return 0 })...)
			base, err := url.Parse(h.sim.ConnectWiseBaseURL())
			if err != nil {
				t.Fatal(err)
			}
			if tc.failed == 0 {
				f := tc.fault
				f.Method, f.Path = http.MethodGet, base.Path+"finance/agreements/*"
				h.sim.AddFault(f)
			}
			for _, cm := range customers[:tc.failed] {
				f := tc.fault
				f.Method, f.Path = http.MethodGet, base.Path+"finance/agreements/"+cm.ContractID+"/additions"
				h.sim.AddFault(f)
			}
			res := h.sync(PassOptions{})
			stops := testutil.ToFloat64(h.m.PassStopsTotal.WithLabelValues(StopReadsFailed))
			first := h.status(customers[0].CustomerID)
			if tc.failed > 0 {
				if strings.Contains(res.Run.Error, "reads stopped") || stops != 0 {
					t.Errorf("run error %q, pass_stops_total{reason=%q} = %v; want no stop for %d agreements refused among readable ones",
						res.Run.Error, StopReadsFailed, stops, tc.failed)
				}
				if cs := h.status(customers[n-1].CustomerID); cs.Result != state.CustomerSucceeded {
					t.Errorf("a customer whose agreement reads = %s (%q), want succeeded", cs.Result, cs.Error)
				}
				if first.Result != state.CustomerFailed || strings.Contains(first.Hint, "stopped reading") {
					t.Errorf("customer refused alone = %s (%q, hint %q), want failed with its own hint", first.Result, first.Error, first.Hint)
				}
				return
			}
			if tc.name == "proxy page" {
				if !strings.Contains(res.Run.Error, "40 of 40 customers failed") || !strings.Contains(res.Run.Error, "not the ConnectWise PSA API's") {
					t.Errorf("run error %q, want every customer failed on an answer that is not the API's", res.Run.Error)
				}
				if first.Result != state.CustomerFailed || !strings.Contains(first.Hint, "psa.connectwise.base_url") {
					t.Errorf("first customer = %s (%q, hint %q), want failed with a hint naming base_url", first.Result, first.Error, first.Hint)
				}
				if got := h.writes(); got != 0 {
					t.Errorf("%d writes, want none", got)
				}
				return
			}
			if !strings.Contains(res.Run.Error, "reads stopped") || stops != 1 {
				t.Errorf("run error %q, pass_stops_total{reason=%q} = %v; want the reads stopped, counted once", res.Run.Error, StopReadsFailed, stops)
			}
			if first.Result != state.CustomerFailed || !strings.Contains(first.Hint, "answered the reads of") || !strings.Contains(first.Hint, "stopped reading") {
				t.Errorf("first customer = %s (%q, hint %q), want failed with a hint that the reads stopped", first.Result, first.Error, first.Hint)
			}
			if got := h.writes(); got != 0 {
				t.Errorf("%d writes, want none", got)
			}
		})
	}
}

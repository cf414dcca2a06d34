package usage

import (
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// addCustomers adds n more customers to h, each with its own company and
// contract, and returns their contracts by customer id.
func addCustomers(h *sysHarness, n int) map[string]string {
	h.t.Helper()
	out := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("cust-%03d", i)
		name := fmt.Sprintf("Customer %03d", i)
		var company, contract string
		switch h.system {
		case psa.SystemAutotask:
			at := h.sim.Autotask()
			c := at.AddCompany(name)
			company, contract = etID(c), etID(at.AddContract(psatest.AutotaskContract{CompanyID: c, Name: name + " Managed Services"}))
		case psa.SystemConnectWise:
			cw := h.sim.ConnectWise()
			c := cw.AddCompany(name)
			company, contract = etID(c), etID(cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: c, Name: name + " Managed Services"}))
		case psa.SystemKaseyaBMS:
			k := h.sim.KaseyaBMS()
			c := k.AddAccount(name)
			company, contract = strconv.Itoa(c), strconv.Itoa(k.AddContract(psatest.KaseyaBMSContract{AccountID: c, Name: name + " Managed Services"}))
		}
		h.doc.PutCustomer(export.CustomerMapping{Source: "file", CustomerID: id, CustomerName: name, CompanyID: company, ContractID: contract, UsageSync: true})
		out[id] = contract
	}
	return out
}

// TestEngineFullDisk_passRecovers fills the state database (SQLite's
// max_page_count, as a full disk does) at a range of points of a pass
// writing 80 lines: before or between intents, between an intent and its
// write, and while the outcomes and statuses are recorded. Whatever the
// point, the pass that hits it fails with an error naming the database and
// "full", and once there is space again the next pass ends as a success
// with every line at its quantity, written once (no doubled line), one
// ledger entry each and no intent left open: the outcomes known but not
// recorded are recorded then, so that no Kaseya BMS line that was posted
// waits for an operator.
func TestEngineFullDisk_passRecovers(t *testing.T) {
	t.Parallel()
	for _, sys := range sysSystems {
		for extra := 0; extra < 8; extra++ {
			t.Run(fmt.Sprintf("%s/pages=%d", sys, extra), func(t *testing.T) {
				t.Parallel()
				h := newSysHarness(t, sys)
				contracts := addCustomers(h, 40)
				var rows []string
				for id := range contracts {
					rows = append(rows, id+",X,CIXA-MSP,7", id+",X,MDR,3")
				}
				h.writeUsage(rows...)
				if err := h.db.LimitSize(extra); err != nil {
					t.Fatal(err)
				}
				src, err := file.New(file.Config{Path: h.usage})
				if err != nil {
					t.Fatal(err)
				}
				logs := newRecordHandler()
				eng := NewEngine(EngineOptions{Backend: h.be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m, Logger: slog.New(logs),
					Location: time.UTC, Now: func() time.Time { return etNow }, Failing: &h.failing, Unsaved: &h.unsaved})
				res, err := eng.Sync(t.Context(), h.doc, PassOptions{})
				// The log says why once per line at most, not once per
				// write whose outcome went unrecorded.
				logs.mu.Lock()
				for _, r := range *logs.records {
					r.Attrs(func(a slog.Attr) bool {
						if n := strings.Count(a.Value.String(), "database or disk is full"); n > 1 {
							t.Errorf("log line %q: %s says %d times that the disk is full, want once", r.Message, a.Key, n)
						}
						return true
					})
				}
				logs.mu.Unlock()
				if err != nil {
					if !strings.Contains(err.Error(), h.db.Path()) || !strings.Contains(err.Error(), "database or disk is full") {
						t.Errorf("error of the pass on a full disk = %v, want one naming %s and saying it is full", err, h.db.Path())
					}
					if res == nil || res.Run.Result != state.RunFailure {
						t.Errorf("result of the pass on a full disk = %+v, want a failure", res)
					}
				}
				if err := h.db.LimitSize(-1); err != nil {
					t.Fatal(err)
				}
				res = h.sync(PassOptions{})
				if res.Run.Result != state.RunSuccess {
					t.Errorf("pass after the disk was freed: %s (%s), want success", res.Run.Result, res.Run.Error)
				}
				if open, err := h.db.OpenIntents(); err != nil || len(open) != 0 {
					t.Errorf("open intents after the disk was freed = %d (%v), want none", len(open), err)
				}
				if n := h.writes(); n != 2*len(contracts) {
					t.Errorf("%d line writes in all, want %d: one per line", n, 2*len(contracts))
				}
				ledger, err := h.db.Ledger(0)
				if err != nil {
					t.Fatal(err)
				}
				entries := map[psa.LineKey]int{}
				for _, le := range ledger {
					entries[psa.LineKey{ContractID: le.ContractID, ServiceID: le.ServiceID}]++
				}
				for _, c := range contracts {
					for s, want := range map[string]int64{h.svcIntercept: 7, h.svcMDR: 3} {
						h.wantUnits(c, s, want)
						if n := entries[psa.LineKey{ContractID: c, ServiceID: s}]; n != 1 {
							t.Errorf("contract %s service %s: %d ledger entries, want 1", c, s, n)
						}
					}
				}
			})
		}
	}
}

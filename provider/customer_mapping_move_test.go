package provider

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// contractsBackend answers contract reads from contracts, in bulk, and
// records the ids of each bulk read.
type contractsBackend struct {
	psa.Backend // unused methods panic
	contracts   map[string]psa.Contract

	mu    sync.Mutex
	reads [][]string
}

func (b *contractsBackend) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	got, err := b.GetContracts(ctx, []string{id})
	if err != nil {
		return nil, err
	}
	if got[id] == nil {
		return nil, psa.ErrNotFound
	}
	return got[id], nil
}

func (b *contractsBackend) GetContracts(_ context.Context, ids []string) (map[string]*psa.Contract, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.reads = append(b.reads, slices.Sorted(slices.Values(ids)))
	out := map[string]*psa.Contract{}
	for _, id := range ids {
		if c, ok := b.contracts[id]; ok {
			out[id] = &c
		}
	}
	return out, nil
}

func (b *contractsBackend) GetServices(context.Context, []string) (map[string]*psa.Service, error) {
	return nil, nil
}

func (b *contractsBackend) GetCompanies(context.Context, []string) (map[string]*psa.Company, error) {
	return nil, nil
}

func mappingModel(contract, next string, usageSync bool) *customerMappingResourceModel {
	m := &customerMappingResourceModel{Source: types.StringValue("sophos"), CustomerID: types.StringValue("cust-1"),
		CompanyID: types.StringValue("174"), ContractID: types.StringValue(contract), NextContractID: types.StringNull(),
		UsageSync: types.BoolValue(usageSync), TicketSync: types.BoolValue(false)}
	if next != "" {
		m.NextContractID = types.StringValue(next)
	}
	return m
}

// TestMovedOffContract: only a plan that moves a billed customer's
// contract_id to another contract, not to its renewal, moves it off one.
func TestMovedOffContract(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		state, plan *customerMappingResourceModel
		want        string
	}{
		{"new mapping", nil, mappingModel("301", "", true), ""},
		{"same contract", mappingModel("300", "", true), mappingModel("300", "", true), ""},
		{"renewal moved into contract_id", mappingModel("300", "301", true), mappingModel("301", "", true), ""},
		{"old contract becomes the renewal", mappingModel("300", "", true), mappingModel("299", "300", true), ""},
		{"usage sync was off", mappingModel("300", "", false), mappingModel("301", "", true), ""},
		{"usage sync turned off", mappingModel("300", "", true), mappingModel("301", "", false), ""},
		{"contract unknown", mappingModel("300", "", true), &customerMappingResourceModel{ContractID: types.StringUnknown(), UsageSync: types.BoolValue(true)}, ""},
		{"moved", mappingModel("300", "", true), mappingModel("301", "", true), "300"},
		{"moved beside a renewal", mappingModel("300", "302", true), mappingModel("301", "", true), "300"},
	} {
		if got := movedOffContract(tc.state, tc.plan); got != tc.want {
			t.Errorf("%s: movedOffContract = %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestMovedOffWarning: a contract the customer moves off warns while it is
// active and has not ended (its lines go on invoicing beside the new
// contract's), naming both contracts and the ways out; an ended or
// inactive one does not.
func TestMovedOffWarning(t *testing.T) {
	t.Parallel()
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	now := time.Date(2026, time.November, 21, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		end    time.Time
		active bool
		want   []string
	}{
		{"no end date", time.Time{}, true, []string{"has no end date"}},
		{"ends later", day(2027, 3, 31), true, []string{"runs until 2027-03-31"}},
		{"ends today", day(2026, 11, 21), true, []string{"runs until 2026-11-21"}},
		{"ended", day(2026, 11, 20), true, nil},
		{"inactive", time.Time{}, false, nil},
	} {
		old := &psa.Contract{ID: "300", Name: "Acme MSP", Active: tc.active, Recurring: true, StartDate: day(2025, 1, 1), EndDate: tc.end}
		summary, detail := movedOffWarning(old, "301", "sophos/cust-1", psa.SystemAutotask, now)
		if tc.want == nil {
			if summary != "" {
				t.Errorf("%s: warning %q (%s), want none", tc.name, summary, detail)
			}
			continue
		}
		if summary != "Previous Contract Still Bills" {
			t.Errorf("%s: summary %q", tc.name, summary)
		}
		for _, want := range append(tc.want, `from contract 300 ("Acme MSP") to contract 301`, "bill the usage twice",
			"psa-syncd holds each line it would add or raise on contract 301", "hold previous_contract",
			"not billed on contract 301 until psa-syncd reads contract 300 ended or its line at 0, or the held line is approved",
			"End contract 300 in Autotask", "then psa-syncd's next pass, which reads contract 300 while it holds such lines, writes them",
			"(psa-syncd sync --approve --customer ID --service ID", `next_contract_id = "301"`,
			"(two customers swap contracts), its usage sets those quantities, and the pass that sets them writes the lines on contract 301 after them") {
			if !strings.Contains(detail, want) {
				t.Errorf("%s: detail %q lacks %q", tc.name, detail, want)
			}
		}
	}
	// Kaseya BMS cannot read lines: psa-syncd reads the old contract's
	// record, and a held line waits for its approval where the old line
	// was set to 0.
	old := &psa.Contract{ID: "300", Name: "Acme MSP", Active: true, Recurring: true, StartDate: day(2025, 1, 1)}
	_, detail := movedOffWarning(old, "301", "sophos/cust-1", psa.SystemKaseyaBMS, now)
	for _, want := range []string{"not billed on contract 301 until psa-syncd reads contract 300 ended before the effective date, or each held line is approved",
		"End contract 300 in Kaseya BMS", "then psa-syncd's next pass, which reads contract 300's record while it holds such lines, writes them once it ended before the changes' effective date",
		"where you set the quantities to 0 instead, approve each held line (psa-syncd sync --approve --customer ID --service ID"} {
		if !strings.Contains(detail, want) {
			t.Errorf("kaseya_bms: detail %q lacks %q", detail, want)
		}
	}
}

// TestCheckMove_warnsInOneBulkRead: the plan of a customer mapping whose
// contract_id moves from a contract that still bills to another warns on
// contract_id, and reads the contract moved off in the bulk read of the new
// one: no request more. A move off an ended contract does not warn.
func TestCheckMove_warnsInOneBulkRead(t *testing.T) {
	t.Parallel()
	now := dayOf(time.Now())
	for _, tc := range []struct {
		name string
		end  time.Time
		warn bool
	}{
		{"still bills", time.Time{}, true},
		{"ended", now.AddDate(0, 0, -1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := &contractsBackend{contracts: map[string]psa.Contract{
				"300": {ID: "300", CompanyID: "174", Name: "Acme MSP", Status: "Active", Active: true, Recurring: true,
					StartDate: now.AddDate(-1, 0, 0), EndDate: tc.end},
				"301": {ID: "301", CompanyID: "174", Name: "Acme Cloud", Status: "Active", Active: true, Recurring: true,
					StartDate: now.AddDate(-1, 0, 0)},
			}}
			r := &customerMappingResource{data: &providerData{backend: b, system: psa.SystemAutotask,
				reads: newPSAReads(b, func(context.Context) *export.Document { return nil })}}
			var diags diag.Diagnostics
			verified := r.checkMove(t.Context(), &diags, mappingModel("300", "", true), mappingModel("301", "", true), "sophos/cust-1")
			if diags.HasError() || !verified {
				t.Fatalf("checkMove = verified %t, %v", verified, diags)
			}
			if !tc.warn {
				if diags.WarningsCount() != 0 {
					t.Errorf("warnings %v, want none", diags)
				}
				return
			}
			if diags.WarningsCount() != 1 {
				t.Fatalf("warnings %v, want one", diags)
			}
			if w := diags.Warnings()[0]; w.Summary() != "Previous Contract Still Bills" || !strings.Contains(w.Detail(), `contract 300 ("Acme MSP")`) {
				t.Errorf("warning = %s: %s", w.Summary(), w.Detail())
			}
			if len(b.reads) != 1 || !slices.Equal(b.reads[0], []string{"300", "301"}) {
				t.Errorf("contract reads %v, want one bulk read of 300 and 301", b.reads)
			}
		})
	}
}

// TestCheckContracts_companyInactive: the plan of a customer mapping whose
// contract belongs to a deactivated company warns, as psa-syncd would fail
// the customer; an active company gets no warning. Kaseya BMS tells it in
// the contract read itself (it joins the account lookup); Autotask and
// ConnectWise in a read of the company beside it, which costs one bulk
// read of companies and no read of a company alone.
func TestCheckContracts_companyInactive(t *testing.T) {
	t.Parallel()
	for _, sys := range testSystems {
		for _, active := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/active=%t", sys, active), func(t *testing.T) {
				t.Parallel()
				e := newTestEnv(t, sys)
				acme := e.addCustomerFixture("Acme")
				e.setCompanyActive(acme.company, active)
				b := e.backend(t)
				r := &customerMappingResource{data: &providerData{backend: b, system: sys,
					reads: providerReads(sys, b, func(context.Context) *export.Document { return nil }, false)}}
				e.sim.ResetRequests()
				var diags diag.Diagnostics
				verified := r.checkContracts(t.Context(), &diags, acme.company, acme.contract, "", "sophos/cust-1")
				if diags.HasError() || !verified {
					t.Fatalf("checkContracts = verified %t, %v", verified, diags)
				}
				if sys != psa.SystemKaseyaBMS {
					var companyReads []string
					for _, rq := range e.sim.Requests() {
						if strings.Contains(strings.ToLower(rq.Path), "compan") {
							companyReads = append(companyReads, rq.Method+" "+rq.Path)
						}
					}
					if len(companyReads) != 1 {
						t.Errorf("company requests %v, want one bulk read", companyReads)
					}
				}
				var inactive []diag.Diagnostic
				for _, w := range diags.Warnings() {
					if w.Summary() == "Inactive PSA Company" {
						inactive = append(inactive, w)
					}
				}
				if active {
					if len(inactive) != 0 {
						t.Errorf("warnings %v, want none about the company", diags)
					}
					return
				}
				if len(inactive) != 1 {
					t.Fatalf("warnings %v, want one about the company", diags)
				}
				if d := inactive[0].Detail(); !strings.Contains(d, "Company "+acme.company+", which contract "+acme.contract) ||
					!strings.Contains(d, "usage_sync = false") {
					t.Errorf("warning detail = %s", d)
				}
			})
		}
	}
}

// TestCheckContracts_companyUnreadable: on Autotask and ConnectWise, where
// a separate read tells whether the contract's company is active, a
// company that cannot be read warns on company_id, naming the mapping and
// the company, instead of passing as if it were active.
func TestCheckContracts_companyUnreadable(t *testing.T) {
	t.Parallel()
	for _, sys := range []psa.System{psa.SystemAutotask, psa.SystemConnectWise} {
		t.Run(string(sys), func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, sys)
			acme := e.addCustomerFixture("Acme")
			companies := "/ATServicesRest/V1.0/Companies*"
			if sys == psa.SystemConnectWise {
				companies = "/" + e.sim.ConnectWise().Codebase() + "apis/3.0/company/companies*"
			}
			e.sim.AddFault(psatest.Fault{Path: companies, Status: http.StatusBadRequest, Body: `{"errors":["no such field"],"code":"InvalidObject","message":"no such field"}`})
			b := e.backend(t)
			r := &customerMappingResource{data: &providerData{backend: b, system: sys,
				reads: providerReads(sys, b, func(context.Context) *export.Document { return nil }, false)}}
			var diags diag.Diagnostics
			verified := r.checkContracts(t.Context(), &diags, acme.company, acme.contract, "", "sophos/cust-1")
			if diags.HasError() || !verified {
				t.Fatalf("checkContracts = verified %t, %v", verified, diags)
			}
			var unverified []diag.Diagnostic
			for _, w := range diags.Warnings() {
				if w.Summary() != "PSA Contract Ends Soon" { // the fixture's contract ends this year
					unverified = append(unverified, w)
				}
			}
			if len(unverified) != 1 {
				t.Fatalf("warnings %v, want one saying the company could not be read", diags)
			}
			w := unverified[0]
			p, _ := w.(diag.DiagnosticWithPath)
			if w.Summary() != "Unable to Verify PSA Company" || p == nil || !p.Path().Equal(path.Root("company_id")) ||
				!strings.Contains(w.Detail(), "company "+acme.company+" of customer mapping sophos/cust-1 is active") {
				t.Errorf("warning %s on %v: %s", w.Summary(), p, w.Detail())
			}
		})
	}
}

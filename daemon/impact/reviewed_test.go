package impact

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestReport_Differences: the apply job stops when the billing change it
// would apply is not the one reviewed: another line, customer or product
// changes, or a line changes in another way (who sets it, through which
// customer, at which price); never for quantities and amounts alone, which
// move with usage between the review and the merge.
func TestReport_Differences(t *testing.T) {
	t.Parallel()
	price := func(p float64) *float64 { return &p }
	units := func(n int64) *int64 { return &n }
	reviewed := func() *Report {
		return &Report{
			System: psa.SystemAutotask, Period: "2026-12", PlanChanges: true,
			Totals: Totals{MonthlyDelta: 225, Up: 1},
			Lines: []Line{{
				Source: "sophos", CustomerID: "acme", CustomerName: "Acme", ContractID: "29684000",
				ServiceID: "(known after apply)", ServiceName: "Sophos MDR", NewService: true,
				Now: units(0), Current: units(0), Proposed: units(25), ProposedSynced: true,
				ProposedUnitPrice: price(9), MonthlyDelta: price(225),
			}},
			UsageSync:   []SyncChange{{Source: "sophos", CustomerID: "beta", Starts: true}},
			NewlyBilled: []UsageChange{{Kind: "product", ID: "mdr", Quantity: 25}},
		}
	}
	for _, tt := range []struct {
		name   string
		change func(r *Report)
		want   []string
	}{
		{"units and amounts moved with usage", func(r *Report) {
			r.Period, r.Totals.MonthlyDelta = "2027-01", 270
			r.Lines[0].Proposed, r.Lines[0].MonthlyDelta = units(30), price(270)
			r.NewlyBilled[0].Quantity = 30
		}, nil},
		{"another line", func(r *Report) {
			l := r.Lines[0]
			l.CustomerID, l.ContractID = "beta", "29684001"
			r.Lines = append(r.Lines, l)
		}, []string{`contract line sophos/beta contract 29684001 service new service "Sophos MDR": changes now (set by psa-syncd no → yes, unit price 9), not in the reviewed report`}},
		{"a line no longer changes", func(r *Report) { r.Lines = nil }, []string{
			`contract line sophos/acme contract 29684000 service new service "Sophos MDR": changed in the reviewed report (set by psa-syncd no → yes, unit price 9), no longer changes`,
		}},
		{"another price", func(r *Report) { r.Lines[0].ProposedUnitPrice = price(12) }, []string{
			`contract line sophos/acme contract 29684000 service new service "Sophos MDR": set by psa-syncd no → yes, unit price 12, reviewed set by psa-syncd no → yes, unit price 9`,
		}},
		{"the usage sync stops instead", func(r *Report) { r.UsageSync[0].Starts = false }, []string{
			"customer sophos/beta: usage sync stops, reviewed usage sync starts",
		}},
		{"another product unmapped", func(r *Report) { r.Unmapped = []UsageChange{{Kind: "product", ID: "xdr", Quantity: 3}} }, []string{
			"unmapped product xdr: changes now, not in the reviewed report",
		}},
		{"the integration switched off", func(r *Report) { r.Integration = "off" }, []string{
			"integration switched: off, reviewed not switched",
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			now := reviewed()
			tt.change(now)
			if got := now.Differences(reviewed()); !slices.Equal(got, tt.want) {
				t.Errorf("Differences =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestReadReport: the JSON of a report reads back as the report, for its
// differences; anything else is refused, not read as a report that
// changes nothing.
func TestReadReport(t *testing.T) {
	t.Parallel()
	r := &Report{System: psa.SystemConnectWise, Lines: []Line{{Source: "sophos", CustomerID: "acme", ContractID: "7", ServiceID: "12", ProposedSynced: true}}}
	var b bytes.Buffer
	if err := Write(&b, r, FormatJSON); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(b.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if d := r.Differences(back); len(d) > 0 {
		t.Errorf("a report read back from its JSON differs: %q", d)
	}
	for _, data := range []string{`{"format_version": "1.2", "resource_changes": []}`, "### psa-sync billing impact", ""} {
		if _, err := ReadReport([]byte(data)); err == nil || !strings.Contains(err.Error(), "not the JSON of a billing impact report") {
			t.Errorf("ReadReport(%q) = %v, want it refused", data, err)
		}
	}
}

package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// TestCheckPublishedFields: a field written that an entry of psa-syncd's
// published list lacks fails the plan when the entry was confirmed within
// export.ReadersFresh (a time ahead of the provider's clock included), and
// names every such version; only older entries, or a list without a time
// (a psa-syncd before dated entries), warn, naming their age. Fields that
// every entry reads say nothing.
func TestCheckPublishedFields(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	all := export.ReaderFields()
	var without []string
	for _, f := range all {
		if f != "customer_mappings.next_contract_id" {
			without = append(without, f)
		}
	}
	written := []string{"schema", "customer_mappings", "customer_mappings.next_contract_id"}
	current := export.Reader{Version: "2.0.0", Fields: all, Confirmed: now.Add(-time.Hour)}
	for _, tc := range []struct {
		name           string
		readers        []export.Reader
		errors, warned bool
		want           []string
	}{
		{"all read it", []export.Reader{current, {Version: "2.1.0", Fields: all, Confirmed: now.Add(-10 * 24 * time.Hour)}}, false, false, nil},
		{"recent entry lacks it", []export.Reader{current, {Version: "1.8.0", Fields: without, Confirmed: now.Add(-export.ReadersFresh)}}, true, false,
			[]string{"psa-syncd 1.8.0, which confirmed it 3 days ago (2026-12-04T09:00:00Z)"}},
		{"clock ahead", []export.Reader{{Fields: without, Confirmed: now.Add(time.Hour)}}, true, false,
			[]string{"psa-syncd, which confirmed it 0 minutes ago"}},
		{"two recent entries lack it", []export.Reader{
			{Version: "1.8.0", Fields: without, Confirmed: now.Add(-30 * time.Minute)},
			{Version: "1.7.0", Fields: without, Confirmed: now.Add(-5 * time.Hour)},
			{Version: "1.6.0", Fields: without, Confirmed: now.Add(-4 * 24 * time.Hour)},
		}, true, false, []string{"psa-syncd 1.8.0, which confirmed it 30 minutes ago", "; psa-syncd 1.7.0, which confirmed it 5 hours ago"}},
		{"old entry lacks it", []export.Reader{current, {Version: "1.8.0", Fields: without, Confirmed: now.Add(-export.ReadersFresh - time.Second)}}, false, true,
			[]string{"Not Seen Lately", "psa-syncd 1.8.0, which confirmed it 3 days ago", "older than 14 days"}},
		{"list without a time", []export.Reader{{Fields: without}}, false, true,
			[]string{"Not Seen Lately", "a list without a date or version"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &providerData{exportPath: "/data/psa-mappings.json"}
			var diags diag.Diagnostics
			d.checkPublishedFields(&diags, written, tc.readers, "customer mapping sophos/acme-1", func(field string) (path.Path, bool) {
				return path.Root("next_contract_id"), field == "customer_mappings.next_contract_id"
			}, now)
			if diags.HasError() != tc.errors || (diags.WarningsCount() > 0) != tc.warned || len(diags) > 1 {
				t.Fatalf("diagnostics = %v, want errors %v, warnings %v, one at most", diags, tc.errors, tc.warned)
			}
			if len(diags) == 0 {
				return
			}
			text := diags[0].Summary() + ": " + diags[0].Detail()
			for _, want := range append(tc.want, "customer_mappings.next_contract_id", "/data/psa-mappings.json.readers") {
				if !strings.Contains(text, want) {
					t.Errorf("diagnostic = %q, want it to say %q", text, want)
				}
			}
			if strings.Contains(text, "1.6.0") {
				t.Errorf("diagnostic %q names an entry older than export.ReadersFresh beside recent ones", text)
			}
		})
	}
}

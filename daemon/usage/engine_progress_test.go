package usage

import (
	"context"
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
)

// pagedSource is the harness's usage file read as a source that reports
// three pages read (source.PageRead), as the Sophos source does per page
// of a large partner's report, and records
// psa_sync_pass_progress_timestamp_seconds before the first page and after
// each: what PsaSyncScheduledRunMissed sees while the pass reads.
type pagedSource struct {
	source.Source
	m    *Metrics
	seen []float64
}

func (s *pagedSource) Fetch(ctx context.Context, p source.Period) (*source.Report, error) {
	s.seen = append(s.seen, testutil.ToFloat64(s.m.PassProgress))
	for range 3 {
		source.PageRead(ctx)
		s.seen = append(s.seen, testutil.ToFloat64(s.m.PassProgress))
	}
	return s.Source.Fetch(ctx, p)
}

// TestEngine_Sync_passProgress: psa_sync_pass_progress_timestamp_seconds
// is the time of the last page read or line written by the running pass
// over all customers, so that a pass reading a large report for over an
// hour before its first write is not taken for a missed one (the rule
// looked at line writes only). The pass's start is no progress (a pass
// started late that hangs before its first read is missed an hour after
// its due time, not an hour after it started, as the reset of
// psa_sync_pass_lines_done to 0 made it), and a pass for one customer or a
// dry run sets none: a "sync -customer" leaves the scheduled pass due and
// must not silence its alert. It is 0 again once the pass has ended.
func TestEngine_Sync_passProgress(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	now := unixSeconds(etNow)
	for _, tc := range []struct {
		name string
		o    PassOptions
		want []float64
	}{
		{"pass over all customers", PassOptions{Trigger: TriggerSchedule}, []float64{0, now, now, now}},
		{"pass for one customer", PassOptions{Customer: "cust-a"}, []float64{0, 0, 0, 0}},
		{"dry run", PassOptions{DryRun: true}, []float64{0, 0, 0, 0}},
	} {
		src, err := file.New(file.Config{Path: h.usage})
		if err != nil {
			t.Fatal(err)
		}
		paged := &pagedSource{Source: src, m: h.m}
		e := NewEngine(EngineOptions{Backend: h.be, Source: paged, State: h.db, Policies: h.pol, Metrics: h.m, Location: etNow.Location(), Now: h.clock, Unsaved: &h.unsaved})
		if _, err := e.Sync(t.Context(), h.doc, tc.o); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(paged.seen, tc.want) {
			t.Errorf("%s: psa_sync_pass_progress_timestamp_seconds before and after each page read = %v, want %v", tc.name, paged.seen, tc.want)
		}
		if got := testutil.ToFloat64(h.m.PassProgress); got != 0 {
			t.Errorf("%s: psa_sync_pass_progress_timestamp_seconds after the pass = %v, want 0", tc.name, got)
		}
	}
}

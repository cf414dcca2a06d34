package usage

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/psa"
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

// slowChecks is a PSA backend whose contract reads, alone (it has no
// bulk reads: Kaseya BMS's shape), take an hour: the first moves the
// clock an hour on. It records psa_sync_pass_progress_timestamp_seconds
// at each line write, before that write counts: what the plan's contract
// checks, which come after the reads of contract lines, left it at.
type slowChecks struct {
	psa.Backend
	m    *Metrics
	late *atomic.Bool
	seen []float64
}

func (b *slowChecks) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	b.late.Store(true)
	return b.Backend.GetContract(ctx, id)
}

func (b *slowChecks) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	b.seen = append(b.seen, testutil.ToFloat64(b.m.PassProgress))
	return b.Backend.SetQuantity(ctx, req)
}

// TestEngine_Sync_contractChecksProgress: the contract reads of the plan's
// checks are progress, so that a plan phase checking thousands of
// contracts one by one for over an hour (at Kaseya BMS's 1,500 calls an
// hour) after its reads of contract lines is not taken for a missed pass.
func TestEngine_Sync_contractChecksProgress(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	late := &atomic.Bool{}
	h.now = func() time.Time {
		if late.Load() {
			return etNow.Add(time.Hour)
		}
		return etNow
	}
	be := &slowChecks{Backend: h.be, m: h.m, late: late}
	src, err := file.New(file.Config{Path: h.usage})
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(EngineOptions{Backend: be, Source: src, State: h.db, Policies: h.pol, Metrics: h.m, Location: etNow.Location(), Now: h.clock, Unsaved: &h.unsaved})
	if _, err := e.Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule}); err != nil {
		t.Fatal(err)
	}
	if want := unixSeconds(etNow.Add(time.Hour)); len(be.seen) == 0 || be.seen[0] != want {
		t.Errorf("psa_sync_pass_progress_timestamp_seconds at the first line write = %v, want %v (the contract checks' reads)", be.seen, want)
	}
}

package usage

import (
	"context"
	"slices"
	"sync"
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
// must not silence its alert. It is 0 again once the pass has ended. The
// backend has no bulk reads (Kaseya BMS's shape), so that the pass reads
// nothing of the PSA before the usage: the reads of its plan's checks
// before it are progress (TestEngine_Sync_planReadsProgress).
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
		if _, err := h.engineWith(struct{ psa.Backend }{h.be}, paged).Sync(t.Context(), h.doc, tc.o); err != nil {
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

// progressAtWrites is the harness's PSA backend, recording
// psa_sync_pass_progress_timestamp_seconds at each line write, before that
// write counts: what the reads before the writes left it at. The backends
// that embed it make one of those reads take an hour (it moves the clock an
// hour on, through late).
type progressAtWrites struct {
	psa.Backend
	m    *Metrics
	late *atomic.Bool
	seen []float64
}

func (b *progressAtWrites) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	b.seen = append(b.seen, testutil.ToFloat64(b.m.PassProgress))
	return b.Backend.SetQuantity(ctx, req)
}

// checkProgressAtFirstWrite runs a scheduled pass over two customers on the
// backend that slow builds around the harness's, whose slow read moves the
// clock an hour on, and checks that the gauge read that hour at the first
// line write: the read, named by what, is progress.
func checkProgressAtFirstWrite(t *testing.T, slow func(*progressAtWrites) psa.Backend, what string) {
	t.Helper()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	late := &atomic.Bool{}
	h.now = func() time.Time {
		if late.Load() {
			return etNow.Add(time.Hour)
		}
		return etNow
	}
	rec := &progressAtWrites{Backend: h.be, m: h.m, late: late}
	if _, err := h.engineWith(slow(rec), nil).Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule}); err != nil {
		t.Fatal(err)
	}
	if want := unixSeconds(etNow.Add(time.Hour)); len(rec.seen) == 0 || rec.seen[0] != want {
		t.Errorf("psa_sync_pass_progress_timestamp_seconds at the first line write = %v, want %v (%s)", rec.seen, want, what)
	}
}

// slowChecks is a PSA backend whose contract reads, alone (it has no
// bulk reads: Kaseya BMS's shape), take an hour: what the plan's contract
// checks, which come after the reads of contract lines, leave the gauge at.
type slowChecks struct{ *progressAtWrites }

func (b slowChecks) GetContract(ctx context.Context, id string) (*psa.Contract, error) {
	b.late.Store(true)
	return b.Backend.GetContract(ctx, id)
}

// TestEngine_Sync_contractChecksProgress: the contract reads of the plan's
// checks are progress, so that a plan phase checking thousands of
// contracts one by one for over an hour (at Kaseya BMS's 1,500 calls an
// hour) after its reads of contract lines is not taken for a missed pass.
func TestEngine_Sync_contractChecksProgress(t *testing.T) {
	t.Parallel()
	checkProgressAtFirstWrite(t, func(b *progressAtWrites) psa.Backend { return slowChecks{b} }, "the contract checks' reads")
}

// next read.
type slowPlanReads struct {
	psa.Backend
	br    psa.BulkReader
	m     *Metrics
	hours *atomic.Int64

	mu    sync.Mutex
	last  string   // the read that moved the clock, until the next call
	read  []string // every read that moved the clock
	stale []string // the reads that the gauge did not follow
}

// called records, at the start of a call, whether the gauge followed the
// read before it.
func (b *slowPlanReads) called() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.last != "" && testutil.ToFloat64(b.m.PassProgress) != unixSeconds(etNow.Add(time.Duration(b.hours.Load())*time.Hour)) {
		b.stale = append(b.stale, b.last)
	}
	b.last = ""
}

// took moves the clock on after a read that got an answer.
func (b *slowPlanReads) took(read string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hours.Add(1)
	b.last = read
	b.read = append(b.read, read)
}

func (b *slowPlanReads) GetContracts(ctx context.Context, ids []string) (map[string]*psa.Contract, error) {
	b.called()
	got, err := b.br.GetContracts(ctx, ids)
	if err == nil {
		b.took("GetContracts")
	}
	return got, err
}

func (b *slowPlanReads) GetCompanies(ctx context.Context, ids []string) (map[string]*psa.Company, error) {
	b.called()
	got, err := b.br.GetCompanies(ctx, ids)
	if err == nil {
		b.took("GetCompanies")
	}
	return got, err
}

func (b *slowPlanReads) GetServices(ctx context.Context, ids []string) (map[string]*psa.Service, error) {
	b.called()
	got, err := b.br.GetServices(ctx, ids)
	if err == nil {
		delete(got, ids[0])
		b.took("GetServices")
	}
	return got, err
}

func (b *slowPlanReads) GetService(ctx context.Context, id string) (*psa.Service, error) {
	b.called()
	s, err := b.Backend.GetService(ctx, id)
	if err == nil {
		b.took("GetService")
	}
	return s, err
}

func (b *slowPlanReads) ReadLines(ctx context.Context, ids []string, asOf time.Time) ([]psa.ContractLine, error) {
	b.called()
	return b.Backend.ReadLines(ctx, ids, asOf)
}

func (b *slowPlanReads) SetQuantity(ctx context.Context, req psa.SetQuantityRequest) (*psa.ContractLine, error) {
	b.called()
	return b.Backend.SetQuantity(ctx, req)
}

// TestEngine_Sync_planReadsProgress: every read of the plan's checks that
// gets an answer is progress, as the contract reads are
// (TestEngine_Sync_contractChecksProgress): the bulk reads of the
// contracts' records (end dates), of their companies and of the mapped
// services, and a service read alone, so that a long plan phase is not
// taken for a missed pass.
func TestEngine_Sync_planReadsProgress(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,7")
	hours := &atomic.Int64{}
	h.now = func() time.Time { return etNow.Add(time.Duration(hours.Load()) * time.Hour) }
	br, ok := h.be.(psa.BulkReader)
	if !ok {
		t.Fatal("the harness's backend has no bulk reads")
	}
	be := &slowPlanReads{Backend: h.be, br: br, m: h.m, hours: hours}
	if _, err := h.engineWith(be, nil).Sync(t.Context(), h.doc, PassOptions{Trigger: TriggerSchedule}); err != nil {
		t.Fatal(err)
	}
	for _, read := range []string{"GetContracts", "GetCompanies", "GetServices", "GetService"} {
		if !slices.Contains(be.read, read) {
			t.Errorf("the pass made no %s; reads %v", read, be.read)
		}
	}
	if len(be.stale) > 0 {
		t.Errorf("psa_sync_pass_progress_timestamp_seconds did not follow the reads %v (of %v)", be.stale, be.read)
	}
}

// slowBudget is the harness's PSA backend whose read of the hourly budget
// (Autotask's threshold information) takes an hour.
type slowBudget struct{ *progressAtWrites }

func (b slowBudget) Budget(context.Context) (*psa.Budget, error) {
	b.late.Store(true)
	return &psa.Budget{Limit: 10000, Used: 100, Timeframe: time.Hour}, nil
}

// TestEngine_Sync_budgetReadProgress: a read of the PSA's hourly budget
// that gets an answer (before the first write, and again near the
// reserve) is progress, as the plan's reads are, so that a pass whose
// writes wait on budget reads for an hour is not taken for a missed one
// (audit-source13: the budget reads were not progress).
func TestEngine_Sync_budgetReadProgress(t *testing.T) {
	t.Parallel()
	checkProgressAtFirstWrite(t, func(b *progressAtWrites) psa.Backend { return slowBudget{b} }, "the budget read")
}

package daemon

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestStoredPlanJSON checks that the last plan survives the state
// database's snapshot in compressed columns, and that snapshots written
// before (the plan's JSON compressed, and the plan as JSON) still restore.
func TestStoredPlanJSON(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff, Customers: 1, RunID: 3,
		Changes: []usage.Change{{ChangeCustomer: &usage.ChangeCustomer{Source: "file", CustomerID: "acme", ContractID: "1"},
			ChangeService: &usage.ChangeService{ServiceID: "2", Products: []string{"P"}},
			Current:       1, CurrentKnown: true, Desired: 2, EffectiveDate: eff, Action: usage.ActionUpdate, Reason: "usage 2 (P 2)"}},
		Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}},
	}
	want := storedPlan{Customer: "acme", Plan: p}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"plan_columns":`) || strings.Contains(string(data), "usage 2") {
		t.Errorf("stored plan is not compressed columns: %s", data)
	}
	planJSON, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(planJSON); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	gzipped, err := json.Marshal(map[string]any{"customer": "acme", "plan_gzip": z.Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	old, err := json.Marshal(map[string]any{"customer": "acme", "plan": p})
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"columns": data, "compressed JSON": gzipped, "JSON": old} {
		var got storedPlan
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: restored %+v, want %+v", name, got, want)
		}
	}
	var none storedPlan
	if err := json.Unmarshal([]byte(`{"customer":"","plan":null}`), &none); err != nil || none.Plan != nil {
		t.Errorf("restoring no plan: %+v, %v", none, err)
	}
	var damaged storedPlan
	if err := json.Unmarshal([]byte(`{"customer":"","plan_columns":"bm90IGd6aXA="}`), &damaged); err == nil || !strings.Contains(err.Error(), "the last plan") {
		t.Errorf("restoring columns that are not gzip: %v, want an error about the last plan", err)
	}
}

// TestStoredPlanJSON_decompressedTooLarge: a stored plan that decompresses
// to more than maxStoredPlan (a damaged row, or one not psa-syncd's: gzip
// members of zeros, some 300 KB, decompress to GBs) is refused with an
// error naming the snapshot and the cap, after reading no more than the
// cap, in both compressed forms. RestoreMetrics reports it and restores
// the rest. Before, it was decompressed whole into memory.
func TestStoredPlanJSON_decompressedTooLarge(t *testing.T) {
	t.Parallel()
	var member bytes.Buffer
	zw, err := gzip.NewWriterLevel(&member, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := zw.Write(make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	// Members one after another are one stream: 1 MiB more each.
	bomb := bytes.Repeat(member.Bytes(), maxStoredPlan>>20+1)
	const want = "the last plan: it decompresses to more than 256 MiB, the most psa-syncd reads of a stored plan: " +
		"the state database's snapshot last_plan is damaged or was not written by psa-syncd"
	for _, field := range []string{"plan_columns", "plan_gzip"} {
		data, err := json.Marshal(map[string]any{"customer": "", field: bomb})
		if err != nil {
			t.Fatal(err)
		}
		var got storedPlan
		if err := json.Unmarshal(data, &got); err == nil || err.Error() != want {
			t.Errorf("%s decompressing to %d MiB: %v, want %q", field, maxStoredPlan>>20+1, err, want)
		}
	}

	e := dtSetup(t, dtOptions{})
	if err := e.d.db.PutSnapshot(lastPlanSnapshot, map[string]any{"customer": "", "plan_columns": bomb}); err != nil {
		t.Fatal(err)
	}
	err = e.d.RestoreMetrics()
	if err == nil || !strings.Contains(err.Error(), "the last plan was not restored") || !strings.Contains(err.Error(), want) {
		t.Errorf("RestoreMetrics with a stored plan over the cap = %v, want the last plan not restored: %s", err, want)
	}
	if e.d.plans.held() {
		t.Error("a stored plan over the cap was restored")
	}
}

// TestStoredPlanJSON_parts checks that the columns of a large plan are
// compressed in parts of planPartBytes, a gzip member each, and restore
// whole from them.
func TestStoredPlanJSON_parts(t *testing.T) {
	t.Parallel()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	const n = 50_000
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff, Customers: n,
		Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}}}
	svc := &usage.ChangeService{ServiceID: "2", Products: []string{"P"}}
	for i := range n {
		p.Changes = append(p.Changes, usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "file", CustomerID: fmt.Sprintf("c%05d", i), ContractID: fmt.Sprint(i)},
			ChangeService: svc, Current: int64(i), CurrentKnown: true, Desired: int64(i), EffectiveDate: eff, Action: usage.ActionUnchanged, Reason: fmt.Sprintf("usage %d (P %d)", i, i)})
	}
	cols, err := p.MarshalColumns()
	if err != nil {
		t.Fatal(err)
	}
	if len(cols) < 2*planPartBytes {
		t.Fatalf("the test plan's columns are %d bytes, want at least two parts of %d", len(cols), planPartBytes)
	}
	want := storedPlan{Plan: p}
	data, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	var raw storedPlanJSON
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	members := 0
	br := bufio.NewReader(bytes.NewReader(raw.PlanColumns))
	zr, err := gzip.NewReader(br)
	for err == nil {
		zr.Multistream(false)
		if _, err = io.Copy(io.Discard, zr); err != nil {
			t.Fatal(err)
		}
		members++
		err = zr.Reset(br)
	}
	if err != io.EOF {
		t.Fatal(err)
	}
	if wantMembers := (len(cols) + planPartBytes - 1) / planPartBytes; members != wantMembers {
		t.Errorf("the stored plan has %d gzip members, want %d (one per part of %d bytes of %d)", members, wantMembers, planPartBytes, len(cols))
	}
	var got storedPlan
	if err := json.Unmarshal(data, &got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("restored plan differs: %d changes, want %d", len(got.Plan.Changes), len(p.Changes))
	}
}

// BenchmarkStoredPlan measures the last plan's snapshot at 100,000 lines
// (20,000 customers × 5 services, as BenchmarkSyncLarge): writing it after
// a pass (marshal) and reading it back at start-up (restore).
//
//	go test -run '^$' -bench BenchmarkStoredPlan -benchtime 10x ./daemon/
func BenchmarkStoredPlan(b *testing.B) {
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: eff, ComputedAt: eff, Customers: 20_000,
		Unmapped: usage.Unmapped{Customers: []usage.UnmappedCustomer{}, Products: []usage.UnmappedProduct{}, Unassigned: []source.Record{}}}
	var services []*usage.ChangeService
	for s := range 5 {
		services = append(services, &usage.ChangeService{ServiceID: fmt.Sprint(1000 + s), ServiceName: fmt.Sprintf("Service %d", s), Products: []string{fmt.Sprintf("P%d", s)}})
	}
	for c := range 20_000 {
		cu := &usage.ChangeCustomer{Source: "file", CustomerID: fmt.Sprintf("customer-%05d", c), CustomerName: fmt.Sprintf("Customer %05d", c),
			CompanyID: fmt.Sprint(30000 + c), ContractID: fmt.Sprint(50000 + c)}
		for s, svc := range services {
			q := int64(c%97 + s)
			p.Changes = append(p.Changes, usage.Change{ChangeCustomer: cu, ChangeService: svc, Current: q, CurrentKnown: true, Desired: q,
				EffectiveDate: eff, Action: usage.ActionUnchanged, Reason: fmt.Sprintf("usage %d (P%d %d)", q, s, q)})
		}
	}
	data, err := json.Marshal(storedPlan{Plan: p})
	if err != nil {
		b.Fatal(err)
	}
	b.Run("marshal", func(b *testing.B) {
		for b.Loop() {
			if _, err := json.Marshal(storedPlan{Plan: p}); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(data)), "bytes")
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			var s storedPlan
			if err := json.Unmarshal(data, &s); err != nil || len(s.Plan.Changes) != len(p.Changes) {
				b.Fatalf("restored %v, %v", s.Plan != nil, err)
			}
		}
	})
}

// TestPlanMemory_customerPassOfAnotherPeriod: a pass for one customer
// merges its lines into the last full pass's plan of the same period, but
// replaces a plan of another period (or effective date): merged, its lines
// would show under the full pass's period, effective date and run.
func TestPlanMemory_customerPassOfAnotherPeriod(t *testing.T) {
	t.Parallel()
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	dec1 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	change := func(customer string, eff time.Time) usage.Change {
		return usage.Change{ChangeCustomer: &usage.ChangeCustomer{Source: "file", CustomerID: customer, ContractID: customer},
			ChangeService: &usage.ChangeService{ServiceID: "2"}, EffectiveDate: eff, Action: usage.ActionUpdate}
	}
	full := &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, ComputedAt: time.Date(2026, 11, 30, 20, 0, 0, 0, time.UTC), RunID: 3,
		Changes: []usage.Change{change("a", nov1), change("b", nov1)}}

	var same planMemory
	same.record(full, "")
	same.record(&usage.Plan{Period: full.Period, EffectiveDate: nov1, RunID: 4, Changes: []usage.Change{change("b", nov1)}}, "b")
	if p, ok := same.get(""); !ok || len(p.Changes) != 2 || p.RunID != 3 {
		t.Errorf("after a pass for b in the same period, the last plan is %+v, want the full pass's with b's lines merged", p)
	}

	var next planMemory
	next.record(full, "")
	next.record(&usage.Plan{Period: source.Period{Year: 2026, Month: 12}, EffectiveDate: dec1, RunID: 4, Changes: []usage.Change{change("b", dec1)}}, "b")
	p, ok := next.get("b")
	if !ok || p.RunID != 4 || !p.EffectiveDate.Equal(dec1) || len(p.Changes) != 1 {
		t.Errorf("after a pass for b in December, b's last plan is %+v, want run 4's, effective %s", p, dec1.Format(time.DateOnly))
	}
	if _, ok := next.get("a"); ok {
		t.Error("after a pass for b in December, a's November lines are still shown as the last plan")
	}
}

// TestPlanMemory_freshPlanKeepsNewer: a plan that no pass made (POST
// /api/v1/plan) replaces the last plan only when no plan read later was
// recorded while it was computed, a customer's pass merged into the full
// pass's plan included.
func TestPlanMemory_freshPlanKeepsNewer(t *testing.T) {
	t.Parallel()
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	at := func(minute int) time.Time { return time.Date(2026, 11, 30, 20, minute, 0, 0, time.UTC) }
	plan := func(run int64, computed time.Time) *usage.Plan {
		return &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, ComputedAt: computed, RunID: run, Changes: []usage.Change{}}
	}
	var m planMemory
	if !m.recordFresh(plan(0, at(0))) {
		t.Error("a fresh plan was not kept with no plan recorded")
	}
	m.record(plan(3, at(10)), "")
	if m.recordFresh(plan(0, at(5))) {
		t.Error("a fresh plan read before the last pass replaced its plan")
	}
	if p, _ := m.get(""); p.RunID != 3 {
		t.Errorf("the last plan is run %d's, want run 3's", p.RunID)
	}
	m.record(plan(4, at(20)), "b") // merged: the plan stays run 3's, computed at 20:10
	if m.recordFresh(plan(0, at(15))) {
		t.Error("a fresh plan read before a customer's pass replaced the plan that pass merged into")
	}
	if !m.recordFresh(plan(0, at(25))) {
		t.Error("a fresh plan read after the last pass was not kept")
	}
	if p, _ := m.get(""); p.RunID != 0 || !p.ComputedAt.Equal(at(25)) {
		t.Errorf("the last plan is %+v, want the fresh plan of 20:25", p)
	}
}

// TestPlanMemory_restoreKeepsARecordedPlan: a stored plan restored into a
// memory that a pass recorded a plan into meanwhile (read before that
// pass stored its own) does not replace it; into an empty memory it does.
func TestPlanMemory_restoreKeepsARecordedPlan(t *testing.T) {
	t.Parallel()
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	plan := func(run int64, minute int) *usage.Plan {
		return &usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1,
			ComputedAt: time.Date(2026, 11, 30, 20, minute, 0, 0, time.UTC), RunID: run, Changes: []usage.Change{}}
	}
	var m planMemory
	m.restore(storedPlan{Plan: plan(1, 0)})
	if p, ok := m.get(""); !ok || p.RunID != 1 {
		t.Fatalf("an empty memory restored = %+v, %v; want run 1's plan", p, ok)
	}
	m.record(plan(2, 10), "")
	m.restore(storedPlan{Plan: plan(1, 0)})
	if p, _ := m.get(""); p.RunID != 2 {
		t.Errorf("after restoring the stored plan read before run 2 stored its own, the last plan is run %d's, want run 2's", p.RunID)
	}
}

// TestPlanMemory_contractsEnding: a pass for one customer replaces that
// customer's entry among the contracts ending of the last full pass's plan
// (a renewal mapped and synced alone no longer shows as ending), and a
// customer's plan shows only its own.
func TestPlanMemory_contractsEnding(t *testing.T) {
	t.Parallel()
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	end := time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)
	ending := func(customer string) usage.ContractEnding {
		return usage.ContractEnding{Source: "file", CustomerID: customer, ContractID: customer, EndDate: end, When: usage.EndingNextMonth}
	}
	var m planMemory
	m.record(&usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, RunID: 3,
		ContractsEnding: []usage.ContractEnding{ending("a"), ending("b")}}, "")
	if p, ok := m.get("b"); !ok || len(p.ContractsEnding) != 1 || p.ContractsEnding[0].CustomerID != "b" {
		t.Errorf("b's plan lists contracts ending %+v, want b's only", p.ContractsEnding)
	}
	m.record(&usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, RunID: 4}, "b")
	if p, ok := m.get(""); !ok || len(p.ContractsEnding) != 1 || p.ContractsEnding[0].CustomerID != "a" {
		t.Errorf("after a pass for b whose contract no longer ends, the plan lists contracts ending %+v, want a's only", p.ContractsEnding)
	}
}

// TestPlanMemory_renewals: a pass for one customer replaces its renewal in
// the last plan, and a customer's plan shows its own.
func TestPlanMemory_renewals(t *testing.T) {
	t.Parallel()
	nov1 := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	renewal := func(customer, billsTo string) usage.ContractRenewal {
		return usage.ContractRenewal{Source: "file", CustomerID: customer, ContractID: customer + "1", NextContractID: customer + "2", BillsTo: billsTo}
	}
	var m planMemory
	m.record(&usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, RunID: 3,
		Renewals: []usage.ContractRenewal{renewal("a", "a1"), renewal("b", "b1")}}, "")
	if p, ok := m.get("b"); !ok || len(p.Renewals) != 1 || p.Renewals[0].CustomerID != "b" {
		t.Errorf("b's plan lists renewals %+v, want b's only", p.Renewals)
	}
	m.record(&usage.Plan{Period: source.Period{Year: 2026, Month: 11}, EffectiveDate: nov1, RunID: 4}, "b")
	if p, ok := m.get(""); !ok || len(p.Renewals) != 1 || p.Renewals[0].CustomerID != "a" {
		t.Errorf("after a pass for b whose renewal was moved into contract_id, the plan lists renewals %+v, want a's only", p.Renewals)
	}
}

// TestGzipParts checks the parts' members come back in the order the parts
// were written, whatever order they finish in, that nothing written still
// makes one (empty) member, and that the writer's own error wins.
func TestGzipParts(t *testing.T) {
	t.Parallel()
	data := make([]byte, 10_000)
	for i := range data {
		data[i] = byte(i * 7 % 251)
	}
	g := newGzipParts(999, 3)
	for k := 0; k < len(data); k += 37 {
		if _, err := g.Write(data[k:min(k+37, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	z, err := g.close(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := gunzip(z); err != nil || !bytes.Equal(got, data) {
		t.Errorf("the members decompress to %d bytes (%v), want the %d written in order", len(got), err, len(data))
	}

	z, err = newGzipParts(999, 3).close(nil)
	if got, gerr := gunzip(z); err != nil || gerr != nil || len(got) != 0 {
		t.Errorf("nothing written: %d bytes (%v, %v), want an empty gzip stream", len(got), err, gerr)
	}

	failing := errors.New("the plan did not encode")
	g = newGzipParts(999, 3)
	_, _ = g.Write(data)
	if z, err := g.close(failing); !errors.Is(err, failing) || z != nil {
		t.Errorf("close(%v) = %d bytes, %v; want the error and nothing", failing, len(z), err)
	}
}

// TestRestorePlan_olderVersionsTexts: a last plan that a psa-syncd older
// than schema version 12 wrote into a shared PostgreSQL database after the
// migration to 13 rewrote the plans (a rolling upgrade, until the older
// leader steps down) named the state database in a failure's error and in
// writes_held; restored, GET /api/v1/plan served it so, without
// credentials. It is now served as the migration would have rewritten it.
func TestRestorePlan_olderVersionsTexts(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{token: dtToken})
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	const named = "state: recording the statuses in PostgreSQL database \"psa\" on db-old.internal:5433: " +
		"failed to connect to `user=psa_billing database=psa`: dial tcp: connection refused"
	p := &usage.Plan{Period: source.Period{Year: 2026, Month: time.November}, ComputedAt: time.Now().UTC(), WritesHeld: "restored from /srv/old/psa-syncd.db",
		Failures: []usage.Failure{{Source: "file", CustomerID: "cust-acme", ContractID: "1", Error: named}}}
	if err := e.d.db.PutSnapshot(lastPlanSnapshot, storedPlan{Plan: p}); err != nil {
		t.Fatal(err)
	}
	if err := e.d.restorePlan(); err != nil {
		t.Fatal(err)
	}
	var got usage.Plan
	if err := json.Unmarshal(newUIClient(t, e.d).do("GET", "/api/v1/plan", nil).Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	want := "state: recording the statuses in the state database: failed to connect"
	if len(got.Failures) != 1 || got.Failures[0].Error != want || got.WritesHeld != "restored from the state database" {
		t.Errorf("GET /api/v1/plan: failures %+v, writes_held %q; want the error %q and \"restored from the state database\"", got.Failures, got.WritesHeld, want)
	}
}

package autotask_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// now is the simulator's clock: contracts it creates run through 2026.
var now = time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)

// date returns midnight UTC of a day in 2026, the simulator's year.
func date(m time.Month, d int) time.Time { return time.Date(2026, m, d, 0, 0, 0, 0, time.UTC) }

// newBackend starts a simulator and returns a backend pointed at its zone
// root (no discovery) with fast retries.
func newBackend(t *testing.T) (*autotask.Backend, *psatest.Server) {
	t.Helper()
	s := psatest.Start(t, psatest.WithClock(func() time.Time { return now }))
	user, secret, code := s.Autotask().Credentials()
	c, err := autotask.NewClient(
		autotask.WithBaseURL(s.AutotaskBaseURL()),
		autotask.WithCredentials(user, secret, code),
		autotask.WithBackoff(time.Millisecond, 5*time.Millisecond),
	)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	return autotask.NewBackend(c), s
}

func id(n int64) string { return strconv.FormatInt(n, 10) }

// countRequests counts logged requests whose method matches and whose path
// contains pathPart (case-insensitively).
func countRequests(s *psatest.Server, method, pathPart string) int {
	n := 0
	for _, r := range s.Requests() {
		if r.Method == method && strings.Contains(strings.ToLower(r.Path), strings.ToLower(pathPart)) {
			n++
		}
	}
	return n
}

func units(t *testing.T, s *psatest.Server, contract, service int64, at time.Time) int64 {
	t.Helper()
	u, _ := s.Autotask().Units(contract, service, at)
	return u
}

func TestBackend_ReadLines_bulk(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svcA := at.AddService("Backup", 4.5)
	svcB := at.AddService("Endpoint", 2)
	const contracts = 600
	ids := make([]string, 0, contracts)
	want := map[psa.LineKey]int64{}
	for i := range contracts {
		c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed " + strconv.Itoa(i)})
		ids = append(ids, id(c))
		at.SetUnits(c, svcA, int64(i%7+1), date(1, 1))
		at.SetUnits(c, svcB, int64(i%5+10), date(1, 1))
		at.SetUnits(c, svcB, int64(i%5+20), date(11, 10)) // a mid-month change
		want[psa.LineKey{ContractID: id(c), ServiceID: id(svcA)}] = int64(i%7 + 1)
		want[psa.LineKey{ContractID: id(c), ServiceID: id(svcB)}] = int64(i%5 + 20)
	}
	s.ResetRequests()

	lines, err := b.ReadLines(ctx, ids, now)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	if len(lines) != 2*contracts {
		t.Fatalf("ReadLines returned %d lines, want %d", len(lines), 2*contracts)
	}
	for _, l := range lines {
		if w, ok := want[l.Key()]; !ok || l.Quantity != w {
			t.Fatalf("line %+v: quantity %d, want %d", l.Key(), l.Quantity, w)
		}
		if l.LineID == "" || l.PeriodStart.After(now) || l.PeriodEnd.Before(date(11, 15)) {
			t.Fatalf("line %+v has no line id or a period not containing %s", l, now)
		}
	}
	// 600 contracts are 2 chunks (500 + 100); the first has 1,000 rows, so
	// 2 pages. Nothing else is needed.
	queries := countRequests(s, http.MethodPost, "/ContractServiceUnits/query")
	t.Logf("ReadLines of %d lines: %d ContractServiceUnits queries, %d requests in all", len(lines), queries, len(s.Requests()))
	if queries < 2 || queries > 4 {
		t.Errorf("ContractServiceUnits query requests = %d, want 2..4", queries)
	}
	if n := len(s.Requests()); n > queries+2 {
		t.Errorf("ReadLines made %d requests in all, want at most %d", n, queries+2)
	}

	// Read at the 1st, the window to the month's end also holds B's row
	// from the 10th: 3 rows per contract, so 1,500 rows (3 pages) in the
	// first chunk and 300 in the second. Still one query per chunk.
	s.ResetRequests()
	lines, err = b.ReadLines(ctx, ids, date(11, 1))
	if err != nil || len(lines) != 2*contracts {
		t.Fatalf("ReadLines(2026-11-01) = %d lines, %v; want %d", len(lines), err, 2*contracts)
	}
	for i, l := range lines {
		n := int64(i / 2) // lines come by contract, then service (A before B)
		switch l.ServiceID {
		case id(svcA):
			if l.Quantity != n%7+1 || len(l.LaterChanges) != 0 {
				t.Fatalf("line %+v: want %d units, no later changes", l, n%7+1)
			}
		default:
			if l.Quantity != n%5+10 || len(l.LaterChanges) != 1 || !l.LaterChanges[0].From.Equal(date(11, 10)) || l.LaterChanges[0].Quantity != n%5+20 {
				t.Fatalf("line %+v: want %d units, then %d from 2026-11-10", l, n%5+10, n%5+20)
			}
		}
	}
	queries = countRequests(s, http.MethodPost, "/ContractServiceUnits/query")
	t.Logf("ReadLines at the 1st: %d ContractServiceUnits queries, %d requests in all", queries, len(s.Requests()))
	if queries < 2 || queries > 5 || len(s.Requests()) != queries {
		t.Errorf("ReadLines at the 1st made %d ContractServiceUnits queries (%d requests in all), want 2..5 and nothing else", queries, len(s.Requests()))
	}
}

// TestBackend_ReadLines_unreadableRowFailsOnlyItsContract checks that a
// unit row that cannot be read in an otherwise sound page fails only its
// contract, and that none of that contract's lines is returned, not even
// those of its readable rows: a caller that got the contract's other lines
// would take the line of the unreadable row for missing and add it again.
func TestBackend_ReadLines_unreadableRowFailsOnlyItsContract(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	at := s.Autotask()
	company := at.AddCompany("Acme")
	backup, endpoint := at.AddService("Backup", 4.5), at.AddService("Endpoint", 2)
	bad := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Bad"})
	good := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Good"})
	at.SetUnits(bad, backup, 3, date(1, 1))
	at.SetUnits(bad, endpoint, 4, date(1, 1))
	at.SetUnits(good, backup, 5, date(1, 1))

	var items []map[string]any
	for _, k := range [][2]int64{{bad, backup}, {bad, endpoint}, {good, backup}} {
		for _, r := range at.UnitRows(k[0], k[1]) {
			raw, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var item map[string]any
			if err := json.Unmarshal(raw, &item); err != nil {
				t.Fatal(err)
			}
			if k[0] == bad && k[1] == endpoint {
				item["units"] = nil
			}
			items = append(items, item)
		}
	}
	page, err := json.Marshal(map[string]any{"items": items, "pageDetails": map[string]any{"count": len(items), "requestCount": 500, "nextPageUrl": nil}})
	if err != nil {
		t.Fatal(err)
	}
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceUnits/*", Status: http.StatusOK, Body: string(page), Times: 1})

	lines, err := b.ReadLines(t.Context(), []string{id(bad), id(good)}, now)
	if len(lines) != 1 || lines[0].ContractID != id(good) || lines[0].Quantity != 5 {
		t.Errorf("ReadLines lines = %+v, want contract %d's only, none of contract %d's", lines, good, bad)
	}
	var ce *autotask.ContractErrors
	if !errors.As(err, &ce) || len(ce.Errors) != 1 {
		t.Fatalf("ReadLines error = %v, want ContractErrors for contract %d alone", err, bad)
	}
	if e := ce.Errors[id(bad)]; e == nil || !strings.Contains(e.Error(), fmt.Sprintf("(contract %d, service %d) reports no units", bad, endpoint)) {
		t.Errorf("contract %d: error %v, want one naming its row without units", bad, e)
	}
}

// TestBackend_ReadLines_chunksAtOnce checks that the 500-contract queries
// of a large read are sent at once, as many as Autotask allows per
// endpoint, not one after another.
func TestBackend_ReadLines_chunksAtOnce(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithClock(func() time.Time { return now }))
	at := s.Autotask()
	user, secret, code := at.Credentials()
	probe := &psatest.ConcurrencyProbe{Want: autotask.MaxConcurrency}
	c, err := autotask.NewClient(autotask.WithBaseURL(s.AutotaskBaseURL()), autotask.WithCredentials(user, secret, code),
		autotask.WithHTTPClient(&http.Client{Transport: probe}))
	if err != nil {
		t.Fatal(err)
	}
	b := autotask.NewBackend(c)
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4.5)
	var ids []string
	for i := range 4 * autotask.MaxPageSize {
		ct := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed " + strconv.Itoa(i)})
		ids = append(ids, id(ct))
		if i%autotask.MaxPageSize == 0 {
			at.SetUnits(ct, svc, int64(i+1), date(1, 1))
		}
	}
	s.ResetRequests()
	lines, err := b.ReadLines(t.Context(), ids, now)
	if err != nil || len(lines) != 4 {
		t.Fatalf("ReadLines = %+v, %v; want 4 lines", lines, err)
	}
	for i, l := range lines {
		if l.ContractID != ids[i*autotask.MaxPageSize] || l.Quantity != int64(i*autotask.MaxPageSize+1) {
			t.Errorf("line %d = %+v, want contract %s with %d units", i, l, ids[i*autotask.MaxPageSize], i*autotask.MaxPageSize+1)
		}
	}
	if n := countRequests(s, http.MethodPost, "/ContractServiceUnits/query"); n != 4 {
		t.Errorf("ContractServiceUnits queries = %d, want 4 (one per 500 contracts)", n)
	}
	if p := probe.Peak(); p != autotask.MaxConcurrency {
		t.Errorf("ReadLines kept at most %d queries in flight, want Autotask's %d", p, autotask.MaxConcurrency)
	}
}

func TestBackend_ReadLines_rateLimitedRetried(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4.5)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	at.SetUnits(c, svc, 7, date(1, 1))
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceUnits/query", Status: http.StatusTooManyRequests, Times: 1})

	lines, err := b.ReadLines(t.Context(), []string{id(c)}, now)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	if len(lines) != 1 || lines[0].Quantity != 7 {
		t.Errorf("ReadLines returned %+v, want one line with 7 units", lines)
	}
	var statuses []int
	for _, r := range s.Requests() {
		if strings.EqualFold(r.Path, "/ATServicesRest/V1.0/ContractServiceUnits/query") {
			statuses = append(statuses, r.Status)
		}
	}
	if len(statuses) != 2 || statuses[0] != http.StatusTooManyRequests || statuses[1] != http.StatusOK {
		t.Errorf("ContractServiceUnits query statuses = %v, want [429 200]", statuses)
	}
}

// TestBackend_ReadLines_contractIDAsGiven checks that lines name their
// contract as the caller spelled it: a caller that asked for "0<id>" and
// found no line under that id took the current units as 0 and posted the
// whole quantity again as an adjustment on every pass.
func TestBackend_ReadLines_contractIDAsGiven(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4.5)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	d := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Other"})
	at.SetUnits(c, svc, 7, date(1, 1))
	at.SetUnits(d, svc, 3, date(1, 1))

	lines, err := b.ReadLines(t.Context(), []string{"0" + id(c), id(d), " " + id(d)}, now)
	if err != nil {
		t.Fatalf("ReadLines: %v", err)
	}
	got := map[psa.LineKey]int64{}
	for _, l := range lines {
		got[l.Key()] = l.Quantity
	}
	want := map[psa.LineKey]int64{
		{ContractID: "0" + id(c), ServiceID: id(svc)}: 7,
		{ContractID: id(d), ServiceID: id(svc)}:       3,
		{ContractID: " " + id(d), ServiceID: id(svc)}: 3,
	}
	if len(lines) != len(want) || !maps.Equal(got, want) {
		t.Errorf("ReadLines returned %+v, want the lines %v", lines, want)
	}
}

// TestBackend_SetQuantity_lineNotReadIsNotAddedTo: a request without a
// current line, for a service the contract holds (the caller's read missed
// its unit row), is refused: an adjustment of the whole quantity would add
// to the units the line has.
func TestBackend_SetQuantity_lineNotReadIsNotAddedTo(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	at := s.Autotask()
	svc := at.AddService("Backup", 12.5)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: at.AddCompany("Acme"), Name: "Managed"})
	at.SetUnits(c, svc, 40, date(11, 1))

	_, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 45, EffectiveDate: date(11, 1)})
	if !errors.Is(err, psa.ErrValidation) || !strings.Contains(err.Error(), fmt.Sprintf("contract %d already holds service %d", c, svc)) {
		t.Errorf("SetQuantity = %v, want a refusal naming the line the contract holds", err)
	}
	if adjs := at.Adjustments(); len(adjs) != 0 {
		t.Errorf("adjustments = %+v, want none", adjs)
	}
	if u := units(t, s, c, svc, date(11, 1)); u != 40 {
		t.Errorf("units on 1 Nov = %d, want 40", u)
	}
}

func TestBackend_SetQuantity_upAndDown(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 12.5)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})

	// No line yet: the adjustment creates it at the catalog price, once a
	// query shows the contract does not hold the service. The price is
	// read once; a successful answer is not confirmed by a re-read.
	s.ResetRequests()
	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 10, EffectiveDate: date(11, 1)})
	if err != nil {
		t.Fatalf("SetQuantity(10): %v", err)
	}
	if line.Quantity != 10 || line.UnitPrice != 12.5 {
		t.Errorf("SetQuantity(10) returned %+v, want 10 units at 12.5", line)
	}
	if n := len(s.Requests()); n != 3 {
		t.Errorf("SetQuantity on a new line made %d requests, want 3 (contract services, service price, adjustment)", n)
	}
	if u := units(t, s, c, svc, date(10, 31)); u != 0 {
		t.Errorf("units on 31 Oct = %d, want 0 (before the effective date)", u)
	}
	if u := units(t, s, c, svc, date(11, 1)); u != 10 {
		t.Errorf("units on 1 Nov = %d, want 10", u)
	}
	adjs := at.Adjustments()
	if len(adjs) != 1 || adjs[0].UnitChange != 10 || adjs[0].AdjustedUnitPrice == nil || *adjs[0].AdjustedUnitPrice != 12.5 {
		t.Fatalf("adjustments = %+v, want one of +10 at 12.5", adjs)
	}

	// Read back, then go up mid-month and down from next month.
	lines, err := b.ReadLines(ctx, []string{id(c)}, now)
	if err != nil || len(lines) != 1 || lines[0].Quantity != 10 {
		t.Fatalf("ReadLines = %+v, %v; want 10 units", lines, err)
	}
	line, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 12, Current: &lines[0], EffectiveDate: date(11, 20)})
	if err != nil || line.Quantity != 12 {
		t.Fatalf("SetQuantity(12) = %+v, %v", line, err)
	}
	line, err = b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 4, Current: line, EffectiveDate: time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)})
	if err != nil || line.Quantity != 4 {
		t.Fatalf("SetQuantity(4) = %+v, %v", line, err)
	}
	for _, tc := range []struct {
		at   time.Time
		want int64
	}{
		{date(11, 1), 10}, {date(11, 19), 10}, {date(11, 20), 12},
		{date(11, 30), 12}, {date(12, 1), 4}, {date(12, 31), 4},
	} {
		if u := units(t, s, c, svc, tc.at); u != tc.want {
			t.Errorf("units on %s = %d, want %d", tc.at.Format(time.DateOnly), u, tc.want)
		}
	}
	var changes []int64
	for _, a := range at.Adjustments() {
		changes = append(changes, a.UnitChange)
		if a.EffectiveDate.Hour() != 0 {
			t.Errorf("adjustment effective %s, want a calendar date", a.EffectiveDate)
		}
	}
	if want := []int64{10, 2, -8}; !equal(changes, want) {
		t.Errorf("unit changes = %v, want %v", changes, want)
	}

	// Nothing to do: no request.
	s.ResetRequests()
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 4, Current: line, EffectiveDate: date(12, 1)}); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Requests()); n != 0 {
		t.Errorf("an unchanged quantity made %d requests, want 0", n)
	}
}

func equal(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// backupLineOfFive returns a backend on a simulator whose contract "Managed"
// of Acme bills 5 units of the service "Backup" from January 1, and that
// line as a pass reads it before writing it.
func backupLineOfFive(t *testing.T) (b *autotask.Backend, s *psatest.Server, contract, service int64, lines []psa.ContractLine) {
	t.Helper()
	b, s = newBackend(t)
	at := s.Autotask()
	company := at.AddCompany("Acme")
	service = at.AddService("Backup", 12.5)
	contract = at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	at.SetUnits(contract, service, 5, date(1, 1))
	lines, err := b.ReadLines(t.Context(), []string{id(contract)}, now)
	if err != nil || len(lines) != 1 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	return b, s, contract, service, lines
}

func TestBackend_SetQuantity_lostResponse(t *testing.T) {
	t.Parallel()
	b, s, c, svc, lines := backupLineOfFive(t)
	ctx := t.Context()
	// The adjustment is applied, but its response never arrives.
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceAdjustments", DropAfterHandling: true, Times: 1})

	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 8, Current: &lines[0], EffectiveDate: date(11, 1)})
	if err != nil {
		t.Fatalf("SetQuantity: %v (the re-read shows it was applied)", err)
	}
	if line.Quantity != 8 {
		t.Errorf("SetQuantity returned %+v, want 8 units", line)
	}
	if n := countRequests(s, http.MethodPost, "/ContractServiceAdjustments"); n != 1 {
		t.Errorf("adjustment POSTs = %d, want exactly 1", n)
	}
	if u := units(t, s, c, svc, now); u != 8 {
		t.Errorf("units = %d, want 8 (not 11)", u)
	}
}

func TestBackend_SetQuantity_dropped(t *testing.T) {
	t.Parallel()
	b, s, c, svc, lines := backupLineOfFive(t)
	ctx := t.Context()
	// The connection drops before the adjustment is handled.
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceAdjustments", Drop: true, Times: 1})

	req := psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 8, Current: &lines[0], EffectiveDate: date(11, 1)}
	_, err := b.SetQuantity(ctx, req)
	// The re-read right after shows nothing changed, which a read lagging
	// the write would show too: the outcome stays unknown, for the caller
	// to re-read later.
	if !errors.Is(err, psa.ErrOutcomeUnknown) {
		t.Errorf("SetQuantity error = %v, want one matching psa.ErrOutcomeUnknown", err)
	}
	if n := countRequests(s, http.MethodPost, "/ContractServiceAdjustments"); n != 1 {
		t.Errorf("adjustment POSTs = %d, want exactly 1 (never re-sent blindly)", n)
	}
	if u := units(t, s, c, svc, now); u != 5 {
		t.Errorf("units = %d, want 5", u)
	}
	if len(s.Autotask().Adjustments()) != 0 {
		t.Errorf("adjustments = %+v, want none", s.Autotask().Adjustments())
	}

	// The next pass may simply try again.
	if line, err := b.SetQuantity(ctx, req); err != nil || line.Quantity != 8 {
		t.Fatalf("second SetQuantity = %+v, %v", line, err)
	}
	if u := units(t, s, c, svc, now); u != 8 {
		t.Errorf("units = %d, want 8", u)
	}
}

// TestBackend_SetQuantity_droppedToZeroUnseen: the adjustment that sets a
// line of 5 to 0 is lost before Autotask handles it, and the re-read right
// after shows no unit row (a security level that hides the contract's
// services, a cache serving an empty page). Autotask keeps a line set to
// 0, so a line not shown is no proof that 0 arrived: the outcome stays
// unknown. Taken as applied, the daemon's ledger would say 0, and its next
// pass, with the line still out of sight, would add the usage as a new
// line next to the 5 that still bills.
func TestBackend_SetQuantity_droppedToZeroUnseen(t *testing.T) {
	t.Parallel()
	b, s, c, svc, lines := backupLineOfFive(t)
	ctx := t.Context()
	s.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/ATServicesRest/V1.0/ContractServiceAdjustments", Drop: true, Times: 1,
		Received: func() {
			s.AddFault(psatest.Fault{Path: "/ATServicesRest/V1.0/ContractServiceUnits/query", Status: http.StatusOK,
				Body: `{"items":[],"pageDetails":{"count":0,"requestCount":500,"prevPageUrl":null,"nextPageUrl":null}}`})
		}})

	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 0, Current: &lines[0], EffectiveDate: date(11, 1)})
	if !errors.Is(err, psa.ErrOutcomeUnknown) || !strings.Contains(err.Error(), "shows no unit row of the line") {
		t.Errorf("SetQuantity = %+v, %v; want an error matching psa.ErrOutcomeUnknown saying the re-read shows no unit row", line, err)
	}
	if n := countRequests(s, http.MethodPost, "/ContractServiceAdjustments"); n != 1 {
		t.Errorf("adjustment POSTs = %d, want exactly 1", n)
	}
	s.ClearFaults()
	if u := units(t, s, c, svc, now); u != 5 {
		t.Errorf("units = %d, want 5 (the adjustment never arrived)", u)
	}
}

func TestBackend_services(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	// The tenant's only billing code for recurring services is the default.
	at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Labour", UseType: "Work Type", Active: true})
	var bc int64
	for _, c := range at.BillingCodes() {
		if c.Active && c.UseType == "Recurring Contract Service" {
			if bc != 0 {
				t.Fatalf("simulator seeds several recurring billing codes: %+v", at.BillingCodes())
			}
			bc = c.ID
		}
	}

	s.ResetRequests()
	created, err := b.CreateService(ctx, &psa.Service{
		Name: "Sophos Intercept X", Description: "EDR", UnitPrice: 4.5, UnitCost: 2,
		BillingPeriod: psa.BillingPeriodSemiAnnual, Active: true,
	})
	if err != nil {
		t.Fatalf("CreateService: %v", err)
	}
	// The create's answer (the new id) and what was sent make the service:
	// no read-back.
	for _, r := range s.Requests() {
		if dir, last := path.Split(r.Path); strings.HasSuffix(dir, "/Services/") && last != "entityInformation" && r.Method == http.MethodGet {
			t.Errorf("CreateService read the service back with %s %s", r.Method, r.Path)
		}
	}
	want := &psa.Service{
		ID: created.ID, Name: "Sophos Intercept X", Description: "EDR", UnitPrice: 4.5, UnitCost: 2,
		BillingPeriod: psa.BillingPeriodSemiAnnual, Active: true,
		Autotask: &psa.AutotaskServiceFields{BillingCodeID: id(bc), PeriodType: "Semi-Annual"},
	}
	if !equalService(created, want) {
		t.Errorf("CreateService returned %+v (%+v), want %+v (%+v)", created, created.Autotask, want, want.Autotask)
	}
	n, _ := strconv.ParseInt(created.ID, 10, 64)
	if sim, ok := at.Service(n); !ok || sim.PeriodType != "Semi-Annual" || sim.BillingCodeID != bc {
		t.Errorf("simulator has %+v", sim)
	}

	// The period type label may be named directly.
	yearly, err := b.CreateService(ctx, &psa.Service{Name: "Firewall", UnitPrice: 100, Active: true, Autotask: &psa.AutotaskServiceFields{PeriodType: "yearly", BillingCodeID: id(bc)}})
	if err != nil || yearly.BillingPeriod != psa.BillingPeriodYearly {
		t.Fatalf("CreateService(yearly) = %+v, %v", yearly, err)
	}

	created.Name, created.UnitPrice, created.BillingPeriod = "Sophos Intercept X Advanced", 5, psa.BillingPeriodMonthly
	created.Autotask = nil
	updated, err := b.UpdateService(ctx, created)
	if err != nil {
		t.Fatalf("UpdateService: %v", err)
	}
	if updated.Name != "Sophos Intercept X Advanced" || updated.UnitPrice != 5 || updated.BillingPeriod != psa.BillingPeriodMonthly || updated.Description != "EDR" {
		t.Errorf("UpdateService returned %+v", updated)
	}

	found, err := b.FindServices(ctx, "sophos intercept x ADVANCED")
	if err != nil || len(found) != 1 || found[0].ID != created.ID {
		t.Errorf("FindServices = %+v, %v; want the updated service", found, err)
	}
	if found, err := b.FindServices(ctx, "nothing"); err != nil || len(found) != 0 {
		t.Errorf("FindServices(nothing) = %+v, %v", found, err)
	}

	if err := b.DeactivateService(ctx, created.ID); err != nil {
		t.Fatalf("DeactivateService: %v", err)
	}
	if sim, _ := at.Service(n); sim.Active {
		t.Error("service still active after DeactivateService")
	}
	if err := b.DeactivateService(ctx, created.ID); err != nil {
		t.Errorf("DeactivateService of an inactive service: %v", err)
	}
	if err := b.DeleteService(ctx, created.ID); !errors.Is(err, psa.ErrNotSupported) {
		t.Errorf("DeleteService = %v, want psa.ErrNotSupported", err)
	}

	at.DeleteService(n)
	if _, err := b.GetService(ctx, created.ID); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetService of a deleted service = %v, want psa.ErrNotFound", err)
	}
	if err := b.DeactivateService(ctx, created.ID); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("DeactivateService of a deleted service = %v, want psa.ErrNotFound", err)
	}
	if _, err := b.GetService(ctx, "abc"); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("GetService(abc) = %v, want psa.ErrValidation", err)
	}
}

func equalService(a, b *psa.Service) bool {
	if a == nil || b == nil || (a.Autotask == nil) != (b.Autotask == nil) {
		return false
	}
	if a.Autotask != nil && *a.Autotask != *b.Autotask {
		return false
	}
	x, y := *a, *b
	x.Autotask, y.Autotask = nil, nil
	return x == y
}

func TestBackend_CreateService_billingCode(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	svc := &psa.Service{Name: "Backup", UnitPrice: 1, BillingPeriod: psa.BillingPeriodMonthly, Active: true}

	// Several candidates (the simulator seeds one): ambiguous, and the
	// message names them and asks for the id.
	at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Recurring A", Active: true})
	at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Recurring B", Active: true})
	at.AddBillingCode(psatest.AutotaskBillingCode{Name: "Labour", UseType: "Work Type", Active: true})
	_, err := b.CreateService(ctx, svc)
	var ve *psa.ValidationError
	if !errors.As(err, &ve) || !strings.Contains(err.Error(), "billing code is required") ||
		!strings.Contains(err.Error(), "Recurring A") || !strings.Contains(err.Error(), "Recurring B") || strings.Contains(err.Error(), "Labour") {
		t.Errorf("CreateService with several billing codes = %v, want a validation error naming the recurring ones", err)
	}
	if n := countRequests(s, http.MethodPost, "/ATServicesRest/V1.0/Services"); n != 0 {
		t.Errorf("Services POSTs = %d, want none", n)
	}

	// No billing period.
	if _, err := b.CreateService(ctx, &psa.Service{Name: "x"}); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("CreateService without a period = %v, want psa.ErrValidation", err)
	}
	// A period type label the tenant does not have.
	if _, err := b.CreateService(ctx, &psa.Service{Name: "x", Autotask: &psa.AutotaskServiceFields{PeriodType: "Fortnightly"}}); err == nil || !strings.Contains(err.Error(), "Fortnightly") {
		t.Errorf("CreateService with an unknown period type = %v", err)
	}
}

// A service name within Autotask's 150 characters but over them in
// UTF-16 code units, as Autotask counts (an emoji counts two), fails the
// plan's check, not the apply.
func TestBackend_CheckServiceFields_lengthInUTF16(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	svc := &psa.Service{Name: strings.Repeat("x", 146) + "🛡🛡🛡", UnitPrice: 1, BillingPeriod: psa.BillingPeriodMonthly, Active: true}
	var ve *psa.ValidationError
	if err := b.CheckServiceFields(t.Context(), svc); !errors.As(err, &ve) || ve.Field != "name" || !strings.Contains(err.Error(), "152") {
		t.Errorf("CheckServiceFields(149 characters, 152 UTF-16 code units) = %v, want an error on name", err)
	}
}

func TestBackend_companiesAndContracts(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	acme := at.AddCompany("Acme")
	at.AddCompany("Globex")
	active := at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Managed Services"})
	inactive := at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Old", Status: "Inactive"})
	tm := at.AddContract(psatest.AutotaskContract{CompanyID: acme, Name: "Projects", Type: "Time & Materials"})

	c, err := b.GetCompany(ctx, id(acme))
	if err != nil || *c != (psa.Company{ID: id(acme), Name: "Acme", Active: true}) {
		t.Errorf("GetCompany = %+v, %v", c, err)
	}
	if _, err := b.GetCompany(ctx, "999"); !errors.Is(err, psa.ErrNotFound) {
		t.Errorf("GetCompany(999) = %v, want psa.ErrNotFound", err)
	}
	cs, err := b.FindCompanies(ctx, "ACME")
	if err != nil || len(cs) != 1 || cs[0].ID != id(acme) {
		t.Errorf("FindCompanies(ACME) = %+v, %v", cs, err)
	}

	got, err := b.GetContract(ctx, id(tm))
	if err != nil {
		t.Fatal(err)
	}
	if got.Type != "Time & Materials" || got.Status != "Active" || !got.Active || got.Recurring || got.CompanyID != id(acme) || got.StartDate != date(1, 1) {
		t.Errorf("GetContract = %+v", got)
	}

	ids := func(cs []psa.Contract) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tc := range []struct {
		q    psa.ContractQuery
		want []string
	}{
		{psa.ContractQuery{CompanyID: id(acme)}, []string{id(active)}},
		{psa.ContractQuery{CompanyID: id(acme), IncludeInactive: true}, []string{id(active), id(inactive)}},
		{psa.ContractQuery{CompanyID: id(acme), AnyType: true}, []string{id(active), id(tm)}},
		{psa.ContractQuery{CompanyID: id(acme), AnyType: true, IncludeInactive: true, Name: "old"}, []string{id(inactive)}},
	} {
		cs, err := b.FindContracts(ctx, tc.q)
		if err != nil || strings.Join(ids(cs), ",") != strings.Join(tc.want, ",") {
			t.Errorf("FindContracts(%+v) = %v, %v; want %v", tc.q, ids(cs), err, tc.want)
		}
	}
	if _, err := b.FindContracts(ctx, psa.ContractQuery{}); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("FindContracts without a company = %v, want psa.ErrValidation", err)
	}
	// Picklists were read once each, however many contracts were mapped.
	if n := countRequests(s, http.MethodGet, "/Contracts/entityInformation/fields"); n != 1 {
		t.Errorf("Contracts entityInformation/fields requests = %d, want 1", n)
	}
}

func TestBackend_pingBudgetInstance(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithHourlyLimit(500))
	user, secret, code := s.Autotask().Credentials()
	c, err := autotask.NewClient(
		autotask.WithZoneLookupURL(s.AutotaskZoneLookupURL()),
		autotask.WithCredentials(user, secret, code),
	)
	if err != nil {
		t.Fatal(err)
	}
	b := autotask.NewBackend(c)
	ctx := t.Context()
	if b.System() != psa.SystemAutotask {
		t.Errorf("System = %q", b.System())
	}
	if err := b.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
	u, _ := url.Parse(s.URL())
	// Zone discovery reports the tenant's CI (the simulator's is 1): a zone
	// host serves many tenants.
	if got, want := b.Instance(), "ci:1@"+u.Host; got != want {
		t.Errorf("Instance = %q, want the tenant at the zone host %q", got, want)
	}
	budget, err := b.Budget(ctx)
	if err != nil {
		t.Fatalf("Budget: %v", err)
	}
	if budget.Limit != 500 || budget.Used < 1 || budget.Timeframe != time.Hour {
		t.Errorf("Budget = %+v, want limit 500, some used, 1h", budget)
	}

	bad, err := autotask.NewClient(autotask.WithBaseURL(s.AutotaskBaseURL()), autotask.WithCredentials(user, "wrong", code))
	if err != nil {
		t.Fatal(err)
	}
	if err := autotask.NewBackend(bad).Ping(ctx); !errors.Is(err, psa.ErrUnauthorized) {
		t.Errorf("Ping with a wrong secret = %v, want psa.ErrUnauthorized", err)
	}
}

// The simulator rejects a fourth concurrent request per endpoint with 429;
// with retries off, any rejection would fail a call.
func TestBackend_staysInsideThreadLimit(t *testing.T) {
	t.Parallel()
	s := psatest.Start(t, psatest.WithThreadLimit(3), psatest.WithLatency(2*time.Millisecond))
	user, secret, code := s.Autotask().Credentials()
	c, err := autotask.NewClient(autotask.WithBaseURL(s.AutotaskBaseURL()), autotask.WithCredentials(user, secret, code), autotask.WithMaxRetries(0))
	if err != nil {
		t.Fatal(err)
	}
	b := autotask.NewBackend(c)
	company := s.Autotask().AddCompany("Acme")
	ctx := t.Context()
	var wg sync.WaitGroup
	for range 24 {
		wg.Go(func() {
			if _, err := b.GetCompany(ctx, id(company)); err != nil {
				t.Errorf("GetCompany: %v", err)
			}
		})
	}
	wg.Wait()
	for _, r := range s.Requests() {
		if r.Status == http.StatusTooManyRequests {
			t.Errorf("%s %s was throttled", r.Method, r.Path)
		}
	}
}

func TestBackend_ReadLines_laterChanges(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svcA := at.AddService("Backup", 4.5)
	svcB := at.AddService("Endpoint", 2)
	svcC := at.AddService("Mail", 3)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	// A is adjusted by hand in mid-November, twice; B's row is split
	// without a change of units; C changes only from December.
	at.SetUnits(c, svcA, 10, date(1, 1))
	at.SetUnits(c, svcA, 12, date(11, 15))
	at.SetUnits(c, svcA, 11, date(11, 20))
	at.SetUnits(c, svcA, 30, date(12, 1))
	at.SetUnits(c, svcB, 5, date(1, 1))
	at.SetUnits(c, svcB, 5, date(11, 10))
	at.SetUnits(c, svcC, 7, date(1, 1))
	at.SetUnits(c, svcC, 9, date(12, 1))

	for _, tc := range []struct {
		asOf  time.Time
		want  int64
		later []psa.QuantityChange
	}{
		{date(11, 1), 10, []psa.QuantityChange{{From: date(11, 15), Quantity: 12}, {From: date(11, 20), Quantity: 11}}},
		{date(11, 15), 12, []psa.QuantityChange{{From: date(11, 20), Quantity: 11}}},
		{date(11, 20), 11, nil},
		{date(11, 30), 11, nil},
	} {
		s.ResetRequests()
		lines, err := b.ReadLines(ctx, []string{id(c)}, tc.asOf)
		if err != nil {
			t.Fatalf("ReadLines(%s): %v", tc.asOf.Format(time.DateOnly), err)
		}
		if n := len(s.Requests()); n != 1 {
			t.Errorf("ReadLines(%s) made %d requests, want 1", tc.asOf.Format(time.DateOnly), n)
		}
		if len(lines) != 3 {
			t.Fatalf("ReadLines(%s) = %+v, want 3 lines", tc.asOf.Format(time.DateOnly), lines)
		}
		a, bl, cl := lines[0], lines[1], lines[2]
		if a.ServiceID != id(svcA) || a.Quantity != tc.want || !equalChanges(a.LaterChanges, tc.later) {
			t.Errorf("ReadLines(%s) line A = %d units, later %v; want %d, later %v",
				tc.asOf.Format(time.DateOnly), a.Quantity, a.LaterChanges, tc.want, tc.later)
		}
		if bl.Quantity != 5 || len(bl.LaterChanges) != 0 {
			t.Errorf("ReadLines(%s) line B = %+v, want 5 units and no later changes (a split row with the same units)", tc.asOf.Format(time.DateOnly), bl)
		}
		if cl.Quantity != 7 || len(cl.LaterChanges) != 0 {
			t.Errorf("ReadLines(%s) line C = %+v, want 7 units and no later changes (December is another period)", tc.asOf.Format(time.DateOnly), cl)
		}
	}

	// Next month's read sees December's units and nothing later.
	lines, err := b.ReadLines(ctx, []string{id(c)}, date(12, 1))
	if err != nil || len(lines) != 3 || lines[0].Quantity != 30 || len(lines[0].LaterChanges) != 0 || lines[2].Quantity != 9 {
		t.Errorf("ReadLines(2026-12-01) = %+v, %v; want A at 30, C at 9, no later changes", lines, err)
	}
}

func TestBackend_ReadLines_laterAdjustmentPosted(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	svc := at.AddService("Backup", 4.5)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	at.SetUnits(c, svc, 10, date(1, 1))
	// Someone posts +2 effective the 15th (here through the API, as an
	// operator's tool would).
	if _, _, err := b.Client().ContractServiceAdjustments.Create(ctx, &autotask.CreateContractServiceAdjustmentRequest{
		ContractID: c, ServiceID: svc, UnitChange: 2, EffectiveDate: autotask.Timestamp{Time: date(11, 15)},
	}); err != nil {
		t.Fatalf("posting the adjustment: %v", err)
	}
	lines, err := b.ReadLines(ctx, []string{id(c)}, date(11, 1))
	if err != nil || len(lines) != 1 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	want := []psa.QuantityChange{{From: date(11, 15), Quantity: 12}}
	if l := lines[0]; l.Quantity != 10 || !equalChanges(l.LaterChanges, want) {
		t.Errorf("line = %d units, later %v; want 10, later %v", l.Quantity, l.LaterChanges, want)
	}
}

func equalChanges(a, b []psa.QuantityChange) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !a[i].From.Equal(b[i].From) || a[i].Quantity != b[i].Quantity {
			return false
		}
	}
	return true
}

// A line new on a contract takes its catalog price from a bulk read of
// its service (the engine's daily read of the mapped services comes right
// before the pass's writes) instead of reading the service alone, and the
// price is the one just read.
func TestBackend_SetQuantity_newLineTakesThePriceOfTheBulkRead(t *testing.T) {
	t.Parallel()
	b, s := newBackend(t)
	ctx := t.Context()
	at := s.Autotask()
	company := at.AddCompany("Acme")
	backup, edr := at.AddService("Backup", 12.5), at.AddService("EDR", 4)
	c := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})

	if _, err := b.GetServices(ctx, []string{id(backup), id(edr)}); err != nil {
		t.Fatal(err)
	}
	s.ResetRequests()
	for _, svc := range []int64{backup, edr} {
		if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(c), ServiceID: id(svc), Quantity: 10, EffectiveDate: date(11, 1)}); err != nil {
			t.Fatalf("SetQuantity(%d): %v", svc, err)
		}
	}
	for _, r := range s.Requests() {
		if dir, _ := path.Split(r.Path); strings.HasSuffix(dir, "/Services/") && r.Method == http.MethodGet {
			t.Errorf("a new line read its service alone after the bulk read: %s %s", r.Method, r.Path)
		}
	}
	if n := len(s.Requests()); n != 4 {
		t.Errorf("two new lines after the bulk read made %d requests, want 4 (contract services and adjustment each)", n)
	}
	prices := map[int64]float64{}
	for _, a := range at.Adjustments() {
		if a.AdjustedUnitPrice != nil {
			prices[a.ServiceID] = *a.AdjustedUnitPrice
		}
	}
	if prices[backup] != 12.5 || prices[edr] != 4 {
		t.Errorf("new lines' prices = %v, want the catalog's (12.5, 4)", prices)
	}
}

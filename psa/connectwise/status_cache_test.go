package connectwise_test

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// clock is a settable clock for the backend's caches.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// agreementReads counts the agreement reads: status reads of many
// agreements (GET /finance/agreements) and reads of one
// (GET /finance/agreements/{id}), additions not included.
func agreementReads(s *psatest.Server) (lists, singles int) {
	for _, r := range s.Requests() {
		p := strings.ToLower(r.Path)
		if r.Method != http.MethodGet || strings.Contains(p, "/additions") {
			continue
		}
		switch i := strings.Index(p, "/finance/agreements"); {
		case i < 0:
		case strings.HasSuffix(p, "/finance/agreements"):
			lists++
		default:
			singles++
		}
	}
	return lists, singles
}

func TestBackend_SetQuantity_readsAgreementStatusInBulk(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	const agreements, products = 250, 3
	var prods []int64
	for j := range products {
		prods = append(prods, cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Product " + strconv.Itoa(j)}))
	}
	var ids []string
	for i := range agreements {
		_, ag := seed(cw, "Customer "+strconv.Itoa(i))
		ids = append(ids, id(ag))
		for _, p := range prods {
			cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p, Quantity: 1})
		}
	}
	ctx := t.Context()
	s.ResetRequests()
	lines, err := b.ReadLines(ctx, ids, now)
	if err != nil || len(lines) != agreements*products {
		t.Fatalf("ReadLines = %d lines, %v; want %d", len(lines), err, agreements*products)
	}
	if lists, singles := agreementReads(s); lists+singles != 0 {
		t.Fatalf("ReadLines read agreements %d times, want 0 (the additions only)", lists+singles)
	}
	refused, err := b.CheckWrites(ctx, ids)
	if err != nil || len(refused) != 0 {
		t.Fatalf("CheckWrites = %v, %v", refused, err)
	}
	bulk, _ := agreementReads(s)
	if bulk != 3 {
		t.Fatalf("CheckWrites made %d status reads, want 3", bulk)
	}

	// Write every line, several at a time, as the daemon does.
	s.ResetRequests()
	var g errgroup.Group
	g.SetLimit(8)
	for _, l := range lines {
		g.Go(func() error {
			_, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 5, Current: &l, EffectiveDate: now})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatalf("SetQuantity: %v", err)
	}
	if lists, singles := agreementReads(s); lists+singles != 0 {
		t.Errorf("the writes read agreements %d times in bulk and %d times one by one, want 0 (CheckWrites read them)", lists, singles)
	}
	if n := countRequests(s, http.MethodPatch, ""); n != agreements*products {
		t.Errorf("PATCHes = %d, want %d", n, agreements*products)
	}
	for _, r := range s.Requests() {
		if r.Method == http.MethodGet && len(r.RawQuery) > 2048 {
			t.Errorf("status read query is %d characters, more than IIS's default 2,048", len(r.RawQuery))
		}
	}
	for _, l := range lines {
		ag, _ := strconv.ParseInt(l.ContractID, 10, 64)
		p, _ := strconv.ParseInt(l.ServiceID, 10, 64)
		if q, _ := cw.Quantity(ag, p); q != 5 {
			t.Fatalf("quantity of %+v = %v, want 5", l.Key(), q)
		}
	}
}

func TestBackend_SetQuantity_agreementStatusExpires(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	clk := &clock{t: now}
	b.SetNow(clk.now)
	cw := s.ConnectWise()
	p1 := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	p2 := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Endpoint"})
	_, ag := seed(cw, "Acme")
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p1, Quantity: 1})
	cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p2, Quantity: 1})
	ctx := t.Context()
	lines, err := b.ReadLines(ctx, []string{id(ag)}, now)
	if err != nil || len(lines) != 2 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	set := func(l psa.ContractLine, q int64) error {
		_, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: q, Current: &l, EffectiveDate: now})
		return err
	}
	reads := func() int {
		lists, singles := agreementReads(s)
		return lists + singles
	}

	s.ResetRequests()
	if err := set(lines[0], 2); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n != 1 {
		t.Fatalf("first write read the agreement %d times, want 1", n)
	}
	// Within the TTL the status read is trusted, even though the agreement
	// was cancelled since: the documented staleness window.
	cw.SetAgreementStatus(ag, "Cancelled")
	clk.advance(2*time.Minute - time.Second)
	s.ResetRequests()
	if err := set(lines[1], 2); err != nil {
		t.Fatalf("write within the TTL: %v", err)
	}
	if n := reads(); n != 0 {
		t.Errorf("write within the TTL read the agreement %d times, want 0", n)
	}
	// Past the TTL it is read again, and the write refused.
	clk.advance(time.Second)
	s.ResetRequests()
	err = set(lines[0], 3)
	var stale *connectwise.StaleAgreementError
	if !errors.As(err, &stale) || !errors.Is(err, psa.ErrConflict) {
		t.Errorf("write past the TTL to a cancelled agreement: %v, want a StaleAgreementError", err)
	}
	if n := reads(); n != 1 {
		t.Errorf("write past the TTL read the agreement %d times, want 1", n)
	}
	if n := countRequests(s, http.MethodPatch, ""); n != 0 {
		t.Errorf("PATCHes to the cancelled agreement = %d, want 0", n)
	}
	// A refusal is remembered for the TTL too.
	s.ResetRequests()
	if err := set(lines[1], 3); !errors.As(err, &stale) {
		t.Errorf("second write to the cancelled agreement: %v, want a StaleAgreementError", err)
	}
	if n := reads() + countRequests(s, http.MethodPatch, ""); n != 0 {
		t.Errorf("second write to the cancelled agreement made %d requests, want 0", n)
	}
}

func TestBackend_SetQuantity_failedWriteForgetsAgreementStatus(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	b.SetNow(func() time.Time { return now })
	cw := s.ConnectWise()
	var prods []int64
	for j := range 3 {
		prods = append(prods, cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Product " + strconv.Itoa(j)}))
	}
	_, ag := seed(cw, "Acme")
	var adds []int64
	for _, p := range prods {
		adds = append(adds, cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: p, Quantity: 1}))
	}
	ctx := t.Context()
	lines, err := b.ReadLines(ctx, []string{id(ag)}, now)
	if err != nil || len(lines) != 3 {
		t.Fatalf("ReadLines = %+v, %v", lines, err)
	}
	set := func(l psa.ContractLine) error {
		_, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 7, Current: &l, EffectiveDate: now})
		return err
	}
	reads := func() int {
		lists, singles := agreementReads(s)
		return lists + singles
	}

	s.ResetRequests()
	if err := set(lines[0]); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n != 1 {
		t.Fatalf("first write read the agreement %d times, want 1", n)
	}
	// The addition of the second line is gone: the PATCH answers not
	// found, a conflict, and the agreement's status is forgotten.
	cw.DeleteAddition(adds[1])
	s.ResetRequests()
	if err := set(lines[1]); !errors.Is(err, psa.ErrConflict) {
		t.Fatalf("PATCH of a deleted addition: %v, want a conflict", err)
	}
	if n := reads(); n != 0 {
		t.Errorf("second write read the agreement %d times, want 0 (cached)", n)
	}
	s.ResetRequests()
	if err := set(lines[2]); err != nil {
		t.Fatal(err)
	}
	if n := reads(); n != 1 {
		t.Errorf("write after a conflict read the agreement %d times, want 1 (status forgotten)", n)
	}
	if q, _ := cw.Quantity(ag, prods[2]); q != 7 {
		t.Errorf("quantity = %v, want 7", q)
	}
}

// TestBackend_CheckWrites_onlyTheAgreementsWritten checks that a pass that
// writes to a few of many agreements reads the status of those few (one
// request), not of every agreement it read; and that when the statuses
// expire before the writes reach their agreements, the next write reads
// its agreement's status again together with the agreements written after
// it, in CheckWrites' order, not one by one.
func TestBackend_CheckWrites_onlyTheAgreementsWritten(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	clk := &clock{t: now}
	b.SetNow(clk.now)
	cw := s.ConnectWise()
	prod := cw.AddCatalogItem(psatest.ConnectWiseCatalogItem{Description: "Backup"})
	var ids []string
	for i := range 400 {
		_, ag := seed(cw, "Customer "+strconv.Itoa(i))
		ids = append(ids, id(ag))
		cw.AddAddition(psatest.ConnectWiseAddition{AgreementID: ag, ProductID: prod, Quantity: 1})
	}
	ctx := t.Context()
	lines, err := b.ReadLines(ctx, ids, now)
	if err != nil || len(lines) != len(ids) {
		t.Fatalf("ReadLines = %d lines, %v", len(lines), err)
	}
	// Every fourth agreement changes, written from the last to the first.
	var written []psa.ContractLine
	for i := len(lines) - 1; i >= 0; i -= 4 {
		written = append(written, lines[i])
	}
	var order []string
	for _, l := range written {
		order = append(order, l.ContractID)
	}
	s.ResetRequests()
	if _, err := b.CheckWrites(ctx, order); err != nil {
		t.Fatal(err)
	}
	if lists, singles := agreementReads(s); lists != 1 || singles != 0 {
		t.Errorf("CheckWrites of %d agreements read agreements %d times in bulk and %d alone, want 1 and 0", len(order), lists, singles)
	}
	set := func(l psa.ContractLine) {
		t.Helper()
		if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: l.ContractID, ServiceID: l.ServiceID, Quantity: 2, Current: &l, EffectiveDate: now}); err != nil {
			t.Fatal(err)
		}
	}
	s.ResetRequests()
	for _, l := range written[:10] {
		set(l)
	}
	if lists, singles := agreementReads(s); lists+singles != 0 {
		t.Errorf("writes within the TTL read agreements %d times, want 0", lists+singles)
	}
	// The rest is written after the statuses expired: one read for them all.
	clk.advance(connectwise.StatusTTL)
	s.ResetRequests()
	for _, l := range written[10:] {
		set(l)
	}
	if lists, singles := agreementReads(s); lists != 1 || singles != 0 {
		t.Errorf("%d writes after the TTL read agreements %d times in bulk and %d alone, want 1 and 0", len(written)-10, lists, singles)
	}
}

// CheckWriteRecords returns, from the status read of CheckWrites and no
// request more, the agreements' whole records (company, type, billing
// cycle, dates), as GetContracts reads them: the engine checks the company
// and dates of the agreements it writes to from them instead of reading
// the agreements twice.
func TestBackend_CheckWriteRecords_recordsFromTheStatusRead(t *testing.T) {
	t.Parallel()
	b, s, _ := newBackend(t)
	cw := s.ConnectWise()
	company := cw.AddCompany("Acme")
	ended := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Old", BillingCycle: "Annually",
		StartDate: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)})
	once := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: company, Name: "Setup", BillingCycle: "One Time"})
	ids := []string{id(ended), id(once), "999999"}
	want, err := b.GetContracts(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	s.ResetRequests()
	records, refused, err := b.CheckWriteRecords(t.Context(), ids)
	if err != nil {
		t.Fatal(err)
	}
	if lists, singles := agreementReads(s); lists != 1 || singles != 0 {
		t.Errorf("CheckWriteRecords read agreements %d times in bulk and %d alone, want one bulk read", lists, singles)
	}
	if !errors.Is(refused["999999"], psa.ErrNotFound) || records["999999"] != nil {
		t.Errorf("missing agreement: refused %v, record %+v; want not found and no record", refused["999999"], records["999999"])
	}
	for _, x := range ids[:2] {
		if got := records[x]; got == nil || *got != *want[x] {
			t.Errorf("record of agreement %s = %+v, want %+v as GetContracts reads it", x, got, want[x])
		}
	}
}

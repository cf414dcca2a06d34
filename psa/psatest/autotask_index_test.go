package psatest

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestAutotask_queryIndex checks that a query answered through an index
// returns exactly the records a scan of the whole table returns, page by
// page, and that it looks at far fewer records.
func TestAutotask_queryIndex(t *testing.T) {
	t.Parallel()
	s := newTestServer(t)
	at := s.Autotask()
	var companies, contracts, services []int64
	for i := range 4 {
		services = append(services, at.AddService(fmt.Sprintf("S%d", i), float64(i+1)))
	}
	for i := range 30 {
		c := at.AddCompany(fmt.Sprintf("Company %02d", i))
		companies = append(companies, c)
		contracts = append(contracts, at.AddContract(AutotaskContract{CompanyID: c, Name: fmt.Sprintf("MS %02d", i)}))
	}
	// Units from the 1st, then a change on the 15th of some months: the
	// split rows get ids after every contract's first rows, so a
	// contract's rows are not contiguous in id order.
	for _, k := range contracts {
		for j, svc := range services {
			at.SetUnits(k, svc, int64(j+1), date(2026, 1, 1))
		}
	}
	for i, k := range contracts {
		if i%3 == 0 {
			at.SetUnits(k, services[1], 9, date(2026, 11, 15))
		}
	}
	// An update moves a company under a parent (a new indexed value) and
	// a deleted service leaves its table and index.
	if r := api(t, s, http.MethodPatch, "Companies", fmt.Sprintf(`{"id":%d,"parentCompanyID":%d}`, companies[5], companies[0])); r.status != 200 {
		t.Fatalf("PATCH Companies = %d %s", r.status, r)
	}
	if r := api(t, s, http.MethodPatch, "Companies", fmt.Sprintf(`{"id":%d,"parentCompanyID":%d}`, companies[5], companies[1])); r.status != 200 {
		t.Fatalf("PATCH Companies = %d %s", r.status, r)
	}
	spare := at.AddService("Spare", 1)
	at.DeleteService(spare)

	ids := func(ns ...int64) string {
		parts := make([]string, len(ns))
		for i, n := range ns {
			parts[i] = fmt.Sprint(n)
		}
		return strings.Join(parts, ",")
	}
	tests := []struct {
		entity, filter string
		indexed        bool // an index answers it
	}{
		// ReadLines: an in on contractID with the date window.
		{entContractUnits, fmt.Sprintf(`{"op":"in","field":"contractID","value":[%s]},{"op":"lte","field":"startDate","value":"2026-11-30"},{"op":"gte","field":"endDate","value":"2026-11-20"}`, ids(contracts[2:9]...)), true},
		// The single-line read: two eqs; the contract's is the smaller.
		{entContractUnits, fmt.Sprintf(`{"op":"eq","field":"contractID","value":%d},{"op":"eq","field":"serviceID","value":"%d"}`, contracts[3], services[1]), true},
		{entContractUnits, fmt.Sprintf(`{"op":"and","items":[{"op":"eq","field":"contractServiceID","value":%d}]}`, int64(40000007)), true},
		{entContractUnits, fmt.Sprintf(`{"op":"in","field":"contractID","value":[%d,%d,%d,1.5]}`, contracts[0], contracts[0], contracts[29]), false},
		{entContractUnits, fmt.Sprintf(`{"op":"in","field":"contractID","value":[%d,%d,%d]}`, contracts[0], contracts[0], contracts[29]), true},
		{entContractUnits, fmt.Sprintf(`{"op":"or","items":[{"op":"eq","field":"contractID","value":%d},{"op":"eq","field":"units","value":9}]}`, contracts[4]), false},
		{entContractUnits, fmt.Sprintf(`{"op":"noteq","field":"contractID","value":%d}`, contracts[4]), false},
		{entContractUnits, `{"op":"eq","field":"contractID","value":1}`, true},
		{entContractServices, fmt.Sprintf(`{"op":"in","field":"contractID","value":[%s]}`, ids(contracts[10:12]...)), true},
		{entCompanies, fmt.Sprintf(`{"op":"eq","field":"parentCompanyID","value":%d}`, companies[1]), true},
		{entCompanies, fmt.Sprintf(`{"op":"eq","field":"parentCompanyID","value":%d}`, companies[0]), true},
		{entCompanies, fmt.Sprintf(`{"op":"in","field":"id","value":[%d,%d,%d,7]}`, companies[7], companies[3], companies[7]), true},
		{entServices, fmt.Sprintf(`{"op":"in","field":"id","value":[%d,%d]}`, spare, services[2]), true},
		{entContracts, fmt.Sprintf(`{"op":"eq","field":"companyID","value":%d}`, companies[12]), true},
	}
	for _, tt := range tests {
		d := entity(tt.entity)
		q, err := parseQuery(d, []byte(`{"filter":[`+tt.filter+`]}`))
		if err != nil {
			t.Fatalf("%s %s: %v", tt.entity, tt.filter, err)
		}
		at.mu.Lock()
		tab := at.tables[d.Name]
		for _, after := range []int64{math.MinInt64, 40000005, 50000100, 50000400, math.MaxInt64} {
			var want, got []int64
			tab.each(after, func(r record) bool {
				if q.match(r) {
					want = append(want, r.id())
				}
				return true
			})
			visited := 0
			tab.eachCandidate(q.hints, after, func(r record) bool {
				visited++
				if q.match(r) {
					got = append(got, r.id())
				}
				return true
			})
			if !slices.Equal(got, want) {
				t.Errorf("%s %s after %d: index found %v, scan %v", tt.entity, tt.filter, after, got, want)
			}
			if all := len(tab.order); after == math.MinInt64 && tt.indexed != (visited < all) {
				t.Errorf("%s %s: looked at %d of %d records, want an index used: %v", tt.entity, tt.filter, visited, all, tt.indexed)
			}
		}
		at.mu.Unlock()
	}
}

// BenchmarkAutotask_unitsQuery measures the ContractServiceUnits query
// ReadLines sends (an in on 500 contract ids and the date window, followed
// over its 5 pages) against a tenant of 20,000 contracts × 5 services:
// 100,000 lines of 12 monthly unit rows each. It reports the time per page.
//
//	go test -run '^$' -bench 'Autotask_unitsQuery' -benchtime 20x ./psa/psatest/
func BenchmarkAutotask_unitsQuery(b *testing.B) {
	const contracts, services = 20_000, 5
	s := NewServer(WithSystem("autotask"))
	defer s.Close()
	at := s.Autotask()
	svcs := make([]int64, services)
	for j := range svcs {
		svcs[j] = at.AddService(fmt.Sprintf("S%d", j), 1)
	}
	now := time.Now().UTC()
	period := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	var ids []string
	for i := range contracts {
		k := at.AddContract(AutotaskContract{CompanyID: at.AddCompany(fmt.Sprintf("C%d", i)), Name: "MS"})
		for j, svc := range svcs {
			at.SetUnits(k, svc, int64(j+1), period)
		}
		ids = append(ids, fmt.Sprint(k))
	}
	// The chunk in the middle of the table: a scan would pass half of it.
	chunk := ids[contracts/2 : contracts/2+500]
	body := fmt.Sprintf(`{"filter":[{"op":"in","field":"contractID","value":[%s]},{"op":"lte","field":"startDate","value":%q},{"op":"gte","field":"endDate","value":%q}],"MaxRecords":500,"IncludeFields":["id","contractID","contractServiceID","serviceID","startDate","endDate","units","price"]}`,
		strings.Join(chunk, ","), period.AddDate(0, 1, -1).Format(time.DateOnly), now.Format(time.DateOnly))
	h := s.Handler()
	query := func(url string) (rows int, next string) {
		req := httptest.NewRequest(http.MethodPost, url, strings.NewReader(body))
		req.Header = authHeaders()
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusOK {
			b.Fatalf("query = %d %s", w.Code, w.Body)
		}
		out := w.Body.String()
		rows = strings.Count(out, `"contractServiceID"`)
		if i := strings.Index(out, `"nextPageUrl":"`); i >= 0 {
			next = strings.ReplaceAll(out[i+len(`"nextPageUrl":"`):strings.LastIndex(out, `"`)], `\u0026`, "&")
			next = next[strings.Index(next, "/ATServicesRest"):]
		}
		return rows, next
	}
	pages := 0
	runtime.GC() // not the seeding's garbage
	b.ResetTimer()
	for b.Loop() {
		rows, next := query("/ATServicesRest/V1.0/ContractServiceUnits/query")
		pages++
		for next != "" {
			var n int
			n, next = query(next)
			rows += n
			pages++
		}
		if rows != 500*services {
			b.Fatalf("the chunk returned %d rows, want %d", rows, 500*services)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(pages), "µs/page")
}

// TestAutotaskFieldNamesNeedNoEscaping checks what encodeRecord relies on
// when it writes field names between quotes as they are: JSON would escape
// none of them.
func TestAutotaskFieldNamesNeedNoEscaping(t *testing.T) {
	t.Parallel()
	for _, d := range autotaskEntities {
		for _, f := range d.Fields {
			quoted, err := json.Marshal(f.Name)
			if err != nil || string(quoted) != `"`+f.Name+`"` {
				t.Errorf("%s.%s: JSON spells the name %s, not between plain quotes", d.Name, f.Name, quoted)
			}
		}
	}
}

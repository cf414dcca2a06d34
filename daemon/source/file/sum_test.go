package file

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// TestFetch_sumsAsRead checks that Fetch, which adds rows up as it reads
// them, returns what the engine made of the rows before: source.Sum over
// every row's record, with Sum's problems after the rows' own, each naming
// the file and row, and a problem per sum of several rows between them.
func TestFetch_sumsAsRead(t *testing.T) {
	t.Parallel()
	oct := source.Period{Year: 2026, Month: time.October}
	for _, tc := range []struct {
		name, content string
		// want are some of the problems, in full.
		want []string
	}{
		{"usage.csv", "customer_id,customer_name,product,quantity,period\n" +
			"c1,,P1,9223372036854775800,\n" + // 2
			"c2,Globex,P1,4,2026-10\n" + // 3
			"c1,Acme,P1,8,\n" + // 4: overflows line 2's sum
			"c1,Acme,P2,x,\n" + // 5: unreadable
			",,P1,3,\n" + // 6: unassigned
			"c2,,P1,5,\n" + // 7: adds to line 3
			"c1,Acme,P1,1,\n" + // 8: adds to line 2
			",,P1,2,\n" + // 9: unassigned, adds to line 6
			"c3,,P1,1,2026-09\n", // 10: other period
			[]string{
				`usage.csv:5: quantity "x" is not a whole number`,
				`usage.csv:10: period 2026-09 is not the requested period 2026-10`,
				`usage.csv:2: usage of P1 by customer "c1" adds up to more than 9223372036854775807 with usage.csv:4`,
			}},
		{"usage.json", `{"records": [
  {"customer_id": "c1", "product": "P1", "quantity": 2},
  {"customer_id": "c1", "product": "P1", "quantity": 3, "product_name": "Product 1"},
  {"customer_id": "c2", "product": "P1", "quantity": "2.5"},
  {"customer_id": "c2", "product": "P2", "quantity": 1},
  {"customer_id": "c1", "product": "P2", "quantity": 9223372036854775807},
  {"customer_id": "c1", "product": "P2", "quantity": 1},
  {"customer_id": "c1", "product": "P2", "quantity": 2}
]}`,
			[]string{
				`usage.json:4: quantity "2.5" is not a whole number`,
				`usage.json:6: usage of P2 by customer "c1" adds up to more than 9223372036854775807 with usage.json:7, usage.json:8`,
			}},
	} {
		path := filepath.Join(t.TempDir(), tc.name)
		if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		// The rows as records, summed afterwards: what the engine did with
		// a report of every row.
		var rows []source.Record
		var wantProblems []source.Problem
		if _, err := s.read(t.Context(), oct, nil, func(r source.Record) { rows = append(rows, r) },
			func(pr source.Problem) { wantProblems = append(wantProblems, pr) }); err != nil {
			t.Fatal(err)
		}
		// Then the sums of several rows (refused, the default), and the
		// sums that overflowed.
		var sum source.Summer
		for _, r := range rows {
			sum.Add(r)
		}
		wantProblems = append(wantProblems, s.repeats(&sum)...)
		wantRecords, overflows := sum.Result()
		wantProblems = append(wantProblems, overflows...)

		rep, err := s.Fetch(t.Context(), oct)
		if err != nil {
			t.Fatalf("%s: Fetch: %v", tc.name, err)
		}
		if !rep.Summed {
			t.Errorf("%s: report not marked summed", tc.name)
		}
		if diff := cmp.Diff(wantRecords, rep.Records); diff != "" {
			t.Errorf("%s: Records differ from the sums of the rows (-want +got):\n%s", tc.name, diff)
		}
		type problem struct {
			Text                string
			Unreadable          bool
			CustomerID, Product string
		}
		view := func(prs []source.Problem) []problem {
			var out []problem
			for _, pr := range prs {
				out = append(out, problem{pr.String(), pr.Unreadable, pr.CustomerID, pr.Product})
			}
			return out
		}
		if diff := cmp.Diff(view(wantProblems), view(rep.Problems)); diff != "" {
			t.Errorf("%s: Problems differ (-want +got):\n%s", tc.name, diff)
		}
		got := map[string]bool{}
		for _, pr := range rep.Problems {
			got[pr.String()] = true
		}
		for _, w := range tc.want {
			if !got[w] {
				t.Errorf("%s: no problem %q in %+v", tc.name, w, view(rep.Problems))
			}
		}
	}
}

// TestRead_growsByLines checks that read makes room for as many rows as the
// file has lines, whatever ends them: a file of carriage returns alone
// (Excel's "CSV (Macintosh)") was counted as one line, and its sums grew
// row by row.
func TestRead_growsByLines(t *testing.T) {
	t.Parallel()
	for _, end := range []string{"\n", "\r\n", "\r"} {
		path := filepath.Join(t.TempDir(), "usage.csv")
		content := "customer_id,product,quantity" + end + "c1,P1,1" + end + "c2,P1,2" + end + "c3,P1,3" + end
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		s, err := New(Config{Path: path})
		if err != nil {
			t.Fatal(err)
		}
		grown := 0
		n, err := s.read(t.Context(), source.Period{}, func(n int) { grown = n }, func(source.Record) {}, func(source.Problem) {})
		if err != nil || n != 3 {
			t.Fatalf("line end %q: read = %d, %v; want 3 rows", end, n, err)
		}
		if grown != 5 {
			t.Errorf("line end %q: grow(%d), want grow(5): the file's 4 lines, and one without a line end", end, grown)
		}
	}
}

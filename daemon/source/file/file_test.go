package file_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
)

var oct2026 = source.Period{Year: 2026, Month: time.October}

// writeFile writes content to name in a fresh temp dir and returns its path.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSource(t *testing.T, cfg file.Config) *file.Source {
	t.Helper()
	s, err := file.New(cfg)
	if err != nil {
		t.Fatalf("file.New: %v", err)
	}
	return s
}

// problems renders a report's problems as strings, for comparing.
func problems(rep *source.Report) []string {
	var out []string
	for _, p := range rep.Problems {
		out = append(out, p.String())
	}
	return out
}

// problem is what the tests compare of a source.Problem: its text (or
// only where it is), whether it is Unreadable, and whose usage it holds
// back.
type problem struct {
	Text       string
	Unreadable bool
	CustomerID string
	Product    string
}

// problemsAt returns rep's problems, each with its Where as its text.
func problemsAt(rep *source.Report) []problem {
	var out []problem
	for _, p := range rep.Problems {
		out = append(out, problem{p.Where, p.Unreadable, p.CustomerID, p.Product})
	}
	return out
}

// problemsSaid returns rep's problems, each with its String() as its text.
func problemsSaid(rep *source.Report) []problem {
	var out []problem
	for _, p := range rep.Problems {
		out = append(out, problem{p.String(), p.Unreadable, p.CustomerID, p.Product})
	}
	return out
}

// summed is what Fetch returns for rows read as these records: their sums
// per customer and product, sorted.
func summed(records []source.Record) []source.Record {
	sums, _ := source.Sum(records)
	return sums
}

func wantGoodRecords(name string) []source.Record {
	return []source.Record{
		{CustomerID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", CustomerName: "Acme", Product: "PB-STD", ProductName: "Password Boss Standard", Quantity: 20, Period: "2026-10", Where: name + ":2"},
		{CustomerID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", CustomerName: "Acme", Product: "PB-ADV", ProductName: "Password Boss Advanced", Quantity: 5, Period: "2026-10", Where: name + ":3"},
		{CustomerID: "c0ffee00-0000-4000-8000-000000000002", CustomerName: "Globex", Product: "PB-STD", ProductName: "Password Boss Standard", Quantity: 12, Where: name + ":4"},
		{Product: "PB-STD", ProductName: "Password Boss Standard", Quantity: 3, Period: "2026-10", Where: name + ":5"},
	}
}

func TestFetch_csv(t *testing.T) {
	t.Parallel()
	s := newSource(t, file.Config{Path: "testdata/usage.csv"})
	if s.Name() != "file" || s.Format() != file.FormatCSV {
		t.Errorf("Name, Format = %q, %q; want file, csv", s.Name(), s.Format())
	}
	rep, err := s.Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("Problems = %q, want none", problems(rep))
	}
	if diff := cmp.Diff(summed(wantGoodRecords("usage.csv")), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
	if rep.Source != "file" || rep.Period != oct2026 {
		t.Errorf("Source, Period = %q, %v", rep.Source, rep.Period)
	}
	if !rep.Records[0].Unassigned() {
		t.Errorf("row without customer_id is not unassigned usage: %+v", rep.Records[0])
	}
}

func TestFetch_json(t *testing.T) {
	t.Parallel()
	s := newSource(t, file.Config{Path: "testdata/usage.json", Name: "passwordboss"})
	rep, err := s.Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(rep.Problems) != 0 {
		t.Errorf("Problems = %q, want none", problems(rep))
	}
	want := []source.Record{
		{CustomerID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", CustomerName: "Acme", Product: "PB-STD", ProductName: "Password Boss Standard", Quantity: 20, Period: "2026-10", Where: "usage.json:3"},
		{CustomerID: "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b", CustomerName: "Acme", Product: "PB-ADV", Quantity: 5, Where: "usage.json:4"},
		{CustomerID: "c0ffee00-0000-4000-8000-000000000002", Product: "PB-STD", Quantity: 12, Where: "usage.json:5"},
		{Product: "PB-STD", Quantity: 3, Where: "usage.json:6"},
	}
	if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
	if rep.Source != "passwordboss" {
		t.Errorf("Source = %q, want passwordboss", rep.Source)
	}
}

func TestFetch_jsonArray(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.json", "[\n{\"customer_id\":\"a\",\"product\":\"P\",\"quantity\":1},\n{\"customer_id\":\"b\",\"product\":\"P\",\"quantity\":2}]\n")
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []source.Record{
		{CustomerID: "a", Product: "P", Quantity: 1, Where: "usage.json:2"},
		{CustomerID: "b", Product: "P", Quantity: 2, Where: "usage.json:3"},
	}
	if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
}

func TestFetch_csvBadRows(t *testing.T) {
	t.Parallel()
	content := strings.Join([]string{
		"product,quantity,customer_id,period", // column order is free
		"P1,5,c1,2026-10",                     // 2: good
		",5,c1,",                              // 3: product missing
		"P1,x,c1,",                            // 4: not a number
		"P1,-3,c1,",                           // 5: negative
		"P1,2.5,c1,",                          // 6: fraction
		"P1,5,c1",                             // 7: column count
		"P1,5,c1,2026-09",                     // 8: other period
		"P1,5,c1,Oct",                         // 9: bad period
		"P1,,c1,",                             // 10: quantity missing
		"",                                    // 11: blank lines are skipped
		"P2,7,,",                              // 12: good, unassigned
		"P1,99999999999999999999,c1,",         // 13: too large
		"P1,99999999999999999999x,c1,",        // 14: not a number
		",,,",                                 // 15: a spreadsheet's empty row
		" , ,",                                // 16: blanks only, of other columns
	}, "\n") + "\n"
	p := writeFile(t, "usage.csv", content)
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	wantProblems := []string{
		`usage.csv:3: product is missing`,
		`usage.csv:4: quantity "x" is not a whole number`,
		`usage.csv:5: quantity -3 is negative`,
		`usage.csv:6: quantity "2.5" is not a whole number`,
		`usage.csv:7: row has 3 columns, the header has 4`,
		`usage.csv:8: period 2026-09 is not the requested period 2026-10`,
		`usage.csv:9: period "Oct" is not YYYY-MM`,
		`usage.csv:10: quantity is missing`,
		`usage.csv:13: quantity 99999999999999999999 is more than 9223372036854775807`,
		`usage.csv:14: quantity "99999999999999999999x" is not a whole number`,
		`usage.csv:15: the row is empty: every column is blank`,
		`usage.csv:16: the row is empty: every column is blank`,
	}
	if diff := cmp.Diff(wantProblems, problems(rep)); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	want := []source.Record{
		{CustomerID: "c1", Product: "P1", Quantity: 5, Period: "2026-10", Where: "usage.csv:2"},
		{Product: "P2", Quantity: 7, Where: "usage.csv:12"},
	}
	if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
}

func TestFetch_csvQuotedFieldSpanningLines(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.csv", "customer_id,customer_name,product,quantity\nc1,\"Acme\nInc\",P,1\nc2,Bad \"quote,P,x\nc3,Globex,P,2\n")
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), source.Period{})
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if len(rep.Records) != 2 || rep.Records[0].Where != "usage.csv:2" || rep.Records[1].Where != "usage.csv:5" {
		t.Errorf("Records = %+v, want rows at lines 2 and 5", rep.Records)
	}
	if got := problems(rep); len(got) != 1 || !strings.HasPrefix(got[0], "usage.csv:4: ") {
		t.Errorf("Problems = %q, want one at line 4", got)
	}
}

func TestFetch_jsonBadRows(t *testing.T) {
	t.Parallel()
	content := `[
  {"customer_id": "c1", "product": "P1", "quantity": 5},
  {"customer_id": "c1", "quantity": 5},
  {"customer_id": "c1", "product": "P1", "quantity": "x"},
  {"customer_id": "c1", "product": "P1", "quantity": -3},
  {"customer_id": "c1", "product": "P1", "quantity": 2.5},
  {"customer_id": "c1", "product": "P1", "quantity": 5, "qty": 5},
  {"customer_id": "c1", "product": "P1", "quantity": 5, "period": "2026-09"},
  {"customer_id": "c1", "product": ["P1"], "quantity": 5},
  "not an object",
  {"product": "P2", "quantity": 7}
]`
	p := writeFile(t, "usage.json", content)
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	wantProblems := []string{
		`usage.json:3: product is missing`,
		`usage.json:4: quantity "x" is not a whole number`,
		`usage.json:5: quantity -3 is negative`,
		`usage.json:6: quantity "2.5" is not a whole number`,
		`usage.json:7: unknown key "qty"`,
		`usage.json:8: period 2026-09 is not the requested period 2026-10`,
		`usage.json:9: product: want a string or a number`,
		`usage.json:10: record is not a JSON object`,
	}
	if diff := cmp.Diff(wantProblems, problems(rep)); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	want := []source.Record{
		{CustomerID: "c1", Product: "P1", Quantity: 5, Where: "usage.json:2"},
		{Product: "P2", Quantity: 7, Where: "usage.json:11"},
	}
	if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
}

func TestFetch_bom(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content string }{
		{"usage.csv", "\ufeffcustomer_id,product,quantity\nc1,P,4\n"},
		{"usage.json", "\ufeff[{\"customer_id\":\"c1\",\"product\":\"P\",\"quantity\":4}]"},
	} {
		p := writeFile(t, tc.name, tc.content)
		rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("%s: Fetch: %v", tc.name, err)
		}
		want := []source.Record{{CustomerID: "c1", Product: "P", Quantity: 4, Where: tc.name + ":1"}}
		if tc.name == "usage.csv" {
			want[0].Where = "usage.csv:2"
		}
		if diff := cmp.Diff(want, rep.Records); diff != "" || len(rep.Problems) > 0 {
			t.Errorf("%s: Records mismatch (-want +got):\n%s\nproblems %q", tc.name, diff, problems(rep))
		}
	}
}

// TestFetch_utf16: a file saved as UTF-16 (Excel's "Unicode Text") is
// refused with an error that says so, not read as a header of garbled
// column names.
func TestFetch_utf16(t *testing.T) {
	t.Parallel()
	utf16 := func(bom string, s string, big bool) string {
		b := []byte(bom)
		for _, r := range s {
			if big {
				b = append(b, 0, byte(r))
			} else {
				b = append(b, byte(r), 0)
			}
		}
		return string(b)
	}
	for _, content := range []string{
		utf16("\xff\xfe", "customer_id,product,quantity\nc1,P,4\n", false),
		utf16("\xfe\xff", "customer_id,product,quantity\nc1,P,4\n", true),
	} {
		p := writeFile(t, "usage.csv", content)
		_, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
		if want := `file: usage.csv is UTF-16 text (Excel's "Unicode Text" saves that); save it as UTF-8 ("CSV UTF-8")`; err == nil || err.Error() != want {
			t.Errorf("Fetch of a UTF-16 file: %v, want %q", err, want)
		}
	}
}

func TestFetch_fileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content, want string
	}{
		{"unknown column", "u.csv", "customer_id,product,quantity,notes\n", `file: u.csv:1: unknown column "notes" (want customer_id, customer_name, product, product_name, quantity, period)`},
		{"missing column", "u.csv", "customer_id,product\n", `file: u.csv:1: column "quantity" is missing from the header`},
		{"repeated column", "u.csv", "customer_id,product,quantity,Product\n", `file: u.csv:1: column "product" appears twice`},
		// A spreadsheet's export settings, not a misspelt column: the
		// error says which and how to save the file instead.
		{"empty column", "u.csv", "customer_id,product,quantity,\r\nc1,P,3,\r\n", `file: u.csv:1: column 4 of the header has no name (a comma at the end of the header, ` +
			`or a column the spreadsheet saved blank): remove it, or name it one of customer_id, customer_name, product, product_name, quantity, period`},
		// A header of ";" or tabs is read so (TestFetch_csvSeparators),
		// unless it holds a comma too.
		{"semicolons and a comma", "u.csv", "\ufeffcustomer_id;customer_name;product;quantity,\r\nc1;Acme, Inc.;P;3\r\n", `file: u.csv:1: unknown column ` +
			`"customer_id;customer_name;product;quantity" (want customer_id, customer_name, product, product_name, quantity, period): the columns are ` +
			`separated by ";" or tabs, but the header holds a comma too, so which one separates them cannot be told; remove the comma from the header`},
		{"separator line of another separator", "u.csv", "sep=|\ncustomer_id|product|quantity\n", `file: u.csv:1: unknown column "sep=|" (want customer_id, ` +
			`customer_name, product, product_name, quantity, period): the first line is Excel's separator line, for another separator than a comma, ";" ` +
			`or a tab; remove it, and separate the columns with commas`},
		{"separator line of a sheet of commas", "u.csv", "\"sep=;\",,\ncustomer_id,product,quantity\n", `file: u.csv:1: unknown column "sep=;" ` +
			`(want customer_id, customer_name, product, product_name, quantity, period): the first line is Excel's separator line, naming a ";", ` +
			`but followed by other characters than that separator (a cell "sep=" of a sheet saved with another separator); remove that line, ` +
			`or save the sheet with the separator it names`},
		{"separator line and more", "u.csv", "sep=;;x\ncustomer_id;product;quantity\n", `file: u.csv:1: unknown column "sep=;;x" ` +
			`(want customer_id, customer_name, product, product_name, quantity, period): the first line is Excel's separator line, naming a ";", ` +
			`but followed by other characters than that separator (a cell "sep=" of a sheet saved with another separator); remove that line, ` +
			`or save the sheet with the separator it names`},
		{"separator line of another header", "u.csv", "sep=;\r\ncustomer_id,product,quantity\r\n", `file: u.csv:2: unknown column "customer_id,product,quantity" ` +
			`(want customer_id, customer_name, product, product_name, quantity, period): the columns are separated by commas, not by the separator ` +
			`that the first line ("sep=") names; remove that line`},
		{"separator line, missing column", "u.csv", "sep=;\ncustomer_id;product\n", `file: u.csv:2: column "quantity" is missing from the header`},
		{"semicolons, empty column", "u.csv", "customer_id;product;quantity;\n", `file: u.csv:1: column 4 of the header has no name (a ";" at the end of the header, ` +
			`or a column the spreadsheet saved blank): remove it, or name it one of customer_id, customer_name, product, product_name, quantity, period`},
		{"separator line only", "u.csv", "sep=;", `file: u.csv: empty file, want a header row with customer_id, product, quantity`},
		// Carriage returns alone are read (TestFetch_csvCarriageReturns),
		// unless the file holds a line feed too.
		{"carriage returns and a line feed", "u.csv", "customer_id,product,quantity\rc1,\"P\nQ\",3\r", `file: u.csv:1: unknown column "quantity\rc1" ` +
			`(want customer_id, customer_name, product, product_name, quantity, period): the lines end in a carriage return alone (Excel's ` +
			`"CSV (Macintosh)"), and the file holds a line feed too (a line break in a cell), so where a line ends cannot be told; ` +
			`save the file as "CSV UTF-8", whose lines end in CR LF`},
		{"empty csv", "u.csv", "", `file: u.csv: empty file, want a header row with customer_id, product, quantity`},
		{"json scalar", "u.json", `42`, `file: u.json: want an array of records or an object with a "records" array`},
		{"json wrapper key", "u.json", "{\n\"rows\": []}", `file: u.json:2: unknown key "rows" (want "records")`},
		{"json no records", "u.json", `{}`, `file: u.json: the object has no "records" array`},
		{"json truncated", "u.json", `[{"product": "P", "quantity": 1}`, `file: u.json: unexpected end of JSON`},
		{"json syntax", "u.json", "[\n{\"product\": \"P\",, }]", `file: u.json: line 2: invalid character ',' looking for beginning of object key string`},
		{"json trailing", "u.json", "[]\n[]", `file: u.json:2: unexpected data after the records`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, tc.file, tc.content)
			_, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
			if err == nil || err.Error() != tc.want {
				t.Errorf("Fetch error = %v, want %s", err, tc.want)
			}
		})
	}
}

// TestFetch_csvSeparators reads files whose columns are separated by ";"
// (Excel's CSV where a comma is the decimal separator) or tabs, named by
// the header or by Excel's "sep=" first line, as a file of commas: a
// field in quotes may hold the separator, and a bad row fails its
// customer only, the lines a quote left open ran over each theirs.
func TestFetch_csvSeparators(t *testing.T) {
	t.Parallel()
	// "|" stands for the separator.
	lines := []string{
		"Customer_ID|customer_name|product|quantity|period",
		`2c9f|"Acme| Inc."|CIXA|4|2026-10`,  // the separator in quotes
		"3b1e|Globex|CIXA|3,5|2026-10",      // a decimal comma: 3b1e's
		"4d2a|Initech| Inc.|CIXA|2|2026-10", // the separator not quoted: a column more, 4d2a's
		`5e6f|"Umbrella|CIXA|1|2026-10`,     // a quote left open ...
		`6a7b|Hooli"|CIXA|2|2026-10`,        // ... closed a row later: each line its customer's
		`7c8d|Stark|CIX"A|1|2026-10`,        // a stray quote after the customer: 7c8d's
		"8e9f|Wayne|CIXA|5|2026-10",
	}
	for _, tc := range []struct {
		name, sep, before, eol string
	}{
		{"semicolons", ";", "", "\n"},
		{"semicolons of Excel", ";", "\ufeff", "\r\n"},
		{"separator line", ";", "\ufeffsep=;\r\n", "\r\n"},
		{"tabs", "\t", "", "\n"},
		{"separator line of tabs", "\t", "SEP=\t\n", "\n"},
		{"separator line of commas", ",", "sep=,\n", "\n"},
		{"separator line in quotes", ";", "\"sep=;\"\r\n", "\r\n"},
		// sep=; typed into cell A1, the row's other cells empty.
		{"separator line of a sheet", ";", "sep=;;;;;\r\n", "\r\n"},
		{"separator line of a sheet in quotes", ";", "\ufeff\"sep=;\";;;;\r\n", "\r\n"},
		{"separator line of a sheet of tabs", "\t", "\"SEP=\t\"\t\t\t\t\n", "\n"},
		// Excel's "CSV (Macintosh)": lines end in a carriage return alone.
		{"carriage returns", ",", "", "\r"},
		{"carriage returns and a separator line", ";", "sep=;\r", "\r"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			content := tc.before + strings.ReplaceAll(strings.Join(lines, tc.eol), "|", tc.sep) + tc.eol
			rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", content)}).Fetch(t.Context(), oct2026)
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			// The lines before the header, ended in CR LF, LF or CR.
			before := strings.Count(tc.before, "\n") + strings.Count(strings.ReplaceAll(tc.before, "\r\n", ""), "\r")
			at := func(line int) string { // the file's line of lines[line-1]
				return fmt.Sprintf("usage.csv:%d", line+before)
			}
			want := []source.Record{
				{CustomerID: "2c9f", CustomerName: "Acme" + tc.sep + " Inc.", Product: "CIXA", Quantity: 4, Period: "2026-10", Where: at(2)},
				{CustomerID: "8e9f", CustomerName: "Wayne", Product: "CIXA", Quantity: 5, Period: "2026-10", Where: at(8)},
			}
			if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
				t.Errorf("Records mismatch (-want +got):\n%s", diff)
			}
			// A comma splits "3,5" into two columns: the row's product is
			// not told either.
			decimalProduct := "CIXA"
			if tc.sep == "," {
				decimalProduct = ""
			}
			wantProblems := []problem{{at(3), true, "3b1e", decimalProduct}, {at(4), true, "4d2a", ""}, {at(5), true, "5e6f", ""}, {at(6), true, "6a7b", ""}, {at(7), true, "7c8d", ""}}
			if diff := cmp.Diff(wantProblems, problemsAt(rep)); diff != "" {
				t.Fatalf("Problems mismatch (-want +got):\n%s\nall: %q", diff, problems(rep))
			}
			sepName := map[string]string{";": `a ";"`, "\t": "a tab", ",": "a comma"}[tc.sep]
			decimal := `quantity "3,5" is not a whole number`
			if tc.sep == "," {
				decimal = "row has 6 columns, the header has 5"
			}
			for i, want := range []string{
				decimal,
				"row has 6 columns, the header has 5",
				fmt.Sprintf("the quoted customer_name field runs from %s to line %d and holds %s: a quote left open may have swallowed the rows "+
					"between, so the customer of each of those lines is not synced this pass; close the quote, or put the field on one line",
					strings.Replace(at(5), "usage.csv:", "line ", 1), 6+before, sepName),
			} {
				if got := rep.Problems[i].Err.Error(); !strings.HasSuffix(got, want) {
					t.Errorf("problem %s: %s; want %s", rep.Problems[i].Where, got, want)
				}
			}
		})
	}
}

func TestFetch_csvCarriageReturns(t *testing.T) {
	t.Parallel()
	// Excel's "CSV (Macintosh)": no line feed, every line ends in a
	// carriage return, one in a quoted name too (a line break in a cell).
	content := "\ufeffcustomer_id,customer_name,product,quantity,period\r" +
		"2c9f,\"Acme\rHQ\",CIXA,4,2026-10\r" + // a name over two lines: lines 2 and 3
		"3b1e,Globex,CIXA,x,2026-10\r" +
		"\r" +
		// The separator in a field over two lines, lines 6 and 7: as in a
		// file of line feeds, the customer of line 7 cannot be told.
		"4d2a,\"Initech,\rInc.\",CIXA,2,2026-10\r" +
		"8e9f,Wayne,CIXA,5,2026-10\r"
	rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", content)}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []source.Record{
		{CustomerID: "2c9f", CustomerName: "Acme\nHQ", Product: "CIXA", Quantity: 4, Period: "2026-10", Where: "usage.csv:2"},
		{CustomerID: "8e9f", CustomerName: "Wayne", Product: "CIXA", Quantity: 5, Period: "2026-10", Where: "usage.csv:8"},
	}
	if diff := cmp.Diff(summed(want), rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
	wantProblems := []problem{{"usage.csv:4", true, "3b1e", "CIXA"}, {"usage.csv:6", true, "", ""}}
	if diff := cmp.Diff(wantProblems, problemsAt(rep)); diff != "" {
		t.Fatalf("Problems mismatch (-want +got):\n%s\nall: %q", diff, problems(rep))
	}
	// Read as the same file of line feeds is, problems and all.
	lf, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", strings.ReplaceAll(content, "\r", "\n"))}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch of line feeds: %v", err)
	}
	if diff := cmp.Diff(problems(lf), problems(rep)); diff != "" {
		t.Errorf("Problems differ from those of line feeds (-lf +cr):\n%s", diff)
	}
	if diff := cmp.Diff(lf.Records, rep.Records); diff != "" {
		t.Errorf("Records differ from those of line feeds (-lf +cr):\n%s", diff)
	}
}

// TestFetch_jsonCarriageReturns: a JSON file whose lines end in a carriage
// return alone (written on a classic Mac, or by a tool that does so) was
// read as one line: every problem said line 1. Its rows and errors are
// numbered as those of the same file of line feeds.
func TestFetch_jsonCarriageReturns(t *testing.T) {
	t.Parallel()
	rows := "[\r" +
		"  {\"customer_id\": \"2c9f\", \"product\": \"CIXA\", \"quantity\": 4},\r" + // 2
		"  {\"customer_id\": \"3b1e\", \"product\": \"CIXA\",\r" + // 3
		"   \"quantity\": \"x\"},\r" +
		"  {\"customer_id\": \"4d2a\", \"product\": \"CIXA\", \"quantity\": 1, \"quantity\": 9}\r" + // 5
		"]\r"
	rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.json", rows)}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	want := []string{
		`usage.json:3: quantity "x" is not a whole number`,
		`usage.json:5: key "quantity" appears twice (again at line 5): JSON readers differ on which one counts, so remove one`,
	}
	if diff := cmp.Diff(want, problems(rep)); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	if len(rep.Records) != 1 || rep.Records[0].Where != "usage.json:2" {
		t.Errorf("Records = %+v, want 2c9f's of usage.json:2", rep.Records)
	}
	_, err = newSource(t, file.Config{Path: writeFile(t, "usage.json", "[\r{\"customer_id\": \"2c9f\"},\r{\"customer_id\" \"4d2a\"}\r]\r")}).Fetch(t.Context(), oct2026)
	if want := "file: usage.json: line 3: invalid character '\"' after object key"; err == nil || err.Error() != want {
		t.Errorf("Fetch of a syntax error = %v, want %s", err, want)
	}
}

// TestFetch_duplicateRows: rows of one customer and product were added up
// without a word, so a row pasted twice billed twice unseen. By default
// (duplicate_rows: sum) they still add up, and each sum is a notice naming
// the rows; with duplicate_rows: refuse such rows fail their customer (an
// Unreadable problem of that customer and product, naming the rows). Rows
// of no customer add up either way.
func TestFetch_duplicateRows(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.csv", strings.Join([]string{
		"customer_id,product,quantity",
		"c1,P,20", // 2
		"c1,Q,3",  // 3
		",P,1",    // 4
		"c1,P,20", // 5: line 2 pasted again
		",P,1",    // 6
		"c2,P,1",  // 7: a row per site, 5 of them
		"c2,P,2",
		"c2,P,3",
		"c2,P,4",
		"c2,P,5",
	}, "\n")+"\n")
	const fix = ": a row pasted twice bills twice; remove the repeated rows, or, if each row is usage of its own (a row per site), set duplicate_rows: sum"
	refused := []problem{
		{`usage.csv:2: customer "c1" has 2 rows of product "P" (usage.csv:2, usage.csv:5), which would add up to 40` + fix, true, "c1", "P"},
		{`usage.csv:7: customer "c2" has 5 rows of product "P" (usage.csv:7, usage.csv:8, usage.csv:9, usage.csv:10 and 1 more), which would add up to 15` + fix, true, "c2", "P"},
	}
	summedRows := []problem{
		{`usage.csv:2: customer "c1" has 2 rows of product "P" (usage.csv:2, usage.csv:5), added up to 40 (duplicate_rows: sum)`, false, "c1", "P"},
		{`usage.csv:7: customer "c2" has 5 rows of product "P" (usage.csv:7, usage.csv:8, usage.csv:9, usage.csv:10 and 1 more), added up to 15 (duplicate_rows: sum)`, false, "c2", "P"},
	}
	wantRecords := []source.Record{
		{Product: "P", Quantity: 2, Where: "usage.csv:4 (+1 more)"},
		{CustomerID: "c1", Product: "P", Quantity: 40, Where: "usage.csv:2 (+1 more)"},
		{CustomerID: "c1", Product: "Q", Quantity: 3, Where: "usage.csv:3"},
		{CustomerID: "c2", Product: "P", Quantity: 15, Where: "usage.csv:7 (+4 more)"},
	}
	for _, tc := range []struct {
		dup   file.DuplicateRows
		want  []problem
		check string // Check's error, or "" when it passes
	}{
		{"", summedRows, ""},
		{file.DuplicateRowsRefuse, refused, "file: usage.csv: 10 rows, 0 skipped, 2 products of customers on several rows (first: " + refused[0].Text + ")"},
		{file.DuplicateRowsSum, summedRows, ""},
	} {
		s := newSource(t, file.Config{Path: p, DuplicateRows: tc.dup})
		rep, err := s.Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("%q: Fetch: %v", tc.dup, err)
		}
		if diff := cmp.Diff(tc.want, problemsSaid(rep)); diff != "" {
			t.Errorf("%q: Problems mismatch (-want +got):\n%s", tc.dup, diff)
		}
		if diff := cmp.Diff(wantRecords, rep.Records); diff != "" {
			t.Errorf("%q: Records mismatch (-want +got):\n%s", tc.dup, diff)
		}
		err = s.Check(t.Context())
		if gotErr := fmt.Sprint(err); tc.check == "" && err != nil || tc.check != "" && gotErr != tc.check {
			t.Errorf("%q: Check = %v, want %q", tc.dup, err, tc.check)
		}
		desc, err := s.Describe(t.Context())
		if want := "usage.csv: 10 rows, 0 skipped, 2 products of customers on several rows (first: " + tc.want[0].Text + ")"; desc != want || fmt.Sprint(err) != fmt.Sprint(s.Check(t.Context())) {
			t.Errorf("%q: Describe = %q, %v; want %q", tc.dup, desc, err, want)
		}
	}
	// Rows of one customer and product in two periods are not repeats of
	// each other: Check reads every period.
	two := writeFile(t, "usage.csv", "customer_id,product,quantity,period\nc1,P,20,2026-09\nc1,P,20,2026-10\n")
	if err := newSource(t, file.Config{Path: two, DuplicateRows: file.DuplicateRowsRefuse}).Check(t.Context()); err != nil {
		t.Errorf("Check of one row a period: %v", err)
	}
	// A row with no period counts in the period of the pass, as one of any
	// period does, so it repeats a row of any period: the pass of October
	// finds this repeat, and so must Check, whether the row with no period
	// comes first or last. A repeat among rows with no period is one
	// problem, however many periods the file holds.
	for _, tc := range []struct{ rows, want string }{
		{"c1,P,5,\nc1,P,5,2026-10\n", `usage.csv:2: customer "c1" has 2 rows of product "P" (usage.csv:2, usage.csv:3)`},
		{"c1,P,5,2026-10\nc1,P,5,\n", `usage.csv:2: customer "c1" has 2 rows of product "P" (usage.csv:2, usage.csv:3)`},
		{"c2,Q,1,2026-09\nc1,P,5,\nc1,P,5,\nc2,Q,1,2026-10\n", `usage.csv:3: customer "c1" has 2 rows of product "P" (usage.csv:3, usage.csv:4)`},
	} {
		p := writeFile(t, "usage.csv", "customer_id,product,quantity,period\n"+tc.rows)
		desc, err := newSource(t, file.Config{Path: p, DuplicateRows: file.DuplicateRowsRefuse}).Describe(t.Context())
		if err == nil || !strings.Contains(desc, ", 1 product of a customer on several rows (first: "+tc.want) {
			t.Errorf("Describe of %q = %q, %v; want it failed on one repeat, %s", tc.rows, desc, err, tc.want)
		}
	}
}

func TestFetch_missingFile(t *testing.T) {
	t.Parallel()
	s := newSource(t, file.Config{Path: filepath.Join(t.TempDir(), "nope.csv")})
	_, err := s.Fetch(t.Context(), oct2026)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Fetch error = %v, want fs.ErrNotExist", err)
	}
	if err := s.Check(t.Context()); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Check error = %v, want fs.ErrNotExist", err)
	}
}

func TestNew_errors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cfg  file.Config
		want string
	}{
		{file.Config{}, "file: path is required"},
		{file.Config{Path: "usage.txt"}, `file: cannot tell the format of "usage.txt" from its extension; set the format to csv or json`},
		{file.Config{Path: "usage.csv", Format: "xml"}, `file: unknown format "xml" (want csv or json)`},
		{file.Config{Path: "usage.csv", DuplicateRows: "add"}, `file: unknown duplicate_rows "add" (want refuse or sum)`},
	}
	for _, tc := range tests {
		if _, err := file.New(tc.cfg); err == nil || err.Error() != tc.want {
			t.Errorf("New(%+v) error = %v, want %s", tc.cfg, err, tc.want)
		}
	}
	s, err := file.New(file.Config{Path: "usage.txt", Format: file.FormatJSON})
	if err != nil || s.Format() != file.FormatJSON {
		t.Errorf("New with explicit format = %v, %v", s, err)
	}
}

func TestCheckAndDescribe(t *testing.T) {
	t.Parallel()
	good := newSource(t, file.Config{Path: "testdata/usage.csv"})
	if err := good.Check(t.Context()); err != nil {
		t.Errorf("Check good file: %v", err)
	}
	if got, err := good.Describe(t.Context()); err != nil || got != "usage.csv: 4 rows, 0 skipped" {
		t.Errorf("Describe = %q, %v", got, err)
	}
	p := writeFile(t, "bad.csv", "customer_id,product,quantity\nc1,P,1\nc1,,2\nc1,P,z\n")
	err := newSource(t, file.Config{Path: p}).Check(t.Context())
	want := `file: bad.csv: 3 rows, 2 skipped (first: bad.csv:3: product is missing)`
	if err == nil || err.Error() != want {
		t.Errorf("Check bad file = %v, want %s", err, want)
	}
	// psa-syncd check prints Describe: it said "ok" of that file, whose
	// rows fail c1 at every pass.
	if got, err := newSource(t, file.Config{Path: p}).Describe(t.Context()); err == nil || err.Error() != want || "file: "+got != want {
		t.Errorf("Describe bad file = %q, %v; want the error %s", got, err, want)
	}
	// Rows that are only reported fail neither: a file of two months, a
	// spreadsheet's empty row.
	p = writeFile(t, "months.csv", "customer_id,product,quantity,period\nc1,P,1,2026-09\n,,,\n")
	if err := newSource(t, file.Config{Path: p}).Check(t.Context()); err != nil {
		t.Errorf("Check of rows only reported = %v, want nil", err)
	}
}

// TestFetch_unreadableRows: a row that cannot be read is Unreadable for the
// customer in its customer_id column (or for any customer when the row
// cannot be split into columns, or its JSON customer_id cannot be read), so
// that the engine does not lower that customer's quantities on the rest.
// Usage of no customer and usage of another period are not Unreadable.
func TestFetch_unreadableRows(t *testing.T) {
	t.Parallel()
	csvPath := writeFile(t, "usage.csv", strings.Join([]string{
		"customer_id,product,quantity,period",
		"2c9f,CIXA-MSP,4x2,",      // 2: this customer's usage is unknown
		",CIXA-MSP,x,",            // 3: no customer: never billed
		"2c9f,CIXA-MSP,1",         // 4: a column short, the customer first: 2c9f's
		"2c9f,CIXA-MSP,1,2026-09", // 5: another period
		"2c9f,,1,",                // 6: product missing: any of 2c9f's
		`2c9f,"CIXA "MSP",1,`,     // 7: a stray quote after the customer: 2c9f's
		`77a1,CIX"A,1,`,           // 8: likewise
		"   ",                     // 9: blanks only: no usage, no one's
		" ,\t",                    // 10: likewise
	}, "\n")+"\n")
	rep, err := newSource(t, file.Config{Path: csvPath}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	want := []problem{
		{"usage.csv:2", true, "2c9f", "CIXA-MSP"},
		{"usage.csv:3", false, "", ""},
		{"usage.csv:4", true, "2c9f", ""},
		{"usage.csv:5", false, "", ""},
		{"usage.csv:6", true, "2c9f", ""},
		{"usage.csv:7", true, "2c9f", ""},
		{"usage.csv:8", true, "77a1", ""},
		{"usage.csv:9", false, "", ""},
		{"usage.csv:10", false, "", ""},
	}
	if diff := cmp.Diff(want, problemsAt(rep)); diff != "" {
		t.Errorf("CSV problems mismatch (-want +got):\n%s", diff)
	}
	// The customer of a row that cannot be split, or splits into another
	// number of columns than the header's, is known only when it is the
	// first column, and the record a line of its own: a column before it
	// could be shifted, and a quote left open runs into the rows after (a
	// quote closed by another row's stray one swallows the rows between).
	// A customer's name with a comma not quoted fails that customer, not
	// every customer of the file.
	for content, want := range map[string][]problem{
		"product,customer_id,quantity\nCIX\"A,2c9f,1\n":                                            {{"usage.csv:2", true, "", ""}},
		"customer_id,product,quantity\n\"2c\"9f,CIXA,1\n":                                          {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n2c9f,Acme, Inc.,CIXA,1\n3b1e,Globex,CIXA,2\n": {{"usage.csv:2", true, "2c9f", ""}},
		"customer_id,customer_name,product,quantity\r\n\r\n\"2c9f\",Acme, Inc.,CIXA,1\r\n":         {{"usage.csv:3", true, "2c9f", ""}},
		"customer_id,product,quantity\n2c9f,CIXA,1,\n":                                             {{"usage.csv:2", true, "2c9f", ""}},
		"customer_name,customer_id,product,quantity\nAcme, Inc.,2c9f,CIXA,1\n":                     {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme\nInc\",x,CIXA,1\n":                {{"usage.csv:2", true, "", ""}},
		// A quote opened in one row and closed in a later one, the
		// header's number of columns all the same: the rows between
		// (3b1e's) are text of a name, and 4d2a's quantity 2c9f's. The
		// comma in the field, before or after its line break, tells.
		// Each line the record runs over, split on its own into the
		// header's columns, fails the customer of its first column.
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,Initech\",CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", true, "3b1e", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n4d2a,Initech\",CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", true, "4d2a", ""},
		},
		"customer_id,product,quantity,customer_name\r\n\r\n2c9f,CIXA,1,\"Acme\r\n4d2a,CIXA,3,Initech\"\r\n": {
			{"usage.csv:3", true, "2c9f", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		// A blank line swallowed is no one's row.
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n\n4d2a,Initech\",CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		// A line of other columns is its first column's, as a row of
		// one line is: the record of another number of columns than
		// the header's (the quote closed before a comma not quoted),
		// a line of its own of other columns, and the record of a
		// quote that does not close as a field ends (a parse error),
		// or not before the end of the file.
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,Initech\",x,CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", true, "3b1e", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex\n4d2a,Initech\",CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", true, "3b1e", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,\"Initech, Inc\",CIXA,3\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", true, "3b1e", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		"customer_id,product,quantity\n2c9f,\"CIXA,1\n\n\"3b1e\",CIXA,2\n": {{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:4", true, "3b1e", ""}},
		// A line whose first field cannot be told (a quote in it, or
		// one left open), or a customer_id not the first column, is
		// anyone's.
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n4d2a\",CIXA,3\n":                        {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n\"4d2a,Initech\",CIXA,3\n":              {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n\"4d2a,\"Initech\n": {{"usage.csv:2", true, "", ""}},
		"customer_name,customer_id,product,quantity\nAcme,2c9f,\"CIXA,1\n3b1e,Globex\",x,CIXA,3\n":               {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme, Inc.\nHQ\",CIXA,1\n":                           {{"usage.csv:2", true, "", ""}},
		"customer_name,customer_id,product,quantity\nAcme,2c9f,\"CIXA,1\nInitech,4d2a,CIXA\",3\n":                {{"usage.csv:2", true, "", ""}},
		"customer_id,customer_name,product,quantity\n\"2c9f,Acme,CIXA,1\n4d2a\",Initech,CIXA,3\n":                {{"usage.csv:2", true, "", ""}},
		// A name over two lines, without a comma, is a name.
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme\nInc\",CIXA,1\n": nil,
	} {
		rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", content)}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, problemsAt(rep)); diff != "" {
			t.Errorf("CSV problems of %q mismatch (-want +got):\n%s", content, diff)
		}
	}
	// A record over several lines with another number of columns, or
	// that does not parse, names them too, and fails the customer of
	// each; the customers of the other rows are billed.
	for content, want := range map[string]string{
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,Initech\",x,CIXA,3\n5e6f,Umbrella,CIXA,7\n": ": row has 5 columns, the header has 4; it runs from line 2 to line 4: " +
			"a quote left open may have swallowed the rows between, so the customer of each of those lines is not synced this pass; close the quote, or put the field on one line",
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,\"Initech, Inc\",CIXA,3\n5e6f,Umbrella,CIXA,7\n": `: extraneous or missing " in quoted-field at line 4, column 6; ` +
			"the row runs from line 2 to line 4: a quote left open may have swallowed the rows between, so the customer of each of those lines is not synced this pass; close the quote, or put the field on one line",
	} {
		rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", content)}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"usage.csv:2" + want, "usage.csv:3" + want, "usage.csv:4" + want}, problems(rep)); diff != "" {
			t.Errorf("record of %q: problems mismatch (-want +got):\n%s", content, diff)
		}
		wantRecords := []source.Record{{CustomerID: "5e6f", CustomerName: "Umbrella", Product: "CIXA", Quantity: 7, Where: "usage.csv:5"}}
		if diff := cmp.Diff(wantRecords, rep.Records); diff != "" {
			t.Errorf("record of %q: records mismatch (-want +got):\n%s", content, diff)
		}
	}
	// The problem names the lines the field runs over; the customers of
	// the other rows are billed.
	rep, err = newSource(t, file.Config{Path: writeFile(t, "usage.csv",
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n3b1e,Globex,CIXA,2\n4d2a,Initech\",CIXA,3\n5e6f,Umbrella,CIXA,7\n")}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	const swallowedLines = ": the quoted customer_name field runs from line 2 to line 4 and holds a comma: " +
		"a quote left open may have swallowed the rows between, so the customer of each of those lines is not synced this pass; close the quote, or put the field on one line"
	wantProblems := []string{"usage.csv:2" + swallowedLines, "usage.csv:3" + swallowedLines, "usage.csv:4" + swallowedLines}
	if diff := cmp.Diff(wantProblems, problems(rep)); diff != "" {
		t.Errorf("swallowed rows: problems mismatch (-want +got):\n%s", diff)
	}
	wantRecords := []source.Record{{CustomerID: "5e6f", CustomerName: "Umbrella", Product: "CIXA", Quantity: 7, Where: "usage.csv:5"}}
	if diff := cmp.Diff(wantRecords, rep.Records); diff != "" {
		t.Errorf("swallowed rows: records mismatch (-want +got):\n%s", diff)
	}
	// When a line does not split so, whose usage the rows are cannot be
	// told.
	rep, err = newSource(t, file.Config{Path: writeFile(t, "usage.csv",
		"customer_id,customer_name,product,quantity\n2c9f,\"Acme,CIXA,1\n4d2a\",CIXA,3\n5e6f,Umbrella,CIXA,7\n")}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	const anyone = "usage.csv:2: the quoted customer_name field runs from line 2 to line 3 and holds a comma: " +
		"a quote left open may have swallowed the rows between, so whose usage they are cannot be told; close the quote, or put the field on one line"
	if len(rep.Problems) != 1 || rep.Problems[0].String() != anyone || rep.Problems[0].CustomerID != "" {
		t.Errorf("swallowed rows of a line that does not split: problems %v; want only %q", rep.Problems, anyone)
	}

	jsonPath := writeFile(t, "usage.json", `[
{"customer_id": "2c9f", "product": "P", "quantity": "4x2"},
{"customer_id": "2c9f", "product": "P", "quantity": 1, "seats": 3},
{"customer_id": 7, "product": "P", "quantity": true},
[1]
]`)
	rep, err = newSource(t, file.Config{Path: jsonPath}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	want = []problem{
		{"usage.json:2", true, "2c9f", "P"},
		{"usage.json:3", true, "2c9f", ""},
		{"usage.json:4", true, "7", ""},
		{"usage.json:5", true, "", ""},
	}
	if diff := cmp.Diff(want, problemsAt(rep)); diff != "" {
		t.Errorf("JSON problems mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_idASpreadsheetLost: a spreadsheet writes a long number in
// scientific notation, "1.23457E+15" for the customer id 1234567890123456,
// and the digits after the first few are lost; Excel's "CSV (Comma
// delimited)" writes the Windows code page, not UTF-8, so "Société" is
// "Soci\xe9t\xe9". Such an id was read as an unmapped one: the mapped
// customer, or the customer's mapped product, was billed without the row's
// usage. Now the row is an Unreadable problem: of any customer when it is
// the customer_id, of any product of the row's customer when it is the
// product. A row of another period, or of no customer, is only reported,
// as any bad row.
func TestFetch_idASpreadsheetLost(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.csv", strings.Join([]string{
		"customer_id,product,quantity,period",
		"1.23457E+15,CIXA,3,",        // 2
		"2c9f,4.2e+11,3,",            // 3
		"2c9f,CIXA,4,",               // 4
		"1.23457E+15,CIXA,3,2026-09", // 5
		",1E+5,3,",                   // 6
		"1E+5X,CIXA,1,",              // 7: not a number: an id
		"1.2.3E+5,CIXA,1,",           // 8: likewise
		"Soci\xe9t\xe9,CIXA,1,",      // 9: Windows-1252, not UTF-8
		"2c9f,CIX\xc4,1,",            // 10: likewise
		"Soci\u00e9t\u00e9,CIXA,1,",  // 11: UTF-8
	}, "\n")+"\n")
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	const fix = "; format the column as text in the spreadsheet, and export the file again"
	// Rows 9 and 10 are in the Windows code page, row 11 in UTF-8: two
	// exports pasted into one, which the problem says, and where.
	const mixed = ` is not UTF-8 text and matches no mapping: the file mixes UTF-8 (first at line 11) and the Windows code page (first at line 9), ` +
		`as two exports pasted into one, one saved as "CSV UTF-8" and one as "CSV (Comma delimited)", and cannot be read as either, `
	const join = `; save each export as "CSV UTF-8" and join them again`
	want := []problem{
		{`usage.csv:2: customer_id "1.23457E+15" is a number a spreadsheet wrote in scientific notation, its digits after the first few lost, ` +
			"so whose usage the row is cannot be told" + fix, true, "", ""},
		{`usage.csv:3: product "4.2e+11" is a number a spreadsheet wrote in scientific notation, its digits after the first few lost, ` +
			"so which product the row is of cannot be told" + fix, true, "2c9f", ""},
		{"usage.csv:5: period 2026-09 is not the requested period 2026-10", false, "", ""},
		{`usage.csv:6: product "1E+5" is a number a spreadsheet wrote in scientific notation, its digits after the first few lost, ` +
			"so which product the row is of cannot be told" + fix, false, "", ""},
		{`usage.csv:9: customer_id "Soci\xe9t\xe9"` + mixed + `so whose usage the row is cannot be told` + join, true, "", ""},
		{`usage.csv:10: product "CIX\xc4"` + mixed + `so which product the row is of cannot be told` + join, true, "2c9f", ""},
	}
	if diff := cmp.Diff(want, problemsSaid(rep)); diff != "" {
		t.Errorf("problems mismatch (-want +got):\n%s", diff)
	}
	var customers []string
	for _, r := range rep.Records {
		customers = append(customers, r.CustomerID)
	}
	if diff := cmp.Diff([]string{"1.2.3E+5", "1E+5X", "2c9f", "Soci\u00e9t\u00e9"}, customers); diff != "" {
		t.Errorf("customers of the records mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_jsonNotUTF8: encoding/json reads each byte of a string that
// is not UTF-8 as U+FFFD, so in a JSON file that cannot be read as
// Windows-1252 (UTF-8 text too, or a byte that code page leaves undefined)
// "M\xfcller" was the valid id "M\uFFFDller": a row of no mapping, without
// a problem, and the mapped "Müller" billed without it. Such a customer_id
// or product is now a lost id, as in a CSV file: the row is Unreadable, of
// any customer or any product of its customer, its problem naming the
// line, the key and what the file mixes; psa-syncd check fails on it. A
// name not in UTF-8 has U+FFFD for its bytes (see TestFetch_namesNotUTF8),
// and a U+FFFD written in the file is a character like any other.
func TestFetch_jsonNotUTF8(t *testing.T) {
	t.Parallel()
	const whose, which = `so whose usage the row is cannot be told; `, `so which product the row is of cannot be told; `
	for _, tc := range []struct {
		name, content string
		want          []problem
		customers     []string // id and name
	}{
		{"mixed", "[\n" +
			`{"customer_id": "M\u00fcller", "customer_name": "M` + "\u00fc" + `ller", "product": "CIXA", "quantity": 3},` + "\n" +
			"{\"customer_id\": \"M\xfcller\", \"product\": \"CIXA\", \"quantity\": 2},\n" +
			"{\"customer_id\": \"2c9f\",\n \"product\": \"CIX\xc4\", \"quantity\": 1},\n" +
			"{\"customer_id\": \"x\ufffd\", \"customer_name\": \"Soci\xe9t\xe9 \\\"\xe9\\\"\", \"product\": \"CIXA\", \"quantity\": 1}\n]\n",
			[]problem{
				{`usage.json:3: customer_id "M\xfcller" is not UTF-8 text, as JSON must be, and matches no mapping: the file mixes UTF-8 (first at line 2) ` +
					`and another code page (first at line 3), as text of two sources written into one file, and cannot be read as either, ` +
					whose + `have the program that writes the file write UTF-8 only`, true, "", ""},
				{`usage.json:4: product "CIX\xc4" is not UTF-8 text, as JSON must be, and matches no mapping: the file mixes UTF-8 (first at line 2) ` +
					`and another code page (first at line 3), as text of two sources written into one file, and cannot be read as either, ` +
					which + `have the program that writes the file write UTF-8 only`, true, "2c9f", ""},
			},
			[]string{"M\u00fcller M\u00fcller", "x\ufffd Soci\ufffdt\ufffd \"\ufffd\""}},
		{"undefined byte", "[{\"customer_id\": \"M\xfcller\", \"product\": \"CIXA\", \"quantity\": 2},\n{\"customer_id\": \"X\x81\", \"product\": \"CIXA\", \"quantity\": 2}]",
			[]problem{
				{`usage.json:1: customer_id "M\xfcller" is not UTF-8 text, as JSON must be, and matches no mapping: the program that wrote the file wrote another code page ` +
					`(first at line 1), ` + whose + `have it write UTF-8`, true, "", ""},
				{`usage.json:2: customer_id "X\x81" is not UTF-8 text, as JSON must be, and matches no mapping: the program that wrote the file wrote another code page ` +
					`(first at line 1), ` + whose + `have it write UTF-8`, true, "", ""},
			},
			nil},
	} {
		s := newSource(t, file.Config{Path: writeFile(t, "usage.json", tc.content)})
		rep, err := s.Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("%s: Fetch: %v", tc.name, err)
		}
		if diff := cmp.Diff(tc.want, problemsSaid(rep)); diff != "" {
			t.Errorf("%s: problems mismatch (-want +got):\n%s", tc.name, diff)
		}
		var customers []string
		for _, r := range rep.Records {
			customers = append(customers, r.CustomerID+" "+r.CustomerName)
		}
		if diff := cmp.Diff(tc.customers, customers); diff != "" {
			t.Errorf("%s: customers and names of the records mismatch (-want +got):\n%s", tc.name, diff)
		}
		if msg, err := s.Describe(t.Context()); err == nil || !strings.Contains(msg, tc.want[0].Text) {
			t.Errorf("%s: Describe = %q, %v; want it to fail naming %q", tc.name, msg, err, tc.want[0].Text)
		}
	}
}

// TestFetch_namesNotUTF8: in a file read as neither UTF-8 nor Windows-1252
// (one that mixes the two), a customer_name or product_name not in UTF-8
// was kept as its bytes, in CSV and, since its ids are (see
// TestFetch_jsonNotUTF8), in JSON: the status page then showed them as the
// browser decodes them, the API, plan --json and a stored snapshot with
// U+FFFD for each byte, and psa-syncd plan's table the bytes themselves.
// A name is now valid UTF-8, U+FFFD for each run of such bytes; the ids
// keep theirs, and the rows whose ids are UTF-8 are read as before.
func TestFetch_namesNotUTF8(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, content string }{
		{"usage.csv", "customer_id,customer_name,product,product_name,quantity\n" +
			"cust-acme,Acm\u00e9,CIXA,Intercept X,3\n" +
			"cust-new,Caf\xe9 M\xfc\xfcller,FW-\u00c4,Firewall \xc4\xe9,1\n"},
		{"usage.json", "[{\"customer_id\": \"cust-acme\", \"customer_name\": \"Acm\u00e9\", \"product\": \"CIXA\", \"product_name\": \"Intercept X\", \"quantity\": 3},\n" +
			"{\"customer_id\": \"cust-new\", \"customer_name\": \"Caf\xe9 M\xfc\xfcller\", \"product\": \"FW-\\u00c4\", \"product_name\": \"Firewall \xc4\xe9\", \"quantity\": 1}]"},
	} {
		rep, err := newSource(t, file.Config{Path: writeFile(t, tc.name, tc.content)}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("%s: Fetch: %v", tc.name, err)
		}
		if len(rep.Problems) != 0 {
			t.Errorf("%s: Problems = %q, want none", tc.name, problems(rep))
		}
		var got []string
		for _, r := range rep.Records {
			got = append(got, strings.Join([]string{r.CustomerID, r.CustomerName, r.Product, r.ProductName}, "|"))
		}
		want := []string{"cust-acme|Acm\u00e9|CIXA|Intercept X", "cust-new|Caf\ufffd M\ufffdller|FW-\u00c4|Firewall \ufffd"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: records mismatch (-want +got):\n%s", tc.name, diff)
		}
	}
}

// TestFetch_jsonEscapesAndWindows1252: a JSON file whose text outside
// ASCII is \u escapes in some rows (a program that escapes it, as Python's
// json.dumps does) and raw Windows-1252 in others is Windows-1252 text:
// both spellings of Müller read as Müller. Every record was marked decoded
// from Windows-1252, so an escaped id, which names its characters exactly,
// was taken for a code page's guess too (see TestEngine_Sync_jsonEscapesAndWindows1252);
// only the rows whose ids are written raw are marked now.
func TestFetch_jsonEscapesAndWindows1252(t *testing.T) {
	t.Parallel()
	content := "[{\"customer_id\": \"M\\u00fcller GmbH\", \"customer_name\": \"M\xfcller\", \"product\": \"CIXA\", \"quantity\": 5},\n" +
		"{\"customer_id\": \"M\xfcller GmbH\", \"product\": \"CIXA\", \"quantity\": 4},\n" +
		"{\"customer_id\": \"cust-a\", \"product\": \"\xc4-1\", \"quantity\": 1},\n" +
		"{\"customer_id\": \"M\\u00f6ller AG\", \"product\": \"CIXA\", \"quantity\": 2}]\n"
	rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.json", content)}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !rep.Problems[0].Repeated {
		t.Errorf("Problems = %q, want the notice of Müller GmbH's two rows only", problems(rep))
	}
	want := []source.Record{
		{CustomerID: "Möller AG", Product: "CIXA", Quantity: 2, Where: "usage.json:4"},
		// A sum of an escaped row and a raw one: the raw one's id may be a guess.
		{CustomerID: "Müller GmbH", CustomerName: "Müller", Product: "CIXA", Quantity: 9, Where: "usage.json:1 (+1 more)", Codepage: "Windows-1252"},
		{CustomerID: "cust-a", Product: "Ä-1", Quantity: 1, Where: "usage.json:3", Codepage: "Windows-1252"},
	}
	if diff := cmp.Diff(want, rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_windows1252: a file in the Windows code page (Excel's "CSV
// (Comma delimited)" in Western Europe) failed the whole pass when a
// customer_id was not ASCII ("Müller GmbH"), and in JSON its letters were
// read as U+FFFD, an id that matches no mapping. A file that is Windows-1252
// text is now read as such, its records marked so. One that holds a byte
// Windows-1252 leaves undefined, or UTF-8 text too (see
// TestFetch_idASpreadsheetLost), is read as before.
func TestFetch_windows1252(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, content string
		want          source.Record
	}{
		{"usage.csv", "customer_id,customer_name,product,quantity\nM\xfcller GmbH,M\xfcller \x96 Z\xfcrich,CIXA,3\n",
			source.Record{CustomerID: "Müller GmbH", CustomerName: "Müller – Zürich", Product: "CIXA", Quantity: 3, Where: "usage.csv:2", Codepage: "Windows-1252"}},
		{"usage.json", "[{\"customer_id\": \"M\xfcller GmbH\", \"product\": \"CIXA\", \"quantity\": 3}]",
			source.Record{CustomerID: "Müller GmbH", Product: "CIXA", Quantity: 3, Where: "usage.json:1", Codepage: "Windows-1252"}},
	} {
		rep, err := newSource(t, file.Config{Path: writeFile(t, tc.name, tc.content)}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatalf("%s: Fetch: %v", tc.name, err)
		}
		if len(rep.Problems) != 0 {
			t.Errorf("%s: Problems = %q, want none", tc.name, problems(rep))
		}
		if diff := cmp.Diff([]source.Record{tc.want}, rep.Records); diff != "" {
			t.Errorf("%s: Records mismatch (-want +got):\n%s", tc.name, diff)
		}
	}
	p := writeFile(t, "usage.csv", "customer_id,customer_name,product,quantity\nM\xfcller GmbH,X\x81,CIXA,3\n")
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Problems) != 1 || !rep.Problems[0].Unreadable || rep.Problems[0].CustomerID != "" || len(rep.Records) != 0 {
		t.Errorf("a byte undefined in Windows-1252: Problems = %q, Records = %+v; want the row unreadable, of any customer", problems(rep), rep.Records)
	}
}

// TestFetch_jsonRepeatedKey: encoding/json keeps the last of a key given
// twice in one object, so {"quantity":5,"quantity":500} was billed 500 and
// {"customer_id":"acme","customer_id":"globex"} billed globex, without a
// problem. Now a repeated key skips its row: an Unreadable problem of the
// row's customer, naming the key and the line of the repeat, or of any
// customer when customer_id is the key repeated, since the row's owner
// cannot be told.
func TestFetch_jsonRepeatedKey(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.json", `[
{"customer_id": "acme", "product": "P", "quantity": 5, "quantity": 500},
{"customer_id": "acme", "customer_id": "globex", "product": "P", "quantity": 5},
{"customer_id": "acme",
 "product": "P",
 "quantity": 5,
 "product": "Q"},
{"customer_id": "", "product": "P", "quantity": 1, "quantity": 2},
{"product": "P", "customer_id": "acme", "quantity": 2, "product": "P", "quantity": 3, "customer_id": "acme"},
{"customer_id": "c:1", "customer_name": "A \"quoted\": {name}", "product": "P", "quantity": 7, "product_name": "x\\"}
]`)
	rep, err := newSource(t, file.Config{Path: p}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	const readers = ": JSON readers differ on which one counts, so remove one"
	want := []problem{
		{`usage.json:2: key "quantity" appears twice (again at line 2)` + readers, true, "acme", ""},
		{`usage.json:3: key "customer_id" appears twice (again at line 3), so whose usage the row is cannot be told` + readers, true, "", ""},
		{`usage.json:4: key "product" appears twice (again at line 7)` + readers, true, "acme", ""},
		{`usage.json:8: key "quantity" appears twice (again at line 8)` + readers, false, "", ""},
		{`usage.json:9: key "customer_id" appears twice (again at line 9), so whose usage the row is cannot be told, and 2 more keys` + readers, true, "", ""},
	}
	if diff := cmp.Diff(want, problemsSaid(rep)); diff != "" {
		t.Errorf("Problems mismatch (-want +got):\n%s", diff)
	}
	wantRecords := []source.Record{{CustomerID: "c:1", CustomerName: `A "quoted": {name}`, Product: "P", ProductName: `x\`, Quantity: 7, Where: "usage.json:10"}}
	if diff := cmp.Diff(wantRecords, rep.Records); diff != "" {
		t.Errorf("Records mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_badRowOfAnotherPeriod: the quantity was checked before the
// period, so a typo in a row of an earlier month ("3O" in October's row,
// read in November) failed the customer's November pass. A row whose period
// parses and is not the one read is only reported, whatever else is wrong
// with it; a row whose period does not parse, or that is of this period,
// still fails its customer.
func TestFetch_badRowOfAnotherPeriod(t *testing.T) {
	t.Parallel()
	const other = " is not the requested period 2026-10"
	csvPath := writeFile(t, "usage.csv", strings.Join([]string{
		"customer_id,product,quantity,period",
		"c1,P,3O,2026-09", // 2: another period, bad quantity
		"c1,,1,2026-09",   // 3: another period, no product
		"c1,P,-1,2026-11", // 4: another period, negative
		"c1,P,3O,Sept",    // 5: the period does not parse
		"c1,P,3O,2026-10", // 6: this period
		"c1,P,4,2026-10",  // 7: good
	}, "\n")+"\n")
	rep, err := newSource(t, file.Config{Path: csvPath}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	want := []problem{
		{"usage.csv:2: period 2026-09" + other, false, "", ""},
		{"usage.csv:3: period 2026-09" + other, false, "", ""},
		{"usage.csv:4: period 2026-11" + other, false, "", ""},
		{`usage.csv:5: quantity "3O" is not a whole number`, true, "c1", "P"},
		{`usage.csv:6: quantity "3O" is not a whole number`, true, "c1", "P"},
	}
	if diff := cmp.Diff(want, problemsSaid(rep)); diff != "" {
		t.Errorf("CSV problems mismatch (-want +got):\n%s", diff)
	}
	if len(rep.Records) != 1 || rep.Records[0].Quantity != 4 {
		t.Errorf("CSV records = %+v, want c1's 4 of line 7", rep.Records)
	}
	// Describe reads every period: there, the rows are bad rows, which
	// fail it as they fail Check.
	if got, err := newSource(t, file.Config{Path: csvPath}).Describe(t.Context()); fmt.Sprint(err) != "file: "+got ||
		got != `usage.csv: 6 rows, 5 skipped (first: usage.csv:2: quantity "3O" is not a whole number)` {
		t.Errorf("Describe = %q, %v", got, err)
	}
	// A line a quote left open ran over is read as the row it was
	// written as: one of another period, when the line splits into the
	// header's columns (or, on the first line, the period comes before
	// the field left open), is only reported, not its customer's
	// failure. A line of other columns says nothing sure of its period.
	for content, want := range map[string][]problem{
		"customer_id,customer_name,product,quantity,period\n2c9f,\"Acme,CIXA,1,2026-10\n3b1e,Globex,CIXA,2,2026-09\n5e6f,Umbrella, Inc,CIXA,2,2026-09\n4d2a,Initech\",CIXA,3,2026-10\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", false, "", ""}, {"usage.csv:4", true, "5e6f", ""}, {"usage.csv:5", true, "4d2a", ""},
		},
		"customer_id,period,customer_name,product,quantity\n2c9f,2026-09,\"Acme,CIXA,1\n4d2a,2026-10,Initech\",CIXA,3\n": {
			{"usage.csv:2", false, "", ""}, {"usage.csv:3", true, "4d2a", ""},
		},
		"customer_id,customer_name,product,quantity,period\n2c9f,\"Acme,CIXA,1,2026-10\n3b1e,Globex,CIXA,2,2026-11\n4d2a,\"Initech, Inc\",CIXA,3,2026-10\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", false, "", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
		"customer_id,customer_name,product,quantity,period\n2c9f,\"Acme,CIXA,1,2026-10\n3b1e,Globex,CIXA,2,2026-09\n4d2a,Initech\",x,CIXA,3,2026-10\n": {
			{"usage.csv:2", true, "2c9f", ""}, {"usage.csv:3", false, "", ""}, {"usage.csv:4", true, "4d2a", ""},
		},
	} {
		rep, err := newSource(t, file.Config{Path: writeFile(t, "usage.csv", content)}).Fetch(t.Context(), oct2026)
		if err != nil {
			t.Fatal(err)
		}
		for _, pr := range rep.Problems {
			if !pr.Unreadable && !strings.HasSuffix(pr.String(), other) {
				t.Errorf("record of %q: problem %q, want another period's", content, pr)
			}
		}
		if diff := cmp.Diff(want, problemsAt(rep)); diff != "" {
			t.Errorf("record of %q: problems mismatch (-want +got):\n%s", content, diff)
		}
	}

	jsonPath := writeFile(t, "usage.json", `[
{"customer_id": "c1", "product": "P", "quantity": "3O", "period": "2026-09"},
{"customer_id": "c1", "product": "P", "quantity": 1, "seats": 2, "period": "2026-09"},
{"customer_id": "c1", "customer_id": "c2", "product": "P", "quantity": 1, "period": "2026-09"},
{"customer_id": "c1", "product": "P", "quantity": 1, "quantity": 2, "period": "2026-09"},
{"customer_id": "c1", "product": ["P"], "quantity": 1, "period": "2026-09"},
{"customer_id": "c1", "product": "P", "quantity": 1, "period": "2026-09", "period": "2026-09"},
{"customer_id": "c1", "product": "P", "quantity": 1, "period": 202609},
{"customer_id": "c1", "product": "P", "seats": 1, "period": "2026-10"}
]`)
	rep, err = newSource(t, file.Config{Path: jsonPath}).Fetch(t.Context(), oct2026)
	if err != nil {
		t.Fatal(err)
	}
	const readers = ": JSON readers differ on which one counts, so remove one"
	want = []problem{
		{"usage.json:2: period 2026-09" + other, false, "", ""},
		{"usage.json:3: period 2026-09" + other, false, "", ""},
		{"usage.json:4: period 2026-09" + other, false, "", ""},
		{"usage.json:5: period 2026-09" + other, false, "", ""},
		{"usage.json:6: period 2026-09" + other, false, "", ""},
		{`usage.json:7: key "period" appears twice (again at line 7)` + readers, true, "c1", ""},
		{`usage.json:8: period "202609" is not YYYY-MM`, true, "c1", "P"},
		{`usage.json:9: unknown key "seats"`, true, "c1", ""},
	}
	if diff := cmp.Diff(want, problemsSaid(rep)); diff != "" {
		t.Errorf("JSON problems mismatch (-want +got):\n%s", diff)
	}
}

// TestFetch_tooLarge: a usage file larger than MaxSize (a path naming a
// log or a disk image) fails the pass with an error naming the file and
// the cap, without being read into memory (the sparse file costs no disk).
func TestFetch_tooLarge(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "usage.csv", "customer_id,product,quantity\n")
	if err := os.Truncate(p, file.MaxSize+1); err != nil {
		t.Fatal(err)
	}
	s := newSource(t, file.Config{Path: p})
	want := "file: reading usage: " + p + " is larger than 256 MiB, the most psa-sync reads of a usage file"
	if _, err := s.Fetch(t.Context(), oct2026); err == nil || err.Error() != want {
		t.Errorf("Fetch of a %d-byte file = %v\nwant %s", file.MaxSize+1, err, want)
	}
	if err := s.Check(t.Context()); err == nil || err.Error() != want {
		t.Errorf("Check of a %d-byte file = %v\nwant %s", file.MaxSize+1, err, want)
	}
}

// TestFetch_changedWhileRead: a usage file that a writer changes in place
// while a pass reads it (shell ">" then more rows, curl -o) fails the
// read, naming the file and how to write it, instead of billing the rows
// read so far. One replaced by a rename during the read is read whole, as
// it was when opened.
func TestFetch_changedWhileRead(t *testing.T) {
	t.Parallel()
	const (
		header  = "customer_id,product,quantity\n"
		written = header + "c1,P,4\n"
		full    = written + "c2,P,7\nc3,P,9\n"
	)
	write := func(t *testing.T, p, content string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name string
		// during changes the file at p after the first bytes are read.
		during func(t *testing.T, p string)
	}{
		{"the writer goes on", func(t *testing.T, p string) {
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.WriteString(full[len(written):]); err != nil {
				t.Fatal(err)
			}
		}},
		{"the writer starts again", func(t *testing.T, p string) { write(t, p, header) }},
		{"rewritten to the same size", func(t *testing.T, p string) {
			write(t, p, strings.Replace(written, "4", "5", 1))
			// The same size, told by the time only: one the clock's
			// granularity cannot make equal.
			if err := os.Chtimes(p, time.Time{}, time.Now().Add(time.Hour)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p := writeFile(t, "usage.csv", written)
			s := newSource(t, file.Config{Path: p})
			file.SetReadHook(s, func() { tc.during(t, p) })
			rep, err := s.Fetch(t.Context(), oct2026)
			if !errors.Is(err, file.ErrChanged) || !strings.Contains(err.Error(), p) ||
				!strings.Contains(err.Error(), "rename it over usage.csv") {
				t.Fatalf("Fetch of a file changed while read = %+v, %v; want an error naming %s, saying it changed and to rename a temporary file over it", rep, err, p)
			}
			write(t, p, written)
			if err := s.Check(t.Context()); !errors.Is(err, file.ErrChanged) {
				t.Errorf("Check of a file changed while read = %v, want ErrChanged", err)
			}
		})
	}
	t.Run("replaced by a rename", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, "usage.csv", written)
		s := newSource(t, file.Config{Path: p})
		file.SetReadHook(s, func() {
			tmp := p + ".tmp"
			write(t, tmp, full)
			if err := os.Rename(tmp, p); err != nil {
				t.Fatal(err)
			}
		})
		rep, err := s.Fetch(t.Context(), oct2026)
		if err != nil || len(rep.Records) != 1 {
			t.Fatalf("Fetch of a file replaced by a rename while read = %+v, %v; want the file as opened, 1 record", rep, err)
		}
		file.SetReadHook(s, nil)
		if rep, err := s.Fetch(t.Context(), oct2026); err != nil || len(rep.Records) != 3 {
			t.Errorf("next Fetch = %+v, %v; want the new file, 3 records", rep, err)
		}
	})
}

package file

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// fuzzRow checks what the parsers give for any input: every row becomes a
// record with a product and a quantity of at least 0, or a problem naming
// the file and line, and a row of another period is never Unreadable.
func fuzzRow(t *testing.T, r row) {
	p := source.Period{Year: 2026, Month: time.October}
	if !strings.HasPrefix(r.where, "usage.") || !strings.Contains(r.where, ":") {
		t.Fatalf("row location %q does not name file and line", r.where)
	}
	rec, err := r.record(p)
	if err != nil {
		pr := r.problem(err)
		if pr.Where != r.where || pr.Err == nil {
			t.Fatalf("problem %+v does not describe row %s", pr, r.where)
		}
		if rp, err := source.ParsePeriod(r.fields[colPeriod]); err == nil && rp != p && pr.Unreadable {
			t.Fatalf("row %s of period %s is Unreadable: %v", r.where, rp, pr)
		}
		return
	}
	if rec.Product == "" || rec.Quantity < 0 {
		t.Fatalf("record %+v of row %s has no product or a negative quantity", rec, r.where)
	}
}

// fuzzErr checks that a file the parsers reject is named in the error.
func fuzzErr(t *testing.T, err error) {
	if err != nil && !strings.HasPrefix(err.Error(), "file: usage.") {
		t.Fatalf("error does not name the file: %v", err)
	}
}

// FuzzParseCSV feeds any bytes to the CSV usage parser.
func FuzzParseCSV(f *testing.F) {
	data, err := os.ReadFile("testdata/usage.csv")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte("customer_id,product,quantity,period\n2c9f,CIXA-MSP,4x2,\n,P,x,\n\"a\nb\",P,1,2026-10\nc,P,9223372036854775808,\n"))
	f.Add([]byte("\ufeffCustomer_ID , product,quantity\nc,P,1\nc,P\n"))
	f.Add([]byte("customer_id,product,quantity,period\nc,P,3O,2026-09\nc,,1,2026-11\n"))
	f.Add([]byte("customer_id,customer_name,product,quantity\nc,\"A,P,1\n\nd,B,P,2\ne,C\",P,3\n"))
	f.Add([]byte("customer_id,customer_name,product,quantity,period\nc,\"A,P,1,2026-10\nd,B,P,2,2026-09\ne,\"C, Inc\",P,3,2026-10\n\"f\",F\",x,P,4\n"))
	// Columns separated by ";" or tabs, named by the header or by a
	// "sep=" line: the separator in quotes, a decimal comma, a quote left
	// open over lines, a stray one after the customer.
	f.Add([]byte("customer_id;customer_name;product;quantity;period\r\nc;\"A; Inc.\";P;3,5;2026-10\r\nd;\"B;P;1;2026-10\r\ne;C\";P;2;2026-09\r\nf;F;P\"x;4;\r\n"))
	f.Add([]byte("sep=;\ncustomer_id;product;quantity\nc;P;1\n\"d\";P;2;\n"))
	f.Add([]byte("\"sep=;\"\r\ncustomer_id;product;quantity\r\nc;P;1\r\n"))
	f.Add([]byte("\"sep=;\";;;\r\ncustomer_id;product;quantity\r\nc;P;1\r\n"))
	f.Add([]byte("sep=,,,\ncustomer_id,product,quantity\nc,P,1\n"))
	// Carriage returns alone (Excel's "CSV (Macintosh)"), one in quotes.
	f.Add([]byte("sep=;\rcustomer_id;customer_name;product;quantity\rc;\"A\rB\";P;1\r\rd;\"C;\rD\";P;2\r"))
	f.Add([]byte("customer_id,product,quantity\rc,\"P\nQ\",1\r"))
	f.Add([]byte("SEP=\t\ncustomer_id\tproduct\tquantity\tcustomer_name\nc\tP\t1\t\"A\n\td\tP\t2\tB\"\n"))
	f.Add([]byte("customer_id\tproduct\tquantity\nc\tP\t1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzErr(t, parseCSV("usage.csv", data, func(r row) { fuzzRow(t, r) }))
	})
}

// FuzzParseJSON feeds any bytes to the JSON usage parser.
func FuzzParseJSON(f *testing.F) {
	data, err := os.ReadFile("testdata/usage.json")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte(`{"records":[{"customer_id":"c","product":"P","quantity":1},{"customer_id":7,"quantity":true},[1]]}`))
	f.Add([]byte(`[{"customer_id":"c","product":"P","quantity":"2.5","period":"2026-10"}] x`))
	f.Add([]byte(`[{"customer_id":"c","customer_id":"d","product":"P","quantity":"3O","period":"2026-09"},{"customer_id":"c","product":"P","quantity":1,"quantity":2}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fuzzErr(t, parseJSON("usage.json", data, func(r row) { fuzzRow(t, r) }))
	})
}

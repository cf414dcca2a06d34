package usage

import (
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

// TestEngine_Sync_duplicateRows: a usage file's row pasted twice was added
// up with itself, and the customer billed twice its usage. Under
// duplicate_rows: refuse the customer now fails, naming the rows, its line
// left as it was; the other customers are synced.
func TestEngine_Sync_duplicateRows(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.dup = file.DuplicateRowsRefuse
	h.at.SetUnits(h.contractB, h.svcIntercept, 6, etPeriodDay)
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-b,Globex,CIXA-MSP,6",
		"cust-b,Globex,CIXA-MSP,6", // pasted again
	)
	res := h.sync(PassOptions{})
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 6) // not 12
	if cs := h.status("cust-b"); cs.Result != state.CustomerFailed ||
		!strings.Contains(cs.Error, `customer "cust-b" has 2 rows of product "CIXA-MSP" (usage.csv:3, usage.csv:4), which would add up to 12`) {
		t.Errorf("status of cust-b = %+v, want failed naming its two rows", cs)
	}
	if cs := h.status("cust-a"); cs.Result != state.CustomerSucceeded {
		t.Errorf("status of cust-a = %+v, want succeeded", cs)
	}
	if res.Run.Updated != 1 || res.Run.Failed != 1 {
		t.Errorf("run = %+v, want 1 updated and 1 failed", res.Run)
	}
}

// TestEngine_Sync_duplicateRowsSummed: under duplicate_rows: sum (the
// default, which the harness's "" gives too) a file of
// a row per site bills the sum, and the notice naming the rows is logged as
// a usage problem under the key operators match, problem, not as "Skipped
// usage": no row was skipped. A gauge counts such sums per pass.
func TestEngine_Sync_duplicateRowsSummed(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	h.dup = file.DuplicateRowsSum
	h.logs = newRecordHandler()
	h.writeUsage(
		"cust-a,Acme,CIXA-MSP,40",
		"cust-b,Globex,CIXA-MSP,6", // site 1
		"cust-b,Globex,CIXA-MSP,4", // site 2
	)
	h.sync(PassOptions{})
	h.wantUnits(h.contractB, h.svcIntercept, 10)
	got := h.logs.values("Usage problem", "problem")
	if len(got) != 1 || !strings.Contains(got[0], `customer "cust-b" has 2 rows of product "CIXA-MSP" (usage.csv:3, usage.csv:4)`) {
		t.Errorf(`"Usage problem" logged with problem %q, want the one notice naming the rows`, got)
	}
	if n := h.logs.count("Skipped usage", slog.LevelDebug); n != 0 {
		t.Errorf(`"Skipped usage" logged %d times for rows added up, want 0`, n)
	}
	// psa_sync_usage_repeated_rows counts them, for an alert, and the
	// next pass sets it again: 0 once the file has a row per customer and
	// product, 1 per product of a customer on several rows after that.
	if got := h.metric(h.m.UsageRepeatedRows); got != 1 {
		t.Errorf("psa_sync_usage_repeated_rows = %v, want 1", got)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,40", "cust-b,Globex,CIXA-MSP,10")
	h.sync(PassOptions{})
	if got := h.metric(h.m.UsageRepeatedRows); got != 0 {
		t.Errorf("psa_sync_usage_repeated_rows after a pass without repeats = %v, want 0", got)
	}
	h.writeUsage("cust-a,Acme,CIXA-MSP,20", "cust-a,Acme,CIXA-MSP,20", "cust-b,Globex,CIXA-MSP,6", "cust-b,Globex,CIXA-MSP,4")
	h.sync(PassOptions{})
	if got := h.metric(h.m.UsageRepeatedRows); got != 2 {
		t.Errorf("psa_sync_usage_repeated_rows = %v, want 2", got)
	}
}

// TestEngine_Sync_windows1252: Excel's "CSV (Comma delimited)" writes the
// Windows code page, and a customer_id outside ASCII in it ("Müller GmbH")
// failed the whole pass, whose row it was being unknown. A file that is
// Windows-1252 text is now read as such: the customer is billed. A file in
// another code page (a Mac's "CSV (Macintosh)", whose ü reads as Ÿ in
// Windows-1252) gives an id that matches no mapping: the mapped customer it
// differs from only in letters outside ASCII fails, rather than be set to 0
// without its usage, and the other customers are synced.
func TestEngine_Sync_windows1252(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, id string // the customer_id as the file's bytes
		want     int64
		failed   string // the error of the mapped customer, if it fails
	}{
		{"Windows-1252", "M\xfcller GmbH", 9, ""},
		{"Mac OS Roman", "M\x9fller GmbH", 5, `customer id "MŸller GmbH" matches no customer mapping but differs from the mapped customer "Müller GmbH" ` +
			"only in letters outside ASCII: the file may be in another code page than the one it was read in"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newETHarness(t)
			h.pol.MissingUsage = MissingUsageZero
			cm, _ := h.doc.Customer("file", "cust-b")
			h.doc.DeleteCustomer("file", "cust-b")
			cm.CustomerID = "Müller GmbH"
			h.doc.PutCustomer(cm)
			h.at.SetUnits(h.contractB, h.svcIntercept, 5, etPeriodDay)
			content := "customer_id,customer_name,product,quantity\n" +
				"cust-a,Acme,CIXA-MSP,40\n" +
				tc.id + "," + tc.id + ",CIXA-MSP,9\n"
			if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			res := h.sync(PassOptions{})
			h.wantUnits(h.contractA, h.svcIntercept, 40)
			h.wantUnits(h.contractB, h.svcIntercept, tc.want)
			cs := h.status("Müller GmbH")
			switch {
			case tc.failed == "" && cs.Result != state.CustomerSucceeded:
				t.Errorf("status = %+v, want succeeded", cs)
			case tc.failed != "" && (cs.Result != state.CustomerFailed || !strings.Contains(cs.Error, tc.failed)):
				t.Errorf("status = %+v, want failed with %q", cs, tc.failed)
			}
			if res.Run.Updated == 0 {
				t.Errorf("run = %+v, want cust-a updated", res.Run)
			}
		})
	}
}

// TestEngine_Sync_jsonNotUTF8: a JSON usage file of UTF-8 text and text in
// the Windows code page is read as neither, and encoding/json read the
// latter's "M\xfcller GmbH" as "M\uFFFDller GmbH": an unmapped customer in
// psa_sync_unmapped, and the mapped "Müller GmbH" set to its other row's
// usage alone, the pass a success. Now the row is one whose customer cannot
// be told, as in a CSV file: the pass fails naming the file, the row's
// line and the key, and writes no line.
func TestEngine_Sync_jsonNotUTF8(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	cm, _ := h.doc.Customer("file", "cust-b")
	h.doc.DeleteCustomer("file", "cust-b")
	cm.CustomerID = "Müller GmbH"
	h.doc.PutCustomer(cm)
	h.at.SetUnits(h.contractB, h.svcIntercept, 9, etPeriodDay)
	h.usage = strings.TrimSuffix(h.usage, ".csv") + ".json"
	content := "[\n" +
		`{"customer_id": "cust-a", "product": "CIXA-MSP", "quantity": 40},` + "\n" +
		`{"customer_id": "Müller GmbH", "product": "CIXA-MSP", "quantity": 5},` + "\n" +
		"{\"customer_id\": \"M\xfcller GmbH\", \"product\": \"CIXA-MSP\", \"quantity\": 4}\n]\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err == nil || !strings.Contains(err.Error(), `usage.json:4: customer_id "M\xfcller GmbH" is not UTF-8 text, as JSON must be, and matches no mapping: `+
		`the file mixes UTF-8 (first at line 3) and another code page (first at line 4)`) {
		t.Errorf("Sync = %v, want it to fail naming usage.json:4 and its customer_id", err)
	}
	if res == nil || res.Run.Result != state.RunFailure {
		t.Errorf("Sync = %+v, want a failed run", res)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 0)
	h.wantUnits(h.contractB, h.svcIntercept, 9) // not 5
	if got := h.metric(h.m.RunsTotal.WithLabelValues(string(state.RunFailure))); got != 1 {
		t.Errorf("psa_sync_runs_total{result=\"failure\"} = %v, want 1", got)
	}
	if got := h.metric(h.m.Unmapped.WithLabelValues("customer")); got != 0 {
		t.Errorf("psa_sync_unmapped{kind=\"customer\"} = %v, want 0: the row is no unmapped customer's", got)
	}
}

// TestEngine_Sync_jsonEscapesAndWindows1252: in a JSON file of Windows-1252
// text whose other rows escape their letters outside ASCII ("\u00f6", as
// Python's json.dumps writes them), an escaped id that matches no mapping,
// "M\u00f6ller AG", was taken for a guess of the code page, as if read
// from raw bytes, and failed the mapped "Müller AG" (only letters outside
// ASCII differ), which went without its usage. Escaped ids are read as the
// characters they name: Möller AG is an unmapped customer, Müller AG is
// billed its two rows, one escaped and one raw.
func TestEngine_Sync_jsonEscapesAndWindows1252(t *testing.T) {
	t.Parallel()
	h := newETHarness(t)
	cm, _ := h.doc.Customer("file", "cust-b")
	h.doc.DeleteCustomer("file", "cust-b")
	cm.CustomerID = "Müller AG"
	h.doc.PutCustomer(cm)
	h.at.SetUnits(h.contractB, h.svcIntercept, 3, etPeriodDay)
	h.usage = strings.TrimSuffix(h.usage, ".csv") + ".json"
	content := "[\n" +
		`{"customer_id": "cust-a", "product": "CIXA-MSP", "quantity": 40},` + "\n" +
		`{"customer_id": "M\u00fcller AG", "product": "CIXA-MSP", "quantity": 5},` + "\n" +
		"{\"customer_id\": \"M\xfcller AG\", \"product\": \"CIXA-MSP\", \"quantity\": 4},\n" +
		`{"customer_id": "M\u00f6ller AG", "product": "CIXA-MSP", "quantity": 2}` + "\n]\n"
	if err := os.WriteFile(h.usage, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := h.engine().Sync(t.Context(), h.doc, PassOptions{})
	if err != nil || res.Run.Result != state.RunSuccess {
		t.Fatalf("Sync = %+v, %v; want a success", res, err)
	}
	h.wantUnits(h.contractA, h.svcIntercept, 40)
	h.wantUnits(h.contractB, h.svcIntercept, 9) // 5 + 4, not 3
	if got := h.metric(h.m.Unmapped.WithLabelValues("customer")); got != 1 {
		t.Errorf("psa_sync_unmapped{kind=\"customer\"} = %v, want 1: Möller AG", got)
	}
}

package daemon

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestDaemon_RestoreMetrics_planOfNewerVersion: the last plan in the state
// database may have been stored by a newer psa-syncd (the other replica of
// a rolling upgrade, or the version rolled back from) with what this one
// cannot read, such as a hold it does not know. The plan is then not
// restored, but the metrics of the past passes still are: left unset, a
// restart or a takeover resolved PsaSyncLinesHeldForReview and showed no
// last success. (audit-upgrade, finding 3.)
func TestDaemon_RestoreMetrics_planOfNewerVersion(t *testing.T) {
	t.Parallel()
	e := dtSetup(t, dtOptions{})
	dtWrite(t, e.cfgPath, string(dtMust(os.ReadFile(e.cfgPath)))+"policies:\n  max_decrease_percent: 50\n")
	e.reopen(t)
	if _, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.usagePath, strings.Replace(dtUsage, "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,10", "cust-acme,Acme,CIXA-MSP,Intercept X Advanced,0", 1))
	if res, err := e.d.SyncOnce(t.Context(), usage.PassOptions{}); err != nil || res.Run.Held != 1 {
		t.Fatalf("second pass = %+v, %v; want one held line", res.Run, err)
	}
	before := restorableGauges(e.d.metrics)

	// The plan as a newer psa-syncd stores it: its held line held for a
	// reason this version does not know.
	var stored storedPlanJSON
	if ok, err := e.d.db.Snapshot(lastPlanSnapshot, &stored); err != nil || !ok || len(stored.PlanColumns) == 0 {
		t.Fatalf("stored plan = %v, %v, %d bytes of columns", ok, err, len(stored.PlanColumns))
	}
	columns, err := gunzip(stored.PlanColumns)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]json.RawMessage
	if err := json.Unmarshal(columns, &v); err != nil {
		t.Fatal(err)
	}
	var changes map[string]any
	if err := json.Unmarshal(v["changes"], &changes); err != nil {
		t.Fatal(err)
	}
	hold := make([]any, len(changes["action"].([]any))) //nolint:forcetypeassert // the test's own plan
	for i := range hold {
		hold[i] = ""
	}
	hold[0] = "held_by_a_newer_version"
	changes["hold"] = hold
	v["changes"] = dtMust(json.Marshal(changes))
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	if _, err := zw.Write(dtMust(json.Marshal(v))); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	stored.PlanColumns = z.Bytes()
	if err := e.d.db.PutSnapshot(lastPlanSnapshot, stored); err != nil {
		t.Fatal(err)
	}

	e.reopen(t)
	err = e.d.RestoreMetrics()
	if err == nil || !strings.Contains(err.Error(), `unknown hold "held_by_a_newer_version"`) {
		t.Errorf("RestoreMetrics = %v; want the plan's error", err)
	}
	if after := restorableGauges(e.d.metrics); !reflect.DeepEqual(after, before) {
		t.Errorf("after the restart the gauges are\n%v\nwant\n%v", after, before)
	}
}

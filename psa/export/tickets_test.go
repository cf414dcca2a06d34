package export

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func ticketsDoc(system psa.System, t Tickets) *Document {
	d := New(system, "")
	d.Tickets = &t
	return d
}

func TestTickets_roundTrip(t *testing.T) {
	t.Parallel()
	d := ticketsDoc(psa.SystemAutotask, Tickets{
		Enabled: true, Schedule: "every 5m", QueueID: "29683482", NewStatusID: "1", ClosedStatusID: "5", ReopenStatusID: "8",
		Priorities: map[string]string{"high": "1", "medium": "2", "low": "3"}, SourceID: "13", IssueTypeID: "14",
		SubIssueTypeID: "201", MinSeverity: "medium", TitleFormat: "[Sophos] {Severity}: {description} ({customer})",
		OnResolve: OnResolveClose, OnReturn: OnReturnReopen, ReopenWindow: "12h", BackfillWindow: "48h", MaxPerPass: 50, MaxPerCustomer: 10,
	})
	data, err := d.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(data)
	if err != nil {
		t.Fatalf("Decode: %v\n%s", err, data)
	}
	if diff := cmp.Diff(d.Tickets, got.Tickets); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	c := d.Clone()
	c.Tickets.Priorities["high"] = "4"
	if d.Tickets.Priorities["high"] != "1" {
		t.Error("Clone shares the priorities map")
	}
}

// Documents written before ticket sync have no tickets and still decode.
func TestTickets_absent(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/golden.json")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), `"tickets"`) {
		t.Fatal("golden.json has tickets; this test needs a document without")
	}
	d, err := Decode(data)
	if err != nil || d.Tickets != nil {
		t.Fatalf("Decode = %+v, %v; want no tickets", d, err)
	}
	enc, _ := d.Encode()
	if strings.Contains(string(enc), "tickets") {
		t.Error("a document without tickets encodes a tickets field")
	}
}

func TestTickets_invalid(t *testing.T) {
	t.Parallel()
	ok := Tickets{QueueID: "1"}
	tests := []struct {
		name   string
		system psa.System
		edit   func(*Tickets)
		want   []string
	}{
		{"no queue", psa.SystemAutotask, func(t *Tickets) { t.QueueID = "" }, []string{"tickets.queue_id is required"}},
		{"bms needs status, type and source", psa.SystemKaseyaBMS, func(*Tickets) {}, []string{
			"tickets.new_status_id is required for kaseya_bms tickets", "tickets.ticket_type_id is required for kaseya_bms tickets",
			"tickets.source_id is required for kaseya_bms tickets"}},
		{"bad values", psa.SystemConnectWise, func(t *Tickets) {
			t.Priorities = map[string]string{"critical": "1", "high": ""}
			t.MinSeverity, t.TitleFormat, t.Schedule = "urgent", "{Severity} {device}", "hourly"
			t.OnResolve, t.OnReturn, t.ReopenWindow, t.MaxPerPass = "delete", "ignore", "1 day", -1
			t.BackfillWindow = "-48h"
		}, []string{
			`tickets.backfill_window "-48h" is not a positive duration such as "48h"`,
			`tickets.schedule is invalid`, `tickets.priorities has "critical", which is not a severity`, `tickets.priorities.high is empty`,
			`tickets.min_severity "urgent" is not a severity`, `tickets.title_format has the unknown placeholder {device}`,
			`tickets.on_resolve "delete" is not close or note`, `tickets.on_return "ignore" is not reopen or new`,
			`tickets.reopen_window "1 day" is not a positive duration`, `tickets.max_per_pass must not be negative (got -1)`}},
		{"close without a status", psa.SystemAutotask, func(t *Tickets) { t.OnResolve, t.OnReturn = OnResolveClose, OnReturnReopen },
			[]string{`tickets.closed_status_id is required when on_resolve is "close"`, `tickets.reopen_status_id is required when on_return is "reopen"`}},
	}
	for _, tt := range tests {
		tk := ok
		tt.edit(&tk)
		err := ticketsDoc(tt.system, tk).Validate()
		var ve *ValidationError
		if !errors.As(err, &ve) {
			t.Errorf("%s: Validate = %v, want a ValidationError", tt.name, err)
			continue
		}
		for _, w := range tt.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error\n%v\nlacks %q", tt.name, err, w)
			}
		}
		if len(ve.Problems) != len(tt.want) {
			t.Errorf("%s: %d problems, want %d:\n%v", tt.name, len(ve.Problems), len(tt.want), err)
		}
	}
}

func TestTickets_decodeStrict(t *testing.T) {
	t.Parallel()
	doc := `{"schema":"psa-sync.mapping-export/v1","psa":{"system":"autotask","instance":""},"revision":1,
		"updated_at":"2026-11-21T10:00:00Z","tickets":{"queue_id":"1","board":"x","priorities":["high"],"max_per_pass":"ten"},
		"product_mappings":[],"customer_mappings":[]}`
	_, err := Decode([]byte(doc))
	for _, w := range []string{"tickets.board is not a known field", "tickets.priorities must be a JSON object", "tickets.max_per_pass must be an integer"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Decode error = %v, want one containing %q", err, w)
		}
	}
}

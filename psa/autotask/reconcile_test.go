package autotask

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestBackend_SetQuantity_outcomeUnknown covers the re-read after an
// adjustment whose response was lost, for outcomes the simulator cannot
// produce: units that are neither the old nor the wanted quantity, and a
// re-read that fails too.
func TestBackend_SetQuantity_outcomeUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		units   func(w http.ResponseWriter)
		unknown bool
		msg     string
	}{
		{name: "someone else changed it", units: func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"items":[{"id":1,"contractID":12,"contractServiceID":77,"serviceID":5,"startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z","units":3}]}`)
		}, unknown: true, msg: "units are now 3, neither the 5 before nor the 8 wanted"},
		{name: "re-read fails", units: func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"errors":["Invalid filter"]}`)
		}, unknown: true, msg: "re-reading the line to find out failed"},
		{name: "applied", units: func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"items":[{"id":1,"contractID":12,"contractServiceID":77,"serviceID":5,"startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z","units":8}]}`)
		}},
		// Unchanged units right after the lost answer may be a lagging
		// read: still unknown, for the caller to re-read later.
		{name: "unchanged yet", units: func(w http.ResponseWriter) {
			fmt.Fprint(w, `{"items":[{"id":1,"contractID":12,"contractServiceID":77,"serviceID":5,"startDate":"2026-11-01T00:00:00Z","endDate":"2026-11-30T00:00:00Z","units":5}]}`)
		}, unknown: true, msg: "units still 5 right after the lost answer"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client, mux, _ := setup(t)
			var posts atomic.Int32
			mux.HandleFunc("POST /ContractServiceAdjustments", func(w http.ResponseWriter, r *http.Request) {
				posts.Add(1)
				testJSONBody(t, r, `{"contractID":12,"serviceID":5,"contractServiceID":77,"unitChange":3,"effectiveDate":"2026-11-01T00:00:00Z"}`)
				w.WriteHeader(http.StatusBadGateway) // no reason given: outcome unknown
			})
			mux.HandleFunc("POST /ContractServiceUnits/query", func(w http.ResponseWriter, r *http.Request) {
				testJSONBody(t, r, `{"filter":[{"op":"eq","field":"contractID","value":12},{"op":"eq","field":"serviceID","value":5},{"op":"lte","field":"startDate","value":"2026-11-01T00:00:00Z"},{"op":"gte","field":"endDate","value":"2026-11-01T00:00:00Z"},{"op":"eq","field":"contractServiceID","value":77}],"IncludeFields":["id","contractID","contractServiceID","serviceID","startDate","endDate","units","price","approveAndPostDate"]}`)
				tt.units(w)
			})
			b := NewBackend(client)
			line, err := b.SetQuantity(t.Context(), psa.SetQuantityRequest{
				ContractID: "12", ServiceID: "5", Quantity: 8,
				Current:       &psa.ContractLine{ContractID: "12", ServiceID: "5", LineID: "77", Quantity: 5},
				EffectiveDate: time.Date(2026, 11, 1, 23, 0, 0, 0, time.UTC),
			})
			if n := posts.Load(); n != 1 {
				t.Errorf("adjustment POSTs = %d, want 1", n)
			}
			if tt.msg == "" {
				if err != nil || line.Quantity != 8 || line.LineID != "77" {
					t.Fatalf("SetQuantity = %+v, %v; want 8 units", line, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("SetQuantity error = %v, want it to contain %q", err, tt.msg)
			}
			if got := errors.Is(err, psa.ErrOutcomeUnknown); got != tt.unknown {
				t.Errorf("errors.Is(err, psa.ErrOutcomeUnknown) = %v, want %v", got, tt.unknown)
			}
		})
	}
}

func TestBackend_SetQuantity_invalid(t *testing.T) {
	t.Parallel()
	client, mux, _ := setup(t)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("unexpected request %s %s", r.Method, r.URL)
	})
	b := NewBackend(client)
	ctx := t.Context()
	eff := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	for name, req := range map[string]psa.SetQuantityRequest{
		"contract id":    {ContractID: "x", ServiceID: "5", Quantity: 1, EffectiveDate: eff},
		"service id":     {ContractID: "12", ServiceID: "", Quantity: 1, EffectiveDate: eff},
		"negative":       {ContractID: "12", ServiceID: "5", Quantity: -1, EffectiveDate: eff},
		"effective date": {ContractID: "12", ServiceID: "5", Quantity: 1},
	} {
		if _, err := b.SetQuantity(ctx, req); !errors.Is(err, psa.ErrValidation) {
			t.Errorf("SetQuantity(%s) = %v, want psa.ErrValidation", name, err)
		}
	}
	// Zero wanted and no line: nothing to do, and no request.
	line, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: "12", ServiceID: "5", EffectiveDate: eff})
	if err != nil || line.Quantity != 0 {
		t.Errorf("SetQuantity(0 without a line) = %+v, %v", line, err)
	}
	if _, err := b.ReadLines(ctx, []string{"12", "nope"}, eff); !errors.Is(err, psa.ErrValidation) {
		t.Errorf("ReadLines with a bad id = %v, want psa.ErrValidation", err)
	}
	if lines, err := b.ReadLines(ctx, nil, eff); err != nil || len(lines) != 0 {
		t.Errorf("ReadLines(nil) = %+v, %v", lines, err)
	}
}

package backends_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
)

// exerciseTickets calls the backend's ticket methods on the fuzzed answers,
// as ticket sync does. They may fail, but must not panic or hang; a ticket
// returned without an error has an id; a search returns only tickets of
// the reference searched for; a bulk read keys each ticket by its id; no error
// contains the secret.
func exerciseTickets(t *testing.T, be psa.Backend) {
	tk, ok := be.(psa.Ticketer)
	if !ok {
		t.Fatalf("%T is not a psa.Ticketer", be)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	noSecret := func(what string, err error) {
		if err != nil && strings.Contains(err.Error(), "fuzz-secret") {
			t.Errorf("%s: error contains the secret: %v", what, err)
		}
	}
	for _, kind := range tk.TicketLookupKinds() {
		_, err := tk.TicketLookups(ctx, kind, "")
		noSecret("TicketLookups", err)
	}
	got, err := tk.GetTicket(ctx, "7")
	noSecret("GetTicket", err)
	if err == nil && (got == nil || got.ID == "") {
		t.Errorf("GetTicket returned %+v without an error; want a ticket with an id", got)
	}
	const ref = "sophos:718b6047:a1"
	found, err := tk.FindTickets(ctx, psa.TicketQuery{CompanyID: "5", ExternalRef: ref})
	noSecret("FindTickets", err)
	for _, f := range found {
		if f.ID == "" || f.ExternalRef != ref {
			t.Errorf("FindTickets(%s) returned %+v; want tickets with an id and that reference", ref, f)
		}
	}
	if br, ok := tk.(psa.TicketBulkReader); ok {
		m, err := br.GetTickets(ctx, []string{"7", "8"})
		noSecret("GetTickets", err)
		for id, v := range m {
			if v == nil || v.ID != id {
				t.Errorf("GetTickets([7 8]) returned %+v as ticket %q", v, id)
			}
		}
	}
	created, err := tk.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: "5", ContractID: "34", Title: "Malware detected",
		Description: "d", ExternalRef: ref, OpenedAt: time.Date(2026, 11, 4, 9, 31, 0, 0, time.UTC)})
	noSecret("CreateTicket", err)
	if err == nil && (created == nil || created.ID == "") {
		t.Errorf("CreateTicket returned %+v without an error; want a ticket with an id", created)
	}
	_, err = tk.SetTicketStatus(ctx, psa.TicketStatusUpdate{TicketID: "7", StatusID: "5", Note: "Resolved in Sophos Central."})
	noSecret("SetTicketStatus", err)
	noSecret("AddTicketNote", tk.AddTicketNote(ctx, psa.TicketNote{TicketID: "7", Text: "Still open."}))
}

func fuzzTickets(f *testing.F, system psa.System, seeds []string, cfg func(base string) backends.Config) {
	srv := newFuzzServer(f)
	for _, s := range seeds {
		f.Add(200, []byte(s))
	}
	f.Fuzz(func(t *testing.T, status int, body []byte) {
		srv.set(status, body)
		be, err := backends.New(cfg(srv.URL))
		if err != nil {
			t.Fatalf("backends.New(%s): %v", system, err)
		}
		exerciseTickets(t, be)
	})
}

// FuzzAutotaskTickets feeds arbitrary answers to the Autotask client's
// ticket reads, searches and writes (tickets, picklists, notes).
func FuzzAutotaskTickets(f *testing.F) {
	fuzzTickets(f, psa.SystemAutotask, []string{
		`{"item":{"id":7,"ticketNumber":"T20261104.0001","companyID":5,"title":"Malware detected","status":1,"externalID":"sophos:718b6047:a1"}}`,
		`{"items":[{"id":7,"ticketNumber":"T20261104.0001","companyID":5,"title":"Malware detected","status":5,"externalID":"sophos:718b6047:a1"},{"id":8,"companyID":6,"externalID":"SOPHOS:718B6047:A1"}],"pageDetails":{"count":2,"requestCount":500,"nextPageUrl":null}}`,
		`{"fields":[{"name":"status","isPickList":true,"picklistValues":[{"value":"1","label":"New","isActive":true},{"value":"5","label":"Complete","isActive":true}]}]}`,
		`{"itemId":7}`,
		`{"errors":["Thread Threshold Exceeded"]}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{
			Username: "api@msp.example", Secret: "fuzz-secret", IntegrationCode: "FUZZCODE", BaseURL: base + "/ATServicesRest/"}}
	})
}

// FuzzConnectWiseTickets feeds arbitrary answers to the ConnectWise
// client's ticket reads, searches and writes (tickets, board statuses,
// notes).
func FuzzConnectWiseTickets(f *testing.F) {
	fuzzTickets(f, psa.SystemConnectWise, []string{
		`{"id":7,"summary":"Malware detected","board":{"id":1,"name":"Help Desk"},"status":{"id":5,"name":"New"},"company":{"id":5},"externalXRef":"sophos:718b6047:a1","closedFlag":false}`,
		`[{"id":7,"summary":"Malware detected","company":{"id":5},"externalXRef":"sophos:718b6047:a1","closedFlag":true},{"id":8,"company":{"id":6},"externalXRef":"x"}]`,
		`[{"id":5,"name":"Closed","closedStatus":true,"inactive":false,"defaultFlag":false}]`,
		`{"code":"InvalidObject","message":"bad","errors":[{"code":"x","message":"y","resource":"r","field":"f"}]}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemConnectWise, ConnectWise: &backends.ConnectWiseConfig{
			BaseURL: base + "/v4_6_release/apis/3.0/", CompanyID: "acme", PublicKey: "pub", PrivateKey: "fuzz-secret", ClientID: "client"}}
	})
}

// FuzzKaseyaBMSTickets feeds arbitrary answers to the Kaseya BMS client's
// ticket reads, searches and writes (the success envelope around tickets,
// lookups and notes).
func FuzzKaseyaBMSTickets(f *testing.F) {
	fuzzTickets(f, psa.SystemKaseyaBMS, []string{
		`{"success":true,"result":{"accessToken":"t","refreshToken":"r","accessTokenExpireOn":"2099-01-01T00:00:00","refreshTokenExpireOn":"2099-01-01T00:00:00Z"}}`,
		`{"success":true,"result":{"Id":7,"TicketNumber":"T1","Title":"Malware detected [ref:0123456789abcdef]","AccountId":5,"StatusId":1,"CompletedDate":null}}`,
		`{"success":true,"result":[{"Id":7,"TicketNumber":"T1","Title":"x [ref:0123456789abcdef]","AccountId":5}],"totalRecords":1}`,
		`{"success":true,"result":[{"Id":1,"Name":"New","IsActive":true}]}`,
		`{"success":false,"error":{"code":429,"message":"API call limit exceeded"}}`,
	}, func(base string) backends.Config {
		return backends.Config{System: psa.SystemKaseyaBMS, KaseyaBMS: &backends.KaseyaBMSConfig{
			BaseURL: base + "/", Username: "api@msp.example", Password: "fuzz-secret", Tenant: "t"}}
	})
}

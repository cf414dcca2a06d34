package psa_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// lookups is a Ticketer with fixed lookup lists; only TicketLookups is used.
type lookups struct {
	psa.Ticketer
	list []psa.TicketLookup
}

func (l lookups) TicketLookups(context.Context, psa.TicketLookupKind, string) ([]psa.TicketLookup, error) {
	return l.list, nil
}

func TestFindTicketLookup(t *testing.T) {
	t.Parallel()
	l := lookups{list: []psa.TicketLookup{
		{ID: "1", Name: "New", Active: true}, {ID: "2", Name: "Complete", Active: true, Closed: true},
		{ID: "3", Name: "Old Queue", Active: false}, {ID: "4", Name: "old queue", Active: true},
		{ID: "5", Name: "Twin", Active: true}, {ID: "6", Name: "twin", Active: true},
	}}
	ctx := t.Context()
	if got, err := psa.FindTicketLookup(ctx, l, psa.TicketLookupStatus, "", " complete "); err != nil || got.ID != "2" {
		t.Errorf("complete = %+v, %v", got, err)
	}
	if got, err := psa.FindTicketLookup(ctx, l, psa.TicketLookupQueue, "", "Old Queue"); err != nil || got.ID != "4" {
		t.Errorf("an active entry wins over an inactive one: %+v, %v", got, err)
	}
	_, err := psa.FindTicketLookup(ctx, l, psa.TicketLookupQueue, "", "Twin")
	var amb *psa.AmbiguousError
	if !errors.As(err, &amb) || !errors.Is(err, psa.ErrConflict) || len(amb.Matches) != 2 {
		t.Errorf("Twin: error = %v, want an AmbiguousError with 2 matches", err)
	}
	_, err = psa.FindTicketLookup(ctx, l, psa.TicketLookupSubIssueType, "", "Nope")
	if !errors.Is(err, psa.ErrNotFound) || !strings.Contains(err.Error(), `no ticket sub issue type with name "Nope" (there are: "New"`) {
		t.Errorf("Nope: error = %v", err)
	}
	if _, err := psa.FindTicketLookupID(ctx, l, psa.TicketLookupStatus, "", "9"); !errors.Is(err, psa.ErrNotFound) || !strings.Contains(err.Error(), "Complete (id 2)") {
		t.Errorf("id 9: error = %v", err)
	}
}

func TestCreateTicketRequest_Validate(t *testing.T) {
	t.Parallel()
	ok := psa.CreateTicketRequest{CompanyID: "1", Title: "t", ExternalRef: "sc:1"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		edit func(*psa.CreateTicketRequest)
		want string
	}{
		{func(r *psa.CreateTicketRequest) { r.CompanyID = "" }, "company id is required"},
		{func(r *psa.CreateTicketRequest) { r.Title = " " }, "title is required"},
		{func(r *psa.CreateTicketRequest) { r.ExternalRef = "" }, "external reference is required"},
		{func(r *psa.CreateTicketRequest) { r.ExternalRef = strings.Repeat("x", 51) }, "longer than 50"},
		{func(r *psa.CreateTicketRequest) { r.ExternalRef = `sc:"1"` }, "quote"},
	} {
		r := ok
		tc.edit(&r)
		if err := r.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", r, err, tc.want)
		}
	}
}

func TestRefTokenAndTitle(t *testing.T) {
	t.Parallel()
	tok := psa.RefToken("sc:a5ded91c-6575-435c-a6b4-64b94f9048ff")
	if tok != psa.RefToken("sc:a5ded91c-6575-435c-a6b4-64b94f9048ff") || len(tok) != len("[ref:]")+16 || tok == psa.RefToken("sc:other") {
		t.Errorf("RefToken = %q: want a stable 16-hex-digit token per reference", tok)
	}
	if got := psa.TruncateTitle("  Ransomware détecté  ", 10); got != "Ransomwar…" {
		t.Errorf("TruncateTitle = %q", got)
	}
	if got := psa.TruncateTitle("short", 10); got != "short" {
		t.Errorf("TruncateTitle(short) = %q", got)
	}
	// An emoji counts two, as Autotask and ConnectWise count a length,
	// and is never cut in half.
	if got := psa.TruncateTitle("Virus 🦠🦠🦠 found", 10); got != "Virus 🦠…" || psa.TextLength(got) != 9 {
		t.Errorf("TruncateTitle(emoji) = %q (length %d)", got, psa.TextLength(got))
	}
	if p, s := psa.TextPrefix("🦠ab🦠", 3), psa.TextSuffix("🦠ab🦠", 1); p != "🦠a" || s != "" {
		t.Errorf("TextPrefix(3), TextSuffix(1) = %q, %q; want whole characters only", p, s)
	}
}

package autotask_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// With impersonation configured, reads run as the API user: a resource of
// a restricted security level would read nothing (no error), so lines,
// contracts and tickets would look missing and a lost ticket create would
// be created again. Only the writes carry ImpersonationResourceId.
func TestBackend_impersonationOnlyOnWrites(t *testing.T) {
	t.Parallel()
	const tech = 42
	s := psatest.Start(t, psatest.WithClock(func() time.Time { return now }))
	at := s.Autotask()
	at.RestrictResource(tech)
	user, secret, code := at.Credentials()
	c, err := autotask.NewClient(
		autotask.WithBaseURL(s.AutotaskBaseURL()),
		autotask.WithCredentials(user, secret, code),
		autotask.WithBackoff(time.Millisecond, 5*time.Millisecond),
		autotask.WithImpersonation(tech),
	)
	if err != nil {
		t.Fatal(err)
	}
	b := autotask.NewBackend(c)
	ctx := t.Context()
	company := at.AddCompany("Acme")
	contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Managed"})
	svc := at.AddService("Backup", 4)
	at.SetUnits(contract, svc, 10, date(1, 1))

	lines, err := b.ReadLines(ctx, []string{id(contract)}, date(11, 1))
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 1 || lines[0].Quantity != 10 {
		t.Fatalf("ReadLines = %+v, want the line of 10 units (a read impersonating a restricted resource sees nothing)", lines)
	}
	if cs, err := b.FindContracts(ctx, psa.ContractQuery{CompanyID: id(company)}); err != nil || len(cs) != 1 {
		t.Fatalf("FindContracts = %+v, %v; want the contract", cs, err)
	}
	cur := lines[0]
	if _, err := b.SetQuantity(ctx, psa.SetQuantityRequest{ContractID: id(contract), ServiceID: id(svc), Quantity: 12, Current: &cur, EffectiveDate: date(11, 1)}); err != nil {
		t.Fatal(err)
	}
	tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: id(company), Title: "t", ExternalRef: "sc:1",
		Routing: psa.TicketRouting{QueueID: id(psatest.AutotaskQueueMonitoringAlert)}})
	if err != nil {
		t.Fatal(err)
	}
	if found, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: id(company), ExternalRef: "sc:1"}); err != nil || len(found) != 1 || found[0].ID != tk.ID {
		t.Fatalf("FindTickets = %+v, %v; want ticket %s", found, err, tk.ID)
	}

	writes := 0
	for _, r := range s.Requests() {
		p := strings.ToLower(r.Path)
		read := r.Method == http.MethodGet || strings.HasSuffix(p, "/query") || strings.HasSuffix(p, "/query/count") || strings.HasSuffix(p, "/query/next")
		got := r.Header.Get("ImpersonationResourceId")
		switch {
		case read && got != "":
			t.Errorf("read %s %s carries ImpersonationResourceId %s", r.Method, r.Path, got)
		case !read && got != "42":
			t.Errorf("write %s %s carries ImpersonationResourceId %q, want 42", r.Method, r.Path, got)
		case !read:
			writes++
		}
	}
	if writes != 2 {
		t.Errorf("%d writes, want 2 (the adjustment and the ticket)", writes)
	}
	if tks := at.Tickets(); len(tks) != 1 {
		t.Errorf("tickets %+v, want one", tks)
	}
}

package tickets_test

import (
	"errors"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// TestReport_totalsJoinTheCustomersErrors: the totals of a pass fail when
// a customer did, with every customer's error, so that a check of the
// totals' Err sees a customer that failed.
func TestReport_totalsJoinTheCustomersErrors(t *testing.T) {
	t.Parallel()
	first, second := errors.New("listing open alerts: 503"), errors.New("creating sc:1: refused")
	rep := tickets.Report{Customers: []tickets.CustomerReport{{Created: 1, Err: first}, {Created: 2}, {Err: second}}}
	if tot := rep.Totals(); tot.Created != 3 || !errors.Is(tot.Err, first) || !errors.Is(tot.Err, second) {
		t.Errorf("totals = %+v, want 3 created and both customers' errors", tot)
	}
	if tot := (tickets.Report{Customers: []tickets.CustomerReport{{Created: 1}}}).Totals(); tot.Err != nil {
		t.Errorf("totals of a pass no customer failed = %+v, want no error", tot)
	}
}

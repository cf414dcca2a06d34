package connectwise_test

import (
	"slices"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/internal/resttest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestConditions_againstSimulator checks that what the builder writes means
// the same to the simulator's parser: quoting, escaping, dates, nested
// paths, in, like and not, and values with characters the query string
// must encode (&, +, =, ;, #, non-ASCII).
func TestConditions_againstSimulator(t *testing.T) {
	t.Parallel()
	_, s, _ := newBackend(t)
	cw := s.ConnectWise()
	c := newClient(t, s, &resttest.Sleeps{}, connectwise.WithBaseURL(s.ConnectWiseBaseURL()))
	tricky := cw.AddCompany(`Quote " and back\slash`)
	pct := cw.AddCompany("100% Managed_IT")
	plain := cw.AddCompany("Plain")
	amp := cw.AddCompany(`Smith & Söhne + Co=1; "Ltd" #2`)
	a1 := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: tricky, Name: "T", StartDate: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)})
	a2 := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: pct, Name: "P", Status: connectwise.AgreementCancelled})
	a3 := cw.AddAgreement(psatest.ConnectWiseAgreement{CompanyID: plain, Name: "Q"})

	companies := []struct {
		cond connectwise.Condition
		want []int64
	}{
		{connectwise.Eq("name", `Quote " and back\slash`), []int64{tricky}},
		{connectwise.Eq("name", `Smith & Söhne + Co=1; "Ltd" #2`), []int64{amp}},
		{connectwise.Like("name", connectwise.EscapeLike("100%")+"%"), []int64{pct}},
		{connectwise.Like("name", "%"+connectwise.EscapeLike("_IT")), []int64{pct}},
		{connectwise.Like("name", "%_IT"), []int64{pct}},
		{connectwise.In("id", tricky, plain), []int64{tricky, plain}},
		{connectwise.Not(connectwise.Contains("name", "BACK")), []int64{pct, plain, amp}},
	}
	for _, tt := range companies {
		got, _, err := c.Companies.List(t.Context(), &connectwise.ListOptions{Conditions: tt.cond})
		if err != nil {
			t.Fatalf("Companies.List(%s): %v", tt.cond, err)
		}
		if ids := companyIDs(got); !slices.Equal(ids, tt.want) {
			t.Errorf("conditions %s: ids %v, want %v", tt.cond, ids, tt.want)
		}
	}
	agreements := []struct {
		cond connectwise.Condition
		want []int64
	}{
		{connectwise.Eq("company/name", `Quote " and back\slash`), []int64{a1}},
		{connectwise.And(connectwise.Gte("startDate", time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)), connectwise.Eq("agreementStatus", connectwise.AgreementActive)), []int64{a1}},
		{connectwise.Or(connectwise.Eq("cancelledFlag", true), connectwise.Eq("company/id", plain)), []int64{a2, a3}},
		{connectwise.IsNull("endDate"), []int64{a1, a2, a3}},
	}
	for _, tt := range agreements {
		got, _, err := c.Agreements.List(t.Context(), &connectwise.ListOptions{Conditions: tt.cond})
		if err != nil {
			t.Fatalf("Agreements.List(%s): %v", tt.cond, err)
		}
		var ids []int64
		for _, a := range got {
			ids = append(ids, a.ID)
		}
		if !slices.Equal(ids, tt.want) {
			t.Errorf("conditions %s: ids %v, want %v", tt.cond, ids, tt.want)
		}
	}
	n, _, err := c.Agreements.Count(t.Context(), connectwise.Eq("agreementStatus", connectwise.AgreementActive))
	if err != nil || n != 2 {
		t.Errorf("Agreements.Count = %d, %v, want 2", n, err)
	}
	if n, _, err := c.Companies.Count(t.Context(), connectwise.Eq("name", `Smith & Söhne + Co=1; "Ltd" #2`)); err != nil || n != 1 {
		t.Errorf("Companies.Count by a name with &, + and non-ASCII = %d, %v, want 1", n, err)
	}
}

func companyIDs(cs []*connectwise.Company) []int64 {
	var ids []int64
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

package provider

import (
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestNewServiceConnectWiseModel_absentFieldsAreNull: a ConnectWise that
// leaves type, subcategory and product class out of its answer (they are
// null) must give null attributes, not "": "" contradicted a planned null
// and failed the apply with "Provider produced inconsistent result".
func TestNewServiceConnectWiseModel_absentFieldsAreNull(t *testing.T) {
	t.Parallel()
	m := newServiceConnectWiseModel(&psa.ConnectWiseServiceFields{Identifier: "DATTO-SAAS", CustomerDescription: "Datto SaaS"})
	if !m.TypeID.IsNull() || !m.SubcategoryID.IsNull() || !m.ProductClass.IsNull() {
		t.Errorf("model = %+v, want type_id, subcategory_id and product_class null", m)
	}
	m = newServiceConnectWiseModel(&psa.ConnectWiseServiceFields{Identifier: "X", TypeID: "3", SubcategoryID: "7", ProductClass: "Service"})
	if m.TypeID.ValueString() != "3" || m.SubcategoryID.ValueString() != "7" || m.ProductClass.ValueString() != "Service" {
		t.Errorf("model = %+v, want the values given", m)
	}
}

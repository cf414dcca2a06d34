package autotask_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
)

// TestConformance_fields checks every JSON name the client reads or writes
// for an entity against that entity's fields, as the simulator's
// entityInformation/fields reports them (the field tables of the wire
// reference, 1.9). Autotask ignores a property it does not know in a create
// or update, and a read leaves a field it does not send at its zero value,
// so a misspelt name would go unnoticed against the simulator and the real
// API alike.
func TestConformance_fields(t *testing.T) {
	t.Parallel()
	b, _ := newBackend(t)
	c := b.Client()
	// unmodelled are fields the client reads that the simulator does not
	// hold: the reference lists no BillingCodes fields, and the client
	// only decodes these (the backend uses useType).
	unmodelled := map[string]bool{"BillingCodes.billingCodeType": true, "BillingCodes.generalLedgerCode": true}
	for _, tt := range []struct {
		entity string
		types  []any
	}{
		{"Companies", []any{autotask.Company{}}},
		{"Contracts", []any{autotask.Contract{}}},
		{"Services", []any{autotask.Service{}, autotask.CreateServiceRequest{}, autotask.UpdateServiceRequest{}}},
		{"BillingCodes", []any{autotask.BillingCode{}}},
		{"ContractServices", []any{autotask.ContractService{}, autotask.CreateContractServiceRequest{}, autotask.UpdateContractServiceRequest{}}},
		{"ContractServiceUnits", []any{autotask.ContractServiceUnit{}}},
		{"ContractServiceAdjustments", []any{autotask.CreateContractServiceAdjustmentRequest{}}},
		{"Tickets", []any{autotask.Ticket{}, autotask.CreateTicketRequest{}, autotask.UpdateTicketRequest{}}},
		{"TicketNotes", []any{autotask.TicketNote{}, autotask.CreateTicketNoteRequest{}}},
	} {
		fields, _, err := c.EntityInformation.Fields(t.Context(), tt.entity)
		if err != nil {
			t.Fatalf("%s fields: %v", tt.entity, err)
		}
		known := map[string]bool{"userDefinedFields": true}
		for _, f := range fields {
			known[f.Name] = true
		}
		for _, v := range tt.types {
			typ := reflect.TypeOf(v)
			for i := range typ.NumField() {
				name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
				if name == "" || name == "-" {
					continue
				}
				if !known[name] && !unmodelled[tt.entity+"."+name] {
					t.Errorf("%s.%s is sent or read as %q, which is not a field of %s", typ.Name(), typ.Field(i).Name, name, tt.entity)
				}
			}
		}
	}
}

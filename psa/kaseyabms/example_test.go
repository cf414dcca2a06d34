package kaseyabms_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// This example posts a quantity to a recurring-services contract in the
// simulator. BMS cannot read units back, so ReadLines says so and the
// caller keeps the record of what it set.
func ExampleBackend_SetQuantity() {
	srv := psatest.NewServer(psatest.WithSystem(psa.SystemKaseyaBMS))
	defer srv.Close()
	k := srv.KaseyaBMS()
	contract := k.AddContract(psatest.KaseyaBMSContract{AccountID: k.AddAccount("Acme"), Name: "Acme Managed Services",
		StartDate: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), EndDate: time.Date(2026, 12, 31, 0, 0, 0, 0, time.UTC)})
	service := k.AddService("Sophos Intercept X Advanced", 4.5)

	c, err := kaseyabms.NewClient(
		kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()), // or WithHostname("bmsemea.kaseya.com")
		kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
	)
	if err != nil {
		log.Fatal(err)
	}
	be := kaseyabms.NewBackend(c)
	ctx := context.Background()

	_, err = be.ReadLines(ctx, []string{fmt.Sprint(contract)}, time.Now())
	fmt.Println("units readable:", !errors.Is(err, psa.ErrNotSupported))

	line, err := be.SetQuantity(ctx, psa.SetQuantityRequest{
		ContractID: fmt.Sprint(contract), ServiceID: fmt.Sprint(service),
		Quantity: 42, EffectiveDate: time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("posted line", line.LineID, "with", line.Quantity, "units from", line.PeriodStart.Format(time.DateOnly))
	// Output:
	// units readable: false
	// posted line 4001 with 42 units from 2026-11-01
}

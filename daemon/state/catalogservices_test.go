package state

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestCatalogServices_putAndRead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		var services []CatalogService
		var ids []string
		// More services than one query names, at prices that are no
		// round binary fractions.
		for i := range contractCheckChunk + 20 {
			id := strconv.Itoa(500 + i)
			ids = append(ids, id)
			services = append(services, CatalogService{System: psa.SystemKaseyaBMS, ServiceID: id, Name: "Backup " + id,
				Description: "Per device, monthly", UnitPrice: 4.35 + float64(i)/3, UnitCost: 0.1 + 0.2, ReadAt: t0.Add(time.Duration(i) * time.Microsecond)})
		}
		other := CatalogService{System: psa.SystemAutotask, ServiceID: "500", Name: "Other", UnitPrice: 1, ReadAt: t0}
		if err := db.PutCatalogServices(append(services, other)); err != nil {
			t.Fatal(err)
		}
		got, err := db.CatalogServices(psa.SystemKaseyaBMS, append(ids, "999"))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(services) {
			t.Fatalf("CatalogServices returned %d services, want %d (not the other system's, not the unknown service's)", len(got), len(services))
		}
		for _, s := range services {
			if !cmp.Equal(got[s.ServiceID], s) {
				t.Fatalf("service %s = %+v, want %+v", s.ServiceID, got[s.ServiceID], s)
			}
		}

		// A read replaces the one before of its service.
		again := CatalogService{System: psa.SystemKaseyaBMS, ServiceID: "500", Name: "Backup renamed", UnitPrice: 5.1, UnitCost: 2.2,
			ReadAt: t0.Add(time.Hour)}
		if err := db.PutCatalogServices([]CatalogService{again}); err != nil {
			t.Fatal(err)
		}
		got, err = db.CatalogServices(psa.SystemKaseyaBMS, []string{"500"})
		if err != nil || !cmp.Equal(got, map[string]CatalogService{"500": again}) {
			t.Errorf("CatalogServices after the second read = %+v, %v; want %+v", got, err, again)
		}
		got, err = db.CatalogServices(psa.SystemAutotask, []string{"500"})
		if err != nil || !cmp.Equal(got["500"], other) {
			t.Errorf("the other system's service = %+v, %v; want %+v", got["500"], err, other)
		}
	})
}

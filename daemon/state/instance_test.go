package state

import (
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestBindInstance(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openTest(t, d)
		if in, ok, err := db.BoundInstance(psa.SystemAutotask); err != nil || ok {
			t.Fatalf("BoundInstance of a new database = %v, %t, %v; want none", in, ok, err)
		}
		sandbox := PSAInstance{System: psa.SystemAutotask, Instance: "ci:1@webservices14.autotask.net", BoundAt: t0}
		if got, err := db.BindInstance(sandbox); err != nil || got != sandbox {
			t.Fatalf("BindInstance = %v, %v; want %v", got, err, sandbox)
		}
		// The first binding stays: another instance gets it back.
		prod := PSAInstance{System: psa.SystemAutotask, Instance: "ci:2@webservices5.autotask.net", BoundAt: t0.Add(time.Hour)}
		if got, err := db.BindInstance(prod); err != nil || got != sandbox {
			t.Fatalf("BindInstance of another instance = %v, %v; want the recorded %v", got, err, sandbox)
		}
		// Each system has its own.
		cw := PSAInstance{System: psa.SystemConnectWise, Instance: "api-na.myconnectwise.net", BoundAt: t0}
		if got, err := db.BindInstance(cw); err != nil || got != cw {
			t.Fatalf("BindInstance of another system = %v, %v; want %v", got, err, cw)
		}
		if err := db.PutBoundInstance(prod); err != nil {
			t.Fatal(err)
		}
		if got, ok, err := db.BoundInstance(psa.SystemAutotask); err != nil || !ok || got != prod {
			t.Errorf("BoundInstance after PutBoundInstance = %v, %t, %v; want %v", got, ok, err, prod)
		}
		if got, ok, err := db.BoundInstance(psa.SystemConnectWise); err != nil || !ok || got != cw {
			t.Errorf("BoundInstance of the other system = %v, %t, %v; want %v", got, ok, err, cw)
		}
		if _, err := db.BindInstance(PSAInstance{System: psa.SystemAutotask}); err == nil {
			t.Error("BindInstance without an instance succeeded")
		}
	})
}

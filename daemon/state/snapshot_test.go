package state_test

import (
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

func TestDB_Snapshot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]int
	if ok, err := db.Snapshot("unmapped", &got); ok || err != nil {
		t.Fatalf("Snapshot of nothing = %t, %v; want false, nil", ok, err)
	}
	if err := db.PutSnapshot("unmapped", map[string]int{"customer": 2}); err != nil {
		t.Fatal(err)
	}
	if err := db.PutSnapshot("unmapped", map[string]int{"customer": 3}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// It survives a restart.
	db, err = state.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if ok, err := db.Snapshot("unmapped", &got); !ok || err != nil || got["customer"] != 3 {
		t.Errorf("Snapshot after reopening = %v, %t, %v; want customer 3", got, ok, err)
	}
	if err := db.PutSnapshot("", 1); err == nil {
		t.Error("PutSnapshot with no name succeeded")
	}
}

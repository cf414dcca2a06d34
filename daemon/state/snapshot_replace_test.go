package state

import "testing"

// ReplaceSnapshot stores only over the value SnapshotText read: a value
// stored meanwhile is kept, and the edit of the older one refused.
func TestDB_replaceSnapshotOnlyOverWhatWasRead(t *testing.T) {
	forEachDriver(t, func(t *testing.T, d testDriver) {
		db := openConfig(t, d.config(t))
		if ok, err := db.ReplaceSnapshot("unmapped", "", false, []int{1}); !ok || err != nil {
			t.Fatalf("ReplaceSnapshot of nothing stored = %v, %v; want stored", ok, err)
		}
		old, found, err := db.SnapshotText("unmapped")
		if err != nil || !found || old != "[1]" {
			t.Fatalf("SnapshotText = %q, %v, %v; want [1]", old, found, err)
		}
		if ok, err := db.ReplaceSnapshot("unmapped", "", false, []int{9}); ok || err != nil {
			t.Errorf("ReplaceSnapshot of nothing stored, over a value = %v, %v; want not stored", ok, err)
		}
		// Another writer stores a newer value.
		if err := db.PutSnapshot("unmapped", []int{1, 2}); err != nil {
			t.Fatal(err)
		}
		if ok, err := db.ReplaceSnapshot("unmapped", old, true, []int{}); ok || err != nil {
			t.Errorf("ReplaceSnapshot over a value stored meanwhile = %v, %v; want not stored", ok, err)
		}
		var got []int
		if _, err := db.Snapshot("unmapped", &got); err != nil || len(got) != 2 {
			t.Errorf("snapshot = %v, %v; want the newer [1 2] kept", got, err)
		}
		newer, _, _ := db.SnapshotText("unmapped")
		if ok, err := db.ReplaceSnapshot("unmapped", newer, true, []int{2}); !ok || err != nil {
			t.Errorf("ReplaceSnapshot over the value read = %v, %v; want stored", ok, err)
		}
		if _, err := db.Snapshot("unmapped", &got); err != nil || len(got) != 1 || got[0] != 2 {
			t.Errorf("snapshot = %v, %v; want [2]", got, err)
		}
	})
}

package state_test

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

func TestDB_exports(t *testing.T) {
	t.Parallel()
	db, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })

	if _, _, err := db.CurrentExport(); !errors.Is(err, state.ErrNoExport) {
		t.Fatalf("CurrentExport on an empty database returned %v, want ErrNoExport", err)
	}
	if h, err := db.ExportHistory(0); err != nil || len(h) != 0 {
		t.Fatalf("ExportHistory on an empty database returned %v, %v, want none", h, err)
	}

	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	v1 := state.ExportVersion{Revision: 1, Digest: "sha256:aa", Size: 3, At: at, Source: "127.0.0.1"}
	v2 := state.ExportVersion{Revision: 2, Digest: "sha256:bb", Size: 4, At: at.Add(time.Minute)}
	if err := db.PutExport(v1, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutExport(v2, []byte("two!")); err != nil {
		t.Fatal(err)
	}
	if err := db.PutExport(state.ExportVersion{Revision: 2}, []byte("late")); !errors.Is(err, state.ErrConflict) {
		t.Errorf("PutExport of a stored revision returned %v, want ErrConflict", err)
	}
	if err := db.PutExport(state.ExportVersion{Revision: 5}, []byte("gap")); err == nil || errors.Is(err, state.ErrConflict) {
		t.Errorf("PutExport of revision 5 after 2 returned %v, want a non-conflict error", err)
	}

	v, body, err := db.CurrentExport()
	if err != nil {
		t.Fatal(err)
	}
	if !cmp.Equal(v, v2) || string(body) != "two!" {
		t.Errorf("CurrentExport returned %+v, %q, want %+v, %q", v, body, v2, "two!")
	}
	h, err := db.ExportHistory(0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []state.ExportVersion{v2, v1}; !cmp.Equal(h, want) {
		t.Errorf("ExportHistory returned %+v, want %+v", h, want)
	}
	if h, _ := db.ExportHistory(1); len(h) != 1 || h[0].Revision != 2 {
		t.Errorf("ExportHistory(1) returned %+v, want revision 2 only", h)
	}
}

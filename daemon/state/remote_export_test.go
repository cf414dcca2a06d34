package state

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestDB_remoteExport: the last good export of a remote store is kept per
// store, replaced by a newer one, and read back whole, on both databases.
func TestDB_remoteExport(t *testing.T) {
	t.Parallel()
	for name, cfg := range map[string]func() Config{
		"sqlite":   func() Config { return Config{Path: t.TempDir()} },
		"postgres": func() Config { return Config{Driver: DriverPostgres, URL: pgtest.NewDatabase(t), Path: t.TempDir()} },
	} {
		t.Run(name, func(t *testing.T) {
			db := openConfig(t, cfg())
			defer closeDB(t, db)
			if _, err := db.LastRemoteExport("store-a"); !errors.Is(err, ErrNoExport) {
				t.Fatalf("LastRemoteExport of an empty database = %v, want ErrNoExport", err)
			}
			at := time.Date(2026, 12, 5, 3, 0, 0, 0, time.UTC)
			for _, e := range []RemoteExport{
				{Store: "store-a", Version: `"v1"`, At: at, Body: []byte(`{"one":1}`)},
				{Store: "store-b", Version: `"x"`, At: at, Body: []byte(`{"b":1}`)},
				{Store: "store-a", Version: `"v2"`, At: at.Add(time.Hour), Body: []byte(`{"two":2}`)},
			} {
				if err := db.PutRemoteExport(e); err != nil {
					t.Fatal(err)
				}
			}
			got, err := db.LastRemoteExport("store-a")
			if err != nil || got.Version != `"v2"` || !got.At.Equal(at.Add(time.Hour)) || !bytes.Equal(got.Body, []byte(`{"two":2}`)) {
				t.Errorf("LastRemoteExport(store-a) = %+v, %v; want v2, read at %v", got, err, at.Add(time.Hour))
			}
			if got, err := db.LastRemoteExport("store-b"); err != nil || got.Version != `"x"` {
				t.Errorf("LastRemoteExport(store-b) = %+v, %v; want its own export", got, err)
			}
			if err := db.PutRemoteExport(RemoteExport{Version: "v"}); err == nil {
				t.Error("PutRemoteExport without a store succeeded")
			}
		})
	}
}

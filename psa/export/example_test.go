package export_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

func ExampleStore_Update() {
	dir, err := os.MkdirTemp("", "export-example")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "psa-mappings.json")

	clock := func() time.Time { return time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC) }
	store := export.NewStore(path, export.WithClock(clock))
	doc, err := store.Update(psa.SystemAutotask, "webservices5.autotask.net", func(d *export.Document) error {
		d.PutProduct(export.ProductMapping{
			Source: "sophos", Product: "CIXA-MSP",
			ServiceID: "30000012", ServiceName: "Sophos Intercept X Advanced", SyncEnabled: true,
		})
		return nil
	})
	if err != nil {
		panic(err)
	}
	fmt.Println("revision", doc.Revision)

	data, err := os.ReadFile(path)
	if err != nil {
		panic(err)
	}
	fmt.Print(string(data))
	// Output:
	// revision 1
	// {
	//   "schema": "psa-sync.mapping-export/v1",
	//   "psa": {
	//     "system": "autotask",
	//     "instance": "webservices5.autotask.net"
	//   },
	//   "revision": 1,
	//   "updated_at": "2026-11-21T10:00:00Z",
	//   "product_mappings": [
	//     {
	//       "source": "sophos",
	//       "product": "CIXA-MSP",
	//       "service_id": "30000012",
	//       "service_name": "Sophos Intercept X Advanced",
	//       "sync_enabled": true
	//     }
	//   ],
	//   "customer_mappings": []
	// }
}

func ExampleDecode() {
	_, err := export.Decode([]byte(`{
  "schema": "psa-sync.mapping-export/v1",
  "psa": {"system": "autotask", "instance": ""},
  "customer_mappings": [
    {"source": "sophos", "customer_id": "718b6047", "company_id": "174"}
  ]
}`))
	var verr *export.ValidationError
	if errors.As(err, &verr) {
		fmt.Println(verr.Problems[0].Entry, verr.Problems[0].Field)
	}
	fmt.Println(err)
	// Output:
	// customer_mappings[0] (sophos/718b6047) contract_id
	// export: customer_mappings[0] (sophos/718b6047): contract_id is required
}

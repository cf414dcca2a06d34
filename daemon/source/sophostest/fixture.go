package sophostest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// Default credentials and partner of a simulator started without a fixture.
const (
	DefaultClientID     = "sim-client-id"
	DefaultClientSecret = "sim-client-secret"
	DefaultPartnerID    = "5e1b4c2a-7d3f-4e8a-9b6c-1f2e3d4c5b6a"
)

// Fixture is the simulator's starting state, as JSON:
//
//	{
//	  "client_id": "sim-client-id", "client_secret": "sim-client-secret",
//	  "partner_id": "5e1b4c2a-...", "id_type": "partner",
//	  "tenants": [{"id": "718b6047-...", "name": "Acme"}],
//	  "usage": {"2026-10": [{"accountId": "718b6047-...", "productCode": "CIXA-MSP", "billableQuantity": 20}]}
//	}
//
// Empty fields take the defaults (DefaultClientID, DefaultClientSecret,
// DefaultPartnerID, id_type "partner"). Usage items are in the vendor's own
// shape; fields left out are filled in when served (partner fields, billing
// dates, accountStatus "active", sku, productDescription and productGroup).
// A month that is absent from usage answers 404 "no data", as the real API
// does for months whose report is not ready.
//
// Usage months may also be written relative to the simulator's clock when
// it starts: CurrentMonth ("CURRENT-MONTH") and PreviousMonth
// ("PREVIOUS-MONTH"), so that a shipped fixture shows usage for whatever
// month it is run in. A month given both ways takes the absolute one.
type Fixture struct {
	ClientID     string                 `json:"client_id,omitempty"`
	ClientSecret string                 `json:"client_secret,omitempty"`
	PartnerID    string                 `json:"partner_id,omitempty"`
	PartnerName  string                 `json:"partner_name,omitempty"`
	IDType       string                 `json:"id_type,omitempty"`
	Tenants      []Tenant               `json:"tenants,omitempty"`
	Usage        map[string][]UsageItem `json:"usage,omitempty"`
	// Alerts are each tenant's open alerts by tenant id (see Alert).
	Alerts map[string][]Alert `json:"alerts,omitempty"`
}

// Relative usage months, resolved by the simulator's clock (in UTC) when it
// starts.
const (
	CurrentMonth  = "CURRENT-MONTH"
	PreviousMonth = "PREVIOUS-MONTH"
)

// relativeMonths maps each relative month to its offset from the current one.
var relativeMonths = map[string]int{CurrentMonth: 0, PreviousMonth: -1}

// LoadFixture reads a JSON fixture. Unknown keys are errors, so a typo does not
// silently leave part of the state out.
func LoadFixture(path string) (*Fixture, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("sophostest: reading fixture: %w", err)
	}
	f, err := ParseFixture(data)
	if err != nil {
		return nil, fmt.Errorf("sophostest: fixture %s: %w", path, err)
	}
	return f, nil
}

// ParseFixture decodes and checks a JSON fixture.
func ParseFixture(data []byte) (*Fixture, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var f Fixture
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("decoding: %w", err)
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks that usage months are "YYYY-MM" or relative (CurrentMonth,
// PreviousMonth) and that tenant ids are unique
// and present.
func (f *Fixture) Validate() error {
	seen := map[string]bool{}
	for i, t := range f.Tenants {
		if t.ID == "" {
			return fmt.Errorf("tenants[%d]: id is required", i)
		}
		if seen[t.ID] {
			return fmt.Errorf("tenants[%d]: id %s appears twice", i, t.ID)
		}
		seen[t.ID] = true
	}
	if err := f.validateAlerts(seen); err != nil {
		return err
	}
	months := make([]string, 0, len(f.Usage))
	for m := range f.Usage {
		months = append(months, m)
	}
	sort.Strings(months)
	for _, m := range months {
		if _, ok := relativeMonths[m]; ok {
			continue
		}
		if _, err := source.ParsePeriod(m); err != nil {
			return fmt.Errorf("usage: month %q is not YYYY-MM, %s or %s", m, CurrentMonth, PreviousMonth)
		}
	}
	return nil
}

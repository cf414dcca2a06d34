package kaseyabms_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
)

// A ticket's modification times are read only with their zone: a time
// without one (whose zone the OAS does not give) reads as zero, as does one
// that does not parse, without failing the read of the ticket.
func TestTicket_modifiedTimesNeedAZone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{`"2026-11-15T10:00:00Z"`, time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)},
		{`"2026-11-15T05:00:00.123-05:00"`, time.Date(2026, 11, 15, 10, 0, 0, 123e6, time.UTC)},
		{`"2026-11-15T10:00:00"`, time.Time{}},
		{`"yesterday"`, time.Time{}},
		{`null`, time.Time{}},
	} {
		var tk kaseyabms.Ticket
		if err := json.Unmarshal([]byte(`{"Id":1,"ModifiedOn":`+tc.in+`}`), &tk); err != nil {
			t.Errorf("ModifiedOn %s: %v", tc.in, err)
			continue
		}
		if !tk.ModifiedOn.Equal(tc.want) {
			t.Errorf("ModifiedOn %s read as %v, want %v", tc.in, tk.ModifiedOn.Time, tc.want)
		}
	}
}

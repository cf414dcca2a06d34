package connectwise

import (
	"testing"
	"time"
)

// TestToContract_noEndingDate: an agreement flagged as having no ending
// date has no end date in the neutral model, whatever endDate still holds:
// psa-syncd fails the customer of a contract that has ended, and the
// provider warns of one that ends soon, so an ongoing agreement with a
// leftover endDate must not read as ended.
func TestToContract_noEndingDate(t *testing.T) {
	t.Parallel()
	end := &Time{time.Date(2025, 12, 31, 0, 0, 0, 0, time.UTC)}
	if c := toContract(&Agreement{ID: 800, AgreementStatus: AgreementActive, EndDate: end, NoEndingDateFlag: true}); !c.EndDate.IsZero() {
		t.Errorf("toContract of an agreement without ending date: EndDate = %s, want none", c.EndDate)
	}
	if c := toContract(&Agreement{ID: 800, AgreementStatus: AgreementActive, EndDate: end}); !c.EndDate.Equal(end.Time) {
		t.Errorf("toContract of an agreement ending %s: EndDate = %s", end.Format(time.DateOnly), c.EndDate)
	}
}

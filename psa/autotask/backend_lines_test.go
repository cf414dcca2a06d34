package autotask

import (
	"testing"
	"time"
)

// A service whose unit rows start after the read date (a line added by hand
// mid-period) is reported as a zero-unit line that changes later, never
// dropped: dropping it would let a pass post the full quantity from the
// start of the period on top of the later rows.
func TestToLines_lineStartingLater(t *testing.T) {
	t.Parallel()
	day := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	ts := func(d int) Timestamp { return Timestamp{time.Date(2026, 11, d, 0, 0, 0, 0, time.UTC)} }
	rows := []*ContractServiceUnit{
		{ContractID: 1, ServiceID: 2, ContractServiceID: 9, StartDate: ts(20), EndDate: ts(30), Units: 7},
		{ContractID: 1, ServiceID: 2, ContractServiceID: 9, StartDate: ts(15), EndDate: ts(19), Units: 5},
		{ContractID: 1, ServiceID: 3, ContractServiceID: 8, StartDate: ts(1), EndDate: ts(30), Units: 4},
	}
	lines, problems := toLines(rows, day, nil)
	if problems != nil {
		t.Fatalf("toLines reported %v", problems)
	}
	if len(lines) != 2 {
		t.Fatalf("toLines returned %d lines, want 2: %+v", len(lines), lines)
	}
	got := lines[0]
	if got.ServiceID != "2" || got.Quantity != 0 || got.LineID != "9" {
		t.Errorf("line = %+v, want service 2 with 0 units on %s", got, day.Format(time.DateOnly))
	}
	if len(got.LaterChanges) != 2 || got.LaterChanges[0].Quantity != 5 || !got.LaterChanges[0].From.Equal(ts(15).Time) || got.LaterChanges[1].Quantity != 7 {
		t.Errorf("later changes = %+v, want 5 from the 15th, then 7 from the 20th", got.LaterChanges)
	}
	if l := lines[1]; l.ServiceID != "3" || l.Quantity != 4 || len(l.LaterChanges) != 0 {
		t.Errorf("line = %+v, want service 3 with 4 units and no later changes", l)
	}
}

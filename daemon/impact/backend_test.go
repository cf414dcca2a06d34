package impact

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// checkingBackend is a PSA that checks contracts before writes, as
// ConnectWise does, and refuses contract "2".
type checkingBackend struct {
	psa.Backend
	checked []string
}

func (b *checkingBackend) CheckWrites(_ context.Context, ids []string) (map[string]error, error) {
	b.checked = append(b.checked, ids...)
	out := map[string]error{}
	if slices.Contains(ids, "2") {
		out["2"] = fmt.Errorf("agreement 2 is cancelled: %w", psa.ErrConflict)
	}
	return out, nil
}

// TestReadOnly_CheckWrites checks that the report's backend passes the
// check of the contracts a plan would write to on to the PSA, without the
// contracts known only after apply, so that a cancelled agreement shows.
func TestReadOnly_CheckWrites(t *testing.T) {
	t.Parallel()
	be := &checkingBackend{}
	r := newReadOnly(be)
	var wc psa.WriteChecker = r
	refused, err := wc.CheckWrites(t.Context(), []string{"1", unknownPrefix + "new", "2"})
	if err != nil || len(refused) != 1 || refused["2"] == nil {
		t.Errorf("CheckWrites = %v, %v; want contract 2 refused", refused, err)
	}
	if !slices.Equal(be.checked, []string{"1", "2"}) {
		t.Errorf("the PSA checked %v, want 1 and 2 (not the contract known only after apply)", be.checked)
	}
	// A PSA that checks nothing before writes refuses nothing.
	plain := newReadOnly(struct{ psa.Backend }{})
	if refused, err := plain.CheckWrites(t.Context(), []string{"1"}); err != nil || len(refused) != 0 {
		t.Errorf("CheckWrites without a checking PSA = %v, %v; want nothing", refused, err)
	}
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// planBudgetReserve is the part of Autotask's hourly request budget an
// apply that writes to the PSA leaves alone: psa-syncd's default
// policies.budget_reserve, where its passes stop writing usage. An apply
// below it spends what psa-syncd keeps for the invoices, and one that
// reaches the limit is refused midway, after some of its changes.
const planBudgetReserve = 500

// psaBudget reads the PSA's hourly request budget once per provider
// process (one Terraform command) for checkPSABudget.
type psaBudget struct {
	once   sync.Once
	budget *psa.Budget
	err    error
	// warned says that a failed read was reported, which it is once.
	warned atomic.Bool
}

// checkPSABudget fails the plan of a psa_service that the apply writes to
// the PSA (plan differs from state: a create, an update, a destroy that
// deletes or deactivates) when Autotask's hourly request budget, which
// every integration of the database shares (psa-syncd, this provider, any
// other tool), has fewer than planBudgetReserve requests left: the apply
// would spend psa-syncd's reserve, or be refused midway once the budget
// runs out (Autotask then refuses every request of the database until the
// rolling hour frees some). The budget is read once per provider process
// (ThresholdInformation, one request, which counts against it too), only
// by a plan that writes; the apply, a process of its own, reads it again
// before its first write. A failed read warns, once, and blocks nothing.
//
// Only Autotask reports a budget: ConnectWise reports none, and Kaseya BMS
// limits each endpoint, which its client counts and refuses by itself.
func (d *providerData) checkPSABudget(ctx context.Context, diags *diag.Diagnostics, plan, state tftypes.Value) {
	if d == nil || d.system != psa.SystemAutotask || plan.Equal(state) {
		return
	}
	d.budget.once.Do(func() { d.budget.budget, d.budget.err = d.backend.Budget(ctx) })
	b, err := d.budget.budget, d.budget.err
	switch {
	case err != nil && errors.Is(err, psa.ErrNotSupported):
	case err != nil:
		if d.budget.warned.CompareAndSwap(false, true) {
			diags.AddWarning("Autotask API Budget Not Checked",
				"The provider could not read Autotask's hourly request budget (ThresholdInformation), so it could not "+
					"check that the apply fits in it; the plan goes on.\n\n"+psaErrorDetail(d.system, "reading the API budget", err))
		}
	case b.Remaining() < planBudgetReserve:
		diags.AddError("Autotask API Budget Nearly Spent",
			fmt.Sprintf("Autotask's hourly request budget has %d of its %d requests left (%d used in the rolling %d minutes). "+
				"Every integration of the Autotask database shares it: psa-syncd, this provider and any other tool. "+
				"Below %d requests psa-syncd stops writing usage (its default policies.budget_reserve), and once none "+
				"are left Autotask refuses every request of the database until the rolling hour frees some, so this "+
				"apply, which writes services to Autotask, could spend what psa-syncd keeps for the invoices or be "+
				"refused midway, after some of its changes. Plan and apply again once requests have freed up "+
				"(psa-syncd's psa_sync_api_budget_remaining shows them).",
				max(b.Remaining(), 0), b.Limit, b.Used, int(b.Timeframe.Minutes()), planBudgetReserve))
	}
}

// Package impact works out what a Terraform plan of psa_* resources does to
// invoices, for review in a pull request (`psa-syncd plan -terraform-plan`).
//
// It reads the plan as `terraform show -json tfplan` prints it, applies the
// planned values of psa_product_mapping, psa_customer_mapping and
// psa_integration to a copy of the mapping export in use, and runs the sync
// engine's Plan twice, writing nothing: once under the current mappings and
// once under the proposed ones, on the same usage and the same reads of the
// PSA. The report compares, per customer, contract and service, the
// quantity on the line now, what the next pass would leave under each set of
// mappings, and the unit price (the contract line's own where the PSA
// reports one, Autotask and ConnectWise, else the service's: the plan's
// planned price for a psa_service it manages, the PSA's otherwise; a Kaseya
// BMS line keeps the price it was posted at, so a new price reaches only
// the lines a pass posts), and gives the monthly amount delta: a price per
// quarter, half-year or year (an Autotask service's billing period, a
// ConnectWise agreement's or Kaseya BMS contract's billing cycle) counts
// divided by its months, and a cycle that is unknown leaves the delta
// unknown rather than taken as monthly. A line psa-syncd stops setting keeps its
// quantity: a customer moved to another contract is still billed on the old
// one, and the report shows it.
//
// Values Terraform knows only after apply stay unknown: the id of a service
// the plan creates becomes a placeholder the engine plans with like any id,
// and the report shows "new service *Sophos MDR*". Without PSA credentials,
// or without usage, Compute still reports, with the figures it could not
// compute shown as "?" and listed in Report.NotComputed with the reason.
//
//	tp, err := impact.ReadTerraformPlan(planJSON)
//	if err != nil {
//		return err
//	}
//	rep, err := impact.Compute(ctx, impact.Options{
//		Backend: backend, Source: usage, SourceName: "sophos",
//		Policies: cfg.Policies, Location: cfg.Location(),
//	}, currentExport, tp)
//	if err != nil {
//		return err
//	}
//	return impact.Write(os.Stdout, rep, impact.FormatMarkdown)
//
// The psa.Backend given is wrapped so that every write fails; the PSA is
// only read, each contract and service once (a ConnectWise agreement twice
// when the proposed mappings sync products the current ones do not). The
// wrapper reads as a pass does: contracts in bulk, and contract lines for
// the services each plan manages, so that a ConnectWise addition psa-syncd
// does not sync (labour billed in half hours, two additions of a rack kit)
// fails a customer in the report no more than in a pass.
package impact

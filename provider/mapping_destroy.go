package provider

import (
	"context"
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/resource"
)

// summaryRemovedMappingStillBills is the summary of the warning on the
// destroy of a synced product or customer mapping.
const summaryRemovedMappingStillBills = "Removed Mapping's Lines Still Bill"

// summaryRemovedMappingTakenOver is the summary of the warning on the
// destroy of a synced product mapping whose service another product
// mapping of the plan feeds (sync_enabled on, same usage source): see
// takenOverDetail.
const summaryRemovedMappingTakenOver = "Removed Mapping's Lines Taken Over"

// systemName is systemTitle of the provider's PSA, or "the PSA" before the
// provider is configured.
func (d *providerData) systemName() string {
	if d == nil {
		return "the PSA"
	}
	return systemTitle(d.system)
}

// productMappingDestroyWarning warns on the plan that destroys a product
// mapping psa-syncd synced (sync_enabled true in state): from its next
// pass psa-syncd no longer writes that service's lines for the product,
// so the quantities it last set stay on each customer's contract and are
// invoiced every month, listed as orphaned lines but never zeroed. It
// reads nothing and sends no PSA request; a mapping with sync_enabled
// false in state warns nothing (psa-syncd did not write its lines).
func productMappingDestroyWarning(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, data *providerData) {
	if req.State.Raw.IsNull() {
		return
	}
	var state productMappingResourceModel
	if diags := getFlat(ctx, req.State.Raw, &state); diags.HasError() || !known(state.SyncEnabled) || !state.SyncEnabled.ValueBool() ||
		!known(state.ServiceID) {
		return
	}
	source, service := state.Source.ValueString(), state.ServiceID.ValueString()
	removed := productMappingImportID.format(source, state.Product.ValueString())
	if data != nil {
		if takers := data.services.removeSynced(service, source, removed); len(takers) > 0 {
			resp.Diagnostics.AddWarning(summaryRemovedMappingTakenOver, takenOverDetail([]string{removed}, takers, service))
			return
		}
	}
	resp.Diagnostics.AddWarning(summaryRemovedMappingStillBills,
		fmt.Sprintf("Product mapping %s is destroyed, and psa-syncd synced it: unless another product mapping of usage source %q "+
			"with sync_enabled on names service %s, psa-syncd no longer writes the lines of service %s from its next pass. The quantities it last set "+
			"on each customer's contract stay and are invoiced every month; psa-syncd never zeroes a service that no mapping "+
			"names, and lists those lines as orphaned lines (reason service: psa-syncd plan, its status page, "+
			"GET /api/v1/unmapped, alert PsaSyncOrphanedLines), unless a product mapping with sync_enabled off names the service: "+
			"its lines are then billed by hand, and not listed. After the apply, set the customers' lines of service %s to 0 "+
			"(or end them) in %s, or keep the mapping. To move the product to another service, change service_id instead.",
			removed, source, service, service, service, data.systemName()))
}

// takenOverDetail is the detail of the warning that the plan destroys the
// synced product mappings removed, while the product mappings takers of
// the same usage source name their service with sync_enabled on: psa-syncd
// goes on writing the service's lines, at the takers' usage. Given on
// whichever of the two Terraform plans second (see
// serviceRegistry.syncProduct), so that it is there in either order.
func takenOverDetail(removed, takers []string, service string) string {
	gone, by := strings.Join(removed, ", "), strings.Join(takers, ", ")
	return fmt.Sprintf("This plan destroys product mapping %s, which psa-syncd synced on service %s, and product mapping %s of the same "+
		"usage source names service %s with sync_enabled on: psa-syncd goes on writing the lines of service %s. From its next pass, "+
		"the quantity of each customer's line of service %s becomes the usage of the product of %s (added to that of any other "+
		"product mapped to the service), no longer that of %s. Do not set these lines to 0 by hand (the warning %q, if the plan gives it for %s, does not "+
		"apply to them): the next pass would set them again. psa-syncd plan -terraform-plan gives each customer's quantity and "+
		"amount before and after.",
		gone, service, by, service, service, service, by, gone, summaryRemovedMappingStillBills, gone)
}

// customerMappingDestroyWarning is productMappingDestroyWarning for a
// customer mapping with usage_sync true in state: psa-syncd no longer
// writes the customer's lines on its contract (or its renewal).
func customerMappingDestroyWarning(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, data *providerData) {
	if req.State.Raw.IsNull() {
		return
	}
	var state customerMappingResourceModel
	if diags := getFlat(ctx, req.State.Raw, &state); diags.HasError() || !known(state.UsageSync) || !state.UsageSync.ValueBool() ||
		!known(state.ContractID) {
		return
	}
	contracts := "contract " + state.ContractID.ValueString()
	if known(state.NextContractID) && state.NextContractID.ValueString() != "" {
		contracts += " (and its renewal, contract " + state.NextContractID.ValueString() + ")"
	}
	source := state.Source.ValueString()
	resp.Diagnostics.AddWarning(summaryRemovedMappingStillBills,
		fmt.Sprintf("Customer mapping %s is destroyed, and psa-syncd synced its usage: unless another customer mapping of usage "+
			"source %q with usage_sync on names %s, psa-syncd no longer writes the customer's lines there from its next pass. The quantities it "+
			"last set stay on the contract and are invoiced every month; psa-syncd never zeroes a contract that no mapping "+
			"names, and lists those lines as orphaned lines (reason customer: psa-syncd plan, its status page, "+
			"GET /api/v1/unmapped, alert PsaSyncOrphanedLines) until the contract ends, unless a customer mapping with usage_sync off "+
			"names the contract: its lines are then billed by hand, and not listed. After the apply, end %s or set its lines to 0 in %s, or keep "+
			"the mapping. To move the customer to another contract, change contract_id instead.",
			customerMappingImportID.format(source, state.CustomerID.ValueString()), source, contracts, contracts, data.systemName()))
}

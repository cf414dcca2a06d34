package provider

import (
	"fmt"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// repointedFrom returns the service that a plan re-points a synced
// product mapping from (state's service_id, which plan replaces with
// another service, known or created in this apply), or "" when it
// re-points none: a new mapping, the same service_id, or sync_enabled
// false in state (psa-syncd did not set the old service's lines for it).
// It reads nothing: a refresh plan, where nothing changes, makes no
// request more.
func repointedFrom(state, plan *productMappingResourceModel) string {
	if state == nil || !known(state.ServiceID) || !known(state.SyncEnabled) || !state.SyncEnabled.ValueBool() {
		return ""
	}
	if plan.ServiceID.Equal(state.ServiceID) || (known(plan.SyncEnabled) && !plan.SyncEnabled.ValueBool()) {
		return ""
	}
	return state.ServiceID.ValueString()
}

// repointWarning says, as a plan warning's summary and detail, that
// product mapping id (source's product) moves from service oldID to
// newID ("" when the apply creates it): psa-syncd no longer writes the
// old service's lines (unless another product mapping of the source still
// names it), which keep the quantities psa-syncd last set and go on
// invoicing, and holds each customer's line of the new service that it
// would add while its ledger says the customer's line of the old service
// still bills (the usage sync's hold previous_service): the usage is
// billed once, on the old line, until the operator acts. psa-syncd never
// zeroes a service that no mapping names.
func repointWarning(id, source, oldID, newID string, system psa.System) (string, string) {
	to := "service " + newID
	if newID == "" {
		to = "a service this apply creates"
	}
	return "Previous Service Still Bills",
		fmt.Sprintf("Product mapping %s moves from service %s to %s. Unless another product mapping of usage source %q with "+
			"sync_enabled on still names service %s, psa-syncd no longer writes its lines from its next pass: the quantities it last set on each "+
			"customer's contract stay and are invoiced, and lines of the new service would bill the same usage twice. So "+
			"psa-syncd holds each customer's line of the new service that it would add while its ledger says that the "+
			"customer's line of service %s still bills (hold previous_service, on its status page and in psa-syncd plan): "+
			"that usage is not billed on the new service until the held line is released. psa-syncd never zeroes a service "+
			"that no mapping names. Set the customers' lines of service %s to 0 in %s (on Autotask and ConnectWise PSA the "+
			"next pass then adds the new lines; Kaseya BMS lines cannot be read, so approve them there), or approve each "+
			"held line once checked (psa-syncd sync --approve --customer ID --service ID, or the status page). A line of a "+
			"service that psa-syncd already writes for the customer is not held: zero the old lines before moving a "+
			"product onto a service other products already bill.",
			id, oldID, to, source, oldID, oldID, oldID, systemTitle(system))
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/booldefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/planmodifier"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringdefault"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/stringplanmodifier"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// Ensure customerMappingResource satisfies the resource interfaces.
var (
	_ resource.Resource                = (*customerMappingResource)(nil)
	_ resource.ResourceWithConfigure   = (*customerMappingResource)(nil)
	_ resource.ResourceWithImportState = (*customerMappingResource)(nil)
	_ resource.ResourceWithModifyPlan  = (*customerMappingResource)(nil)
)

// summaryContractTwoCustomers is the summary of the error for two customers
// of one source syncing usage to one contract, at plan and at apply.
const summaryContractTwoCustomers = "Contract Mapped by Two Customers"

// NewCustomerMappingResource returns the psa_customer_mapping resource.
func NewCustomerMappingResource() resource.Resource {
	return &customerMappingResource{}
}

// customerMappingResource maps a vendor customer to a PSA company and
// contract in the mapping export.
type customerMappingResource struct {
	data *providerData
}

// customerMappingResourceModel maps the psa_customer_mapping schema data.
type customerMappingResourceModel struct {
	ID           types.String `tfsdk:"id"`
	Source       types.String `tfsdk:"source"`
	CustomerID   types.String `tfsdk:"customer_id"`
	CustomerName types.String `tfsdk:"customer_name"`
	CompanyID    types.String `tfsdk:"company_id"`
	ContractID   types.String `tfsdk:"contract_id"`
	// NextContractID is the renewal of ContractID (null: none).
	NextContractID types.String `tfsdk:"next_contract_id"`
	UsageSync      types.Bool   `tfsdk:"usage_sync"`
	TicketSync     types.Bool   `tfsdk:"ticket_sync"`
}

func (r *customerMappingResource) Metadata(_ context.Context, req resource.MetadataRequest, resp *resource.MetadataResponse) {
	resp.TypeName = req.ProviderTypeName + "_customer_mapping"
}

func (r *customerMappingResource) Schema(_ context.Context, _ resource.SchemaRequest, resp *resource.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Maps a vendor customer (tenant) to a PSA company and one of its contracts in the mapping " +
			"export. psa-syncd sets the quantities of the mapped services on that contract from the customer's usage.\n\n" +
			"The plan checks that the contract exists and belongs to the company (when either changes, and once after " +
			"an import: the refresh checks an imported mapping's contract, and every plan reports what is wrong with it " +
			"until it passes), and that no " +
			"other customer mapping of the same `source` in the same configuration syncs usage to the contract: " +
			"psa-syncd would not know whose usage to bill on it. Customers of different sources (say a Sophos tenant " +
			"and a usage file for the same company) may share a contract, and so may a mapping with `usage_sync = false`. " +
			"What that check cannot see (a `contract_id` or `usage_sync` unknown until the apply, mappings kept in other " +
			"configurations, behind another provider alias or left out with `-target`), the apply checks against the export: " +
			"it refuses to write a customer with `usage_sync` on a contract that the export maps, with `usage_sync`, to another " +
			"customer of the same source. A new or changed mapping that the export read by the plan shows to be refused so " +
			"warns at plan time (Contract Mapped by Two Customers, on `contract_id`): a warning only, since the other mapping " +
			"may be one this plan removes or moves. When the same apply removes that other mapping or moves it to another contract, " +
			"Terraform may run this change first, which then waits up to 20 seconds for that change. " +
			"Destroying the mapping removes it from the export; it never changes the contract: the lines psa-syncd set on it " +
			"keep the quantities it last set and go on invoicing (psa-syncd lists them as orphaned lines). The plan that " +
			"destroys a mapping with `usage_sync` on warns (Removed Mapping's Lines Still Bill): end the contract or set " +
			"those lines to 0 in the PSA after the apply.\n\n" +
			"The same check warns when the contract has ended, ends this calendar month or the next, or has not started " +
			"yet: psa-syncd writes nothing to a contract for an effective date outside its start and end dates, and fails " +
			"the customer as stale instead. It also warns when the contract's company is inactive (Autotask: not active; " +
			"ConnectWise: deleted, as a merge leaves the company merged away, or of an Inactive status; Kaseya BMS: the account " +
			"is inactive), or when the company could not be read (Autotask and ConnectWise): psa-syncd fails the customer of an " +
			"inactive company. psa-syncd reports mapped contracts that end " +
			"soon ahead of time too (`psa_sync_contracts_ending`, the `PsaSyncContractEndingSoon` alert), also for mappings " +
			"that the plan does not check again.\n\n" +
			"## Contract renewals\n\n" +
			"An annual contract renewed under a new id (the usual way on Autotask and Kaseya BMS) is mapped ahead with " +
			"`next_contract_id`, any time before the old contract ends: psa-syncd bills a pass on the renewal when the pass's " +
			"effective date is on or after the renewal's start (or after `contract_id`'s end), and on `contract_id` before, so " +
			"nothing has to be applied around midnight on 31 December. The renewal gets lines of its own, as a newly mapped " +
			"contract does; the old contract's lines are never written for a day after its end. The plan checks the renewal as " +
			"it checks `contract_id` (same company, recurring service contract, not claimed by another customer) and fails " +
			"unless it starts after `contract_id` ends, naming both dates. psa-syncd's plan and status page show which " +
			"contract each customer bills to and the day its renewal takes over, and a contract whose renewal is mapped is not " +
			"reported as ending. Once psa-syncd bills the renewal (and no re-run of the old contract's last month is due: " +
			"`policies.usage_period: previous` bills that month in the next one), move the renewal's id into `contract_id` and " +
			"remove `next_contract_id`, at leisure: psa-syncd writes nothing different.\n\n" +
			"Changing `contract_id` to another contract otherwise moves the billing at once: psa-syncd no longer writes to " +
			"the old contract, whose lines keep the quantities it last set and go on invoicing (psa-syncd never zeroes a " +
			"contract that no mapping names), and it holds each line it would add or raise on the new contract while its " +
			"ledger says that the customer's line of that service on the old one still bills (hold `previous_contract`): " +
			"that usage is not billed on the new contract until the old line no longer bills or the held line is approved " +
			"(`psa-syncd sync --approve --customer ID --service ID`, or the status page). The plan warns (Previous Contract " +
			"Still Bills) when the old contract is still active and has not ended: end it, or set those quantities to 0; on " +
			"Autotask and ConnectWise psa-syncd reads the old contract while it holds such lines, and its next pass writes " +
			"them (approve those its reason says it cannot tell of, such as a line that was at 0 before psa-syncd set it); " +
			"on Kaseya BMS, which cannot read lines, psa-syncd reads the old contract's record while it holds such lines and " +
			"writes them once it ended before the effective date; approve each held line there if you set the quantities " +
			"to 0 instead; or map the new contract as `next_contract_id`. Two customers that swap contracts in one apply " +
			"need none of this: each one's usage sets the line the other left, and one pass writes both, the line that " +
			"rises after the other customer's (held as `previous_contract` only if that write fails).\n\n" +
			"## How psa-syncd sets quantities in each PSA\n\n" +
			"- **Autotask**: psa-syncd reads the contract's service units for the period and posts a service adjustment " +
			"of the difference (Autotask adjustments are deltas and cannot be read back or undone; psa-syncd records each " +
			"one before sending it, so a crash never sends it twice).\n" +
			"- **ConnectWise PSA**: the contract is an agreement, and the quantity is set on the agreement's active " +
			"addition for the service's catalog item with an absolute PATCH (`quantity` replaced, never incremented), " +
			"so repeating a write is harmless. A missing addition is created, billed to the customer from the effective " +
			"date, for any quantity above 0 (no setting turns this off, and the increase guard never holds a new line). **Two active additions for one product on one agreement are an error** for that customer: " +
			"psa-syncd writes nothing for it and reports the ambiguity instead of guessing which addition to change; " +
			"cancel one of them in ConnectWise. A cancelled or expired agreement marks the mapping stale, and nothing is " +
			"written to it.\n" +
			"- **Kaseya BMS: a limitation.** The BMS v2 API documents no way to read the units on a contract's service " +
			"lines, and none to change them in place. So psa-syncd keeps the quantity it last set for each contract and " +
			"service in its own ledger (in its state directory), and when the quantity changes it posts a **new " +
			"recurring-service line** with the new units (`Units`) and the effective date (`EffectiveDate`). What this " +
			"means for you: lines added or changed by hand in BMS are not seen, because psa-syncd compares usage with its " +
			"ledger, not with BMS; the first sync of a contract and service posts a line even if BMS already has one for " +
			"that service; and BMS does not document how it bills a service posted to a contract again (a second line or " +
			"a prorated change), so check the first invoice after mapping a customer. Losing psa-syncd's state directory " +
			"loses the record of what was set. A line whose post may or may not have reached BMS is never posted again " +
			"blindly: the customer is held for review until an operator resolves it.",
		Attributes: map[string]schema.Attribute{
			"id": schema.StringAttribute{
				MarkdownDescription: "`<source>/<customer_id>`, the key of the mapping in the export.",
				Computed:            true,
				PlanModifiers:       []planmodifier.String{stringplanmodifier.UseStateForUnknown()},
			},
			"source": schema.StringAttribute{
				MarkdownDescription: "Usage source the customer comes from, as named in the psa-syncd configuration. " +
					"Defaults to `\"sophos\"`. Changing it replaces the mapping.",
				Optional:      true,
				Computed:      true,
				Default:       stringdefault.StaticString(defaultSource),
				Validators:    []validator.String{keyPart()},
				PlanModifiers: []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"customer_id": schema.StringAttribute{
				MarkdownDescription: "The vendor's customer id, e.g. the Sophos Central tenant id. Changing it replaces the mapping.",
				Required:            true,
				Validators:          []validator.String{keyLastPart()},
				PlanModifiers:       []planmodifier.String{stringplanmodifier.RequiresReplace()},
			},
			"customer_name": schema.StringAttribute{
				MarkdownDescription: "The customer's name at the vendor, for people reading the export and psa-syncd's reports. " +
					"Defaults to empty.",
				Optional: true,
				Computed: true,
				Default:  stringdefault.StaticString(""),
			},
			"company_id": schema.StringAttribute{
				MarkdownDescription: "Id of the PSA company (Autotask Company, ConnectWise company, Kaseya BMS account) the customer is, usually `data.psa_company.<name>.id`." +
					psaIDDescription,
				Required:   true,
				Validators: []validator.String{nonEmpty()},
			},
			"contract_id": schema.StringAttribute{
				MarkdownDescription: "Id of the company's contract that usage is billed on, usually `data.psa_contract.<name>.id`. " +
					"It must belong to `company_id`, and only one customer of each `source` may sync usage to it." + psaIDDescription,
				Required:   true,
				Validators: []validator.String{nonEmpty()},
			},
			"next_contract_id": schema.StringAttribute{
				MarkdownDescription: "Id of the contract that follows `contract_id` (its renewal), usually `data.psa_contract.<name>.id`: " +
					"psa-syncd bills the customer on it from its start date (or from the day after `contract_id` ends) on, and on " +
					"`contract_id` before. It must be another contract than `contract_id`, belong to `company_id`, be a recurring " +
					"service contract, and start after `contract_id` ends. Optional; see Contract renewals above. Requires psa-syncd with renewals: an older " +
					"psa-syncd refuses an export that holds one (see the README's Upgrading)." + psaIDDescription,
				Optional:   true,
				Validators: []validator.String{nonEmpty()},
			},
			"usage_sync": schema.BoolAttribute{
				MarkdownDescription: "Whether psa-syncd sets contract quantities from the customer's usage. Defaults to `true`.",
				Optional:            true,
				Computed:            true,
				Default:             booldefault.StaticBool(true),
			},
			"ticket_sync": schema.BoolAttribute{
				MarkdownDescription: "Whether psa-syncd files the customer's Sophos Central alerts as PSA tickets, as the " +
					"export's `psa_ticket_routing` says: each open alert (of at least its `min_severity`) becomes a ticket, and " +
					"the ticket of a resolved alert is closed or noted. Only customers of source `\"sophos\"` take part; for " +
					"other sources the value is recorded and has no effect. Without a `psa_ticket_routing`, or while it or " +
					"`psa_integration` is disabled, no ticket is created. Defaults to `false`.",
				Optional: true,
				Computed: true,
				Default:  booldefault.StaticBool(false),
			},
		},
	}
}

func (r *customerMappingResource) Configure(_ context.Context, req resource.ConfigureRequest, resp *resource.ConfigureResponse) {
	r.data = providerDataFrom(req.ProviderData, &resp.Diagnostics, summaryUnexpectedResourceConfigure)
}

// ModifyPlan claims the contract for this customer in the plan-wide
// registry and, when the company or contract changes, checks with the PSA
// that the contract is the company's and can be billed on.
func (r *customerMappingResource) ModifyPlan(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	r.data.checkExportWritable(ctx, &resp.Diagnostics, req.Plan.Raw, req.State.Raw)
	r.planChecks(ctx, req, resp, resp.Private)
	if !req.Plan.Raw.IsNull() {
		// Its apply may read its contract and company again (see
		// planChecks); after the checks, the budget counts the requests
		// their reads took, a large tenant's list of contracts too.
		r.data.checkPSABudget(ctx, &resp.Diagnostics, "psa_customer_mapping", req.Plan.Raw, req.State.Raw, costCustomerMapping)
	}
	if !resp.Diagnostics.HasError() {
		r.checkExportFields(ctx, req, resp)
	}
}

// checkExportFields fails the plan when psa-syncd, as the export store,
// does not read a field the mapping's entry would hold (see
// providerData.checkExportFields): next_contract_id, or an owner token.
func (r *customerMappingResource) checkExportFields(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse) {
	if r.data == nil || req.Plan.Raw.IsNull() {
		return
	}
	var plan customerMappingResourceModel
	if getFlat(ctx, req.Plan.Raw, &plan).HasError() {
		return
	}
	m := plan.toMapping()
	if plan.NextContractID.IsUnknown() {
		m.NextContractID = "known after apply" // a renewal all the same
	}
	r.data.checkMappingFields(ctx, &resp.Diagnostics, req.Private, req.Plan.Raw, req.State.Raw,
		"customer mapping "+customerMappingImportID.format(m.Source, m.CustomerID),
		func(doc *export.Document) bool {
			_, ok := doc.Customer(m.Source, m.CustomerID)
			return ok
		},
		func(doc *export.Document, owner string) {
			m.Owner = owner
			doc.PutCustomer(m)
		},
		func(field string) (path.Path, bool) {
			return path.Root("next_contract_id"), field == "customer_mappings.next_contract_id"
		})
}

// planChecks is ModifyPlan with the plan's private data, which the
// framework passes as both req.Private and resp.Private, given apart so
// that the fast path of a refresh plan (see fastPaths) can call it too.
func (r *customerMappingResource) planChecks(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, private privateData) {
	if req.Plan.Raw.IsNull() {
		customerMappingDestroyWarning(ctx, req, resp, r.data)
		return
	}
	if r.data == nil {
		return
	}
	if !r.data.requireStore(&resp.Diagnostics, "psa_customer_mapping") {
		return
	}
	ctx = r.data.maskedContext(ctx)

	var plan customerMappingResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.Plan.Raw, &plan)...)
	var state *customerMappingResourceModel
	if !req.State.Raw.IsNull() {
		state = new(customerMappingResourceModel)
		resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, state)...)
	}
	if resp.Diagnostics.HasError() || !psaIDsValid(&resp.Diagnostics, r.data.system, plan.psaIDs()) {
		return
	}
	// The export refuses it (export.Document.Validate), so the apply's
	// write would; the contract checks below would blame the dates of
	// what is one contract, or pass it when the PSA cannot be read.
	if known(plan.NextContractID) && plan.NextContractID.Equal(plan.ContractID) {
		resp.Diagnostics.AddAttributeError(path.Root("next_contract_id"), "Renewal Is the Contract",
			fmt.Sprintf("next_contract_id names contract %s, as contract_id does, but a renewal is the contract that follows "+
				"contract_id. Set next_contract_id to the renewal's id, or, once contract_id names the renewal, leave "+
				"next_contract_id out.", plan.ContractID.ValueString()))
		return
	}
	var customer string // unknown until the apply: ""
	if !plan.Source.IsUnknown() && !plan.CustomerID.IsUnknown() {
		customer = customerMappingImportID.format(plan.Source.ValueString(), plan.CustomerID.ValueString())
	}
	owner := fmt.Sprintf("company_id %s, contract_id %s", plan.CompanyID, plan.ContractID)
	if state != nil {
		key := customerMappingImportID.format(state.Source.ValueString(), state.CustomerID.ValueString())
		r.data.claimExisting(ctx, &resp.Diagnostics, private, "customer mapping "+key, key, customer, owner)
		if resp.Diagnostics.HasError() {
			return
		}
	}
	if customer == "" {
		return
	}
	// psa-syncd sets a contract's quantities from one source's usage at a
	// time, so customers of different sources may share a contract, and a
	// customer without usage sync writes nothing to it. A renewal is the
	// customer's contract from its start on.
	for _, c := range []struct {
		attr string
		v    types.String
	}{{"contract_id", plan.ContractID}, {"next_contract_id", plan.NextContractID}} {
		if !known(c.v) || !plan.UsageSync.ValueBool() {
			continue
		}
		id := c.v.ValueString()
		if other, ok := r.data.contracts.claim(r.data.system, plan.Source.ValueString(), id, customer); !ok {
			resp.Diagnostics.AddAttributeError(path.Root(c.attr), summaryContractTwoCustomers,
				fmt.Sprintf("Contract %s is mapped by customer %s and by customer %s in this configuration (as contract_id or "+
					"next_contract_id), both with usage_sync on. "+
					"psa-syncd would set the contract's quantities from the usage of both and refuses to sync either. "+
					"Map each customer to its own contract, or set usage_sync = false on the one that is not billed.",
					id, other, customer))
			return
		}
	}

	if state == nil && !replacesExportKey(ctx, private, customer) {
		source, customerID := plan.Source.ValueString(), plan.CustomerID.ValueString()
		r.data.checkCreate(ctx, &resp.Diagnostics, "customer mapping "+customer, customer, owner, func(doc *export.Document) (bool, bool) {
			m, ok := doc.Customer(source, customerID)
			m.Owner = "" // whose the entry is does not make its values other ones
			return ok, ok && plan.known() && m == plan.toMapping()
		})
		if resp.Diagnostics.HasError() {
			return
		}
	}
	// An unchanged mapping writes nothing, so the apply refuses nothing.
	if state == nil || !state.ContractID.Equal(plan.ContractID) || !state.NextContractID.Equal(plan.NextContractID) ||
		!state.UsageSync.Equal(plan.UsageSync) {
		r.exportContractWarning(ctx, &resp.Diagnostics, &plan)
	}

	if plan.CompanyID.IsUnknown() || plan.ContractID.IsUnknown() || plan.NextContractID.IsUnknown() {
		return
	}
	// Checked when it was planned last; re-checking every mapping on
	// every plan costs a bulk read of the contracts that a plan without
	// changes does not otherwise make, so it is left to recheck_contracts.
	// An imported mapping was never planned (see
	// privateKeyUncheckedContract).
	unchecked := uncheckedContract(ctx, private)
	if state != nil && state.CompanyID.Equal(plan.CompanyID) && state.ContractID.Equal(plan.ContractID) &&
		state.NextContractID.Equal(plan.NextContractID) && !unchecked {
		if r.data.recheckContracts {
			r.recheck(ctx, &resp.Diagnostics, &plan, customer)
		}
		return
	}
	verified := r.checkMove(ctx, &resp.Diagnostics, state, &plan, customer)
	if unchecked && verified && !resp.Diagnostics.HasError() {
		resp.Diagnostics.Append(private.SetKey(ctx, privateKeyUncheckedContract, nil)...)
	}
}

// recheck is checkContracts of the contracts of plan, a mapping that the
// plan does not change, for recheck_contracts. What it finds is a warning:
// the mapping is already in the export, so failing the plan would not
// stop psa-syncd from failing the customer, but would stop every other
// change of the configuration until this one is fixed. The contracts were
// read with the export's others, in the first bulk read of the plan.
func (r *customerMappingResource) recheck(ctx context.Context, diags *diag.Diagnostics, plan *customerMappingResourceModel, customer string) {
	var found diag.Diagnostics
	r.checkContracts(ctx, &found, plan.CompanyID.ValueString(), plan.ContractID.ValueString(), plan.NextContractID.ValueString(), customer)
	for _, d := range found {
		detail := d.Detail()
		if d.Severity() == diag.SeverityError {
			detail += "\n\nThe mapping is unchanged since it was applied: this was found by recheck_contracts, and psa-syncd " +
				"fails the customer until it is fixed. It is a warning so that the plan's other changes can be applied."
		}
		if p, ok := d.(diag.DiagnosticWithPath); ok {
			diags.AddAttributeWarning(p.Path(), d.Summary(), detail)
		} else {
			diags.AddWarning(d.Summary(), detail)
		}
	}
}

// checkMove is checkContracts of plan's contracts and, when plan moves the
// customer off another contract (movedOffContract), warns when that
// contract still bills (movedOffWarning). The contract moved off is read
// with the new ones, in the same bulk read: it costs no request of its
// own.
func (r *customerMappingResource) checkMove(ctx context.Context, diags *diag.Diagnostics, state, plan *customerMappingResourceModel, customer string) (verified bool) {
	contractID := plan.ContractID.ValueString()
	var movedOff chan *psa.Contract
	if oldID := movedOffContract(state, plan); oldID != "" {
		movedOff = make(chan *psa.Contract, 1)
		go func() {
			ct, err := r.data.reads.contracts.get(ctx, oldID)
			if err != nil {
				ct = nil // gone or unreadable: nothing to say of it
			}
			movedOff <- ct
		}()
	}
	verified = r.checkContracts(ctx, diags, plan.CompanyID.ValueString(), contractID, plan.NextContractID.ValueString(), customer)
	if movedOff != nil {
		if old := <-movedOff; old != nil {
			if summary, detail := movedOffWarning(old, contractID, customer, r.data.system, time.Now()); summary != "" {
				diags.AddAttributeWarning(path.Root("contract_id"), summary, detail)
			}
		}
	}
	return verified
}

// movedOffContract returns the contract that a plan moves a billed
// customer off (state's contract_id, which plan replaces), or "" when it
// moves none: a new mapping, the same contract_id, a renewal moved into
// contract_id (state's next_contract_id), or usage_sync off in either.
func movedOffContract(state, plan *customerMappingResourceModel) string {
	if state == nil || !known(state.ContractID) || !known(plan.ContractID) ||
		!state.UsageSync.ValueBool() || !plan.UsageSync.ValueBool() {
		return ""
	}
	old := state.ContractID.ValueString()
	if old == "" || old == plan.ContractID.ValueString() || old == plan.NextContractID.ValueString() ||
		state.NextContractID.ValueString() == plan.ContractID.ValueString() {
		return ""
	}
	return old
}

// movedOffWarning says, as a plan warning's summary and detail, that
// customer moves from contract old, still active and not ended on the day
// of now, to contract newID: psa-syncd no longer writes to old, whose
// lines keep the quantities psa-syncd last set and go on invoicing, and
// holds each line it would add or raise on newID while its ledger says the
// customer's line of the service on old still bills (the usage sync's
// hold previous_contract), until old reads ended or that line at 0
// (Autotask, ConnectWise: psa-syncd reads old while it holds such lines)
// or an approval of that line (Kaseya BMS, where only old's record is
// read, and the lines the read cannot tell of): the usage is billed once, on old, until the operator acts, and
// twice only for a line of old that psa-syncd did not set. psa-syncd never zeroes a contract
// nobody maps; only the operator can end it or its lines. It returns ""
// when old has ended or is not active.
func movedOffWarning(old *psa.Contract, newID, customer string, system psa.System, now time.Time) (string, string) {
	today := now.Format(time.DateOnly)
	if !old.Active || (!old.EndDate.IsZero() && old.EndDate.Format(time.DateOnly) < today) {
		return "", ""
	}
	runs := "has no end date"
	if !old.EndDate.IsZero() {
		runs = "runs until " + old.EndDate.Format(time.DateOnly)
	}
	// psa-syncd reads the old contract's lines and record, on a PSA that
	// can read lines, while it holds lines so, and releases them itself.
	// Kaseya BMS cannot read lines: psa-syncd reads the old contract's
	// record alone.
	until := fmt.Sprintf("psa-syncd reads contract %s ended before the effective date, or each held line is approved", old.ID)
	then := "psa-syncd's next pass, which reads contract " + old.ID + "'s record while it holds such lines, writes them once it ended " +
		"before the changes' effective date; where you set the quantities to 0 instead, approve each held line " +
		"(psa-syncd sync --approve --customer ID --service ID, or the status page)"
	if system != psa.SystemKaseyaBMS {
		until = fmt.Sprintf("psa-syncd reads contract %s ended or its line at 0, or the held line is approved", old.ID)
		then = "psa-syncd's next pass, which reads contract " + old.ID + " while it holds such lines, writes them; " +
			"approve those whose reason says the read cannot tell, such as a line that was at 0 before psa-syncd set it " +
			"(psa-syncd sync --approve --customer ID --service ID, or the status page)"
	}
	return "Previous Contract Still Bills",
		fmt.Sprintf("Customer %s moves from contract %s (%q) to contract %s, but contract %s is active and %s. From its next pass "+
			"psa-syncd no longer writes to contract %s: the quantities it last set there stay and are invoiced, and lines on "+
			"contract %s would bill the usage twice. So psa-syncd holds each line it would add or raise on contract %s while "+
			"its ledger says that the customer's line of that service on contract %s still bills (hold previous_contract, "+
			"on its status page and in psa-syncd plan): that usage is not billed on contract %s until %s. psa-syncd never "+
			"zeroes a contract that no mapping names. End contract %s in %s, or set the quantities psa-syncd kept on it to 0, "+
			"then %s; or, if contract %s follows it, keep contract_id = %q and set next_contract_id = %q instead: "+
			"psa-syncd then bills on it from the day after contract %s ends. If another customer's mapping takes contract %s "+
			"over (two customers swap contracts), its usage sets those quantities, and the pass that sets them writes the "+
			"lines on contract %s after them: nothing is billed twice.",
			customer, old.ID, old.Name, newID, old.ID, runs, old.ID, newID, newID, old.ID, newID, until, old.ID, systemTitle(system),
			then, newID, old.ID, newID, old.ID, old.ID, newID)
}

// privateKeyUncheckedContract is the private-state key that ImportState
// sets on an imported customer mapping: its company and contract come from
// the export, and the PSA was never asked whether the contract exists and
// is the company's, which the plan asks only when either changes. Read
// checks them and removes the key when they pass (so that it is removed
// from the state even by an apply that changes nothing); until then,
// every plan checks them and reports what is wrong.
const privateKeyUncheckedContract = "unchecked_contract"

// uncheckedContract reports whether private holds
// privateKeyUncheckedContract.
func uncheckedContract(ctx context.Context, private privateData) bool {
	if private == nil {
		return false
	}
	v, diags := private.GetKey(ctx, privateKeyUncheckedContract)
	return !diags.HasError() && len(v) > 0
}

// checkContract checks with the PSA that contractID exists, belongs to
// companyID and can be billed on, and reports whether the PSA answered
// (verified): an unreachable PSA, or one that cannot tell the contract's
// company, adds only a warning; refused credentials or a base URL without
// the PSA's endpoints fail the plan (see planCheckFails).
func (r *customerMappingResource) checkContract(ctx context.Context, diags *diag.Diagnostics, companyID, contractID, customer string) (verified bool) {
	return r.checkContracts(ctx, diags, companyID, contractID, "", customer)
}

// checkContracts is checkContract of contractID and, when nextID is not
// "", of the renewal nextID (next_contract_id), which must also start after
// contractID ends (checkRenewalDates). Both are read at once, so that the
// two reads join one bulk read (readCache): a renewal costs no request of
// its own; then, where the contract reads do not tell, their company
// (companyInactive). contractID's dates get no warning when a renewal
// follows it.
func (r *customerMappingResource) checkContracts(ctx context.Context, diags *diag.Diagnostics, companyID, contractID, nextID, customer string) (verified bool) {
	type read struct {
		ct  *psa.Contract
		err error
	}
	var next chan read
	if nextID != "" {
		next = make(chan read, 1)
		go func() {
			ct, err := r.data.reads.contracts.get(ctx, nextID)
			next <- read{ct, err}
		}()
	}
	contract, err := r.data.reads.contracts.get(ctx, contractID)
	var n read
	if next != nil {
		n = <-next
	}
	if r.companyInactive(ctx, diags, companyID, customer, contract, n.ct) {
		contract, n.ct = withCompanyInactive(contract, companyID), withCompanyInactive(n.ct, companyID)
	}
	verified = r.checkContractRead(ctx, diags, path.Root("contract_id"), companyID, contractID, customer, contract, err, nextID == "")
	if next == nil {
		return verified
	}
	nextOK := r.checkContractRead(ctx, diags, path.Root("next_contract_id"), companyID, nextID, customer, n.ct, n.err, false)
	if err == nil && n.err == nil {
		checkRenewalDates(diags, contract, n.ct, customer)
	}
	return verified && nextOK
}

// companyInactive reports whether company companyID, which contracts (those
// read; nil for one that could not be) belong to, is inactive, for a PSA
// whose contract reads do not tell (psaReads.companies). It reads the
// company only when one of the contracts is companyID's: otherwise the
// check fails on the contract anyway. The read comes after the contracts'
// so that, once the contracts of a command are listed (readCache.all), the
// companies of the list are read at once too (readCompanies): the
// companies cost a bulk read per command, not one per batch of Terraform's.
// A company that could not be read is a warning on company_id naming
// customer's mapping (Unable to Verify PSA Company), not an error: the
// check is a courtesy, and psa-syncd reports an inactive company at its
// next pass; but a plan that says nothing would read as "the company is
// active".
func (r *customerMappingResource) companyInactive(ctx context.Context, diags *diag.Diagnostics, companyID, customer string, contracts ...*psa.Contract) bool {
	if r.data.reads.companies == nil || !slices.ContainsFunc(contracts, func(c *psa.Contract) bool {
		return c != nil && c.CompanyID == companyID
	}) {
		return false
	}
	c, err := r.data.reads.companies.get(ctx, companyID)
	if err != nil {
		tflog.Warn(ctx, "Could not read the company of a contract check; an inactive company is not reported",
			map[string]any{"company_id": companyID, "err": err.Error()})
		diags.AddAttributeWarning(path.Root("company_id"), "Unable to Verify PSA Company",
			fmt.Sprintf("The plan could not check that company %s of customer mapping %s is active: psa-syncd fails the customer "+
				"of an inactive company at its next pass. Run the plan again, or check the company in %s. ",
				companyID, customer, systemTitle(r.data.system))+
				psaErrorDetail(r.data.system, fmt.Sprintf("Looking up company %s", companyID), err))
		return false
	}
	return !c.Active
}

// withCompanyInactive returns contract marked as belonging to an inactive
// company (psa.Contract.CompanyInactive, as Kaseya BMS reads it) when it is
// companyID's. The contract read is shared with other checks (readCache),
// so it is copied.
func withCompanyInactive(contract *psa.Contract, companyID string) *psa.Contract {
	if contract == nil || contract.CompanyID != companyID {
		return contract
	}
	c := *contract
	c.CompanyInactive = true
	return &c
}

// checkRenewalDates fails the plan of a renewal (next) that does not start
// after its contract ends: psa-syncd bills the renewal from its start, so
// the days both contracts cover would be billed on the renewal while the
// old contract still invoices its own lines, and a contract without an end
// date is never followed. A renewal that starts later than the day after
// gets a warning: psa-syncd bills neither contract in between. Dates are
// calendar days, as the PSAs give them.
func checkRenewalDates(diags *diag.Diagnostics, contract, next *psa.Contract, customer string) {
	at := path.Root("next_contract_id")
	end, start := contract.EndDate.Format(time.DateOnly), next.StartDate.Format(time.DateOnly)
	switch {
	case contract.EndDate.IsZero():
		diags.AddAttributeError(at, "PSA Contract Has No End Date",
			fmt.Sprintf("Contract %s (%q), customer %s's contract_id, has no end date, so renewal %s (%q), which starts on %s, "+
				"would overlap it. A renewal follows a contract that ends: set the end date of contract %s in the PSA, or, if the "+
				"renewal replaces it now, set contract_id to %s and remove next_contract_id.",
				contract.ID, contract.Name, customer, next.ID, next.Name, dateOrNone(next.StartDate), contract.ID, next.ID))
	case !next.StartDate.IsZero() && start <= end:
		diags.AddAttributeError(at, "Renewal Starts Before Its Contract Ends",
			fmt.Sprintf("Contract %s (%q), next_contract_id, starts on %s, but contract %s (%q), contract_id, ends on %s. psa-syncd "+
				"bills customer %s on the renewal from its start, so the days both contracts cover would be billed on the renewal "+
				"while the old contract still invoices its own lines. A renewal must start after its contract ends (on %s at the "+
				"earliest): fix the dates in the PSA, or the ids.",
				next.ID, next.Name, start, contract.ID, contract.Name, end, customer,
				dayOf(contract.EndDate).AddDate(0, 0, 1).Format(time.DateOnly)))
	case !next.StartDate.IsZero() && start > dayOf(contract.EndDate).AddDate(0, 0, 1).Format(time.DateOnly):
		diags.AddAttributeWarning(at, "Gap Before Renewal",
			fmt.Sprintf("Contract %s (%q), contract_id, ends on %s and its renewal %s (%q) starts on %s: psa-syncd bills customer %s "+
				"on neither contract for an effective date in between (the customer fails as not started). Check the dates in the PSA.",
				contract.ID, contract.Name, end, next.ID, next.Name, start, customer))
	}
}

// dayOf is the calendar day of t, at midnight UTC.
func dayOf(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// dateOrNone is t as a date, or "no date" when t is zero.
func dateOrNone(t time.Time) string {
	if t.IsZero() {
		return "no date"
	}
	return t.Format(time.DateOnly)
}

// checkContractRead is checkContract of contract, read (err when it could
// not be) for attribute at: contract_id, or a renewal's next_contract_id.
// dates adds the warnings of contractDatesWarning.
func (r *customerMappingResource) checkContractRead(ctx context.Context, diags *diag.Diagnostics, at path.Path, companyID, contractID, customer string,
	contract *psa.Contract, err error, dates bool) (verified bool) {
	switch {
	case errors.Is(err, psa.ErrNotFound):
		if detail := r.data.notFoundUnconfirmed(ctx, "contract "+contractID, err); detail != "" {
			diags.AddAttributeError(at, "Unable to Verify PSA Contract", detail)
			break
		}
		diags.AddAttributeError(at, "PSA Contract Not Found",
			fmt.Sprintf("Contract %s does not exist in %s, so customer %s cannot be mapped to it. "+
				"Check contract_id; data.psa_contract looks contracts up by company and name.",
				contractID, systemTitle(r.data.system), customer))
	case planCheckFails(err):
		diags.AddAttributeError(at, "Unable to Verify PSA Contract",
			psaErrorDetail(r.data.system, fmt.Sprintf("Looking up contract %s", contractID), err))
	case err != nil:
		// The check is a courtesy; an unreachable PSA must not block a plan
		// that only changes the export. A malformed id never gets here
		// (psaIDsValid), so a validation error is the PSA's own refusal,
		// which Autotask also gives for some server errors.
		diags.AddAttributeWarning(at, "Unable to Verify PSA Contract",
			psaErrorDetail(r.data.system, fmt.Sprintf("Looking up contract %s", contractID), err))
	case contract.CompanyID == "":
		// Kaseya BMS names a contract's account, not its id, and the
		// account may not be found by that name.
		diags.AddAttributeWarning(at, "Unable to Verify PSA Contract",
			fmt.Sprintf("%s did not tell which company contract %s (%q) belongs to, so the plan could not check that it is "+
				"company %s's, on which customer %s is billed. Check it in %s.",
				systemTitle(r.data.system), contractID, contract.Name, companyID, customer, systemTitle(r.data.system)))
	case contract.CompanyID != companyID:
		diags.AddAttributeError(at, "Contract Belongs to Another Company",
			fmt.Sprintf("Contract %s (%q) belongs to company %s, not to company %s, so customer %s cannot be billed on it. "+
				"Use one of company %s's contracts (data.psa_contract with company_id = %q), or fix company_id.",
				contractID, contract.Name, contract.CompanyID, companyID, customer, companyID, companyID))
	case !contract.Recurring:
		diags.AddAttributeError(at, "Not a Recurring-Service Contract",
			fmt.Sprintf("Contract %s (%q) is a %q contract. psa-syncd sets quantities only on recurring-service contracts, "+
				"so customer %s's usage could never be billed on it. Map the customer to one of company %s's recurring-service "+
				"contracts; data.psa_contract finds only those by default.",
				contractID, contract.Name, contract.Type, customer, companyID))
	case contract.CompanyInactive:
		// Kaseya BMS says so in the contract read (it joins the account
		// lookup); on Autotask and ConnectWise, the read of the company
		// after it does (companyInactive).
		diags.AddAttributeWarning(at, "Inactive PSA Company",
			fmt.Sprintf("Company %s, which contract %s (%q) belongs to, is inactive in %s (deactivated, or merged into another). "+
				"psa-syncd writes nothing to the contracts of an inactive company: it fails customer %s instead, and its usage is "+
				"not billed. If the customer left, set usage_sync = false or remove the mapping; if it was merged, map it to the "+
				"company it was merged into and that company's contract; else make company %s active again in %s.",
				companyID, contractID, contract.Name, systemTitle(r.data.system), customer, companyID, systemTitle(r.data.system)))
	case !contract.Active:
		diags.AddAttributeWarning(at, "Inactive PSA Contract",
			fmt.Sprintf("Contract %s (%q) is not active (status %q); psa-syncd cannot bill customer %s's usage on it until it is.",
				contractID, contract.Name, contract.Status, customer))
	case dates:
		if summary, detail := contractDatesWarning(contract, companyID, customer, time.Now()); summary != "" {
			diags.AddAttributeWarning(at, summary, detail)
		}
	}
	return err == nil && contract.CompanyID != ""
}

// contractDatesWarning says, as a plan warning's summary and detail,
// whether contract, which customer is being mapped to on the day of now,
// has ended, ends in this calendar month or the next, or has not started:
// psa-syncd writes nothing to a contract outside its dates (the customer
// fails as stale), so the mapping to the contract that follows must be
// applied in time. Only a warning: a mapping to the contract that just
// ended still bills the month that ended (usage_period: previous), and a
// renewal is mapped ahead on purpose. It returns "" when there is nothing
// to say.
func contractDatesWarning(contract *psa.Contract, companyID, customer string, now time.Time) (string, string) {
	today := now.Format(time.DateOnly)
	windowEnd := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC).AddDate(0, 2, 0).Format(time.DateOnly)
	start, end := contract.StartDate.Format(time.DateOnly), contract.EndDate.Format(time.DateOnly)
	follow := fmt.Sprintf("Name the contract that follows it in next_contract_id (data.psa_contract with company_id = %q and the new contract's name) "+
		"before then: psa-syncd bills customer %s on it from its start. Or move the end date in the PSA if the contract goes on.", companyID, customer)
	switch {
	case !contract.EndDate.IsZero() && end < today:
		return "PSA Contract Has Ended",
			fmt.Sprintf("Contract %s (%q) ended on %s. psa-syncd writes nothing to it for an effective date after that day: customer %s fails "+
				"as stale from then on, and its usage is not billed. A mapping to it only serves to bill the month it ended in "+
				"(policies.usage_period: previous). Map the customer to the contract that follows it (data.psa_contract with "+
				"company_id = %q and the new contract's name).", contract.ID, contract.Name, end, customer, companyID)
	case !contract.StartDate.IsZero() && start > today:
		return "PSA Contract Not Started",
			fmt.Sprintf("Contract %s (%q) starts on %s. psa-syncd writes nothing to it for an effective date before that day: its passes "+
				"fail customer %s until then (with policies.effective_date: period_start, until the pass of the month it starts in). "+
				"Map it as next_contract_id instead, with contract_id the contract in force until then: psa-syncd bills on it from its start.",
				contract.ID, contract.Name, start, customer)
	case !contract.EndDate.IsZero() && end < windowEnd:
		return "PSA Contract Ends Soon",
			fmt.Sprintf("Contract %s (%q) ends on %s. psa-syncd writes nothing to it for an effective date after that day, and "+
				"customer %s then fails as stale. %s", contract.ID, contract.Name, end, customer, follow)
	}
	return "", ""
}

func (r *customerMappingResource) Create(ctx context.Context, req resource.CreateRequest, resp *resource.CreateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan customerMappingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_customer_mapping") {
		return
	}
	m := plan.toMapping()
	id := customerMappingImportID.format(m.Source, m.CustomerID)

	adopted, owner, err := r.data.createEntry(ctx, r.exportEntry(m.Source, m.CustomerID, &m))
	if err != nil {
		exportWriteError(&resp.Diagnostics, "add", "customer mapping "+id, r.data.exportPath, err)
		return
	}
	if adopted {
		resp.Diagnostics.AddWarning(summaryEntryAdopted, fmt.Sprintf(detailEntryAdopted, "Customer mapping "+id, r.data.exportPath))
	}
	tflog.Info(ctx, "Created customer mapping", map[string]any{"id": id, "company_id": m.CompanyID, "contract_id": m.ContractID})

	plan.ID = types.StringValue(id)
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, owner)...)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *customerMappingResource) Read(ctx context.Context, req resource.ReadRequest, resp *resource.ReadResponse) {
	ctx = r.data.maskedContext(ctx)
	var state customerMappingResourceModel
	resp.Diagnostics.Append(getFlat(ctx, req.State.Raw, &state)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_customer_mapping") {
		return
	}
	id := customerMappingImportID.format(state.Source.ValueString(), state.CustomerID.ValueString())

	doc, ok := r.data.readExportForState(ctx, &resp.Diagnostics, "Customer mapping "+id)
	if !ok {
		return
	}
	m, found := doc.Customer(state.Source.ValueString(), state.CustomerID.ValueString())
	if !found {
		tflog.Warn(ctx, fmt.Sprintf(logRemovedFromState, "Customer mapping "+id+" in "+r.data.exportPath))
		resp.State.RemoveResource(ctx)
		return
	}
	// An imported mapping's contract is checked once; what fails is left to
	// the plan to report, on the configuration's contract_id.
	if req.Private != nil && uncheckedContract(ctx, req.Private) && psa.CheckID(r.data.system, m.CompanyID) == nil &&
		psa.CheckID(r.data.system, m.ContractID) == nil {
		var checks diag.Diagnostics
		if r.checkContract(ctx, &checks, m.CompanyID, m.ContractID, id) && !checks.HasError() {
			resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateKeyUncheckedContract, nil)...)
		}
	}
	resp.Diagnostics.Append(setFlat(ctx, &resp.State, newCustomerMappingModel(m))...)
}

func (r *customerMappingResource) Update(ctx context.Context, req resource.UpdateRequest, resp *resource.UpdateResponse) {
	ctx = r.data.maskedContext(ctx)
	var plan customerMappingResourceModel
	resp.Diagnostics.Append(req.Plan.Get(ctx, &plan)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_customer_mapping") {
		return
	}
	m := plan.toMapping()
	id := customerMappingImportID.format(m.Source, m.CustomerID)

	// The entry keeps the owner token this instance wrote, if any, so that
	// its Delete still removes it.
	owner, diags := exportOwner(ctx, req.Private)
	resp.Diagnostics.Append(diags...)
	if resp.Diagnostics.HasError() {
		return
	}
	m.Owner = owner

	// Put also restores a mapping removed from the export since the plan
	// (but not a lost export: see changeExport).
	err := r.data.changeExport(ctx, func(doc *export.Document) error {
		if err := r.contractConflict(doc, m); err != nil {
			return err
		}
		doc.PutCustomer(m)
		return nil
	})
	if err != nil {
		exportWriteError(&resp.Diagnostics, "update", "customer mapping "+id, r.data.exportPath, err)
		return
	}
	tflog.Info(ctx, "Updated customer mapping", map[string]any{"id": id, "company_id": m.CompanyID, "contract_id": m.ContractID})

	plan.ID = types.StringValue(id)
	resp.Diagnostics.Append(resp.State.Set(ctx, plan)...)
}

func (r *customerMappingResource) Delete(ctx context.Context, req resource.DeleteRequest, resp *resource.DeleteResponse) {
	ctx = r.data.maskedContext(ctx)
	var state customerMappingResourceModel
	resp.Diagnostics.Append(req.State.Get(ctx, &state)...)
	if resp.Diagnostics.HasError() || !r.data.requireStore(&resp.Diagnostics, "psa_customer_mapping") {
		return
	}
	source, customerID := state.Source.ValueString(), state.CustomerID.ValueString()
	id := customerMappingImportID.format(source, customerID)
	r.data.deleteExportEntry(ctx, req.Private, r.exportEntry(source, customerID, nil), &resp.Diagnostics,
		"Left customer mapping in the export for the resource instance that took it over", "Deleted customer mapping", map[string]any{"id": id})
}

func (r *customerMappingResource) ImportState(ctx context.Context, req resource.ImportStateRequest, resp *resource.ImportStateResponse) {
	parts, ok := customerMappingImportID.parseOrDiagnose(req.ID, &resp.Diagnostics)
	if !ok || r.data == nil {
		return
	}
	doc, ok := r.data.exportForImport(ctx, &resp.Diagnostics, "psa_customer_mapping", summaryImportCustomerMapping, "customer mapping "+req.ID)
	if !ok {
		return
	}
	existing, ok := doc.Customer(parts[0], parts[1])
	if !ok {
		keys := make([]string, len(doc.CustomerMappings))
		for i, m := range doc.CustomerMappings {
			keys[i] = customerMappingImportID.format(m.Source, m.CustomerID)
		}
		resp.Diagnostics.AddError(summaryImportCustomerMapping, notInExportDetail("customer mapping", req.ID, r.data.exportPath, keys))
		return
	}
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("id"), req.ID)...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("source"), parts[0])...)
	resp.Diagnostics.Append(resp.State.SetAttribute(ctx, path.Root("customer_id"), parts[1])...)
	// The imported instance holds the entry as its last owner did, so that
	// its Delete removes it.
	resp.Diagnostics.Append(setExportOwner(ctx, resp.Private, existing.Owner)...)
	resp.Diagnostics.Append(resp.Private.SetKey(ctx, privateKeyUncheckedContract, []byte("true"))...)
}

// exportEntry is the export entry of the customer mapping of source and
// customerID, as Create writes it with the values of m, or as Delete
// removes it (m nil).
func (r *customerMappingResource) exportEntry(source, customerID string, m *export.CustomerMapping) exportEntry {
	id := customerMappingImportID.format(source, customerID)
	e := exportEntry{
		name:   "customer mapping " + id,
		remove: func(doc *export.Document) { doc.DeleteCustomer(source, customerID) },
		owner: func(doc *export.Document) (string, bool) {
			existing, ok := doc.Customer(source, customerID)
			return existing.Owner, ok
		},
	}
	if m != nil {
		e.match = func(doc *export.Document) (bool, bool) {
			existing, ok := doc.Customer(source, customerID)
			existing.Owner = m.Owner
			return ok, ok && existing == *m
		}
		e.put = func(doc *export.Document, owner string) {
			owned := *m
			owned.Owner = owner
			doc.PutCustomer(owned)
		}
		e.exists = fmt.Errorf("customer mapping %s already exists with other values; import it with: terraform import <address> %s", id, id)
		e.check = func(doc *export.Document) error { return r.contractConflict(doc, *m) }
	}
	return e
}

// contractConflict returns the error of a Create or Update that writes m
// to doc while doc maps another customer of m's source to m's contract,
// both with usage sync on: psa-syncd would refuse to sync either. The plan
// refuses two such resources of one configuration, and warns of such a
// mapping in the export it read (exportContractWarning); this catches,
// inside the write, what the plan cannot see or only warns of: a contract
// or usage_sync unknown until the apply, when Terraform does not plan the
// unchanged other mapping again, a mapping of another configuration or
// left out with -target, and one written after the plan. A mapping that this apply removes or moves off the contract
// is no conflict once its change is in the export; before, the apply cannot
// know it is coming, and refuses.
func (r *customerMappingResource) contractConflict(doc *export.Document, m export.CustomerMapping) error {
	if o, contract, ok := contractHolder(doc, m); ok {
		other := customerMappingImportID.format(o.Source, o.CustomerID)
		customer := customerMappingImportID.format(m.Source, m.CustomerID)
		return &conflictError{attribute: "contract_id", summary: summaryContractTwoCustomers,
			detail: fmt.Sprintf("Contract %s is mapped by customer %s in the mapping export %q and would be mapped by customer %s, "+
				"both with usage_sync on. psa-syncd would set the contract's quantities from the usage of both and refuses to sync "+
				"either, so customer %s was not written. Map each customer to its own contract, or set usage_sync = false on the one "+
				"that is not billed. The plan does not see this when the contract or usage_sync is unknown until the apply, and only warns "+
				"of it when customer %s's mapping is not part of this configuration's plan (another configuration, -target). If this apply also "+
				"removes customer %s's mapping or moves it to another contract, the provider waited %s for that change and it did not come: apply again.",
				contract, other, r.data.exportPath, customer, customer, other, other, conflictWait)}
	}
	return nil
}

// contractHolder returns the mapping of doc, of another customer of m's
// source, that maps a contract of m (returned too) with usage sync on
// while m has usage sync on: the mapping that contractConflict refuses m
// for.
func contractHolder(doc *export.Document, m export.CustomerMapping) (export.CustomerMapping, string, bool) {
	if !m.UsageSync {
		return export.CustomerMapping{}, "", false
	}
	for _, o := range doc.CustomerMappings {
		if !o.UsageSync || o.Source != m.Source || o.CustomerID == m.CustomerID {
			continue
		}
		if contract, ok := sharedContract(o, m); ok {
			return o, contract, true
		}
	}
	return export.CustomerMapping{}, "", false
}

// exportContractWarning warns at plan time of a new or changed customer
// mapping that the apply's contractConflict would refuse against the
// export as the plan read it: another customer of the source maps one of
// its contracts with usage sync on, in an entry of another configuration,
// of a resource left out with -target, or written by hand, which the
// configuration's own claims (planChecks) cannot see. It is a warning: the
// entry may be this configuration's, removed or moved off the contract by
// this plan in a resource that Terraform plans apart from this one, and
// the apply then waits for that change. It reads the export the command
// reads anyway, once.
func (r *customerMappingResource) exportContractWarning(ctx context.Context, diags *diag.Diagnostics, plan *customerMappingResourceModel) {
	if !known(plan.Source) || !known(plan.CustomerID) || !known(plan.UsageSync) || !known(plan.ContractID) || plan.NextContractID.IsUnknown() {
		return
	}
	doc, found, err := r.data.readExport(ctx)
	if err != nil || !found {
		return // the read's error is the refresh's, or checkCreate's, to report
	}
	o, contract, ok := contractHolder(doc, plan.toMapping())
	if !ok {
		return
	}
	attr := "contract_id"
	if contract != plan.ContractID.ValueString() {
		attr = "next_contract_id"
	}
	other := customerMappingImportID.format(o.Source, o.CustomerID)
	customer := customerMappingImportID.format(plan.Source.ValueString(), plan.CustomerID.ValueString())
	diags.AddAttributeWarning(path.Root(attr), summaryContractTwoCustomers,
		fmt.Sprintf("Contract %s is mapped by customer %s in the mapping export %q, with usage_sync on, and this plan maps "+
			"customer %s to it with usage_sync on too. psa-syncd would set the contract's quantities from the usage of both and "+
			"refuse to sync either, so the apply refuses to write customer %s while the export holds that mapping. If this plan "+
			"also removes customer %s's mapping or moves it to another contract, the apply waits for that change and this warning "+
			"can be ignored. Otherwise that mapping is another configuration's, left out with -target or written by hand: map "+
			"each customer to its own contract, or set usage_sync = false on the one that is not billed, before applying.",
			contract, other, r.data.exportPath, customer, customer, other))
}

// sharedContract returns a contract that mappings a and b both name, as
// contract_id or next_contract_id (a renewal is its customer's contract
// from its start on).
func sharedContract(a, b export.CustomerMapping) (string, bool) {
	for _, x := range []string{a.ContractID, a.NextContractID} {
		if x != "" && (x == b.ContractID || x == b.NextContractID) {
			return x, true
		}
	}
	return "", false
}

// nullIfEmpty is s as a string value, null when "".
func nullIfEmpty(s string) types.String {
	if s == "" {
		return types.StringNull()
	}
	return types.StringValue(s)
}

// psaIDs are the attributes that hold PSA ids.
func (m customerMappingResourceModel) psaIDs() []psaIDAttribute {
	return []psaIDAttribute{
		{name: "company_id", value: m.CompanyID, kind: "company", hint: "data.psa_company.<name>.id"},
		{name: "contract_id", value: m.ContractID, kind: "contract", hint: "data.psa_contract.<name>.id"},
		{name: "next_contract_id", value: m.NextContractID, kind: "contract", hint: "data.psa_contract.<name>.id"},
	}
}

// known reports whether every value of the export entry is known.
func (m customerMappingResourceModel) known() bool {
	return known(m.Source) && known(m.CustomerID) && known(m.CustomerName) && known(m.CompanyID) &&
		known(m.ContractID) && !m.NextContractID.IsUnknown() && known(m.UsageSync) && known(m.TicketSync)
}

// toMapping converts the planned values to an export entry.
func (m customerMappingResourceModel) toMapping() export.CustomerMapping {
	return export.CustomerMapping{
		Source:         m.Source.ValueString(),
		CustomerID:     m.CustomerID.ValueString(),
		CustomerName:   m.CustomerName.ValueString(),
		CompanyID:      m.CompanyID.ValueString(),
		ContractID:     m.ContractID.ValueString(),
		NextContractID: m.NextContractID.ValueString(),
		UsageSync:      m.UsageSync.ValueBool(),
		TicketSync:     m.TicketSync.ValueBool(),
	}
}

// newCustomerMappingModel converts an export entry to the state.
func newCustomerMappingModel(m export.CustomerMapping) customerMappingResourceModel {
	return customerMappingResourceModel{
		ID:           types.StringValue(customerMappingImportID.format(m.Source, m.CustomerID)),
		Source:       types.StringValue(m.Source),
		CustomerID:   types.StringValue(m.CustomerID),
		CustomerName: types.StringValue(m.CustomerName),
		CompanyID:    types.StringValue(m.CompanyID),
		ContractID:   types.StringValue(m.ContractID),
		// An export without a renewal leaves the attribute null, as a
		// configuration without it does.
		NextContractID: nullIfEmpty(m.NextContractID),
		UsageSync:      types.BoolValue(m.UsageSync),
		TicketSync:     types.BoolValue(m.TicketSync),
	}
}

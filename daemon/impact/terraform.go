package impact

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	tfjson "github.com/hashicorp/terraform-json"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// unknownPrefix starts the placeholder that stands for an id Terraform
// knows only after apply, such as the id of a service the same plan creates.
// The engine treats it as any other id; no PSA ever has one like it.
const unknownPrefix = "(known after apply) "

// isUnknown reports whether id is a placeholder for a value known after apply.
func isUnknown(id string) bool { return strings.HasPrefix(id, unknownPrefix) }

// TerraformPlan is what a Terraform plan does to the psa_* resources, read
// from the output of `terraform show -json tfplan`.
type TerraformPlan struct {
	// Services are the psa_service resources of the plan by address,
	// including those that do not change (their values are the PSA's as
	// refreshed by the plan).
	Services  map[string]*PlannedService
	changes   []*tfjson.ResourceChange
	config    *tfjson.Config
	variables map[string]*tfjson.PlanVariable
	// Notes are values the plan leaves unknown that the report cannot
	// resolve, said in words.
	Notes []string
	// Unresolved says, for each service reference that the report could
	// not resolve to a psa_service of the plan, which mappings use it: the
	// lines of those mappings stand under a placeholder service without a
	// price. Set by Apply.
	Unresolved []string
	// sensitive holds the string values that the plan marks sensitive in
	// psa_* resources: Terraform hides them in its own output, so the
	// report does too.
	sensitive []string
	// Mismatch, when set, says that the export given to Apply is not the
	// one the plan was made against: mappings the plan has in its state
	// are missing from it, or differ. Set by Apply.
	Mismatch string
	// UnknownTypes are the psa_* resource types (sorted) that the plan
	// changes and this psa-syncd does not know: a newer provider's. Their
	// billing impact is not in the report, which says so.
	UnknownTypes []string
}

// knownTypes are the provider's resource types. psa_ticket_routing
// changes how alerts become tickets, not what a contract bills.
var knownTypes = []string{"psa_customer_mapping", "psa_integration", "psa_product_mapping", "psa_service", "psa_ticket_routing"}

// PlannedService is a psa_service resource in a plan.
type PlannedService struct {
	Address string
	// Resource is Address without the instance key (psa_service.extra for
	// psa_service.extra["mdr"]), and Index the instance key (a string for
	// for_each, a number for count, nil without either).
	Resource string
	Index    any
	// ID is the service id, or a placeholder when the plan creates the
	// service (or replaces it).
	ID string
	// Name is the planned name ("" when unknown).
	Name string
	// Before and After are the unit prices before and after apply; nil
	// when the resource does not exist on that side or the value is unknown.
	Before, After *float64
	// PeriodBefore and PeriodAfter are the billing periods before and
	// after apply ("" when unknown or absent).
	PeriodBefore, PeriodAfter psa.BillingPeriod
	// Created is true when the plan creates (or replaces) the service.
	Created bool
	// Deleted is true when the plan destroys the service without creating
	// it again.
	Deleted bool
	// ActiveBefore and ActiveAfter are the `active` of a service the plan
	// keeps (neither creates nor destroys) before apply (as the plan's
	// refresh read it) and after; nil when unknown.
	ActiveBefore, ActiveAfter *bool
}

// MaxPlanSize bounds the file of `psa-syncd plan -terraform-plan`, which
// is read whole (see daemon.MaxTerraformPlanSize).
const MaxPlanSize = daemon.MaxTerraformPlanSize

// ReadTerraformPlan decodes the JSON of `terraform show -json tfplan`. It
// rejects input that is not a plan (a state, or a saved binary plan file)
// with an error saying what to pass instead, and a plan that Terraform
// marked as errored: `terraform plan -out` saves the plan file even when it
// fails (a data source that cannot be read, a provider error), and such a
// plan lacks whatever Terraform could not plan, so its billing impact would
// be wrong, typically "No billing change". Newer Terraform versions record
// the failure (`"errored": true`; v1.11.4 does, v1.5.7 does not); with older
// ones only the exit status of `terraform plan` tells, so pipelines must not
// lose it.
func ReadTerraformPlan(data []byte) (*TerraformPlan, error) {
	var probe struct {
		FormatVersion    string          `json:"format_version"`
		TerraformVersion string          `json:"terraform_version"`
		ResourceChanges  json.RawMessage `json:"resource_changes"`
		PlannedValues    json.RawMessage `json:"planned_values"`
		Errored          bool            `json:"errored"`
	}
	if err := json.Unmarshal(data, &probe); err != nil {
		return nil, fmt.Errorf("not the JSON of a Terraform plan (pass the output of `terraform show -json tfplan`, not the binary plan file): %w", err)
	}
	if probe.PlannedValues == nil && probe.ResourceChanges == nil {
		return nil, errors.New("not the JSON of a Terraform plan: it has neither planned_values nor resource_changes (pass the output of `terraform show -json tfplan`)")
	}
	if probe.Errored {
		return nil, fmt.Errorf("the Terraform plan is errored (Terraform %s saved it although `terraform plan` failed): it is incomplete, so no billing impact is reported; fix the errors `terraform plan` printed and plan again", probe.TerraformVersion)
	}
	var p tfjson.Plan
	if err := p.UnmarshalJSON(data); err != nil {
		return nil, fmt.Errorf("reading the Terraform plan: %w", err)
	}
	tp := &TerraformPlan{Services: map[string]*PlannedService{}, config: p.Config, variables: p.Variables}
	for _, rc := range p.ResourceChanges {
		if rc.Mode != tfjson.ManagedResourceMode || rc.Change == nil || rc.DeposedKey != "" || !strings.HasPrefix(rc.Type, "psa_") {
			continue
		}
		if !slices.Contains(knownTypes, rc.Type) {
			if a := rc.Change.Actions; !a.NoOp() && !a.Read() && !slices.Contains(tp.UnknownTypes, rc.Type) {
				tp.UnknownTypes = append(tp.UnknownTypes, rc.Type)
			}
		}
		tp.changes = append(tp.changes, rc)
		tp.sensitive = sensitiveStrings(tp.sensitive, rc.Change.Before, rc.Change.BeforeSensitive)
		tp.sensitive = sensitiveStrings(tp.sensitive, rc.Change.After, rc.Change.AfterSensitive)
		if rc.Type == "psa_service" {
			tp.Services[rc.Address] = newPlannedService(rc)
		}
	}
	slices.Sort(tp.UnknownTypes)
	return tp, nil
}

func newPlannedService(rc *tfjson.ResourceChange) *PlannedService {
	a := rc.Change.Actions
	before, after := values(rc.Change.Before), values(rc.Change.After)
	unknown := values(rc.Change.AfterUnknown)
	s := &PlannedService{Address: rc.Address, Resource: resourceAddress(rc), Index: rc.Index,
		Created: a.Create() || a.Replace(), Deleted: a.Delete() && !a.Replace()}
	if id, ok := after["id"].(string); ok && id != "" && !s.Created {
		s.ID = id
	} else if id, ok := before["id"].(string); ok && id != "" && !s.Created {
		s.ID = id
	} else {
		s.ID = unknownPrefix + rc.Address
	}
	if n, ok := after["name"].(string); ok {
		s.Name = n
	} else if n, ok := before["name"].(string); ok && unknown["name"] != true {
		s.Name = n
	}
	if v, ok := before["unit_price"].(float64); ok && !s.Created {
		s.Before = &v
	}
	if v, ok := after["unit_price"].(float64); ok && !s.Deleted {
		s.After = &v
	}
	if v, ok := before["active"].(bool); ok && !s.Created && !s.Deleted && !isUnknown(s.ID) {
		s.ActiveBefore = &v
	}
	if v, ok := after["active"].(bool); ok && !s.Created && !s.Deleted && !isUnknown(s.ID) {
		s.ActiveAfter = &v
	}
	if v, ok := before["billing_period"].(string); ok && !s.Created {
		s.PeriodBefore = psa.BillingPeriod(v)
	}
	if v, ok := after["billing_period"].(string); ok && !s.Deleted {
		s.PeriodAfter = psa.BillingPeriod(v)
	}
	return s
}

// sensitiveStrings appends to out the strings in v that mark, v's
// before_sensitive or after_sensitive in the plan, flags as sensitive:
// true for all of v, or an object or a list of such marks.
func sensitiveStrings(out []string, v, mark any) []string {
	switch mark := mark.(type) {
	case bool:
		if !mark {
			return out
		}
		switch v := v.(type) {
		case string:
			if !slices.Contains(out, v) {
				out = append(out, v)
			}
		case map[string]any:
			for _, e := range v {
				out = sensitiveStrings(out, e, true)
			}
		case []any:
			for _, e := range v {
				out = sensitiveStrings(out, e, true)
			}
		}
	case map[string]any:
		for k, m := range mark {
			out = sensitiveStrings(out, values(v)[k], m)
		}
	case []any:
		list, _ := v.([]any)
		for i, m := range mark {
			if i < len(list) {
				out = sensitiveStrings(out, list[i], m)
			}
		}
	}
	return out
}

// values returns v as an object, or an empty one.
func values(v any) map[string]any {
	if m, ok := v.(map[string]any); ok {
		return m
	}
	return map[string]any{}
}

// serviceByID returns the planned service with id, if the plan manages it.
func (tp *TerraformPlan) serviceByID(id string) (*PlannedService, bool) {
	for _, s := range tp.Services {
		if s.ID == id {
			return s, true
		}
	}
	return nil, false
}

// activeAfter returns the planned `active` of each service the plan keeps
// and knows it of, by service id.
func (tp *TerraformPlan) activeAfter() map[string]bool {
	out := map[string]bool{}
	for _, s := range tp.Services {
		if s.ActiveAfter != nil {
			out[s.ID] = *s.ActiveAfter
		}
	}
	return out
}

// Changed reports whether the plan changes any psa_* resource.
func (tp *TerraformPlan) Changed() bool {
	return slices.ContainsFunc(tp.changes, func(rc *tfjson.ResourceChange) bool {
		return !rc.Change.Actions.NoOp() && !rc.Change.Actions.Read()
	})
}

// Apply returns the export as it will be after the plan is applied: the
// planned values of the psa_product_mapping, psa_customer_mapping and
// psa_integration resources applied to a copy of current. A value Terraform
// knows only after apply becomes a placeholder id naming where it comes
// from (a service id of a psa_service that the plan creates), never a guess.
func (tp *TerraformPlan) Apply(current *export.Document) (*export.Document, error) {
	doc := current.Clone()
	tp.Notes, tp.Unresolved = nil, nil
	tp.Mismatch = tp.mismatch(current)
	unresolved := map[string][]string{} // reference -> mapping addresses
	var refs, contracts []string
	// Deletions first, so that a mapping replaced under another key, or a
	// key that moves from one resource to another, ends up present.
	for _, rc := range tp.changes {
		// A replacement is two actions (delete then create, or create
		// then delete with create_before_destroy), for which Delete and
		// Create, true for one action alone, are false.
		if a := rc.Change.Actions; !a.Delete() && !a.Replace() {
			continue
		}
		before := values(rc.Change.Before)
		switch rc.Type {
		case "psa_product_mapping":
			doc.DeleteProduct(str(before, "source"), str(before, "product"))
		case "psa_customer_mapping":
			doc.DeleteCustomer(str(before, "source"), str(before, "customer_id"))
		case "psa_integration":
			doc.Integration = nil
		}
	}
	for _, rc := range tp.changes {
		if a := rc.Change.Actions; !a.Create() && !a.Update() && !a.Replace() {
			continue
		}
		v := tp.planned(rc)
		switch rc.Type {
		case "psa_product_mapping":
			pm := export.ProductMapping{
				Source: v.str("source"), Product: v.str("product"), ServiceID: v.str("service_id"),
				ServiceName: v.str("service_name"), SyncEnabled: v.bool("sync_enabled"),
			}
			if s, ok := tp.serviceByID(pm.ServiceID); ok && s.Name != "" && (pm.ServiceName == "" || isUnknown(pm.ServiceName)) {
				pm.ServiceName = s.Name
			}
			if ref := v.unresolved["service_id"]; ref != "" {
				if isUnknown(pm.ServiceName) {
					pm.ServiceName = pm.ServiceID // the placeholder names what it refers to
				}
				if _, ok := unresolved[ref]; !ok {
					refs = append(refs, ref)
				}
				unresolved[ref] = append(unresolved[ref], rc.Address)
			}
			doc.PutProduct(pm)
		case "psa_customer_mapping":
			cm := export.CustomerMapping{
				Source: v.str("source"), CustomerID: v.str("customer_id"), CustomerName: v.str("customer_name"),
				CompanyID: v.str("company_id"), ContractID: v.str("contract_id"),
				NextContractID: v.str("next_contract_id"),
				UsageSync:      v.bool("usage_sync"), TicketSync: v.bool("ticket_sync"),
			}
			if isUnknown(cm.NextContractID) {
				// A renewal known only after apply: the report bills
				// contract_id, as a pass before the renewal starts does,
				// and says so (from the renewal's start a pass bills the
				// renewal instead).
				tp.Notes = append(tp.Notes, fmt.Sprintf("The renewal of %s (customer %s, next_contract_id): it becomes known only after apply (%s), so the report bills contract_id %s, as a pass does until the renewal takes over; from the renewal's start on, a pass bills the renewal instead.",
					rc.Address, cm.CustomerID, strings.TrimPrefix(cm.NextContractID, unknownPrefix), cm.ContractID))
				cm.NextContractID = ""
			}
			if isUnknown(cm.ContractID) {
				// A data source read during apply (it depends on a
				// resource the plan changes) may give the contract the
				// customer is on now: the report cannot tell.
				now := ""
				if old, ok := current.Customer(cm.Source, cm.CustomerID); ok {
					now = ", on contract " + old.ContractID + " now"
				}
				contracts = append(contracts, fmt.Sprintf("The contract of %s (customer %s%s): it becomes known only after apply (%s), so the report cannot tell whether the customer stays on it or moves; its lines there are shown as ?.",
					rc.Address, cm.CustomerID, now, strings.TrimPrefix(cm.ContractID, unknownPrefix)))
			}
			doc.PutCustomer(cm)
		case "psa_integration":
			doc.Integration = &export.Integration{Enabled: v.bool("enabled"), Schedule: v.str("schedule"), Timezone: v.str("timezone")}
		}
		tp.Notes = append(tp.Notes, v.notes...)
	}
	for _, ref := range refs {
		tp.Unresolved = append(tp.Unresolved, fmt.Sprintf("The service of %s (%s): which service it is becomes known only after apply, and the report cannot tell from the plan (it resolves a psa_service instance by a literal key, each.key, count.index, or each.value of a for_each given literally or by a root variable); their lines stand under one placeholder service, without a price.",
			strings.Join(unresolved[ref], ", "), ref))
	}
	tp.Unresolved = append(tp.Unresolved, contracts...)
	if err := doc.Validate(); err != nil {
		return nil, fmt.Errorf("the mapping export after this plan would be invalid: %w", err)
	}
	return doc, nil
}

// otherSources says, for each usage source other than name, which
// product and customer mappings of it the plan changes: another psa-syncd,
// configured for that source, bills them.
func (tp *TerraformPlan) otherSources(name string) []string {
	bySource := map[string][]string{}
	var sources []string
	for _, rc := range tp.changes {
		if a := rc.Change.Actions; a.NoOp() || a.Read() || rc.Type != "psa_product_mapping" && rc.Type != "psa_customer_mapping" {
			continue
		}
		// A mapping that syncs no usage either side (a customer for
		// tickets only) bills nothing.
		syncs := map[string]string{"psa_product_mapping": "sync_enabled", "psa_customer_mapping": "usage_sync"}[rc.Type]
		before, _ := values(rc.Change.Before)[syncs].(bool)
		after, _ := values(rc.Change.After)[syncs].(bool)
		if !before && !after && values(rc.Change.AfterUnknown)[syncs] != true {
			continue
		}
		for _, v := range []map[string]any{values(rc.Change.Before), values(rc.Change.After)} {
			source := str(v, "source")
			if source == "" || source == name || slices.Contains(bySource[source], rc.Address) {
				continue
			}
			if bySource[source] == nil {
				sources = append(sources, source)
			}
			bySource[source] = append(bySource[source], rc.Address)
		}
	}
	slices.Sort(sources)
	var out []string
	for _, source := range sources {
		slices.Sort(bySource[source])
		out = append(out, fmt.Sprintf("The mappings of usage source %s (%s): this report computes the usage of %s only, the source of its configuration, and the psa-syncd that syncs %s bills them; run the report with its configuration too.",
			source, strings.Join(bySource[source], ", "), name, source))
	}
	return out
}

// mismatch says how current differs from the export the plan was made
// against, "" when it does not. The provider reads every mapping in its
// state from the export when it plans, so a mapping the plan has before
// apply (to keep, change or destroy) is in that export as the plan has it.
// One that is missing, or maps to another service or contract, means that
// current is another export (of another PSA instance or Terraform
// workspace, a store the configuration misnames) or has changed since.
func (tp *TerraformPlan) mismatch(current *export.Document) string {
	var diffs []string
	for _, rc := range tp.changes {
		before := values(rc.Change.Before)
		if len(before) == 0 {
			continue
		}
		source := str(before, "source")
		switch rc.Type {
		case "psa_product_mapping":
			product, service := str(before, "product"), str(before, "service_id")
			switch pm, ok := current.Product(source, product); {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s (%s/%s) is not in it", rc.Address, source, product))
			case pm.ServiceID != service:
				diffs = append(diffs, fmt.Sprintf("%s (%s/%s) maps to service %s in it, to %s in the plan", rc.Address, source, product, pm.ServiceID, service))
			}
		case "psa_customer_mapping":
			customer, contract := str(before, "customer_id"), str(before, "contract_id")
			switch cm, ok := current.Customer(source, customer); {
			case !ok:
				diffs = append(diffs, fmt.Sprintf("%s (%s/%s) is not in it", rc.Address, source, customer))
			case cm.ContractID != contract:
				diffs = append(diffs, fmt.Sprintf("%s (%s/%s) is on contract %s in it, on %s in the plan", rc.Address, source, customer, cm.ContractID, contract))
			}
		}
	}
	if len(diffs) == 0 {
		return ""
	}
	const maxDiffs = 5
	if len(diffs) > maxDiffs {
		diffs = append(diffs[:maxDiffs], fmt.Sprintf("%d more", len(diffs)-maxDiffs))
	}
	return "Every figure: the mapping export in use is not the one this plan was made against (" + strings.Join(diffs, "; ") +
		"). It is the export of another PSA instance or Terraform workspace, or it changed after the plan, so the report compares the plan with mappings Terraform did not plan against. " +
		"Give psa-syncd the store the provider writes (export_url or export_path), or plan again."
}

// plannedValues are one resource's values after apply, with unknown ones
// resolved to placeholders.
type plannedValues struct {
	address string
	after   map[string]any
	before  map[string]any
	unknown map[string]any
	tp      *TerraformPlan
	rc      *tfjson.ResourceChange
	notes   []string
	// unresolved holds, by attribute, the reference of an unknown value
	// that str could not resolve to a planned psa_service.
	unresolved map[string]string
}

func (tp *TerraformPlan) planned(rc *tfjson.ResourceChange) *plannedValues {
	return &plannedValues{address: rc.Address, after: values(rc.Change.After), before: values(rc.Change.Before),
		unknown: values(rc.Change.AfterUnknown), tp: tp, rc: rc}
}

// str returns a string attribute after apply. An unknown one becomes a
// placeholder: for a reference to a psa_service, that service's id
// placeholder (so every mapping of the new service shares it) or name.
func (v *plannedValues) str(name string) string {
	if s, ok := v.after[name].(string); ok {
		return s
	}
	if v.unknown[name] != true {
		return ""
	}
	svc, ref := v.tp.referencedService(v.rc, name)
	if svc != nil {
		switch name {
		case "service_id":
			return svc.ID
		case "service_name":
			if svc.Name != "" {
				return svc.Name
			}
		}
	}
	if svc == nil && name == "service_id" {
		if v.unresolved == nil {
			v.unresolved = map[string]string{}
		}
		v.unresolved[name] = cmp.Or(ref, v.address+"."+name)
		if ref != "" {
			// Every mapping that refers to the same thing shares one
			// placeholder: their usage adds up on one line, as it will
			// on the service they all turn out to name.
			return unknownPrefix + ref
		}
	}
	if svc == nil && ref != "" {
		return unknownPrefix + ref
	}
	return unknownPrefix + v.address + "." + name
}

// bool returns a bool attribute after apply. An unknown one keeps its value
// from before apply (false for a new resource) and is noted.
func (v *plannedValues) bool(name string) bool {
	if b, ok := v.after[name].(bool); ok {
		return b
	}
	b, _ := v.before[name].(bool)
	if v.unknown[name] == true {
		v.notes = append(v.notes, fmt.Sprintf("%s.%s is known only after apply; the report takes it as %t", v.address, name, b))
	}
	return b
}

func str(m map[string]any, name string) string {
	s, _ := m[name].(string)
	return s
}

// referencedService returns the psa_service that the configuration of rc's
// attribute refers to (service_id = psa_service.mdr.id), or nil and what it
// refers to ("" when nothing). A reference to an instance of a psa_service
// with for_each or count is resolved where its key is literal, or is
// each.key, count.index (rc's own key) or each.value of a for_each that
// the plan gives (a literal, or a root module variable); else where the
// resource has only one instance, since any other key would fail the plan.
func (tp *TerraformPlan) referencedService(rc *tfjson.ResourceChange, attr string) (*PlannedService, string) {
	cr := tp.configResource(rc)
	if cr == nil {
		return nil, ""
	}
	expr := cr.Expressions[attr]
	if expr == nil || expr.ExpressionData == nil || len(expr.References) == 0 {
		return nil, ""
	}
	prefix := ""
	if rc.ModuleAddress != "" {
		prefix = rc.ModuleAddress + "."
	}
	var index []string // the references that may be an index
	for _, ref := range expr.References {
		if !strings.HasPrefix(ref, "psa_service.") {
			index = append(index, ref)
		}
	}
	for _, ref := range expr.References {
		if !strings.HasPrefix(ref, "psa_service.") {
			continue
		}
		addr := prefix + strings.TrimSuffix(strings.TrimSuffix(ref, ".name"), ".id")
		if s, ok := tp.Services[addr]; ok {
			return s, ""
		}
		if strings.ContainsAny(addr[len(prefix):], `["`) || strings.Count(addr[len(prefix):], ".") != 1 {
			continue
		}
		// psa_service.extra[<expression>]: which instance?
		var instances []*PlannedService
		for _, s := range tp.Services {
			if s.Resource == addr && !s.Deleted {
				instances = append(instances, s)
			}
		}
		if key, ok := tp.eachKey(cr, rc, index); ok {
			for _, s := range instances {
				if sameKey(s.Index, key) {
					return s, ""
				}
			}
		}
		if len(instances) == 1 && instances[0].Index != nil {
			return instances[0], ""
		}
		if len(index) > 0 {
			return nil, addr + "[" + strings.Join(index, ", ") + "]"
		}
		return nil, addr
	}
	return nil, prefix + expr.References[0]
}

// eachKey is the value of the one index expression of refs, each.key,
// count.index or each.value, for the instance rc of resource cr.
func (tp *TerraformPlan) eachKey(cr *tfjson.ConfigResource, rc *tfjson.ResourceChange, refs []string) (any, bool) {
	if len(refs) != 1 || rc.Index == nil {
		return nil, false
	}
	switch refs[0] {
	case "each.key", "count.index":
		return rc.Index, true
	case "each.value":
	default:
		return nil, false
	}
	key, ok := rc.Index.(string)
	if !ok || cr.ForEachExpression == nil || cr.ForEachExpression.ExpressionData == nil {
		return nil, false
	}
	fe := cr.ForEachExpression.ExpressionData
	value := fe.ConstantValue
	if value == nil && rc.ModuleAddress == "" && len(fe.References) == 1 && strings.HasPrefix(fe.References[0], "var.") {
		if v := tp.variables[strings.TrimPrefix(fe.References[0], "var.")]; v != nil {
			value = v.Value
		}
	}
	switch value := value.(type) {
	case map[string]any:
		v, ok := value[key]
		return v, ok
	case []any:
		// A set of strings: each.value is each.key.
		return key, slices.Contains(value, any(key))
	}
	return nil, false
}

// sameKey reports whether two instance keys are the same: strings, or
// numbers (count indexes decode as float64).
func sameKey(a, b any) bool {
	switch a := a.(type) {
	case string:
		b, ok := b.(string)
		return ok && a == b
	case float64:
		switch b := b.(type) {
		case float64:
			return a == b
		case json.Number:
			f, err := b.Float64()
			return err == nil && a == f
		}
	}
	return false
}

// resourceAddress is rc's address without its instance key.
func resourceAddress(rc *tfjson.ResourceChange) string {
	if rc.ModuleAddress != "" {
		return rc.ModuleAddress + "." + rc.Type + "." + rc.Name
	}
	return rc.Type + "." + rc.Name
}

// configResource finds the configuration block of rc, in the root module or
// a module call (module instance keys are dropped: every instance shares
// one block).
func (tp *TerraformPlan) configResource(rc *tfjson.ResourceChange) *tfjson.ConfigResource {
	if tp.config == nil || tp.config.RootModule == nil {
		return nil
	}
	mod := tp.config.RootModule
	if rc.ModuleAddress != "" {
		for _, part := range strings.Split(rc.ModuleAddress, "module.")[1:] {
			name := strings.TrimSuffix(part, ".")
			if i := strings.IndexByte(name, '['); i >= 0 {
				name = name[:i]
			}
			call := mod.ModuleCalls[name]
			if call == nil || call.Module == nil {
				return nil
			}
			mod = call.Module
		}
	}
	for _, r := range mod.Resources {
		if r.Mode == tfjson.ManagedResourceMode && r.Type == rc.Type && r.Name == rc.Name {
			return r
		}
	}
	return nil
}

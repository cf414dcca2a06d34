package provider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// providerData is what Configure hands to every resource and data source. One
// value lives for one provider configuration, which Terraform creates afresh
// for each command (plan, apply), so per-plan bookkeeping such as the
// contract registry may live here.
//
// It is safe for concurrent use: Terraform plans and applies resources in
// parallel.
type providerData struct {
	backend psa.Backend
	system  psa.System

	// exportPath is export_path as configured; store is nil when it is unset.
	exportPath string
	store      *export.Store

	// secrets are masked in every log line written with maskedContext.
	secrets []string

	// contracts records which customer mapping claimed each contract (per
	// usage source) in the plan being made, to catch two customers of one
	// source mapped to one contract.
	contracts *claimRegistry

	// serviceSources records which usage source's products feed each
	// service in the plan being made: psa-syncd syncs one source at a
	// time, so two sources on one service would overwrite each other's
	// quantity on every contract both bill.
	serviceSources *claimRegistry

	// services records what the plan being made does to existing
	// psa_service resources, for the product mappings that refer to them.
	services serviceRegistry

	// instanceMu makes concurrent first writes wait for one ping instead of
	// each pinging the PSA (see instance).
	instanceMu sync.Mutex
}

// maskedContext returns ctx with the provider's credentials masked in logs.
func (d *providerData) maskedContext(ctx context.Context) context.Context {
	return maskSecrets(ctx, d.secrets)
}

// requireStore adds an error when export_path is not configured.
func (d *providerData) requireStore(diags *diag.Diagnostics, resourceType string) bool {
	if d.store != nil {
		return true
	}
	diags.AddError(summaryMissingExportPath, fmt.Sprintf(detailMissingExportPath, resourceType))
	return false
}

// instance returns the backend's instance name for the export. Backends that
// discover their instance lazily (Autotask zone lookup without base_url)
// learn it on first use, so an apply that has made no request yet pings once.
func (d *providerData) instance(ctx context.Context) (string, error) {
	if in := d.backend.Instance(); in != "" {
		return in, nil
	}
	d.instanceMu.Lock()
	defer d.instanceMu.Unlock()
	if in := d.backend.Instance(); in != "" {
		return in, nil
	}
	if err := d.backend.Ping(ctx); err != nil {
		return "", err
	}
	return d.backend.Instance(), nil
}

// readExport reads the mapping export. A missing file is reported as
// found == false without an error: nothing has been written yet.
func (d *providerData) readExport() (doc *export.Document, found bool, err error) {
	doc, err = d.store.Read()
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if doc.PSA.System != d.system {
		return nil, false, fmt.Errorf("export %q belongs to PSA system %q, but the provider is configured for %q", d.store.Path(), doc.PSA.System, d.system)
	}
	return doc, true, nil
}

// checkCreate fails the plan of a new export entry that the apply could not
// write: the export is unreadable, or holds the entry already (not yet
// imported, or managed by another resource address). exists reports
// whether doc has the entry; entry names it in messages and importID is
// how to import it.
func (d *providerData) checkCreate(diags *diag.Diagnostics, entry, importID string, exists func(*export.Document) bool) {
	doc, found, err := d.readExport()
	if err != nil {
		exportReadError(diags, d.exportPath, err)
		return
	}
	if found && exists(doc) {
		diags.AddError(summaryEntryExists, fmt.Sprintf(detailEntryExists, entry, d.exportPath, importID))
	}
}

// privateKeyExportKey is the private-state key under which the export
// resources' ModifyPlan records the export key of a resource that exists.
// Terraform plans a replacement (terraform apply -replace, or
// replace_triggered_by) a second time with a null prior state but with the
// private data of the first plan: the key tells checkCreate that the entry it
// finds in the export is the one being replaced, not one to import.
const privateKeyExportKey = "export_key"

// privateData is the private state of a plan (resource.ModifyPlanRequest and
// resource.ModifyPlanResponse Private).
type privateData interface {
	GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics)
	SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics
}

// recordExportKey records in a plan's private data that the planned
// resource exists under key.
func recordExportKey(ctx context.Context, private privateData, key string) diag.Diagnostics {
	v, _ := json.Marshal(key) // a string always encodes
	return private.SetKey(ctx, privateKeyExportKey, v)
}

// replacesExportKey reports whether a plan with a null prior state is the
// second plan of a replacement of the resource that has key.
func replacesExportKey(ctx context.Context, private privateData, key string) bool {
	v, diags := private.GetKey(ctx, privateKeyExportKey)
	if diags.HasError() || len(v) == 0 {
		return false
	}
	var got string
	return json.Unmarshal(v, &got) == nil && got == key
}

// updateExport runs fn on the mapping export under its lock and writes the
// result when fn changed it.
func (d *providerData) updateExport(ctx context.Context, fn func(*export.Document) error) error {
	instance, err := d.instance(ctx)
	if err != nil {
		return fmt.Errorf("cannot determine the %s instance for the export: %w", d.system, err)
	}
	_, err = d.store.Update(d.system, instance, fn)
	return err
}

// claimRegistry records, for the plan being made, which owner claimed a
// PSA object: the customer mapping that syncs a source's usage to a
// contract, or the usage source whose products feed a service. Terraform
// plans every resource of a configuration in one provider process, so two
// claims on one object meet here. It cannot see mappings in other
// configurations (or behind another provider alias), nor resources excluded
// with -target.
type claimRegistry struct {
	mu     sync.Mutex
	claims map[string]string
}

func newClaimRegistry() *claimRegistry {
	return &claimRegistry{claims: map[string]string{}}
}

// claim records that owner claims the object id within scope and returns
// the other owner that already claimed it, if any. Claiming twice for one
// owner is fine: Terraform may plan a resource more than once.
func (r *claimRegistry) claim(system psa.System, scope, id, owner string) (other string, ok bool) {
	key := string(system) + "\x00" + scope + "\x00" + id
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, claimed := r.claims[key]; claimed && c != owner {
		return c, false
	}
	r.claims[key] = owner
	return "", true
}

// plannedService is what the plan being made does to an existing service:
// its planned name (unknown when it comes from a value known only at apply)
// and active flag.
type plannedService struct {
	name   types.String
	active types.Bool
}

// serviceRegistry maps the id of a service whose name or active flag a
// psa_service resource changes to its plannedService. A product mapping that refers to
// psa_service.<name>.id is planned after that resource, so it finds the
// service's new name and active flag here and plans the export entry the
// apply will write, rather than what the PSA holds before the apply. A
// mapping that names the service by a literal id may be planned first and
// then sees the PSA's values. The zero value is ready to use.
type serviceRegistry struct {
	mu    sync.Mutex
	plans map[string]plannedService
}

// record stores the plan of the service with the given id.
func (r *serviceRegistry) record(id string, p plannedService) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plans == nil {
		r.plans = map[string]plannedService{}
	}
	r.plans[id] = p
}

// planned returns the plan of the service with the given id, if a
// psa_service resource plans to change its name or active flag.
func (r *serviceRegistry) planned(id string) (plannedService, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p, ok := r.plans[id]
	return p, ok
}

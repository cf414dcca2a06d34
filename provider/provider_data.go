package provider

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
	"github.com/hashicorp/terraform-plugin-log/tflog"

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

	// exportPath names the export store in messages and is the id of
	// psa_integration: the path or URL of export_url (or export_path)
	// without credentials. store is nil when neither is set.
	exportPath string
	store      *export.Client

	// psaSyncdAPI is the psa-syncd of psa_syncd_url, whose read-only API
	// the data sources read instead of the export store's; nil when unset.
	psaSyncdAPI *export.HTTPBackend

	// exportKeys records which resource of the plan being made creates or
	// keeps each export entry, to refuse two resources with one key.
	exportKeys *claimRegistry

	// secrets are masked in every log line written with maskedContext.
	secrets []string

	// contracts records which customer mapping claimed each contract (per
	// usage source) in the plan being made, to catch two customers of one
	// source mapped to one contract.
	contracts *claimRegistry

	// recheckContracts is recheck_contracts: every plan checks every
	// customer mapping's contract, not only the changed ones.
	recheckContracts bool

	// exportOwnerTokens is export_owner_tokens: every entry a Create
	// writes anew holds an owner token too, not only one it takes over
	// (see createChange).
	exportOwnerTokens bool

	// serviceSources records which usage source's products feed each
	// service in the plan being made: psa-syncd syncs one source at a
	// time, so two sources on one service would overwrite each other's
	// quantity on every contract both bill.
	serviceSources *claimRegistry

	// productIDs records which new psa_service claimed each ConnectWise
	// product id (identifier) in the plan being made: ConnectWise refuses
	// a second catalog item with one, so the second create would fail.
	productIDs *claimRegistry

	// serviceNames records which psa_service of the plan being made
	// creates a service of each name, or renames one to it (see
	// serviceNameRegistry).
	serviceNames serviceNameRegistry

	// services records what the plan being made does to existing
	// psa_service resources, for the product mappings that refer to them.
	services serviceRegistry

	// reads answers the reads of services and contracts by id in bulk,
	// shared by every resource and data source (see readCache).
	reads psaReads

	// created records the export entries that a Create of this command
	// wrote or adopted (see entryRegistry).
	created entryRegistry

	// instanceMu makes concurrent first writes wait for one ping instead of
	// each pinging the PSA (see instance).
	instanceMu sync.Mutex

	// goneMu guards the one ping that confirms not-found answers (see
	// confirmGone) and its outcome.
	goneMu    sync.Mutex
	goneTried bool
	goneErr   error

	// exportMu guards the export as this command read it (see readExport)
	// and the count of this command's writes, which drop it.
	exportMu     sync.Mutex
	exportRead   *exportSnapshot
	exportWrites int
	// exportWritten is closed, and replaced, when a write of this command
	// to the export succeeds (see writeExport).
	exportWritten chan struct{}

	// budget is the PSA's hourly request budget, read once, and the
	// requests of the changes planned (see checkPSABudget);
	// budgetReserve is the autotask block's budget_reserve, what an apply
	// leaves of it.
	budget        psaBudget
	budgetReserve int
	// applying is set at the process's first ApplyResourceChange: the
	// process is an apply's, and has written (see checkPSABudget).
	applying atomic.Bool

	// writable asks the export store once whether it would take this
	// provider's writes (see checkExportWritable); writableErr is its
	// answer.
	writable    sync.Once
	writableErr error

	// access is access(2) (see exportDirChecker); dirWarned says that a
	// plan of this command was warned that the directory of the export
	// file is not writable, which it is once.
	access    func(path string, mode uint32) error
	dirWarned atomic.Bool

	// readers reads, once, the export fields psa-syncd published beside
	// the export in a file or S3 store (see publishedFields);
	// readersWarned says that its failure was reported.
	readers       sync.Once
	readerFields  []export.Reader
	readersFound  bool
	readersErr    error
	readersWarned atomic.Bool

	// fieldsMu guards fields, the fields of the export version fieldsOf
	// (see storedFields).
	fieldsMu sync.Mutex
	fieldsOf *export.Document
	fields   []string
}

// exportSnapshot is what readExport found in the store, or the error its
// read ended with.
type exportSnapshot struct {
	doc   *export.Document
	found bool
	err   error
}

// maskedContext returns ctx with the provider's credentials masked in logs.
func (d *providerData) maskedContext(ctx context.Context) context.Context {
	return maskSecrets(ctx, d.secrets)
}

// requireStore adds an error when no export store (export_url or export_path)
// is configured.
func (d *providerData) requireStore(diags *diag.Diagnostics, resourceType string) bool {
	if d.store != nil {
		return true
	}
	diags.AddError(summaryMissingExportPath, fmt.Sprintf(detailMissingExportPath, resourceType))
	return false
}

// exportWriteChecker is implemented by an export store that can tell,
// without writing, whether it would refuse a write (export.HTTPBackend:
// psa-syncd as the store). A file or S3 store cannot: only a write proves
// that it is allowed.
type exportWriteChecker interface {
	CheckWrite(ctx context.Context) error
}

// exportDirChecker is implemented by a store in a local directory
// (export.FileBackend): whether access lets this process create files in
// it, without writing.
type exportDirChecker interface {
	CheckWritable(access func(path string, mode uint32) error) error
}

// checkExportWritable fails the plan of a resource that changes the
// export (its planned value differs from its state: a create, an update
// or a destroy) when the store would refuse the apply's writes: psa-syncd
// refusing export_token (a token rotated in psa-syncd but not in the CI
// secret), psa-syncd without an API token, or psa-syncd reading its
// export elsewhere. psa-syncd serves the export's reads without a token,
// so the plan's reads pass; the apply would fail at its first write, after
// the PSA changes of the same apply (new services) were made. The store is
// asked once per provider process, one request; a plan that changes no
// entry asks nothing.
//
// A file store whose directory this user cannot write (access(2) on it,
// or on its nearest existing ancestor) only warns, once per command: the
// plan and the apply often run as different users (a pull request's plan
// in CI, the apply on a runner that holds the export), and the apply's
// user may write it.
func (d *providerData) checkExportWritable(ctx context.Context, diags *diag.Diagnostics, plan, state tftypes.Value) {
	if d == nil || d.store == nil || plan.Equal(state) {
		return
	}
	// A plan that read nothing first (-refresh=false) has not seen the
	// export: one of another PSA (the provider switched to another system
	// or tenant, the export store left as it was) would fail only at the
	// apply's first write to it, after the PSA changes before it. The
	// export is read once per command; its other errors are the Reads'
	// and the writes' to report, as before.
	if _, _, err := d.readExport(ctx); err != nil {
		if other := (*otherPSAError)(nil); errors.As(err, &other) {
			exportReadError(diags, d.exportPath, err)
			return
		}
	}
	if dir, ok := d.store.Backend().(exportDirChecker); ok && d.access != nil {
		d.writable.Do(func() { d.writableErr = dir.CheckWritable(d.access) })
		if d.writableErr != nil && d.dirWarned.CompareAndSwap(false, true) {
			diags.AddWarning("Mapping Export File Not Writable by This User",
				fmt.Sprintf("This plan changes the mapping export at %s, but the user running it cannot create files in "+
					"its directory, which every write to the export does (a temporary file renamed over the export, and its "+
					"lock file). If the apply runs as this user, it will fail at its first write to the export, after the "+
					"changes to the PSA that come before it (new services). If the apply runs as another user, check that "+
					"that user can write the directory.\n\n%v", d.exportPath, d.writableErr))
		}
		return
	}
	checker, ok := d.store.Backend().(exportWriteChecker)
	if !ok {
		return
	}
	d.writable.Do(func() { d.writableErr = checker.CheckWrite(ctx) })
	if d.writableErr != nil {
		diags.AddError("Mapping Export Store Refuses Writes",
			fmt.Sprintf("This plan changes the mapping export at %s, but the store refuses this provider's writes, so the apply "+
				"would fail at its first write to the export, after the changes to the PSA that come before it. Check "+
				"export_token (or the %s environment variable) against psa-syncd's web.api_token, and that psa-syncd "+
				"has export_url: self in its configuration.\n\n%v", d.exportPath, envExportToken, d.writableErr))
	}
}

// exportFieldsReader is implemented by an export store that says which
// export fields its reader reads (export.HTTPBackend: psa-syncd as the
// store, which refuses a whole export with a field it does not read).
type exportFieldsReader interface {
	ReaderFields() (fields []string, answered bool)
}

// checkExportFields fails the plan of a resource whose apply would write,
// in entry, an export field that psa-syncd as the store does not read: a
// provider newer than psa-syncd with a setting psa-syncd does not have
// yet (ticket routing, a renewal's next_contract_id, owner tokens).
// psa-syncd would refuse the whole export (422), and the apply would fail
// at its write to the export, after the PSA changes that come before it
// (new services). write puts the entry as the apply would write it, with
// owner as its owner token ("" for none), into an empty document;
// keepsOwner says the entry keeps or is given a token whatever the export
// (an owner in the resource's private state, an entry adopted); attr
// returns the attribute that sets a field, if one does.
//
// The fields psa-syncd reads come with its answer to the plan's read of
// the export (export.ReaderFieldsHeader), so the check asks nothing more.
// With a file or S3 store, psa-syncd lists them beside the export (see
// publishedFields), and checkPublishedFields checks them: the apply would
// not fail, but psa-syncd would refuse the export at its reload and keep
// the one it has.
// A psa-syncd older than that header says nothing: the plan then only
// warns, of fields beyond those every psa-syncd reads that the stored
// export does not hold yet (psa-syncd validated every version it stores,
// so it reads those it holds). Versions between a field and the header
// read it, and an error would block them; the warning names the field
// once, until an apply writes it.
func (d *providerData) checkExportFields(ctx context.Context, diags *diag.Diagnostics, plan, state tftypes.Value, entry string,
	keepsOwner bool, write func(doc *export.Document, owner string), attr func(field string) (path.Path, bool)) {
	if d == nil || d.store == nil || plan.IsNull() || plan.Equal(state) {
		return
	}
	reader, advertises := d.store.Backend().(exportFieldsReader)
	_, siblings := d.store.Backend().(export.SiblingStore)
	if !advertises && !siblings {
		return
	}
	stored, found, err := d.readExport(ctx)
	if err != nil {
		return // the resources report the export's errors
	}
	var known []string
	var published []export.Reader
	answered := false
	if advertises {
		known, answered = reader.ReaderFields()
	} else {
		published, answered = d.publishedFields(ctx, diags)
	}
	if !answered {
		return
	}
	var owner string
	if keepsOwner || d.exportOwnerTokens || found && holdsOwners(stored) {
		owner = "owner" // any token: only whether one is written matters
	}
	doc := export.New(d.system, "")
	write(doc, owner)
	data, err := doc.Encode()
	if err != nil {
		return
	}
	written, err := export.WrittenFields(data)
	if err != nil {
		return
	}
	if !advertises {
		d.checkPublishedFields(diags, written, published, entry, attr, time.Now())
		return
	}
	advertised := len(known) > 0
	if !advertised {
		known = export.FirstReaderFields
		if len(export.UnknownFields(written, known)) > 0 && found {
			known = append(slices.Clone(known), d.storedFields(stored)...)
		}
	}
	for _, field := range export.UnknownFields(written, known) {
		summary, detail := "Export Field Unknown to psa-syncd", fmt.Sprintf("This plan writes %s to the mapping export at %s, in %s, "+
			"but psa-syncd, the export store, does not read that field: it refuses a whole export with a field it does not "+
			"read (422), so the apply would fail at its write to the export, after the changes to the PSA that come before it "+
			"(new services). Upgrade psa-syncd to a version that reads it (the provider's own version or later), or leave "+
			"the setting out until it is upgraded.", field, d.exportPath, entry)
		add := diags.AddError
		addAttr := diags.AddAttributeError
		if !advertised {
			summary, detail = "psa-syncd May Not Read Export Field", fmt.Sprintf("This plan writes %s to the mapping export at %s, "+
				"in %s, a field the export does not hold yet and that psa-syncd versions before it do not read. psa-syncd "+
				"there does not say which fields it reads, so it is older than this provider. A psa-syncd that does not read "+
				"the field refuses the whole export (422), and the apply would fail at its write to the export, after the "+
				"changes to the PSA that come before it (new services). Upgrade psa-syncd to the provider's version before "+
				"applying, or check that its version reads the setting.", field, d.exportPath, entry)
			add, addAttr = diags.AddWarning, diags.AddAttributeWarning
		}
		if p, ok := attr(field); ok {
			addAttr(p, summary, detail)
		} else {
			add(summary, detail)
		}
	}
}

// checkMappingFields is checkExportFields for a product or customer
// mapping, whose entry's owner token is in its private state: the entry
// keeps or is given a token (planKeepsOwner) when private holds one, or
// when a create adopts the entry the export holds (holds). A private
// state that cannot be read leaves the check out; the apply's Update or
// Delete, which reads it too, reports it.
func (d *providerData) checkMappingFields(ctx context.Context, diags *diag.Diagnostics, private privateData, plan, state tftypes.Value,
	entry string, holds func(*export.Document) bool, write func(doc *export.Document, owner string), attr func(field string) (path.Path, bool)) {
	owner, ownerDiags := exportOwner(ctx, private)
	if ownerDiags.HasError() {
		return
	}
	d.checkExportFields(ctx, diags, plan, state, entry, d.planKeepsOwner(ctx, owner, state, holds), write, attr)
}

// publishedFields returns the export fields that psa-syncd published
// beside the export in a file or S3 store (export.LoadReaders), read once
// per provider process, only by a plan that changes the export: for S3,
// one request. None published (a psa-syncd older than that list, or one
// that may not write the store) checks nothing, as before. A list that
// cannot be read or is garbled warns, once per process, and checks
// nothing: it must not stop a plan that psa-syncd may well take.
func (d *providerData) publishedFields(ctx context.Context, diags *diag.Diagnostics) ([]export.Reader, bool) {
	d.readers.Do(func() {
		d.readerFields, d.readersFound, d.readersErr = export.LoadReaders(ctx, d.store.Backend())
	})
	if d.readersErr != nil {
		if d.readersWarned.CompareAndSwap(false, true) {
			diags.AddWarning("Unable to Read psa-syncd's Export Fields",
				fmt.Sprintf("psa-syncd lists the export fields it reads beside the mapping export, in %s%s, and the plan "+
					"checks the fields it would write against that list; it could not be read, so this plan does not check "+
					"them. A psa-syncd that does not read a field this plan writes would refuse the export at its reload and "+
					"keep the one it has. psa-syncd writes the list again when it starts and twice a day; delete it if it is "+
					"not psa-syncd's."+
					"\n\n%v", d.exportPath, export.ReadersSuffix, d.readersErr))
		}
		return nil, false
	}
	return d.readerFields, d.readersFound
}

// checkPublishedFields is checkExportFields for a file or S3 store, whose
// psa-syncd versions list the fields they read beside the export, each in
// an entry with when a running psa-syncd last confirmed it (see
// export.PublishReaders): a field written that an entry confirmed within
// export.ReadersFresh lacks fails the plan (several versions reading the
// store during a rolling upgrade: every one must read it); one that only
// older entries lack warns, naming their age. An old entry may be that of
// a psa-syncd that stopped, was upgraded, or can no longer write beside
// the export, and failing every plan on it would leave deleting the list
// by hand as the only way on. A list without a time (a psa-syncd before
// dated entries) warns too, for the same reason: nothing says that its
// writer still runs. A psa-syncd that did not read the field would refuse
// the export at its reload, keep the one it had, and say so
// (psa_sync_export_last_reload_successful, PsaSyncExportReloadFailed).
func (d *providerData) checkPublishedFields(diags *diag.Diagnostics, written []string, readers []export.Reader, entry string,
	attr func(field string) (path.Path, bool), now time.Time) {
	lacking := map[string][]export.Reader{}
	var fields []string
	for _, r := range readers {
		for _, field := range export.UnknownFields(written, r.Fields) {
			if _, seen := lacking[field]; !seen {
				fields = append(fields, field)
			}
			lacking[field] = append(lacking[field], r)
		}
	}
	slices.Sort(fields)
	list := d.exportPath + export.ReadersSuffix
	for _, field := range fields {
		var fresh, stale []string
		for _, r := range lacking[field] {
			if r.Fresh(now) {
				fresh = append(fresh, describeReader(r, now))
			} else {
				stale = append(stale, describeReader(r, now))
			}
		}
		summary, detail := "Export Field Unknown to psa-syncd", fmt.Sprintf("This plan writes %s to the mapping export at %s, in %s, "+
			"but %s, which reads this export, does not read that field: it lists the fields it reads beside the export, in %s. "+
			"psa-syncd refuses a whole export with a field it does not read and keeps the one it has, so after the apply it "+
			"would go on billing with the mappings as they were, this apply's changes and every later one left out. Upgrade "+
			"psa-syncd to a version that reads it (the provider's own version or later; it rewrites that list when it starts), "+
			"or leave the setting out until it is upgraded.", field, d.exportPath, entry, strings.Join(fresh, "; "), list)
		add, addAttr := diags.AddError, diags.AddAttributeError
		if len(fresh) == 0 {
			summary, detail = "Export Field Unknown to a psa-syncd Not Seen Lately", fmt.Sprintf("This plan writes %s to the "+
				"mapping export at %s, in %s, and the list of the fields psa-syncd reads beside the export, in %s, has an entry "+
				"without it that no running psa-syncd has confirmed lately: %s. A running psa-syncd confirms its entry twice a "+
				"day, so this is likely a psa-syncd that was stopped or upgraded, or can no longer write beside the export. If it "+
				"still reads this export, it will refuse the export after the apply and keep the one it has: upgrade it first. "+
				"Otherwise nothing is wrong: the next psa-syncd to confirm its own entry drops entries older than %d days.",
				field, d.exportPath, entry, list, strings.Join(stale, "; "), int(export.ReadersKept.Hours()/24))
			add, addAttr = diags.AddWarning, diags.AddAttributeWarning
		}
		if p, ok := attr(field); ok {
			addAttr(p, summary, detail)
		} else {
			add(summary, detail)
		}
	}
}

// describeReader names a psa-syncd's entry of the published fields for a
// plan's diagnostics: its version and how long ago it was confirmed.
func describeReader(r export.Reader, now time.Time) string {
	age, dated := r.Age(now)
	if !dated {
		return "a list without a date or version, written by a psa-syncd before dated entries (a psa-syncd of this " +
			"provider's version or later replaces it when it starts)"
	}
	who := "psa-syncd"
	if r.Version != "" {
		who += " " + r.Version
	}
	var ago string
	switch {
	case age >= 48*time.Hour:
		ago = fmt.Sprintf("%d days", int(age.Hours()/24))
	case age >= 2*time.Hour:
		ago = fmt.Sprintf("%d hours", int(age.Hours()))
	default:
		ago = fmt.Sprintf("%d minutes", int(age.Minutes()))
	}
	return fmt.Sprintf("%s, which confirmed it %s ago (%s)", who, ago, r.Confirmed.UTC().Format(time.RFC3339))
}

// planKeepsOwner reports whether the apply of a resource writes an owner
// token on its entry whatever the export: it keeps the one in its private
// state (owner), or its Create adopts the entry the export holds already
// (holds, for a plan without a state), which gives the entry a token.
func (d *providerData) planKeepsOwner(ctx context.Context, owner string, state tftypes.Value, holds func(*export.Document) bool) bool {
	if owner != "" {
		return true
	}
	if !state.IsNull() {
		return false
	}
	doc, found, err := d.readExport(ctx)
	return err == nil && found && holds(doc)
}

// storedFields returns the fields stored holds (export.WrittenFields),
// encoding it once per version read.
func (d *providerData) storedFields(stored *export.Document) []string {
	d.fieldsMu.Lock()
	defer d.fieldsMu.Unlock()
	if d.fieldsOf != stored {
		d.fieldsOf, d.fields = stored, nil
		if data, err := stored.Encode(); err == nil {
			d.fields, _ = export.WrittenFields(data)
		}
	}
	return d.fields
}

// confirmGone reports whether a not-found answer of the PSA for an object
// the state holds can be taken as "deleted outside Terraform": whether the
// PSA answers Ping's cheap read at the configured address. A wrong or
// stale base URL (a pinned ConnectWise codebase, a path typed wrong)
// answers every request with 404; taking that as deleted would drop every
// psa_service from the state and plan to create them again: on Autotask a
// second billable service, whose product mappings would bill new contract
// lines beside the old ones. One ping per command, made only when a
// not-found comes.
func (d *providerData) confirmGone(ctx context.Context) error {
	d.goneMu.Lock()
	defer d.goneMu.Unlock()
	if !d.goneTried {
		d.goneTried = true
		d.goneErr = d.backend.Ping(ctx)
	}
	return d.goneErr
}

// notFoundUnconfirmed returns "" when err, the PSA's not-found answer for
// what (a contract or service read by id, e.g. "contract 17"), can be
// taken as such: the PSA answers a basic read at the configured address
// (confirmGone, one request per provider process, made only when a
// not-found comes). Otherwise it returns the detail of an error saying
// that the answer may come from a wrong address instead, and which
// settings to check. ConnectWise and Kaseya BMS read objects by id, and a
// proxy, a stale codebase or a path typed wrong in base_url answers every
// such read with 404: without the probe, the plan would say that the id
// is wrong.
func (d *providerData) notFoundUnconfirmed(ctx context.Context, what string, err error) string {
	perr := d.confirmGone(ctx)
	if perr == nil {
		return ""
	}
	return fmt.Sprintf("%s answered that %s does not exist, but it does not answer a basic read at the configured address "+
		"either, so the answer more likely comes from a wrong address than from a wrong id: %s\n\nNot found: %v\nBasic read: %v",
		systemTitle(d.system), what, addressHint(d.system), err, perr)
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

// readExport reads the mapping export. A store without an export is
// reported as found == false without an error: nothing has been written
// yet. The document is shared and must not be modified.
//
// The store is read once per Terraform command (one providerData), and the
// Reads and plans of every resource see that version, as a refresh sees one
// Terraform state. Asking the store again for each of a thousand mappings
// made a plan quadratic in the mappings: each read of a file store loads and
// hashes the whole file, and each read of S3 or psa-syncd is a request.
// A write of this command replaces the version read with the one it wrote
// (updateExport), so later reads see it.
//
// A failed read is kept in the same way, until a write of this command:
// the export of another PSA system or instance, one that does not decode,
// refused credentials, a store that answers an error or nothing. Asking
// again for each resource sent a failing store one or two requests per
// changed resource (in a -refresh=false plan, where no Read asked before),
// each up to the client's 60-second timeout against a store that does not
// answer, only to report the same error again. A transient failure is not
// retried here: the S3 client retries its own requests, one resource
// reporting the error fails the plan anyway, and the rest of the plan
// assumes that one command sees one export; the next command reads afresh.
// A cancelled read (Terraform stopping the command, or the caller whose
// context a concurrent read shared, see export.Client.Read) says nothing
// of the store and is not kept.
func (d *providerData) readExport(ctx context.Context) (doc *export.Document, found bool, err error) {
	d.exportMu.Lock()
	snap, writes := d.exportRead, d.exportWrites
	d.exportMu.Unlock()
	if snap != nil {
		return snap.doc, snap.found, snap.err
	}

	doc, found, err = d.loadExport(ctx)
	if err != nil && (ctx.Err() != nil || errors.Is(err, context.Canceled)) {
		return nil, false, err
	}
	d.exportMu.Lock()
	if d.exportRead == nil && d.exportWrites == writes { // no write of ours since the read began
		d.exportRead = &exportSnapshot{doc: doc, found: found, err: err}
	}
	d.exportMu.Unlock()
	return doc, found, err
}

// loadExport reads the export from the store for readExport, refusing one
// of another PSA system or instance.
func (d *providerData) loadExport(ctx context.Context) (doc *export.Document, found bool, err error) {
	doc, _, err = d.store.Read(ctx)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, false, nil
	case err != nil:
		return nil, false, err
	case doc.PSA.System != d.system:
		return nil, false, &otherPSAError{fmt.Sprintf("export %q belongs to PSA system %q, but the provider is configured for %q",
			d.exportPath, doc.PSA.System, d.system)}
	}
	if err := d.checkInstance(ctx, doc); err != nil {
		return nil, false, err
	}
	return doc, true, nil
}

// checkInstance refuses an export of another instance of the PSA, as every
// write does (see export.Client.Update), so that the plan fails instead of
// planning to rewrite the mappings from another tenant's entries. An export
// that records no instance, or a PSA that cannot tell its own (it does not
// answer the ping that discovers it), is left to the writes to check.
func (d *providerData) checkInstance(ctx context.Context, doc *export.Document) error {
	if doc.PSA.Instance == "" {
		return nil
	}
	instance, err := d.instance(ctx)
	if err != nil {
		return nil //nolint:nilerr // the PSA's errors are the plan's to report; the writes check again
	}
	if instance == "" || export.SameInstance(doc.PSA.Instance, instance) {
		return nil
	}
	return &otherPSAError{fmt.Sprintf("export %q belongs to %s instance %q, but the provider is connected to %q; an export belongs to one PSA "+
		"instance: point export_url at this instance's export, or the provider at that instance", d.exportPath, d.system, doc.PSA.Instance, instance)}
}

// otherPSAError is readExport's error for an export of another PSA system
// or instance than the provider's. The export is fine: the provider's
// PSA block, or its export store, is not the one the configuration was
// applied with, and no fix of the export helps (see exportReadError).
type otherPSAError struct{ msg string }

func (e *otherPSAError) Error() string { return e.msg }

// exportForReads returns the export whose ids the bulk reads ask for
// ahead, or nil when there is none or it cannot be read: the reads are then
// made as the resources ask, and the resources report the export's errors.
func (d *providerData) exportForReads(ctx context.Context) *export.Document {
	if d.store == nil {
		return nil
	}
	doc, found, err := d.readExport(ctx)
	if err != nil || !found {
		return nil
	}
	return doc
}

// readExportForState reads the export for the Read of a resource that
// is in the Terraform state. A store that holds no export at all is an
// error, not a resource to remove: the state says an export was written,
// so a wrong export_url, wrong credentials or a lost export must not turn
// into a plan that recreates every mapping in a new, empty export. entry
// names the resource in the message.
func (d *providerData) readExportForState(ctx context.Context, diags *diag.Diagnostics, entry string) (*export.Document, bool) {
	doc, found, err := d.readExport(ctx)
	switch {
	case err != nil:
		exportReadError(diags, d.exportPath, err)
		return nil, false
	case !found:
		diags.AddError(summaryExportNotFound, fmt.Sprintf(detailExportNotFound, entry, d.exportPath))
		return nil, false
	}
	return doc, true
}

// checkCreate checks the plan of a new export entry: the export must be
// readable; no other resource of the configuration may create or keep the
// same entry (see claimExisting); and an entry the export holds already (an earlier apply was
// killed after writing it, or it is not imported) is adopted with a
// warning when it equals what the resource would write, and otherwise
// fails the plan with the import hint. entry names the entry in messages,
// importID is its key and how to import it, and owner describes this
// resource's values, to tell two resources with one key apart. match
// reports whether doc has the entry and whether it equals the plan.
func (d *providerData) checkCreate(ctx context.Context, diags *diag.Diagnostics, entry, importID, owner string, match func(*export.Document) (exists, same bool)) {
	// Terraform plans each resource instance once per plan, so a second
	// claim on one key comes from a second resource. The key is the entry
	// with its id: the integration settings and the ticket routing share
	// the export's path as their id, but are different entries.
	if other, ok := d.exportKeys.claim(d.system, "export entry", entry+"\x00"+importID, owner+"\x00"+newClaimID()); !ok {
		other, _, _ = strings.Cut(other, "\x00")
		diags.AddError(summaryDuplicateKey, fmt.Sprintf(detailDuplicateKey, entry, other, owner))
		return
	}
	doc, found, err := d.readExport(ctx)
	if err != nil {
		exportReadError(diags, d.exportPath, err)
		return
	}
	if !found {
		return
	}
	switch exists, same := match(doc); {
	case exists && same:
		diags.AddWarning(summaryEntryAdopted, fmt.Sprintf(detailEntryAdopted, entry, d.exportPath))
	case exists:
		diags.AddError(summaryEntryExists, fmt.Sprintf(detailEntryExists, entry, d.exportPath, importID))
	}
}

// claimExisting records that a resource in the Terraform state manages
// the export entry stateKey: in the plan's private data (see
// replacesExportKey) and, when the plan keeps the key (planKey, "" when
// unknown), in exportKeys, as checkCreate names it. A create of the same
// key by another resource of the configuration then fails the plan as a
// duplicate whichever of the two Terraform plans first, instead of
// adopting the entry this resource manages: destroying either resource
// later would remove the entry the other still manages. A resource whose
// plan changes its key is replaced, and its create claims the new key; a
// resource being destroyed has no plan and claims nothing, so a hand-over
// to a new resource address still plans.
//
// Terraform may plan one resource more than once in a process (see
// fastPaths), so the claim of a resource in the state is its owner alone,
// not unique like a create's: two resources in the state with one key and
// the same values, which an earlier version adopted, are not told apart.
func (d *providerData) claimExisting(ctx context.Context, diags *diag.Diagnostics, private privateData, entry, stateKey, planKey, owner string) {
	diags.Append(recordExportKey(ctx, private, stateKey)...)
	if planKey != stateKey {
		return
	}
	if other, ok := d.exportKeys.claim(d.system, "export entry", entry+"\x00"+stateKey, owner+"\x00in state"); !ok {
		other, _, _ = strings.Cut(other, "\x00")
		diags.AddError(summaryDuplicateKey, fmt.Sprintf(detailDuplicateKey, entry, other, owner))
	}
}

// claimIDs makes each checkCreate claim unique (see checkCreate).
var claimIDs atomic.Int64

func newClaimID() string { return strconv.FormatInt(claimIDs.Add(1), 10) }

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
// result when fn changed it. A store without an export gets a new one: this
// is for the Create of a resource.
func (d *providerData) updateExport(ctx context.Context, fn func(*export.Document) error) error {
	return d.writeExport(ctx, d.store.Update, fn)
}

// changeExport is updateExport for the Update or Delete of a resource in
// the Terraform state, whose entry was written to the export before. When
// the store holds no export it writes nothing and fails with an error
// matching export.ErrNoExport (see exportUpdateError): a new export holding
// only this change would drop every other entry of a lost one. Read refuses
// a missing export the same way, but an apply with -refresh=false, or of a
// plan saved before the export was lost, reads nothing first.
func (d *providerData) changeExport(ctx context.Context, fn func(*export.Document) error) error {
	return d.writeExport(ctx, d.store.UpdateExisting, fn)
}

// writeExport runs fn on the mapping export with update (Update or
// UpdateExisting of the store) and records the outcome.
func (d *providerData) writeExport(ctx context.Context,
	update func(context.Context, psa.System, string, func(*export.Document) error) (*export.Document, error),
	fn func(*export.Document) error) error {
	instance, err := d.instance(ctx)
	if err != nil {
		return fmt.Errorf("cannot determine the %s instance for the export: %w", d.system, err)
	}
	d.retryOnRelease(ctx, func() (blocked bool) {
		var doc *export.Document
		doc, err = update(ctx, d.system, instance, fn)
		d.wroteExport(doc, err)
		// Another entry claims what this one would: a mapping that this
		// apply also destroys or moves elsewhere, whose change Terraform
		// may run later (nothing orders the two), or a real conflict.
		var conflict *conflictError
		return errors.As(err, &conflict)
	})
	return err
}

// retryOnRelease runs try, and again after each of this command's next
// successful writes to the export, while try reports that something in the
// export blocks it, for at most conflictWait.
func (d *providerData) retryOnRelease(ctx context.Context, try func() (blocked bool)) {
	var wait <-chan time.Time
	for {
		written := d.nextExportWrite()
		if !try() {
			return
		}
		if wait == nil {
			t := time.NewTimer(conflictWait)
			defer t.Stop()
			wait = t.C
		}
		select {
		case <-written:
		case <-wait:
			return
		case <-ctx.Done():
			return
		}
	}
}

// conflictWait is how long a Create or Update whose entry conflicts with
// another entry of the export (a conflictError) waits for this command's
// other writes to release what it claims before it fails: without an order
// between them, Terraform may run a new mapping's Create before the Delete
// or Update that takes the other mapping off the contract or service.
const conflictWait = 20 * time.Second

// nextExportWrite returns a channel that is closed when a write of this
// command to the export next succeeds.
func (d *providerData) nextExportWrite() <-chan struct{} {
	d.exportMu.Lock()
	defer d.exportMu.Unlock()
	if d.exportWritten == nil {
		d.exportWritten = make(chan struct{})
	}
	return d.exportWritten
}

// wroteExport records the outcome of a write of this command to the export.
// Whether or not it was written, the export read before may be old now. The
// export as the write left it replaces it (the newest of them, when writes
// end out of order), so that the next of the thousand resources of an
// apply need not read the store again; a write that failed, or left a
// missing export missing (revision 0), drops it, as it drops a failed read
// kept (the store answered again, or may).
func (d *providerData) wroteExport(doc *export.Document, err error) {
	d.exportMu.Lock()
	defer d.exportMu.Unlock()
	d.exportWrites++
	if err == nil && d.exportWritten != nil {
		close(d.exportWritten)
		d.exportWritten = nil
	}
	switch read := d.exportRead; {
	case err != nil || doc == nil || doc.Revision == 0:
		d.exportRead = nil
	case read == nil || !read.found || read.doc.Revision <= doc.Revision:
		d.exportRead = &exportSnapshot{doc: doc, found: true}
	}
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

// serviceNameRegistry records, for the plan being made, which psa_service
// would create a service of each name or rename one to it, by the name
// folded as the PSAs compare names (foldServiceName): Autotask and Kaseya
// BMS refuse a second service of one name at apply, after the first was
// created, and ConnectWise makes a second catalog item of it. The checks
// against the PSA's own names cannot see a name that another resource of
// the same plan is about to take. The zero value is ready to use.
//
// It lives in the providerData, which Terraform configures afresh for
// every walk (the plan, then the apply), so the plan's claims are gone
// when the apply plans its creates again. Within one plan Terraform plans
// a new resource once, and a replacement twice: first with its state,
// then as a create with the private data of that first plan, which
// carries the claim's owner (privateKeyServiceNameOwner), so the second
// claim is the first one's. A claim by an owner replaces that owner's
// earlier claim on another name. Like claimRegistry it cannot see other
// configurations, other provider configurations, nor resources excluded
// with -target.
type serviceNameRegistry struct {
	mu     sync.Mutex
	claims map[string]serviceNameClaim // by folded name
	names  map[string]string           // folded name by owner
}

// serviceNameClaim is a psa_service's claim on a service name.
type serviceNameClaim struct {
	// owner is "service <id>" for a resource in the state (renamed), or a
	// token of one plan of a new resource.
	owner string
	// name is the name as configured, id the service's id ("" for a new
	// one).
	name, id string
	// ownIdentifier is whether the configuration sets
	// connectwise.identifier: a second catalog item of the name is meant.
	ownIdentifier bool
}

// claim records c for its name and returns the claim of another owner
// that holds the name already, if any.
func (r *serviceNameRegistry) claim(c serviceNameClaim) (other serviceNameClaim, taken bool) {
	key := foldServiceName(c.name)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.claims == nil {
		r.claims, r.names = map[string]serviceNameClaim{}, map[string]string{}
	}
	if held, ok := r.claims[key]; ok && held.owner != c.owner {
		return held, true
	}
	if was, ok := r.names[c.owner]; ok && was != key {
		delete(r.claims, was)
	}
	r.claims[key], r.names[c.owner] = c, key
	return serviceNameClaim{}, false
}

// foldServiceName folds a service name as Autotask, ConnectWise and Kaseya
// BMS compare names: without surrounding spaces, and without regard to
// case (every rune is replaced by the least rune of its Unicode
// simple-folding orbit, so that two names fold alike exactly when
// strings.EqualFold holds for them).
func foldServiceName(name string) string {
	name = strings.TrimSpace(name)
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		least := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			least = min(least, f)
		}
		b.WriteRune(least)
	}
	return b.String()
}

// entryRegistry records, by entry name (as checkCreate names it), the
// export entries that a Create of one Terraform command wrote or adopted,
// so that a Delete of the same command leaves them in the export. The zero
// value is ready to use.
//
// A Create and a Delete of one key in one apply are a hand-over from the
// old resource instance to the new one: a replacement with
// create_before_destroy and the same key, or a mapping moved to a new
// resource address without a moved block (a rename, count to for_each, a
// module move). Neither call can tell from its request that it is half of
// one: Terraform re-plans the create in the apply without the plan's
// private data and gives Create none, and the export records no owner. The
// entry must stay, and the Create must find it (or write it) whatever the
// order. A plain destroy, with no Create of the key, removes it.
//
// The order that matters is the one in which the store runs the two
// changes, not the one in which Terraform calls the resources: without
// create_before_destroy Terraform runs the Delete and the Create at the same
// time, and the export Client commits concurrent changes together, one
// function after the other on one document (export.Client.Update). So the
// Create records the entry inside its change (createEntry), and the Delete
// decides inside its own (deleteEntry):
//
//   - the Delete's change runs first: nothing is recorded yet, so it
//     removes the old instance's entry, and the Create's change then writes
//     the entry anew;
//   - the Create's change runs first: it adopts the old instance's entry
//     (or refuses one with other values, recording nothing), and the
//     Delete's change then finds the record and leaves the entry alone.
//
// A change may run more than once: again on the store's newer export after
// another writer saved first, and again on a copy of its own when another
// change of its batch failed. A record from such an earlier run is not yet
// the Create's: the Delete trusts it only once the Create has returned
// (committed), or when the document before it holds the entry as the Create
// wrote or adopted it. So a Delete that runs again before the Create, on an
// export whose entry has other values than the Create's, still removes the
// old entry, and the Create then writes its own instead of refusing it.
//
// An apply that stops between the create and the destroy leaves the old
// instance deposed in the state, and the next apply (another provider
// process, with an empty registry) destroys it alone. The export itself
// then tells the two instances apart: a Create that adopts an entry writes
// a new owner token on it and keeps the token in its private state, and a
// Delete removes the entry only when it holds the Delete's own token (see
// exportEntry.owner). An entry written anew holds none (so that an older
// psa-syncd reads it), which the old instance's token, if it has none
// either, does not tell apart: the registry still covers that case within
// one apply (the old entry gone before a create_before_destroy
// replacement), and across applies a token on every entry a Create writes
// once the export holds any (or export_owner_tokens is set).
type entryRegistry struct {
	mu      sync.Mutex
	entries map[string]*createdEntry
}

// createdEntry is a Create's record of an entry.
type createdEntry struct {
	// holds reports whether a document holds the entry with the values the
	// Create wrote or adopted.
	holds func(*export.Document) bool
	// committed is whether the Create's change was stored.
	committed bool
}

// record records, from within a Create's change, that the Create writes or
// adopts entry, which holds tells apart.
func (r *entryRegistry) record(entry string, holds func(*export.Document) bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.entries == nil {
		r.entries = map[string]*createdEntry{}
	}
	r.entries[entry] = &createdEntry{holds: holds}
}

// settle records whether the Create of entry succeeded: a Create that
// failed owns nothing.
func (r *entryRegistry) settle(entry string, ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e := r.entries[entry]; e != nil {
		if ok {
			e.committed = true
		} else {
			delete(r.entries, entry)
		}
	}
}

// owns reports, from within a Delete's change to doc, whether a Create of
// this command owns entry.
func (r *entryRegistry) owns(entry string, doc *export.Document) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e := r.entries[entry]
	return e != nil && (e.committed || e.holds(doc))
}

// exportEntry is an entry of the export as a resource's Create and Delete
// write it (createEntry, deleteEntry).
type exportEntry struct {
	// name names the entry in the created registry, as checkCreate names
	// it.
	name string
	// match reports whether a document holds the entry and whether with
	// the values the Create writes, its owner aside. Create only.
	match func(doc *export.Document) (exists, same bool)
	// put writes the entry with the Create's values and the given owner
	// token. Create only.
	put func(doc *export.Document, owner string)
	// exists is the error of a Create that finds the entry with other
	// values. Create only.
	exists error
	// check, when set, returns the error of a Create whose entry the
	// document cannot take beside its other entries (see conflictError).
	// An entry adopted is not checked: refusing it would not take it out of
	// the export. Create only.
	check func(doc *export.Document) error
	// remove removes the entry; an entry already gone is fine. Delete
	// only.
	remove func(doc *export.Document)
	// owner returns the owner token a document's entry holds
	// (export.CustomerMapping.Owner) and whether the document holds the
	// entry; nil for an entry without owners, which a Create writes
	// without one and a Delete removes unless the registry keeps it.
	owner func(doc *export.Document) (owner string, exists bool)
}

// privateKeyExportOwner is the private-state key under which a product or
// customer mapping keeps the owner token it wrote on its export entry when
// it took the entry over from another resource instance (see
// entryRegistry). A mapping that wrote its entry anew keeps none: its
// entry has no owner either.
const privateKeyExportOwner = "export_owner"

// exportOwner returns the owner token kept in private ("" for none).
func exportOwner(ctx context.Context, private privateData) (string, diag.Diagnostics) {
	if private == nil {
		return "", nil
	}
	v, diags := private.GetKey(ctx, privateKeyExportOwner)
	if diags.HasError() || len(v) == 0 {
		return "", diags
	}
	var owner string
	if err := json.Unmarshal(v, &owner); err != nil {
		diags.AddError("Invalid Resource Private State", "The private state of the resource holds an export owner that is not a JSON string. "+
			"Please report this issue to the provider developers.\n\n"+err.Error())
	}
	return owner, diags
}

// setExportOwner keeps owner in private, or removes the key for "".
func setExportOwner(ctx context.Context, private privateData, owner string) diag.Diagnostics {
	if owner == "" {
		return private.SetKey(ctx, privateKeyExportOwner, nil)
	}
	v, _ := json.Marshal(owner) // a string always encodes
	return private.SetKey(ctx, privateKeyExportOwner, v)
}

// createEntry writes the entry of a resource's Create to the export, or
// adopts it when the export holds it with the same values already (an
// interrupted apply wrote it, or the old instance of a hand-over did: see
// entryRegistry). An entry with other values is refused with e.exists.
// owner is the owner token written on the entry, for the resource's private
// state: a new one on an entry adopted, "" on one written anew (which an
// older psa-syncd still reads) unless export_owner_tokens is set or the
// export holds a token already, and "" for entries without owners.
func (d *providerData) createEntry(ctx context.Context, e exportEntry) (adopted bool, owner string, err error) {
	err = d.updateExport(ctx, d.createChange(e, &adopted, &owner, rand.Text()))
	d.created.settle(e.name, err == nil)
	return adopted, owner, err
}

// createChange is the change of createEntry, which writes token as the
// owner of an entry it adopts. It sets *adopted and *owner each time it
// runs.
func (d *providerData) createChange(e exportEntry, adopted *bool, owner *string, token string) func(*export.Document) error {
	holds := func(doc *export.Document) bool {
		exists, same := e.match(doc)
		return exists && same
	}
	return func(doc *export.Document) error {
		*adopted, *owner = false, ""
		switch exists, same := e.match(doc); {
		case exists && same:
			*adopted = true
			// Whoever held the entry (the instance this one replaces,
			// deposed or not yet destroyed, or none) no longer does: its
			// Delete, in this process or another, leaves the entry.
			if e.owner != nil {
				*owner = token
				e.put(doc, token)
			}
		case exists:
			return e.exists
		case e.check != nil:
			if err := e.check(doc); err != nil {
				return err
			}
			fallthrough
		default:
			// An entry written anew holds no owner while the export holds
			// none, so that an older psa-syncd reads it. Then the Delete of
			// an old instance without a token of its own (whose entry was
			// gone before this create_before_destroy replacement) cannot
			// tell it from its own. Once the export holds any token, every
			// reader of it reads owners already (an older one refuses it
			// whole), so a token more costs nothing and closes that gap;
			// export_owner_tokens makes the first entry hold one too.
			if e.owner != nil && (d.exportOwnerTokens || holdsOwners(doc)) {
				*owner = token
			}
			e.put(doc, *owner)
		}
		d.created.record(e.name, holds)
		return nil
	}
}

// holdsOwners reports whether any entry of doc holds an owner token, which
// only a provider and a psa-syncd that read owners accept.
func holdsOwners(doc *export.Document) bool {
	if doc.Integration != nil && doc.Integration.Owner != "" || doc.Tickets != nil && doc.Tickets.Owner != "" {
		return true
	}
	for _, m := range doc.ProductMappings {
		if m.Owner != "" {
			return true
		}
	}
	for _, m := range doc.CustomerMappings {
		if m.Owner != "" {
			return true
		}
	}
	return false
}

// deleteExportEntry is the Delete of a resource whose object is entry e of
// the export: it removes the entry with deleteEntry, as the owner token in
// private allows, adds the error to diags, and logs left when another
// resource instance took the entry over, else deleted, with fields.
func (d *providerData) deleteExportEntry(ctx context.Context, private privateData, e exportEntry, diags *diag.Diagnostics, left, deleted string, fields ...map[string]any) {
	owner, ds := exportOwner(ctx, private)
	diags.Append(ds...)
	if diags.HasError() {
		return
	}
	kept, err := d.deleteEntry(ctx, e, owner)
	if err != nil {
		exportUpdateError(diags, "remove", e.name, d.exportPath, err)
		return
	}
	if kept {
		tflog.Info(ctx, left, fields...)
		return
	}
	tflog.Info(ctx, deleted, fields...)
}

// deleteEntry removes the entry of a resource's Delete from the export,
// unless a Create of this command owns it, or the entry holds another owner
// token than owner, the Delete's own (see entryRegistry); kept reports that
// it did not remove it.
func (d *providerData) deleteEntry(ctx context.Context, e exportEntry, owner string) (kept bool, err error) {
	err = d.changeExport(ctx, d.deleteChange(e, owner, &kept))
	return kept, err
}

// deleteChange is the change of deleteEntry. It sets *kept each time it
// runs.
func (d *providerData) deleteChange(e exportEntry, owner string, kept *bool) func(*export.Document) error {
	return func(doc *export.Document) error {
		*kept = d.created.owns(e.name, doc)
		if e.owner != nil && !*kept {
			held, exists := e.owner(doc)
			*kept = exists && held != owner
		}
		if !*kept {
			e.remove(doc)
		}
		return nil
	}
}

// plannedService is what the plan being made does to an existing service:
// its planned name (unknown when it comes from a value known only at apply)
// and active flag, or that it destroys it.
type plannedService struct {
	name   types.String
	active types.Bool
	// destroyed is the deletion_policy ("deactivate" or "delete") of a
	// psa_service that the plan destroys, "" for one it keeps.
	destroyed string
}

// serviceRegistry maps the id of a service whose name or active flag a
// psa_service resource changes, or that it destroys, to its
// plannedService. A product mapping that refers to psa_service.<name>.id
// is planned after that resource, so it finds the service's new name and
// active flag here and plans the export entry the apply will write, rather
// than what the PSA holds before the apply. A mapping that names the
// service by a literal id may be planned first and then sees the PSA's
// values; the registry also records the mappings planned so far for each
// service, so that a destroy planned after such a mapping still finds it
// (see destroy and mapProduct). The zero value is ready to use.
type serviceRegistry struct {
	mu     sync.Mutex
	plans  map[string]plannedService
	mapped map[string]map[string]bool // product mapping ids by service id
	// synced and removed hold, by service id and usage source, the product
	// mappings planned with sync_enabled on and the ones planned to be
	// destroyed that psa-syncd synced (see syncProduct and removeSynced).
	synced, removed map[[2]string]map[string]bool
	// deletes holds the ids of services whose psa_service in the state
	// has deletion_policy = "delete" (see deletable).
	deletes map[string]bool
}

// deletable records that the psa_service of the service with the given id
// has deletion_policy = "delete": a replacement of it deletes the service
// before it creates the new one.
func (r *serviceRegistry) deletable(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.deletes == nil {
		r.deletes = map[string]bool{}
	}
	r.deletes[id] = true
}

// isDeletable reports whether deletable recorded the service.
func (r *serviceRegistry) isDeletable(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.deletes[id]
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

// destroy records that the plan destroys the service with the given id,
// deactivating or deleting it as policy says, and returns the product
// mappings planned so far that refer to it, sorted.
func (r *serviceRegistry) destroy(id, policy string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.plans == nil {
		r.plans = map[string]plannedService{}
	}
	r.plans[id] = plannedService{active: types.BoolValue(false), destroyed: policy}
	return slices.Sorted(maps.Keys(r.mapped[id]))
}

// mapProduct records that the product mapping product plans to refer to
// the service with the given id, and returns the plan of the service, if
// a psa_service resource plans to change its name or active flag or to
// destroy it. One lock covers both, so that of a mapping and a destroy
// of its service planned at the same time, one sees the other.
func (r *serviceRegistry) mapProduct(id, product string) (plannedService, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.mapped == nil {
		r.mapped = map[string]map[string]bool{}
	}
	if r.mapped[id] == nil {
		r.mapped[id] = map[string]bool{}
	}
	r.mapped[id][product] = true
	p, ok := r.plans[id]
	return p, ok
}

// syncProduct records that the product mapping product of usage source
// plans to feed the service with the given id (sync_enabled on), and
// returns the mappings of that service and source that the plan destroys
// and psa-syncd synced, recorded so far, sorted. With removeSynced, under
// one lock: of a destroy and a mapping that takes its lines over, planned
// in any order, the one planned second sees the other.
func (r *serviceRegistry) syncProduct(id, source, product string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return addAndList(&r.synced, r.removed, [2]string{id, source}, product)
}

// removeSynced records that the plan destroys the product mapping product
// of usage source, which psa-syncd synced on the service with the given
// id, and returns the mappings of that service and source planned so far
// with sync_enabled on, sorted (see syncProduct).
func (r *serviceRegistry) removeSynced(id, source, product string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return addAndList(&r.removed, r.synced, [2]string{id, source}, product)
}

// addAndList adds product to (*into)[key] and returns other[key]'s
// products, sorted.
func addAndList(into *map[[2]string]map[string]bool, other map[[2]string]map[string]bool, key [2]string, product string) []string {
	if *into == nil {
		*into = map[[2]string]map[string]bool{}
	}
	if (*into)[key] == nil {
		(*into)[key] = map[string]bool{}
	}
	(*into)[key][product] = true
	return slices.Sorted(maps.Keys(other[key]))
}

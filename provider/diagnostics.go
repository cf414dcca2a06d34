package provider

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// Diagnostic texts used by more than one resource or data source. Summaries
// are short Title Case phrases; details are sentences that say what failed
// and what to do, followed by a blank line and the underlying error.
const (
	summaryUnexpectedResourceConfigure   = "Unexpected Resource Configure Type"
	summaryUnexpectedDataSourceConfigure = "Unexpected Data Source Configure Type"
	detailUnexpectedConfigure            = "Expected *provider.providerData, got: %T. Please report this issue to the provider developers."

	summaryMissingExportPath = "Missing Mapping Export Path"
	detailMissingExportPath  = "%s is stored in the mapping export, but the provider has no export store. " +
		"Set export_url (a path, an s3:// URL or psa-syncd's URL) in the provider block or the " + envExportURL +
		" environment variable. export_path and " + envExportPath + ", which name a file, work too."

	summaryReadExport   = "Unable to Read Mapping Export"
	summaryUpdateExport = "Unable to Update Mapping Export"

	summaryExportOfOtherPSA = "Mapping Export of Another PSA"
	detailExportOfOtherPSA  = "The mapping export %q belongs to another PSA than the one the provider is configured for, " +
		"so the provider changes nothing in it: its ids are another PSA's. Point the provider's PSA block (or its " +
		"environment variables) back at the export's PSA, or export_url at this PSA's own export (one per PSA system " +
		"and instance); to move the mappings to another PSA, remove them from the state (terraform state rm) and " +
		"create them with the new PSA's ids in its export.\n\n%s"

	summaryExportNotFound = "Mapping Export Not Found"
	detailExportNotFound  = "%s is in the Terraform state, but the mapping export store %q holds no export at all. " +
		"The provider does not start a new, empty export in its place: psa-syncd would stop billing every customer " +
		"missing from it. Check export_url (a wrong path, bucket, key or psa-syncd URL is the usual cause) and the " +
		"store's credentials. If the export was lost, restore it (from a backup, S3 object versioning or the last " +
		"CI artifact) and plan again. To start a new export on purpose, remove the mappings from the state " +
		"(terraform state rm) and import or create them again."

	summaryDuplicateKey = "Duplicate Mapping Export Entry"
	detailDuplicateKey  = "Two resources of this configuration manage %s: another resource (%s) and this one (%s). " +
		"An export entry has one owner: with two, one of them would fail at apply or take over the other's entry, " +
		"and destroying either one later would remove the entry that the other still manages. " +
		"Remove one of the two resources, or change the key of one of them."

	summaryEntryAdopted = "Adopting Mapping Export Entry"
	detailEntryAdopted  = "%s is already in the mapping export %q with exactly the values this resource plans, " +
		"most likely written by an earlier apply that was interrupted before it saved the Terraform state. " +
		"The apply adopts the entry instead of creating it; nothing else changes."

	summaryEntryExists = "Already in Mapping Export"
	detailEntryExists  = "%s is already in the mapping export %q with other values, and Terraform does not manage it here. " +
		"Import it instead of creating it (terraform import <address> %s, or an import block). " +
		"If another resource address of this configuration managed it before, add a moved block."

	summaryInvalidPSAID = "Invalid PSA ID"
	detailInvalidPSAID  = "%s must be the id of a %s in %s, usually %s. %s."

	summaryUnexpectedImportID = "Unexpected Import Identifier"
	detailUnexpectedImportID  = "Expected an import identifier of the form %s, for example %q. Got: %q"

	summaryImportProductMapping  = "Cannot Import Product Mapping"
	summaryImportCustomerMapping = "Cannot Import Customer Mapping"
	summaryImportIntegration     = "Cannot Import Integration Settings"
	summaryImportTicketRouting   = "Cannot Import Ticket Routing"

	// detailExportImportID is the Unexpected Import Identifier detail of the
	// resources of which an export holds one (psa_integration,
	// psa_ticket_routing): the resource type, the id expected, the id got.
	detailExportImportID = "Expected the provider's export_url (or export_path) as import identifier, %[2]q, because %[1]s " +
		"is imported from the export the provider is configured with. For an S3 or psa-syncd store, that is the URL as " +
		"the provider shows it, with any password replaced by xxxxx (it is also the id in the state). Got: %[3]q"

	// detailImportNoExport and detailImportNoEntry explain an import of an
	// entry that the export does not hold: what was to be imported, the
	// store, what was to be imported.
	detailImportNoExport = "Nothing to import for %s: the mapping export store %q holds no export at all. Check export_url " +
		"(a wrong path, bucket, key or psa-syncd URL is the usual cause). To create %s instead, drop the import " +
		"(the import block or the terraform import command) and apply."
	detailImportNoEntry = "Nothing to import for %s: the mapping export %q holds none. To create %s instead, drop the import " +
		"(the import block or the terraform import command) and apply."

	// detailServiceImportID is the Unexpected Import Identifier detail of
	// psa_service: the PSA, the id got and why it cannot be an id.
	detailServiceImportID = "Expected the id of the service in %[1]s as import identifier, as data.psa_service.<name>.id " +
		"shows it (for example %[2]q). No request was sent to %[1]s. Got: %[3]q\n\n%[4]s"

	summaryInvalidBMSHostname = "Invalid Kaseya BMS Hostname"
	detailInvalidBMSHostname  = "Give the host name alone, as the BMS console shows it (for example bmsemea.kaseya.com), " +
		"without https:// and without a path. Use base_url for a full API URL."

	// logRemovedFromState is the tflog.Warn message of Read for an object
	// that is gone.
	logRemovedFromState = "%s no longer exists and was removed from the Terraform state; the next plan creates it again"
)

// unknownDetail explains an unknown provider configuration value. env is the
// environment variable that may provide it instead, if any.
func unknownDetail(name, system, env string) string {
	s := "The provider cannot be configured"
	if system != "" {
		s = "The provider cannot create the " + system + " API client"
	}
	s += fmt.Sprintf(" because %s is unknown until apply. Set it to a static value, "+
		"or apply the resource it depends on first (terraform apply -target=...)", name)
	if env != "" {
		s += ", or leave it unset and set the " + env + " environment variable"
	}
	return s + "."
}

// missingDetail explains a required provider configuration value that is set
// neither in the configuration nor in the environment.
func missingDetail(block, name, env string) string {
	return fmt.Sprintf("The provider cannot create the %s API client because %s is not set. "+
		"Set %s in the %s block, or set the %s environment variable. "+
		"If either is already set, make sure the value is not empty.", systemTitle(psa.System(block)), name, name, block, env)
}

// shortSecretDetail explains a credential shorter than redact.MinSecret,
// set as name (or in the environment variable env) for the client of what.
// It never quotes the value.
func shortSecretDetail(what, name, env string) string {
	return fmt.Sprintf("The provider cannot create the %s client because %s (set in the provider block, or in the %s environment "+
		"variable) is shorter than %d characters. The provider keeps credentials out of errors, plan output and logs by "+
		"searching for their values, which it cannot do for a value that short without blanking out ordinary words, so it "+
		"refuses it rather than risk showing it. No PSA issues credentials that short: check for a truncated copy or a "+
		"placeholder, and set the full value.", what, name, env, redact.MinSecret)
}

// exportReadError adds the error for an export that cannot be read. The
// export is never replaced by the provider, so the fix is the user's.
func exportReadError(diags *diag.Diagnostics, path string, err error) {
	if other := (*otherPSAError)(nil); errors.As(err, &other) {
		diags.AddError(summaryExportOfOtherPSA, fmt.Sprintf(detailExportOfOtherPSA, path, err))
		return
	}
	diags.AddError(summaryReadExport, fmt.Sprintf("The provider could not read the mapping export %q. It was left unchanged. "+
		"%s, then run Terraform again.\n\n%s", path, storeFix(path).read, err))
}

// storeFixes says what to do about an export that cannot be read or
// written, in the terms of one kind of store.
type storeFixes struct {
	// read is a sentence, without its final period, that says what to
	// check or restore.
	read string
	// write says whether the export changed, and what to do.
	write string
}

// storeFix returns the fixes for the store that the provider names store
// (providerData.exportPath: a path, or a URL without its password).
func storeFix(store string) storeFixes {
	kind, err := export.Kind(store)
	if err != nil {
		kind = ""
	}
	switch kind {
	case export.KindFile:
		return storeFixes{
			read:  "Fix or restore the file (for example from version control or a backup)",
			write: "The file was not changed. If it is invalid, fix or restore it, then run Terraform again.",
		}
	case export.KindS3:
		return storeFixes{
			read: "Check the bucket, key, region and AWS credentials; if the object holds an invalid export, fix it or " +
				"restore an earlier version (S3 object versioning, a backup or the last CI artifact)",
			write: "If S3 did not answer, the change may have been saved all the same: running Terraform again reads " +
				"the object and goes on from there. If the object holds an invalid export, fix it or restore an earlier " +
				"version first (S3 object versioning, a backup or the last CI artifact).",
		}
	case export.KindPSASyncd:
		return storeFixes{
			read: "Check that psa-syncd answers at this URL and that export_token is its web.api_token " +
				"(psa-syncd stores only valid exports, and GET /api/v1/export/history lists every version)",
			write: "If psa-syncd did not answer, the change may have been saved all the same: running Terraform again " +
				"reads the export and goes on from there. psa-syncd stores only valid exports; check that it answers at " +
				"this URL and that export_token is its web.api_token.",
		}
	}
	return storeFixes{
		read:  "Fix or restore the export",
		write: "If the export is invalid, fix or restore it, then run Terraform again.",
	}
}

// exportUpdateError adds the error for a failed write of one entry. A
// change to an entry of an export that the store no longer holds gets the
// Read's error for a missing export, which says how to recover.
func exportUpdateError(diags *diag.Diagnostics, action, entry, path string, err error) {
	if errors.Is(err, export.ErrNoExport) {
		diags.AddError(summaryExportNotFound, fmt.Sprintf(detailExportNotFound, strings.ToUpper(entry[:1])+entry[1:], path)+"\n\n"+err.Error())
		return
	}
	diags.AddError(summaryUpdateExport, fmt.Sprintf("The provider could not %s %s in the mapping export %q. %s\n\n%s",
		action, entry, path, storeFix(path).write, err))
}

// conflictError is the error of an export change that would leave the
// export in a state psa-syncd refuses: two customers of one source syncing
// usage to one contract, two usage sources feeding one service. The apply
// reports it as the plan would, on attribute, not as a failed write.
type conflictError struct {
	attribute       string
	summary, detail string
}

func (e *conflictError) Error() string { return e.summary + ": " + e.detail }

// exportWriteError adds the error of a Create or Update whose write of one
// entry failed: the conflictError a check inside the change returned, or
// exportUpdateError's error.
func exportWriteError(diags *diag.Diagnostics, action, entry, exportPath string, err error) {
	var c *conflictError
	if errors.As(err, &c) {
		diags.AddAttributeError(path.Root(c.attribute), c.summary, c.detail)
		return
	}
	exportUpdateError(diags, action, entry, exportPath, err)
}

// psaErrorDetail says what failed against the PSA, adds a hint for the
// error kinds a user can act on and ends with the error itself.
func psaErrorDetail(system psa.System, what string, err error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s in %s failed.", what, systemTitle(system))
	var rl *psa.RateLimitError
	switch {
	case errors.Is(err, psa.ErrForbidden):
		b.WriteString(" The PSA took the credentials but refused the API user this request: " + permissionHint(system))
	case errors.Is(err, psa.ErrNotAPI):
		// Before the credentials: a proxy's sign-in page in front of a
		// Kaseya BMS sign-in is both.
		b.WriteString(" The PSA's address answered with something that is not the PSA's API (a proxy's or single " +
			"sign-on's sign-in page, a captive portal, a maintenance page, or another product on that host): " + addressHint(system) +
			" If a proxy stands in between, let the provider reach the API through it without signing in.")
	case errors.Is(err, psa.ErrEndpointNotFound):
		// Before the credentials: a Kaseya BMS sign-in answered 404 is
		// both, and the address is the first thing to check.
		b.WriteString(" The PSA has no such endpoint at the configured address: " + addressHint(system))
	case errors.Is(err, psa.ErrUnauthorized):
		b.WriteString(" The PSA refused the credentials: " + credentialsHint(system))
	case errors.As(err, &rl) && rl.Hourly:
		b.WriteString(" The PSA's hourly API request budget is used up; run Terraform again later.")
	case errors.As(err, &rl) && rl.Waited > 0 && system != psa.SystemAutotask:
		// ConnectWise's 429 to a read, which the client waits out for
		// a time rather than counting it against max_retries.
		b.WriteString(" The PSA kept throttling the request for as long as the provider waits; run Terraform again later, " +
			"or lower max_concurrency.")
	case errors.As(err, &rl) && rl.Waited > 0:
		// Autotask's thread threshold, whose refusals the client waits
		// out rather than counting them against max_retries.
		b.WriteString(" The PSA kept refusing the request for its limit of requests in flight, which every process " +
			"with the same credentials shares (Autotask: three per endpoint and integration code), while another one, " +
			"such as psa-syncd or another Terraform run, kept it busy; run Terraform again once that is done, or give " +
			"the provider an API user with a tracking identifier of its own.")
	case errors.Is(err, psa.ErrRateLimited):
		b.WriteString(" The PSA kept throttling requests after every retry; lower max_concurrency or raise max_retries.")
	case errors.Is(err, psa.ErrValidation):
		b.WriteString(" The PSA refused the values; its message follows.")
	case errors.Is(err, psa.ErrOutcomeUnknown):
		b.WriteString(" The PSA may or may not have applied the change; check it before running Terraform again.")
	}
	b.WriteString("\n\n")
	b.WriteString(err.Error())
	return b.String()
}

// planCheckFails reports whether err, the failure of a plan-time check's
// read from the PSA, says that the provider's own PSA settings are wrong:
// refused credentials, or an address that answers 404 to the PSA's query
// endpoints (an Autotask base_url that is not the tenant's zone, a proxy
// path typed wrong), or an address that answers with what is not the
// API's answer (psa.ErrNotAPI: a proxy's sign-in page, another product).
// Such a check fails the plan instead of warning: every
// read and write of the apply would meet the same answer, and users want
// the error at plan time. Anything else (an outage, throttling) leaves
// the check a courtesy that warns only.
func planCheckFails(err error) bool {
	return errors.Is(err, psa.ErrUnauthorized) || errors.Is(err, psa.ErrEndpointNotFound) || errors.Is(err, psa.ErrNotAPI)
}

// addressHint says which provider settings to check when the PSA's
// address answers 404 where no record is named (psa.ErrEndpointNotFound),
// or answers that an object does not exist but not a basic read either
// (see notFoundUnconfirmed).
func addressHint(s psa.System) string {
	switch s {
	case psa.SystemConnectWise:
		return "check base_url (or site and codebase when base_url is unset), and company_id, public_key and private_key: " +
			"hosted ConnectWise also answers 404 to a company id or keys it does not know."
	case psa.SystemKaseyaBMS:
		return "check base_url (or hostname when base_url is unset): it must be the BMS API of the tenant, not a proxy or another server."
	}
	return "check base_url (or leave it unset, and the provider finds the tenant's zone)."
}

// searchError returns err, the failure of a read that names no record (a
// search, a lookup by name, a list), with a not-found answer made the
// endpoint's: a search finds no row of an unknown record, so its 404 says
// that the address has no such endpoint (a proxy, a base URL or site that
// is not the tenant's, and on hosted ConnectWise a wrong company id). Such
// an error matches psa.ErrEndpointNotFound, which fails a plan-time check
// (planCheckFails) and gets addressHint, and no longer psa.ErrNotFound.
// Autotask's client does the same for its queries already.
func searchError(err error) error {
	if err != nil && errors.Is(err, psa.ErrNotFound) && !errors.Is(err, psa.ErrEndpointNotFound) {
		return &endpointNotFoundError{err: err}
	}
	return err
}

// endpointNotFoundError is a search's 404; see searchError. It does not
// unwrap to the PSA's error, which matches psa.ErrNotFound.
type endpointNotFoundError struct{ err error }

func (e *endpointNotFoundError) Error() string { return e.err.Error() }

func (e *endpointNotFoundError) Is(target error) bool { return target == psa.ErrEndpointNotFound }

// credentialsHint says which provider settings to check when the PSA
// refuses the credentials.
func credentialsHint(s psa.System) string {
	switch s {
	case psa.SystemConnectWise:
		return "check company_id, public_key, private_key and client_id of the provider configuration and the API member's security role, " +
			"and that site (or base_url) is the company's ConnectWise server, not another company's."
	case psa.SystemKaseyaBMS:
		return "check username, password and tenant of the provider configuration and the API user's role, and that hostname " +
			"(or base_url) is the tenant's BMS region: another region's or server's API refuses the credentials too."
	}
	return "check the user name, secret and integration code of the provider configuration and the API user's security level, " +
		"and that base_url, when set, is the zone of the API user's tenant: another zone refuses the credentials too."
}

// permissionHint says what the API user may lack when the PSA takes the
// credentials but refuses a request (psa.ErrForbidden): a permission for
// the object the request names, not a setting of the provider.
func permissionHint(s psa.System) string {
	switch s {
	case psa.SystemConnectWise:
		return "check that the API member's security role grants this (inquire, add or edit at the level the object needs) and reaches its company, agreement or board."
	case psa.SystemKaseyaBMS:
		return "check that the API user's role grants this and that the user has access to the account the object belongs to."
	}
	return "check that the API user's security level and resource permissions grant this, including access to the object's company, contract or queue."
}

// systemTitle is the product name of a PSA system, for messages.
func systemTitle(s psa.System) string {
	switch s {
	case psa.SystemAutotask:
		return "Autotask"
	case psa.SystemConnectWise:
		return "ConnectWise PSA"
	case psa.SystemKaseyaBMS:
		return "Kaseya BMS"
	}
	return string(s)
}

// exampleServiceID is a service id of system for messages, the one of the
// import example for Autotask.
func exampleServiceID(s psa.System) string {
	if s == psa.SystemAutotask {
		return "30000012"
	}
	return "174"
}

// notFoundDetail describes a lookup by name that found nothing.
func notFoundDetail(system psa.System, kind, query, hint string) string {
	s := fmt.Sprintf("No %s with %s was found in %s.", kind, query, systemTitle(system))
	if hint != "" {
		s += " " + hint
	}
	return s
}

// ambiguousDetail describes a lookup by name that found several objects.
func ambiguousDetail(err *psa.AmbiguousError, hint string) string {
	s := "The lookup must find exactly one object, but found several."
	if hint != "" {
		s += " " + hint
	}
	return s + "\n\n" + err.Error()
}

// providerDataFrom returns the *providerData that Configure receives, or nil
// before the provider is configured (Terraform validates configurations
// that way). Any other type is a bug, reported with the template wording.
func providerDataFrom(pd any, diags *diag.Diagnostics, summary string) *providerData {
	if pd == nil {
		return nil
	}
	data, ok := pd.(*providerData)
	if !ok {
		diags.AddError(summary, fmt.Sprintf(detailUnexpectedConfigure, pd))
		return nil
	}
	return data
}

// exactlyOne returns the only object a data source's lookup by name found.
// Otherwise it adds an error on the name attribute: not found (with a hint
// saying what was searched), or ambiguous (listing every match as describe
// names it, with a hint saying how to resolve it).
func exactlyOne[T any](diags *diag.Diagnostics, system psa.System, kind, query string, found []T,
	describe func(T) string, notFoundHint, ambiguousHint string) (T, bool) {
	title := strings.ToUpper(kind[:1]) + kind[1:]
	switch len(found) {
	case 1:
		return found[0], true
	case 0:
		diags.AddAttributeError(path.Root("name"), "PSA "+title+" Not Found", notFoundDetail(system, kind, query, notFoundHint))
	default:
		matches := make([]string, len(found))
		for i, f := range found {
			matches[i] = describe(f)
		}
		diags.AddAttributeError(path.Root("name"), "Ambiguous PSA "+title+" Name",
			ambiguousDetail(&psa.AmbiguousError{Kind: kind, Query: query, Matches: matches}, ambiguousHint))
	}
	var zero T
	return zero, false
}

// summaryPriceKeptOnLines is the summary of the warning on a plan that
// changes an existing service's unit_price.
const summaryPriceKeptOnLines = "Existing Contract Lines Keep Their Price"

// unitPriceChangeWarning warns on the plan that changes the unit_price of
// an existing service: the plan reads as a new price on every invoice of
// the service, but the lines on customers' contracts keep the price they
// were added (Autotask, ConnectWise PSA) or last posted (Kaseya BMS) at.
func unitPriceChangeWarning(diags *diag.Diagnostics, sys psa.System, state, plan serviceResourceModel) {
	if !known(state.ID) || !known(state.UnitPrice) || !known(plan.UnitPrice) || plan.UnitPrice.Equal(state.UnitPrice) {
		return
	}
	lines := map[psa.System]string{
		psa.SystemAutotask:    "Autotask's contract services (the service's lines on customers' contracts) keep the unit price they were added at: the new price is that of the lines added from now on (psa-syncd adds one at a customer's first usage of a mapped product)",
		psa.SystemConnectWise: "ConnectWise PSA's agreement additions (the service's lines on customers' agreements) keep the unit price they were added at: the new price is that of the additions made from now on (psa-syncd adds one at a customer's first usage of a mapped product)",
		psa.SystemKaseyaBMS:   "Kaseya BMS's contract lines keep the price they were posted at: the new price reaches only the lines psa-syncd posts from now on, those whose units change, and new ones",
	}[sys]
	diags.AddAttributeWarning(path.Root("unit_price"), summaryPriceKeptOnLines,
		fmt.Sprintf("The unit price of service %s changes from %s to %s, but %s. Customers whose lines keep the old price are invoiced at it until the lines are repriced in %s. "+
			"`psa-syncd plan -terraform-plan` lists each line with the price it bills at.",
			state.ID.ValueString(), strconv.FormatFloat(state.UnitPrice.ValueFloat64(), 'f', -1, 64), strconv.FormatFloat(plan.UnitPrice.ValueFloat64(), 'f', -1, 64), lines, systemTitle(sys)))
}

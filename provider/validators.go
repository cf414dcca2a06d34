package provider

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

// stringCheck is a string validator built from a function, for checks that
// reuse a parser from package psa (schedules, time zones, URLs).
type stringCheck struct {
	description string
	summary     string
	// detail is the sentence that precedes the parser's error.
	detail string
	check  func(string) error
	// warn, when set, returns a warning for a value check accepts, or "";
	// warnSummary is its summary.
	warn        func(string) string
	warnSummary string
}

var _ validator.String = stringCheck{}

func (v stringCheck) Description(context.Context) string         { return v.description }
func (v stringCheck) MarkdownDescription(context.Context) string { return v.description }

func (v stringCheck) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	if err := v.check(req.ConfigValue.ValueString()); err != nil {
		resp.Diagnostics.AddAttributeError(req.Path, v.summary, v.detail+"\n\n"+err.Error())
		return
	}
	if v.warn != nil {
		if w := v.warn(req.ConfigValue.ValueString()); w != "" {
			resp.Diagnostics.AddAttributeWarning(req.Path, v.warnSummary, w)
		}
	}
}

// scheduleString validates a sync schedule with the daemon's parser, so a
// schedule the daemon would refuse never reaches the export.
func scheduleString() validator.String {
	return stringCheck{
		description: "value must be a schedule: " + schedule.Accepted,
		summary:     "Invalid Sync Schedule",
		detail:      "psa-syncd could not run on this schedule. Use one of the forms in the attribute's documentation.",
		check: func(s string) error {
			_, err := schedule.Parse(s)
			return err
		},
	}
}

// timezoneString validates an IANA time zone name with the daemon's loader,
// and warns of the inverted sign of an "Etc/GMT+N" zone.
func timezoneString() validator.String {
	return stringCheck{
		description: `value must be an IANA time zone name such as "Europe/Rome", or "UTC"`,
		summary:     "Invalid Time Zone",
		detail:      "psa-syncd could not load this time zone. Use an IANA zone name from the tz database.",
		check: func(s string) error {
			if s == "" {
				return fmt.Errorf(`time zone must not be empty; use "UTC" for UTC`)
			}
			_, err := schedule.LoadLocation(s)
			return err
		},
		warn:        schedule.OffsetZoneNote,
		warnSummary: "Fixed-Offset Time Zone",
	}
}

// httpURL validates an absolute http or https URL, a PSA block's base_url:
// without user information, nor a query or fragment parameter named like a
// secret (?access_token=...), which psa-syncd refuses in the same setting
// (its clients send neither, and the URL is quoted in errors and the
// plan); example is quoted in the error.
func httpURL(example string) stringCheck {
	return stringCheck{
		description: "value must be an absolute http or https URL without credentials in it",
		summary:     "Invalid URL",
		detail:      "The provider needs the full URL of the API, including the scheme.",
		check: func(s string) error {
			u, err := url.Parse(s)
			if err != nil {
				// Not url.Parse's error itself: it repeats s, and s
				// may hold a password.
				return fmt.Errorf("%q is not a URL: %w", redact.URL(s), redact.URLError(err))
			}
			if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("%q must be an absolute http or https URL, such as %q", redact.URL(s), example)
			}
			if u.User != nil {
				return fmt.Errorf("%q must not include credentials: the provider would send them to the PSA as a login of their own; "+
					"give them in the block's credential attributes", redact.URL(s))
			}
			if redact.URL(s) != s {
				return fmt.Errorf("%q must not carry a secret in its query or fragment, which psa-syncd refuses too: "+
					"give the credentials in the block's credential attributes", redact.URL(s))
			}
			return nil
		},
	}
}

// psaSyncdURL validates psa_syncd_url as the client of psa-syncd's API
// reads it (export.NewHTTPReader): an http(s) URL without a password, a
// query or a fragment, since the token is an attribute of its own; it may
// name the basic_auth_users user the token is sent as.
func psaSyncdURL() stringCheck {
	return stringCheck{
		description: "value must be psa-syncd's http or https URL, with at most a user name, without a password, a query or a fragment",
		summary:     "Invalid psa-syncd URL",
		detail: "psa_syncd_url is the URL of psa-syncd's listener, such as https://psa-syncd.example:9810 (a reverse proxy's " +
			"path prefix is kept), or https://USER@psa-syncd.example:9810 for a listener with basic_auth_users; its API token " +
			"goes in psa_syncd_api_token.",
		check: func(s string) error {
			_, err := export.NewHTTPReader(s, "", nil)
			return err
		},
	}
}

// bmsHostname validates a Kaseya BMS hostname with the kaseyabms client's
// own check, so the plan fails with the message the client would give.
func bmsHostname() stringCheck {
	return stringCheck{
		description: "value must be a host name such as bmsemea.kaseya.com, without a protocol or a path",
		summary:     summaryInvalidBMSHostname,
		detail:      detailInvalidBMSHostname,
		check: func(s string) error {
			_, err := backends.KaseyaBMSAPIHost(s)
			return err
		},
	}
}

// connectWiseSite validates a ConnectWise site the way the connectwise
// client reads it (a host, or an http(s) URL without a path), with a message
// that names the provider's attributes rather than the client's options.
// connectWiseAPIVersion checks a ConnectWise API version such as 2024.1.
func connectWiseAPIVersion() stringCheck {
	return stringCheck{
		description: "value must be a ConnectWise API version such as " + connectwise.DefaultAPIVersion,
		summary:     "Invalid ConnectWise API Version",
		detail:      "Give the version as ConnectWise reports it in api-current-version: a year and a release.",
		check:       connectwise.CheckAPIVersion,
	}
}

func connectWiseSite() stringCheck {
	return stringCheck{
		description: "value must be a host name such as api-na.myconnectwise.net, or an http(s) URL without a path",
		summary:     "Invalid ConnectWise Site",
		detail: "Give the site host alone (for example api-na.myconnectwise.net), or the URL of an on-premises server " +
			"without a path. The codebase goes in codebase, a full API root in base_url.",
		check: func(site string) error {
			s := strings.TrimSpace(site)
			if s == "" {
				return fmt.Errorf("site is empty")
			}
			if !strings.Contains(s, "://") {
				s = "https://" + s
			}
			u, err := url.Parse(s)
			if err == nil && u.User != nil {
				return fmt.Errorf("site %q must not include credentials; give them in company_id, public_key and private_key", redact.URL(site))
			}
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return fmt.Errorf("site %q is neither a host name nor an http(s) URL", redact.URL(site))
			}
			if strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
				return fmt.Errorf("site %q must not have a path", redact.URL(site))
			}
			return nil
		},
	}
}

// keyString validates an attribute that is part of a mapping's key in the
// export (source, product, customer_id). It refuses what the export refuses
// (export.IDProblem: empty, or a NUL byte), so that such a value fails the
// plan rather than the apply's write, and leading or trailing whitespace,
// which the export takes but psa-syncd never matches: " cust-1" would leave
// the Sophos tenant cust-1 unmapped. separated is set for the parts that
// the import identifier separates from the next one (see importIDSeparator).
type keyString struct {
	separated bool
}

var _ validator.String = keyString{}

// keyPart validates a part of a composite key that the import identifier
// separates from the next part, such as a mapping's source.
func keyPart() validator.String { return keyString{separated: true} }

// keyLastPart validates the last part of a composite key, such as a
// product code or a customer id, which may contain the separator.
func keyLastPart() validator.String { return keyString{} }

func (v keyString) Description(context.Context) string {
	s := "value must be non-empty, without a NUL byte or leading or trailing whitespace"
	if v.separated {
		s += ", and must not contain \"" + importIDSeparator + "\""
	}
	return s
}

func (v keyString) MarkdownDescription(ctx context.Context) string { return v.Description(ctx) }

func (v keyString) ValidateString(_ context.Context, req validator.StringRequest, resp *validator.StringResponse) {
	if req.ConfigValue.IsNull() || req.ConfigValue.IsUnknown() {
		return
	}
	s, name := req.ConfigValue.ValueString(), req.Path.String()
	var detail string
	switch {
	case export.IDProblem(s) != "":
		detail = fmt.Sprintf("%s is part of the mapping's key in the mapping export, and the export refuses this value: %s %s. Got: %s",
			name, name, export.IDProblem(s), strconv.Quote(s))
	case strings.TrimSpace(s) != s:
		detail = fmt.Sprintf("%s must not begin or end with whitespace. psa-syncd compares it exactly with the vendor's ids and "+
			"the source names of its configuration, so the mapping would match nothing. Got: %s", name, strconv.Quote(s))
	case v.separated && strings.Contains(s, importIDSeparator):
		detail = fmt.Sprintf("%s must not contain %q, which separates the parts of the resource's import identifier. Got: %s",
			name, importIDSeparator, strconv.Quote(s))
	default:
		return
	}
	resp.Diagnostics.AddAttributeError(req.Path, "Invalid Key", detail)
}

// nonEmpty validates a non-blank string.
func nonEmpty() validator.String {
	return stringCheck{
		description: "value must not be empty",
		summary:     "Invalid Value",
		detail:      "The attribute needs a value.",
		check: func(s string) error {
			if strings.TrimSpace(s) == "" {
				return fmt.Errorf("value must not be empty")
			}
			return nil
		},
	}
}

// psaID validates the id of an object of one PSA in an attribute that
// only that PSA's block has (psaIDsValid checks the ids whose PSA is the
// configured one), e.g. the Autotask allocation code of a service.
func psaID(system psa.System, kind string) validator.String {
	return stringCheck{
		description: "value must be an id of " + systemTitle(system),
		summary:     summaryInvalidPSAID,
		detail:      fmt.Sprintf("The value cannot be the id of the %s %s, so the apply would fail on it.", systemTitle(system), kind),
		check:       func(s string) error { return psa.CheckID(system, s) },
	}
}

// psaIDDescription ends the description of an attribute that holds a PSA
// id.
const psaIDDescription = " The plan fails on a value that cannot be an id of the configured PSA: ids are whole numbers " +
	"written in decimal digits alone, such as `\"174\"` (from 0 in Autotask, from 1 in ConnectWise PSA, from 1 to " +
	"2147483647 in Kaseya BMS)."

// psaIDsValid adds an error on each attribute of ids whose known value
// cannot be an id of the PSA, and reports whether there was none. Unknown
// values (ids of objects the apply creates) pass: Terraform plans the
// resource again during the apply, with every value known, before it
// creates or updates it, and the check fails that plan instead.
func psaIDsValid(diags *diag.Diagnostics, system psa.System, ids []psaIDAttribute) bool {
	ok := true
	for _, id := range ids {
		if id.value.IsNull() || id.value.IsUnknown() {
			continue
		}
		if err := psa.CheckID(system, id.value.ValueString()); err != nil {
			diags.AddAttributeError(path.Root(id.name), summaryInvalidPSAID,
				fmt.Sprintf(detailInvalidPSAID, id.name, id.kind, systemTitle(system), id.hint, err))
			ok = false
		}
	}
	return ok
}

// psaIDAttribute is an attribute that holds the id of a PSA object: its
// name, value, the kind of object and where a valid id usually comes from.
type psaIDAttribute struct {
	name  string
	value types.String
	kind  string
	hint  string
}

func itoa(i int) string { return strconv.Itoa(i) }

// titleCase turns an attribute name such as "integration_code" into
// "Integration Code" for diagnostic summaries.
func titleCase(name string) string {
	words := strings.Split(name, "_")
	for i, w := range words {
		switch w {
		case "url", "id", "api":
			words[i] = strings.ToUpper(w)
		default:
			if w != "" {
				words[i] = strings.ToUpper(w[:1]) + w[1:]
			}
		}
	}
	// psa-syncd is a name, spelled so in every summary.
	return strings.Replace(strings.Join(words, " "), "Psa Syncd", "psa-syncd", 1)
}

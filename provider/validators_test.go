package provider

import (
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/types"
)

// The URL checks name a bad value without the password or query secret it
// may hold: url.Parse's error repeats the whole value.
func TestURLChecks_hideSecrets(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		check stringCheck
		value string
	}{
		{httpURL("https://example.com/"), "https://u:SECRET%zz@example.com/"},
		{httpURL("https://example.com/"), "https://example.com/%zz?token=SECRET"},
		{httpURL("https://example.com/"), "u:SECRET@example.com"},
		{connectWiseSite(), "https://u:SECRET%zz@na.myconnectwise.net"},
		{connectWiseSite(), "u:SECRET@na.myconnectwise.net/v2025_1"},
		// One slash short of a host, and a credential in the query
		// under the PSA's own name for it.
		{httpURL("https://example.com/"), "https:/u:SECRET@example.com/"},
		{connectWiseSite(), "https://na.myconnectwise.net/?privatekey=SECRET"},
		{httpURL("https://example.com/"), "example.com/?ApiIntegrationCode=SECRET"},
		// Valid URLs, but Go would send the user information as a basic
		// login of its own: refused at plan time, as psa-syncd refuses it.
		{httpURL("https://example.com/"), "https://u:SECRET@example.com/"},
		{httpURL("https://example.com/"), "https://u@example.com/"},
		{connectWiseSite(), "https://u:SECRET@na.myconnectwise.net"},
		{connectWiseSite(), "u:SECRET@na.myconnectwise.net"},
		// Valid URLs with a secret-named query or fragment parameter:
		// refused, as psa-syncd refuses them.
		{httpURL("https://example.com/"), "https://example.com/?access_token=SECRET"},
		{httpURL("https://example.com/"), "https://example.com/#client_secret=SECRET"},
	} {
		err := tt.check.check(tt.value)
		if err == nil || strings.Contains(err.Error(), "SECRET") {
			t.Errorf("check(%q) = %v, want an error without the secret", tt.value, err)
		}
	}
	// The diagnostic is on the attribute, and says what is wrong.
	var resp validator.StringResponse
	p := path.Root("kaseya_bms").AtName("base_url")
	httpURL(exampleKaseyaBMSBaseURL).ValidateString(t.Context(), validator.StringRequest{Path: p, ConfigValue: types.StringValue("https://api:SECRET@api.bmsemea.kaseya.com/")}, &resp)
	if d := resp.Diagnostics.Errors(); len(d) != 1 || !strings.Contains(d[0].Detail(), "must not include credentials") || strings.Contains(d[0].Detail(), "SECRET") {
		t.Errorf("base_url with a password: %v, want one error saying it must not include credentials, without the password", resp.Diagnostics)
	} else if dp, ok := d[0].(diag.DiagnosticWithPath); !ok || !dp.Path().Equal(p) {
		t.Errorf("base_url with a password: the error is not on %s: %v", p, d[0])
	}
}

// The key validators refuse at plan time what the export refuses at apply
// (export.IDProblem), and whitespace around a key, which psa-syncd would
// never match; each message names the attribute.
func TestKeyValidators(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		v     validator.String
		attr  string
		value string
		want  string // "" when the value is valid
	}{
		{keyPart(), "source", "sophos", ""},
		{keyPart(), "source", "", `source is part of the mapping's key in the mapping export, and the export refuses this value: source is required. Got: ""`},
		{keyPart(), "source", "  ", `source is required`},
		{keyPart(), "source", "sop\x00hos", `source must not contain a NUL byte. Got: "sop\x00hos"`},
		{keyPart(), "source", "sophos ", `source must not begin or end with whitespace.`},
		{keyPart(), "source", "sophos/eu", `source must not contain "/", which separates the parts of the resource's import identifier. Got: "sophos/eu"`},
		{keyLastPart(), "product", "CIXA-MSP", ""},
		{keyLastPart(), "product", "pwb/users", ""},
		{keyLastPart(), "product", "", `product is required`},
		{keyLastPart(), "product", "CIXA\x00MSP", `product must not contain a NUL byte`},
		{keyLastPart(), "customer_id", " cust-1", `customer_id must not begin or end with whitespace. psa-syncd compares it exactly`},
		{keyLastPart(), "customer_id", "cust-1\n", `customer_id must not begin or end with whitespace.`},
		{keyLastPart(), "customer_id", "cust 1", ""},
	} {
		req := validator.StringRequest{Path: path.Root(tt.attr), ConfigValue: types.StringValue(tt.value)}
		var resp validator.StringResponse
		tt.v.ValidateString(t.Context(), req, &resp)
		switch {
		case tt.want == "" && resp.Diagnostics.HasError():
			t.Errorf("%s = %q: got %v, want no error", tt.attr, tt.value, resp.Diagnostics)
		case tt.want == "":
		case resp.Diagnostics.ErrorsCount() != 1:
			t.Errorf("%s = %q: got %v, want one error", tt.attr, tt.value, resp.Diagnostics)
		default:
			d := resp.Diagnostics.Errors()[0]
			if d.Summary() != "Invalid Key" || !strings.Contains(d.Detail(), tt.want) {
				t.Errorf("%s = %q: got %q: %q, want Invalid Key containing %q", tt.attr, tt.value, d.Summary(), d.Detail(), tt.want)
			}
		}
	}
}

// The time zone check refuses at plan time every name psa-syncd refuses,
// whatever zone files the machine running Terraform has: a runner's
// /usr/share/zoneinfo also holds "localtime" (its own zone) and the
// "posix/" and "right/" copies, and a Mac's case-insensitive disk finds
// "europe/rome"; psa-syncd's container knows none of them.
func TestTimezoneString_sameAsDaemon(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]string{
		"Europe/Rome":       "",
		"America/New_York":  "",
		"posix/Europe/Rome": `unknown time zone "posix/Europe/Rome" (want an IANA name such as "Europe/Rome" or "UTC"); did you mean "Europe/Rome"?`,
		"right/Europe/Rome": `did you mean "Europe/Rome"?`,
		"localtime":         `unknown time zone "localtime"`,
		"europe/rome":       `did you mean "Europe/Rome"?`,
	} {
		req := validator.StringRequest{Path: path.Root("timezone"), ConfigValue: types.StringValue(value)}
		var resp validator.StringResponse
		timezoneString().ValidateString(t.Context(), req, &resp)
		switch {
		case want == "" && resp.Diagnostics.HasError():
			t.Errorf("timezone = %q: got %v, want no error", value, resp.Diagnostics)
		case want == "":
		case resp.Diagnostics.ErrorsCount() != 1:
			t.Errorf("timezone = %q: got %v, want one error", value, resp.Diagnostics)
		default:
			if d := resp.Diagnostics.Errors()[0]; d.Summary() != "Invalid Time Zone" || !strings.Contains(d.Detail(), want) {
				t.Errorf("timezone = %q: got %q: %q, want Invalid Time Zone containing %q", value, d.Summary(), d.Detail(), want)
			}
		}
	}
}

// An "Etc/GMT+N" zone is accepted with a warning that its offset has the
// opposite sign: "Etc/GMT+5" bills on UTC-05:00, not UTC+05:00.
func TestTimezoneString_etcOffsetWarns(t *testing.T) {
	t.Parallel()
	for value, want := range map[string]string{
		"Etc/GMT+5":   `"Etc/GMT+5" is UTC-05:00, 5 hours behind UTC`,
		"Etc/GMT-2":   `"Etc/GMT-2" is UTC+02:00, 2 hours ahead of UTC`,
		"Etc/GMT":     "",
		"Europe/Rome": "",
	} {
		req := validator.StringRequest{Path: path.Root("timezone"), ConfigValue: types.StringValue(value)}
		var resp validator.StringResponse
		timezoneString().ValidateString(t.Context(), req, &resp)
		if resp.Diagnostics.HasError() {
			t.Errorf("timezone = %q: got %v, want no error", value, resp.Diagnostics)
			continue
		}
		warnings := resp.Diagnostics.Warnings()
		switch {
		case want == "" && len(warnings) != 0:
			t.Errorf("timezone = %q: got %v, want no warning", value, warnings)
		case want == "":
		case len(warnings) != 1:
			t.Errorf("timezone = %q: got %v, want one warning", value, resp.Diagnostics)
		case warnings[0].Summary() != "Fixed-Offset Time Zone" || !strings.Contains(warnings[0].Detail(), want):
			t.Errorf("timezone = %q: got %q: %q, want Fixed-Offset Time Zone containing %q", value, warnings[0].Summary(), warnings[0].Detail(), want)
		}
	}
}

// TestTitleCase: the summaries of unknown provider attributes spell
// initialisms and psa-syncd as the rest of the docs do.
func TestTitleCase(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"integration_code":    "Integration Code",
		"base_url":            "Base URL",
		"api_version":         "API Version",
		"psa_syncd_url":       "psa-syncd URL",
		"psa_syncd_api_token": "psa-syncd API Token",
	} {
		if got := titleCase(name); got != want {
			t.Errorf("titleCase(%q) = %q, want %q", name, got, want)
		}
	}
}

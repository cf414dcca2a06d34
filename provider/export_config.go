package provider

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// exportClients holds one export.Client per store for the life of the
// provider process. Terraform configures the provider again for every
// command it runs against one process (and terraform-plugin-testing runs
// many), and a Client decodes each version of the export once: sharing it
// keeps a thousand-mapping export from being decoded again per command.
// Every Read still asks the store whether its version is current.
var (
	exportClientsMu sync.Mutex
	exportClients   = map[[sha256.Size]byte]*export.Client{}
)

// exportClient returns the process's Client for the store at url with
// token, opening it on first use.
func exportClient(ctx context.Context, url, token string) (*export.Client, error) {
	key := sha256.Sum256([]byte(url + "\x00" + token)) // the token is not kept in clear
	exportClientsMu.Lock()
	defer exportClientsMu.Unlock()
	if c, ok := exportClients[key]; ok {
		return c, nil
	}
	// URLUser: a psa-syncd store's URL may name a basic_auth_users user,
	// whose basic password the token is sent as (see exportUserToken).
	b, err := export.OpenBackend(ctx, url, export.BackendOptions{Token: token, URLUser: true, HTTPClient: &http.Client{
		Timeout: 60 * time.Second,
		// A psa-syncd URL that redirects fails the plan: the apply's
		// writes are not sent through a redirect.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}})
	if err != nil {
		return nil, err
	}
	c := export.NewClient(b)
	exportClients[key] = c
	return c, nil
}

// exportSettings returns the export store's URL (export_url, or
// export_path, which names a file) and the psa-syncd token. A value in the
// configuration wins over the environment; export_path and export_url
// name the same thing, so giving both at one level is an error.
func exportSettings(config psaProviderModel, diags *diag.Diagnostics) (url, token string) {
	token = stringFromEnv(config.ExportToken, envExportToken)
	if redact.TooShort(token) {
		diags.AddAttributeError(path.Root("export_token"), "Mapping Export Token Too Short",
			shortSecretDetail("mapping export store", "export_token", envExportToken))
		return "", ""
	}
	pathSet, urlSet := !config.ExportPath.IsNull(), !config.ExportURL.IsNull()
	switch {
	case pathSet && urlSet:
		diags.AddAttributeError(path.Root("export_url"), "Conflicting Mapping Export Settings",
			"export_path and export_url both name the mapping export store. Keep export_url only: a path is a valid export_url.")
		return "", ""
	case urlSet:
		return config.ExportURL.ValueString(), token
	case pathSet:
		return config.ExportPath.ValueString(), token
	}
	envPath, envURL := os.Getenv(envExportPath), os.Getenv(envExportURL)
	if envPath != "" && envURL != "" {
		diags.AddError("Conflicting Mapping Export Settings",
			"The "+envExportPath+" and "+envExportURL+" environment variables are both set and both name the mapping export store. "+
				"Unset "+envExportPath+": a path is a valid "+envExportURL+".")
		return "", ""
	}
	if envURL != "" {
		return envURL, token
	}
	return envPath, token
}

// exportUserToken fails the configuration when export_url is a psa-syncd
// URL that names a user (for a listener with basic_auth_users) but no
// export_token is set: the token is sent as that user's basic password,
// and without it every read and write of the export would be refused.
func exportUserToken(diags *diag.Diagnostics, rawURL, token string) {
	if kind, _ := export.Kind(rawURL); kind != export.KindPSASyncd || token != "" {
		return
	}
	if user := urlUser(rawURL); user != "" {
		diags.AddAttributeError(path.Root("export_token"), "Missing Mapping Export Token",
			fmt.Sprintf("export_url (or the %s environment variable) names user %q, for a psa-syncd listener with "+
				"basic_auth_users: the provider sends psa-syncd's API token as that user's basic password, but no token is set. "+
				"Set export_token (or the %s environment variable) to psa-syncd's web.api_token, whose bcrypt hash is the "+
				"user's in basic_auth_users; or take the user out of the URL if the listener asks for no basic credentials.",
				envExportURL, user, envExportToken))
	}
}

// psaSyncdSettings returns psa_syncd_url and psa_syncd_api_token (or
// PSA_SYNCD_URL and PSA_SYNCD_API_TOKEN): the psa-syncd whose read-only
// API the data sources read when it is not the export store. The URL from
// the environment gets the check its validator gives a configured one; a
// token too short to be kept out of an error page that quotes the
// request is refused, as the other credentials are.
func psaSyncdSettings(config psaProviderModel, diags *diag.Diagnostics) (url, token string) {
	url = stringFromEnv(config.PSASyncdURL, envPSASyncdURL)
	if url == "" {
		// The token goes nowhere. PSA_SYNCD_API_TOKEN may be set on a
		// runner for psa-syncd's -web.url commands: not the provider's.
		return "", ""
	}
	token = stringFromEnv(config.PSASyncdAPIToken, envPSASyncdAPIToken)
	if redact.TooShort(token) {
		diags.AddAttributeError(path.Root("psa_syncd_api_token"), "psa-syncd API Token Too Short",
			shortSecretDetail("psa-syncd API", "psa_syncd_api_token", envPSASyncdAPIToken))
		return "", ""
	}
	envValueErrors(diags, path.Empty(), []envCheck{{"psa_syncd_url", config.PSASyncdURL, envPSASyncdURL, psaSyncdURL()}})
	if diags.HasError() {
		return "", ""
	}
	if user := urlUser(url); user != "" && token == "" {
		diags.AddAttributeError(path.Root("psa_syncd_api_token"), "Missing psa-syncd API Token",
			fmt.Sprintf("psa_syncd_url (or the %s environment variable) names user %q, for a psa-syncd listener with "+
				"basic_auth_users: the provider sends psa-syncd's API token as that user's basic password, but no token is set. "+
				"Set psa_syncd_api_token (or the %s environment variable) to psa-syncd's web.api_token, whose bcrypt hash is "+
				"the user's in basic_auth_users; or take the user out of the URL if the listener asks for no basic credentials.",
				envPSASyncdURL, user, envPSASyncdAPIToken))
		return "", ""
	}
	return url, token
}

// urlUser returns the user name in rawURL, "" for none.
func urlUser(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// newPSASyncdReader returns the client of psa-syncd's read-only API at url
// (psa_syncd_url): an HTTPBackend whose ReadAPI alone is used, sending
// token (as a bearer token, or as the basic password of the user the URL
// names, as psa-syncd's -web.url commands do), following no redirect (a
// redirect could send the token to another host) and taking the token out
// of the error pages it quotes.
func newPSASyncdReader(url, token string) (*export.HTTPBackend, error) {
	return export.NewHTTPReader(url, token, &http.Client{
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	})
}

// plainHTTPTokenWarning warns, on attribute attr (a URL setting, from the
// configuration or environment variable env), when the credential of
// tokenAttr would be sent to rawURL over plain http:// to a host that is
// not this machine: psa-syncd's API token then crosses the network in
// clear, and whoever reads it can write the mapping export and run or
// approve psa-syncd's passes. Refusing it would break working set-ups
// (psa-syncd's listener is plain HTTP unless its -web.config.file serves
// TLS, and CI runners often reach it inside a private network), so it is
// a warning, on every command, until the URL is https:// or loopback.
func plainHTTPTokenWarning(diags *diag.Diagnostics, attr, env, tokenAttr, rawURL, token string) {
	if token == "" {
		return
	}
	u, err := url.Parse(rawURL)
	if err != nil || !strings.EqualFold(u.Scheme, "http") || loopbackHost(u.Hostname()) {
		return
	}
	diags.AddAttributeWarning(path.Root(attr), "psa-syncd API Token Sent Over Plain HTTP",
		fmt.Sprintf("%s (or the %s environment variable) is %q: plain http:// to %s, which is not this machine, so %s is sent in "+
			"clear text with every request to it. Anyone who can see the traffic on the way can read psa-syncd's API token and "+
			"with it write the mapping export, run passes and approve held lines. Use psa-syncd's https:// URL (TLS in its "+
			"-web.config.file, or a reverse proxy with TLS in front of it), or reach it through a loopback tunnel "+
			"(http://127.0.0.1:PORT). This is a warning so that existing set-ups keep working.",
			attr, env, export.Redact(rawURL), u.Hostname(), tokenAttr))
}

// summaryPlainHTTPExport is the summary of plainHTTPExportWarning.
const summaryPlainHTTPExport = "Mapping Export Sent Over Plain HTTP"

// plainHTTPExportWarning warns, on export_url (from the configuration or
// environment variable env), when the S3 store's endpoint (its endpoint
// parameter, or the AWS configuration's: see export.S3Backend.Endpoint)
// is plain http:// to a host that is not this machine. SigV4 keeps the
// secret access key off the wire, but the export (every customer,
// company, contract and service mapping) and the session token of
// temporary credentials (AWS_SESSION_TOKEN, a role's, CI OIDC's) cross
// the network in clear, and an answer can be altered on the way. A
// warning for the reasons plainHTTPTokenWarning gives (self-hosted MinIO
// inside a private network works today).
func plainHTTPExportWarning(diags *diag.Diagnostics, env, rawURL, endpoint string) {
	u, err := url.Parse(endpoint)
	if endpoint == "" || err != nil || !strings.EqualFold(u.Scheme, "http") || loopbackHost(u.Hostname()) {
		return
	}
	diags.AddAttributeWarning(path.Root("export_url"), summaryPlainHTTPExport,
		fmt.Sprintf("export_url (or the %s environment variable) is %q, an S3 store whose endpoint %q is plain http:// to %s, "+
			"which is not this machine. Request signing keeps the AWS secret access key off the wire, but the mapping export "+
			"(every customer, company, contract and service mapping) is read and written in clear text, so is the session token "+
			"of temporary AWS credentials (AWS_SESSION_TOKEN, an assumed role's, a CI job's web identity), which works until "+
			"it expires, and an answer can be altered on the way. Use the store's https:// endpoint, or reach it through a "+
			"loopback tunnel (http://127.0.0.1:PORT). This is a warning so that existing set-ups keep working.",
			env, export.Redact(rawURL), endpoint, u.Hostname()))
}

// loopbackHost reports whether host (a URL's, without port or brackets)
// is this machine: localhost, a name under .localhost, or a loopback
// address. Names are not resolved: a name that resolves to a loopback
// address still gets plainHTTPTokenWarning.
func loopbackHost(host string) bool {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

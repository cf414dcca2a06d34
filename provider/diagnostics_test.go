package provider

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// The export errors speak of a file only for a file store, and say what to
// check for the others.
func TestExportErrors_byStore(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		store      string
		read       string
		write      string
		mentionsFS bool
	}{
		{"/srv/psa-mappings.json", "Fix or restore the file", "The file was not changed.", true},
		{"s3://billing/psa-mappings.json?region=eu-west-1", "AWS credentials", "If S3 did not answer", false},
		{"https://psa-syncd.example.com:9810", "export_token is its web.api_token", "If psa-syncd did not answer", false},
	} {
		var diags diag.Diagnostics
		exportReadError(&diags, tt.store, errors.New("boom"))
		exportUpdateError(&diags, "add", "product mapping sophos/CIXA-MSP", tt.store, errors.New("boom"))
		if len(diags) != 2 {
			t.Fatalf("%s: diagnostics = %v, want two", tt.store, diags)
		}
		read, write := diags[0].Detail(), diags[1].Detail()
		if !strings.Contains(read, tt.read) || !strings.Contains(read, tt.store) {
			t.Errorf("%s: read error detail = %q, want it to name the store and contain %q", tt.store, read, tt.read)
		}
		if !strings.Contains(write, tt.write) || !strings.Contains(write, tt.store) {
			t.Errorf("%s: update error detail = %q, want it to name the store and contain %q", tt.store, write, tt.write)
		}
		if got := strings.Contains(read+write, "file"); got != tt.mentionsFS {
			t.Errorf("%s: details mention a file: %v, want %v:\n%s\n%s", tt.store, got, tt.mentionsFS, read, write)
		}
	}
}

// A resource that needs the export names both settings of the store.
func TestRequireStore_namesSettings(t *testing.T) {
	t.Parallel()
	var diags diag.Diagnostics
	if (&providerData{}).requireStore(&diags, "psa_integration") {
		t.Fatal("requireStore = true without a store")
	}
	d := diags[0].Detail()
	for _, want := range []string{"psa_integration", "export_url", envExportURL, "export_path", envExportPath} {
		if !strings.Contains(d, want) {
			t.Errorf("detail = %q, want it to contain %q", d, want)
		}
	}
}

// A request the PSA refuses the API user (a 403 that does not speak of the
// credentials) is a missing permission of that user, not a wrong credential;
// a refused credential still says so.
func TestPSAErrorDetail_forbiddenNamesPermission(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		system psa.System
		want   string
	}{
		{psa.SystemAutotask, "security level and resource permissions"},
		{psa.SystemConnectWise, "security role"},
		{psa.SystemKaseyaBMS, "access to the account"},
	} {
		err := fmt.Errorf("%s: GET Contracts/800: 403 Forbidden: %w", tt.system, psa.ErrForbidden)
		d := psaErrorDetail(tt.system, "Looking up contract 800", err)
		if strings.Contains(d, "refused the credentials") || !strings.Contains(d, tt.want) || !strings.Contains(d, "Looking up contract 800") {
			t.Errorf("%s: detail = %q, want the permission (%q) named, not the credentials", tt.system, d, tt.want)
		}
		d = psaErrorDetail(tt.system, "Looking up contract 800", fmt.Errorf("401 Unauthorized: %w", psa.ErrUnauthorized))
		if !strings.Contains(d, "refused the credentials") {
			t.Errorf("%s: detail of a 401 = %q, want the credentials named", tt.system, d)
		}
	}
}

// A request the client gave up on after waiting for Autotask's thread
// limit, which retries do not count, names the other process and the
// remedies, not max_retries.
func TestPSAErrorDetail_threadLimitWaited(t *testing.T) {
	t.Parallel()
	err := &psa.RateLimitError{System: psa.SystemAutotask, Waited: 5 * time.Minute, Message: "Thread Threshold Exceeded"}
	d := psaErrorDetail(psa.SystemAutotask, "Reading contract 800", err)
	if strings.Contains(d, "max_retries") || !strings.Contains(d, "tracking identifier of its own") || !strings.Contains(d, "still refused after 5m0s") {
		t.Errorf("detail = %q, want the shared thread limit and its remedies, and how long the provider waited", d)
	}
	d = psaErrorDetail(psa.SystemAutotask, "Reading contract 800", &psa.RateLimitError{System: psa.SystemAutotask, Message: "slow down"})
	if !strings.Contains(d, "max_retries") {
		t.Errorf("detail of a 429 after the retries = %q, want max_retries named", d)
	}
	// ConnectWise waits out a read's 429s for a time too: no thread
	// limit, nor another process, to name.
	d = psaErrorDetail(psa.SystemConnectWise, "Reading agreement 800", &psa.RateLimitError{System: psa.SystemConnectWise, Waited: 5 * time.Minute, Message: "Too many requests"})
	if strings.Contains(d, "tracking identifier") || strings.Contains(d, "max_retries") || !strings.Contains(d, "for as long as the provider waits") {
		t.Errorf("detail of a ConnectWise read throttled for 5m = %q, want it throttled for as long as the provider waits", d)
	}
}

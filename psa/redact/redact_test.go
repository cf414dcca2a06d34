package redact_test

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

func TestRedactor_String(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t/with+odd&chars"
	const cred = "acme+pubkey:privkey"
	r := redact.New(secret, cred, "", "ab")
	r.Set("token", "access-token-old")
	r.Set("token", "access-token-123")
	for _, in := range []string{
		"echo: Secret: " + secret,
		"echo: client_secret=" + url.QueryEscape(secret) + "&grant_type=client_credentials",
		"path /x/" + url.PathEscape(secret),
		`{"Secret":"s3cr3t\/with+odd\u0026chars"}`,
		"<pre>Secret: s3cr3t/with+odd&amp;chars</pre>",
		"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte(cred)),
		"Authorization: Basic " + base64.RawURLEncoding.EncodeToString([]byte(cred)),
		"Authorization: Bearer access-token-123",
	} {
		if !r.Contains(strings.Repeat(".", 2*redact.MaxText) + in) {
			t.Errorf("Contains(%q after %d bytes) = false", in, 2*redact.MaxText)
		}
		got := r.String(in)
		if !strings.Contains(got, redact.Placeholder) || strings.Contains(got, "s3cr3t") || strings.Contains(got, "privkey") ||
			strings.Contains(got, "access-token") || strings.Contains(got, base64.RawStdEncoding.EncodeToString([]byte(cred))[:20]) {
			t.Errorf("String(%q) = %q, want every secret replaced", in, got)
		}
	}
	// A request sent before the renewal may answer after it: the token
	// it carried stays redacted for a few renewals, and then is dropped,
	// so that renewing does not grow the Redactor.
	if got := r.String("old access-token-old"); strings.Contains(got, "access-token-old") {
		t.Errorf("String = %q: the token replaced by the last renewal shows", got)
	}
	for i := range 3 {
		r.Set("token", fmt.Sprintf("access-token-new%d", i))
	}
	if got := r.String("old access-token-123"); strings.Contains(got, "access-token-123") {
		t.Errorf("String = %q: the token replaced three renewals ago shows", got)
	}
	if got := r.String("old access-token-old"); !strings.Contains(got, "access-token-old") {
		t.Errorf("String = %q: the token replaced four renewals ago is still redacted (the sets should be bounded)", got)
	}
	// Values under 4 bytes are not secrets: "ab" must not blank out words.
	if got := r.String("about abacus"); got != "about abacus" {
		t.Errorf("String with a 2-byte secret = %q, want it unchanged", got)
	}
}

func TestRedactor_truncates(t *testing.T) {
	t.Parallel()
	var nilRedactor *redact.Redactor
	long := strings.Repeat("é", redact.MaxText)
	got := nilRedactor.String(long)
	if len(got) > redact.MaxText || !strings.HasSuffix(got, "…[truncated]") || !strings.HasPrefix(got, "éé") {
		t.Errorf("String of %d bytes = %d bytes %q…, want at most %d ending in the mark", len(long), len(got), got[:10], redact.MaxText)
	}
	if got := nilRedactor.String("short"); got != "short" {
		t.Errorf("String(short) = %q", got)
	}
}

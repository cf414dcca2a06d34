package redact_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

func TestURL(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"", ""},
		{"/srv/psa-mappings.json", "/srv/psa-mappings.json"},
		{"s3://bucket/key?region=eu-west-1", "s3://bucket/key?region=eu-west-1"},
		{"https://user:SECRET@host:9810/x", "https://user:xxxxx@host:9810/x"},
		// A nested URL's password, in place, the other parameters as written.
		{"s3://bucket/key?region=eu&endpoint=https://minio:SECRET@minio:9000&use_path_style=true",
			"s3://bucket/key?region=eu&endpoint=https%3A%2F%2Fminio%3Axxxxx%40minio%3A9000&use_path_style=true"},
		{"s3://bucket/key?endpoint=https%3A%2F%2Fminio%3ASECRET%40minio%3A9000", "s3://bucket/key?endpoint=https%3A%2F%2Fminio%3Axxxxx%40minio%3A9000"},
		{"https://host/x?token=SECRET&a=1", "https://host/x?token=xxxxx&a=1"},
		{"postgres://u:SECRET@db/psa?sslpassword=SECRET", "postgres://u:xxxxx@db/psa?sslpassword=xxxxx"},
		// Not URLs: a bad escape, a password with "/", user information
		// without a scheme, a bad escape in a nested endpoint.
		{"s3://AKIAXXXX:wJalrSECRET%zz@bucket/key", "s3://xxxxx@bucket/xxxxx"},
		{"s3://AKIAXXXX:wJalr/SECRET@bucket/key", "s3://xxxxx@bucket/xxxxx"},
		{"prometheus:SECRET@host:9810", "xxxxx@host:9810"},
		{"s3://bucket/key?endpoint=https://minio:SECRET%zz@minio", "s3://bucket/key?endpoint=xxxxx"},
		{"s3://bucket/k%zz?endpoint=https://minio:SECRET@minio", "s3://xxxxx@minio"},
		{"127.0.0.1:9810", "127.0.0.1:9810"},
		{"bms kaseya.com", "bms kaseya.com"},
		// One slash short: url.Parse reads the user information as the
		// path of a URL without a host. A path with an "@" but no ":"
		// before it (a file) stays as written.
		{"https:/u:SECRET@psa.example/", "xxxxx@psa.example/xxxxx"},
		{"https:/u:SEC/RET@psa.example/", "xxxxx@psa.example/xxxxx"},
		{"file:///srv/psa@prod/m.json", "file:///srv/psa@prod/m.json"},
		{"C:/Users/ops@example/m.json", "C:/Users/ops@example/m.json"},
		// The credentials of the PSAs and vendors by their own names, and
		// a fragment's parameters as a query's (an OAuth token).
		{"https://host/?ApiIntegrationCode=SECRET&x=1", "https://host/?ApiIntegrationCode=xxxxx&x=1"},
		{"https://host/?privatekey=SECRET&public_key=SECRET&clientId=SECRET", "https://host/?privatekey=xxxxx&public_key=xxxxx&clientId=xxxxx"},
		{"https://host/?pwd=SECRET&pw=SECRET&code=SECRET&sessionid=SECRET", "https://host/?pwd=xxxxx&pw=xxxxx&code=xxxxx&sessionid=xxxxx"},
		{"https://host/x#access_token=SECRET&state=1", "https://host/x#access_token=xxxxx&state=1"},
		{"https://host/x#section-2", "https://host/x#section-2"},
		{"https://host/x?tenant=a&zone=b", "https://host/x?tenant=a&zone=b"},
	} {
		got := redact.URL(tt.in)
		if got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if strings.Contains(got, "SECRET") {
			t.Errorf("URL(%q) = %q shows the secret", tt.in, got)
		}
	}
}

func TestURLError(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"s3://AKIAXXXX:wJalrSECRET%zz@bucket/key",
		"s3://AKIAXXXX:SECRET/with/slash@bucket/key",
		"https://host:SECRET/x",
		"https://[SECRET/x",
		"https://SECRET\x7f@host/",
		"9SECRET:9810",
	} {
		_, err := url.Parse(in)
		if err == nil {
			t.Fatalf("url.Parse(%q) returned no error", in)
		}
		got := redact.URLError(err)
		if got == nil || got.Error() == "" || strings.Contains(got.Error(), "SECRET") {
			t.Errorf("URLError(url.Parse(%q)) = %v, want the reason without the secret", in, got)
		}
	}
	if got := redact.URLError(nil); got != nil {
		t.Errorf("URLError(nil) = %v", got)
	}
}

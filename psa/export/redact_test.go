package export

import (
	"strings"
	"testing"
)

// Credentials written into an export URL are never shown: not when the URL
// does not parse (url.Parse's error repeats the whole input), not in a
// nested endpoint, and not in the store's name that logs and the daemon's
// API show.
func TestOpenBackend_secretsNotShown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ url, err, name string }{
		{url: "s3://AKIAXXXX:wJalrSECRET%zz@bucket/key", err: `export: invalid S3 URL "s3://xxxxx@bucket/xxxxx": invalid URL escape`},
		{url: "s3://AKIAXXXX:wJalr/SECRET@bucket/key", err: `export: invalid S3 URL "s3://xxxxx@bucket/xxxxx": invalid port after host`},
		{url: "s3://bucket/key?endpoint=minio:SECRET@minio:9000", err: `export: S3 URL "s3://bucket/key?endpoint=xxxxx%40minio%3A9000": endpoint must be an http:// or https:// URL, got "xxxxx@minio:9000"`},
		{url: "file://u:SECRET%zz@host/x.json", err: `export: invalid file URL "file://xxxxx@host/xxxxx": invalid URL escape`},
		{url: "file://u:SECRET@host/x.json", err: `export: file URL "file://u:xxxxx@host/x.json" names host "host": only local files are supported (file:///path)`},
		{url: "https://u:SECRET%zz@psa-syncd:9810", err: `export: psa-syncd URL "https://xxxxx@psa-syncd:9810" must be http(s)://host[:port]`},
		{url: "s3://AKIAXXXX:wJalrSECRET@bucket/key", err: `export: S3 URL "s3://AKIAXXXX:xxxxx@bucket/key" must not carry credentials, which S3 would never see: give them through the AWS environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile=, or a role)`},
		// One slash short: it was a file of that name, and the store's
		// name (a psa_integration's id in the Terraform state, messages)
		// the URL with its password.
		{url: "https:/ci:SECRET@psa-syncd:9810", err: `export: "xxxxx@psa-syncd:9810" lacks the "//" after its scheme: write https://host:port, s3://bucket/key or file:///path (a file's path does not start with a URL scheme)`},
		{url: "S3:bucket/key", err: `export: "S3:bucket/key" lacks the "//" after its scheme: write https://host:port, s3://bucket/key or file:///path (a file's path does not start with a URL scheme)`},
		{url: "C:/Users/ops/psa-mappings.json", name: "C:/Users/ops/psa-mappings.json"},
		{url: "s3://bucket/key?endpoint=https://minio:SECRET@minio:9000&use_path_style=true",
			err: `export: S3 URL "s3://bucket/key?endpoint=https%3A%2F%2Fminio%3Axxxxx%40minio%3A9000&use_path_style=true": endpoint "https://minio:xxxxx@minio:9000" must not carry credentials, which the store would never see: give them through the AWS environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile=, or a role)`},
	} {
		cerr := CheckURL(tt.url)
		b, err := OpenBackend(t.Context(), tt.url, BackendOptions{})
		for _, e := range []error{cerr, err} {
			if tt.err == "" && e != nil {
				t.Errorf("%q: unexpected error %v", tt.url, e)
			}
			if tt.err != "" && (e == nil || e.Error() != tt.err) {
				t.Errorf("%q: error %v, want %q", tt.url, e, tt.err)
			}
		}
		if err == nil && strings.Contains(b.String(), "SECRET") {
			t.Errorf("%q: String() = %q shows the secret", tt.url, b.String())
		}
		if tt.name != "" && err == nil && b.String() != tt.name {
			t.Errorf("%q: String() = %q, want %q", tt.url, b.String(), tt.name)
		}
		if got := Redact(tt.url); strings.Contains(got, "SECRET") {
			t.Errorf("Redact(%q) = %q", tt.url, got)
		}
	}
}

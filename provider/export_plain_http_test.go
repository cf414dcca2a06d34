package provider

import (
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// configureWarnings configures a provider of e with attrs set on top of
// its configuration (export_path dropped when attrs sets export_url) and
// returns the warnings of summary; an error fails the test.
func configureWarnings(t *testing.T, e *testEnv, attrs map[string]string, summary string) []*tfprotov6.Diagnostic {
	t.Helper()
	server := NewProtocol6(New("test")())()
	schemas, err := server.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
	if err != nil || len(schemas.Diagnostics) > 0 {
		t.Fatalf("GetProviderSchema: %v %v", err, schemas.Diagnostics)
	}
	typ := schemas.Provider.ValueType()
	var config map[string]tftypes.Value
	if err := providerConfigValue(t, typ, e).As(&config); err != nil {
		t.Fatal(err)
	}
	config = maps.Clone(config)
	for k, v := range attrs {
		config[k] = str(v)
	}
	if _, ok := attrs["export_url"]; ok {
		config["export_path"] = tftypes.NewValue(tftypes.String, nil)
	}
	resp, err := server.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{TerraformVersion: "1.5.7",
		Config: dynamic(t, typ, tftypes.NewValue(typ, config))})
	if err != nil {
		t.Fatal(err)
	}
	var warned []*tfprotov6.Diagnostic
	for _, d := range resp.Diagnostics {
		if d.Severity == tfprotov6.DiagnosticSeverityError {
			t.Fatalf("ConfigureProvider: %s", diagnosticsText(resp.Diagnostics))
		}
		if d.Summary == summary {
			warned = append(warned, d)
		}
	}
	return warned
}

// TestConfigure_plainHTTPS3Endpoint: an S3 export store whose endpoint
// is plain http:// to another host warns on export_url (the export and a
// session token cross the network in clear); https://, a loopback
// endpoint and AWS's own endpoint do not. The warning names the URL
// without the endpoint's password.
func TestConfigure_plainHTTPS3Endpoint(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, psa.SystemAutotask)
	const s3URL = "s3://psa/mappings/psa-mappings.json?region=eu-west-1&use_path_style=true"
	for _, tc := range []struct {
		name, url string
		warn      bool
	}{
		{"http endpoint", s3URL + "&endpoint=http://minio.internal:9000", true},
		{"https endpoint", s3URL + "&endpoint=https://minio.internal:9000", false},
		{"loopback endpoint", s3URL + "&endpoint=http://127.0.0.1:9000", false},
		{"localhost endpoint", s3URL + "&endpoint=http://localhost:9000", false},
		{"AWS", s3URL, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			warned := configureWarnings(t, e, map[string]string{"export_url": tc.url}, summaryPlainHTTPExport)
			if !tc.warn {
				if len(warned) > 0 {
					t.Errorf("warnings %s, want none", diagnosticsText(warned))
				}
				return
			}
			if len(warned) != 1 || warned[0].Attribute == nil ||
				warned[0].Attribute.String() != tftypes.NewAttributePath().WithAttributeName("export_url").String() ||
				!strings.Contains(warned[0].Detail, "http://minio.internal:9000") || !strings.Contains(warned[0].Detail, "clear text") ||
				!strings.Contains(warned[0].Detail, "session token") {
				t.Errorf("warnings %s, want one on export_url naming the endpoint", diagnosticsText(warned))
			}
		})
	}
}

// TestConfigure_plainHTTPS3EndpointEnv: the endpoint the AWS
// configuration gives (AWS_ENDPOINT_URL_S3), which the SDK uses when the
// URL has no endpoint parameter, warns too. Not parallel: it sets the
// environment.
func TestConfigure_plainHTTPS3EndpointEnv(t *testing.T) {
	e := newTestEnv(t, psa.SystemAutotask)
	t.Setenv("AWS_ENDPOINT_URL_S3", "http://ceph.internal:7480")
	warned := configureWarnings(t, e, map[string]string{"export_url": "s3://psa/psa-mappings.json?region=eu-west-1"}, summaryPlainHTTPExport)
	if len(warned) != 1 || !strings.Contains(warned[0].Detail, "http://ceph.internal:7480") {
		t.Errorf("warnings %s, want one naming the endpoint of AWS_ENDPOINT_URL_S3", diagnosticsText(warned))
	}
}

package provider

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-log/tflog"
	"github.com/hashicorp/terraform-plugin-log/tflogtest"
)

func TestTflogHandler(t *testing.T) {
	t.Parallel()

	var out bytes.Buffer
	ctx := maskSecrets(tflogtest.RootLogger(context.Background(), &out), []string{"hunter2"})
	logger := newBackendLogger(ctx).With("system", "autotask").WithGroup("req")
	logger.Warn("Retrying Autotask request", "attempt", 2, "err", errors.New("429 for secret hunter2"))
	logger.Debug("Discovered Autotask zone", "zone", "webservices5")

	entries, err := tflogtest.MultilineJSONDecode(&out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("got %d log entries, want 2: %v", len(entries), entries)
	}
	warn := entries[0]
	if warn["@level"] != "warn" || warn["@message"] != "Retrying Autotask request" {
		t.Errorf("first entry = %v, want a warn line", warn)
	}
	if warn["system"] != "autotask" || warn["req.attempt"] != float64(2) {
		t.Errorf("first entry fields = %v, want system and req.attempt", warn)
	}
	if got, _ := warn["req.err"].(string); strings.Contains(got, "hunter2") || got == "" {
		t.Errorf("req.err = %q, want the error with the secret masked", got)
	}
	if entries[1]["@level"] != "debug" {
		t.Errorf("second entry level = %v, want debug", entries[1]["@level"])
	}
}

func TestSilenceDiscardedLogs(t *testing.T) {
	t.Parallel()

	for _, tc := range []struct {
		name string
		env  map[string]string
		want map[string]string // the variables set
	}{
		{
			name: "terraform discards provider logs",
			env:  map[string]string{},
			want: map[string]string{"TF_LOG_SDK": "off", "TF_LOG_SDK_PROTO": "off", "TF_LOG_SDK_FRAMEWORK": "off", "TF_LOG_PROVIDER_PSA": "off"},
		},
		{
			name: "a level set for one logger is kept",
			env:  map[string]string{"TF_LOG_SDK_FRAMEWORK": "debug"},
			want: map[string]string{"TF_LOG_SDK": "off", "TF_LOG_SDK_PROTO": "off", "TF_LOG_PROVIDER_PSA": "off"},
		},
		{
			name: "TF_LOG shows them",
			env:  map[string]string{"TF_LOG": "debug"},
			want: map[string]string{},
		},
		{
			name: "TF_LOG_PROVIDER shows them",
			env:  map[string]string{"TF_LOG_PROVIDER": "trace"},
			want: map[string]string{},
		},
		{
			name: "TF_LOG_PROVIDER=off hides them whatever TF_LOG says",
			env:  map[string]string{"TF_LOG": "trace", "TF_LOG_PROVIDER": "OFF"},
			want: map[string]string{"TF_LOG_SDK": "off", "TF_LOG_SDK_PROTO": "off", "TF_LOG_SDK_FRAMEWORK": "off", "TF_LOG_PROVIDER_PSA": "off"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			set := map[string]string{}
			err := SilenceDiscardedLogs(func(k string) string { return tc.env[k] }, func(k, v string) error {
				set[k] = v
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(set, tc.want) {
				t.Errorf("SilenceDiscardedLogs set %v, want %v", set, tc.want)
			}
		})
	}
}

// TestConfigureConnectWise_masksClientID: the provider's log lines mask
// the ConnectWise client id (Sensitive, and a credential the clients
// redact) as they mask the keys, as a field named client_id and inside any
// text.
func TestConfigureConnectWise_masksClientID(t *testing.T) {
	t.Parallel()
	const clientID = "3f9c2a1e-cw-client-id"
	attrTypes := map[string]attr.Type{}
	for _, name := range []string{"site", "company_id", "public_key", "private_key", "client_id", "base_url", "codebase", "api_version"} {
		attrTypes[name] = types.StringType
	}
	block, diags := types.ObjectValueFrom(context.Background(), attrTypes, connectwiseProviderModel{
		Site: types.StringValue("na.myconnectwise.net"), CompanyID: types.StringValue("acme"),
		PublicKey: types.StringValue("pub-key-1234"), PrivateKey: types.StringValue("priv-key-5678"),
		ClientID: types.StringValue(clientID), BaseURL: types.StringNull(), Codebase: types.StringNull(), APIVersion: types.StringNull(),
	})
	if diags.HasError() {
		t.Fatal(diags)
	}
	_, secrets := configureConnectWise(context.Background(), block, &diags)
	if diags.HasError() {
		t.Fatal(diags)
	}
	var out bytes.Buffer
	ctx := maskSecrets(tflogtest.RootLogger(context.Background(), &out), secrets)
	tflog.Debug(ctx, "ConnectWise answered 401 for clientId "+clientID, map[string]any{"client_id": clientID, "err": "echo: clientId: " + clientID})
	newBackendLogger(ctx).Warn("Retrying ConnectWise request", "err", errors.New("echo: clientId: "+clientID))
	if strings.Contains(out.String(), clientID) || !strings.Contains(out.String(), "Retrying ConnectWise request") {
		t.Errorf("log lines show the client id:\n%s", out.String())
	}
}

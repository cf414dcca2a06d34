package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// Secrets written into the config file, in the right place or the wrong
// one, never show in Load's errors or in the export store's name, which
// logs and the unauthenticated 404 of GET /api/v1/export show. The errors
// still name the setting.
func TestLoad_errorsHideSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tt := range []struct{ yml, secret, names string }{
		{"export_url: \"s3://AKIAXXXX:wJalrSECRET%zz@bucket/key\"\n", "wJalrSECRET", "export_url: export: invalid S3 URL"},
		{"export_url: \"s3://AKIAXXXX:wJalr/SECRET@bucket/key\"\n", "SECRET", "export_url: export: invalid S3 URL"},
		{"export_url: \"s3://bucket/key?endpoint=minio:MINIOSECRET@minio:9000\"\n", "MINIOSECRET", "export_url: export: S3 URL"},
		{"export_path: m.json\nstate_dir: s\nstate: \"pw=hunter2\"\n", "hunter2", "line 3: state: cannot unmarshal !!str into daemon.StateConfig"},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: [hunter2]\n", "hunter2", "line 4: web.api_token: cannot unmarshal !!seq into daemon.Secret"},
		{"export_path: m.json\nstate_dir: s\nsource: {type: file, file: {path: [abcdefghijklmnop]}}\n", "abcdefg", "line 3: source.file.path: cannot unmarshal !!seq into string"},
		// Secrets as PSAs generate them, starting with a YAML indicator:
		// yaml names an undefined anchor (the secret) and no line, or
		// takes a tag or an anchor and loads the rest of the line.
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: *Xy4Kp9SECRETvalue\n", "SECRET", `line 4: a value that starts with "*" is read as an alias`},
		{"export_path: m.json\nstate_dir: s\npsa:\n  system: autotask\n  autotask:\n    username: u\n    secret: *Xy4Kp9SECRETvalue\n    integration_code: abcdefgh\n", "SECRET", `line 7: a value that starts with "*"`},
		{"export_path: m.json\nstate_dir: s\nstate:\n  driver: postgres\n  url: *Xy4Kp9SECRET@db/psa\n", "SECRET", "line 5: found character that cannot start any token"},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: !Xy4Kp9SECRET\n", "SECRET", `line 4: api_token: a secret must be a plain string, but in YAML a value that starts with "!" is a tag; quote the value`},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: !Xy4Kp9SECRET rest\n", "SECRET", `line 4: api_token: a secret must be a plain string, but in YAML a value that starts with "!" is a tag`},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: &Xy4Kp9SECRET rest\n", "SECRET", `line 4: api_token: a secret must be a plain string, but in YAML a value that starts with "&" is an anchor`},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: &Xy4Kp9SECRET [*Xy4Kp9SECRET]\n", "SECRET", `line 4: api_token: a secret must be a plain string, but in YAML a value that starts with "&" is an anchor`},
		{"export_path: m.json\nstate_dir: s\npsa:\n  system: autotask\n  autotask:\n    username: &Xy4Kp9SECRET u\n    secret: *Xy4Kp9SECRET\n", "SECRET", `line 7: secret: a secret must be a plain string, but in YAML a value that starts with "*" is an alias`},
		{"export_path: m.json\nstate_dir: s\nweb:\n  api_token: &Xy4Kp9SECRET\n  api_token_file: *Xy4Kp9SECRET\n", "SECRET", `line 4: api_token: a secret must be a plain string, but in YAML a value that starts with "&" is an anchor`},
	} {
		p := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(p, []byte(tt.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, nil)
		if err == nil {
			t.Fatalf("Load(%q) returned no error", tt.yml)
		}
		if strings.Contains(err.Error(), tt.secret) || !strings.Contains(err.Error(), tt.names) {
			t.Errorf("Load(%q) error\n got: %v\nwant it to contain %q and not %q", tt.yml, err, tt.names, tt.secret)
		}
	}
}

// TestLoad_quotedSecrets: a secret that starts with a YAML indicator loads
// whole once quoted, and an explicit !!str tag is a plain string.
func TestLoad_quotedSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for yml, want := range map[string]Secret{
		"'*Xy4Kp9:secret'":  "*Xy4Kp9:secret",
		`"!Xy4Kp9 #secret"`: "!Xy4Kp9 #secret",
		"'&it''s'":          "&it's",
		"!!str 12345":       "12345",
		"12345":             "12345",
	} {
		p := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(p, []byte("export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t}}\nweb:\n  api_token: "+yml+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, nil)
		if err != nil {
			t.Errorf("api_token: %s: %v", yml, err)
			continue
		}
		if c.Web.APIToken != want {
			t.Errorf("api_token: %s loaded %q, want %q", yml, string(c.Web.APIToken), string(want))
		}
	}
}

func TestConfig_ExportName_hidesEndpointPassword(t *testing.T) {
	t.Parallel()
	const store = "s3://bucket/key?endpoint=https://minio:MINIOSECRET@minio:9000"
	c := &Config{ExportURL: store}
	if got, want := c.ExportName(), "s3://bucket/key?endpoint=https%3A%2F%2Fminio%3Axxxxx%40minio%3A9000"; got != want {
		t.Errorf("ExportName() = %q, want %q", got, want)
	}
	// The unauthenticated 404 of a daemon that has no export yet names
	// no store at all (once it named this one, without its password).
	e := dtSetup(t, dtOptions{noExport: true})
	cfg := *e.d.cfg.Load()
	cfg.ExportURL, cfg.ExportPath = store, ""
	e.d.cfg.Store(&cfg)
	rec := dtServe(t, e.d, http.MethodGet, "/api/v1/export", "", "")
	if rec.Code != http.StatusNotFound || strings.Contains(rec.Body.String(), "MINIOSECRET") || strings.Contains(rec.Body.String(), "minio") {
		t.Errorf("GET /api/v1/export = %d %s, want 404 naming neither the store nor its password", rec.Code, rec.Body.String())
	}
}

// TestConfig_String_hidesSecrets: what String prints (and %v of a Config)
// holds no secret of a URL setting or of ConnectWise's key pair.
func TestConfig_String_hidesSecrets(t *testing.T) {
	t.Parallel()
	c := &Config{
		ExportURL: "s3://bucket/key?endpoint=https://minio:MINIOSECRET@minio:9000",
		State:     StateConfig{AdvertiseURL: "https://automation:ADVERTISESECRET@a:9810"},
		PSA: PSAConfig{
			Autotask:    &AutotaskConfig{BaseURL: "https://u:ATSECRET@webservices.example.com", ZoneLookupURL: "https://u:ZONESECRET@zone.example.com"},
			ConnectWise: &ConnectWiseConfig{PublicKey: "CWPUBLICKEYSECRET", PrivateKey: "priv-key-1234", BaseURL: "https://u:CWURLSECRET@cw.example.com", ClientID: "CWCLIENTIDSECRET"},
			KaseyaBMS:   &KaseyaBMSConfig{BaseURL: "https://u:BMSSECRET@bms.example.com"},
		},
		Source: SourceConfig{Sophos: &SophosConfig{AuthURL: "https://u:AUTHSECRET@id.example.com", APIURL: "https://u:APISECRET@api.example.com"}},
	}
	s := c.String()
	for _, secret := range []string{"MINIOSECRET", "ADVERTISESECRET", "ATSECRET", "ZONESECRET", "CWPUBLICKEYSECRET", "priv-key-1234", "CWURLSECRET", "CWCLIENTIDSECRET", "BMSSECRET", "AUTHSECRET", "APISECRET"} {
		if strings.Contains(s, secret) {
			t.Errorf("Config.String() shows %s:\n%s", secret, s)
		}
	}
	if !strings.Contains(s, "public_key: <secret>") || !strings.Contains(s, "client_id: <secret>") || !strings.Contains(s, "advertise_url: https://automation:xxxxx@a:9810") {
		t.Errorf("Config.String() does not show the redacted settings:\n%s", s)
	}
	if c.PSA.ConnectWise.PublicKey != "CWPUBLICKEYSECRET" || c.ExportURL != "s3://bucket/key?endpoint=https://minio:MINIOSECRET@minio:9000" {
		t.Error("Config.String() changed the config it prints")
	}
}

// TestLoad_urlErrorsHideSecrets: a URL setting refused at load is quoted
// without its secrets, however it holds them: user information one slash
// short of a host, or a query parameter named as the PSA names the
// credential. The message still names the setting and the host.
func TestLoad_urlErrorsHideSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const head = "export_path: m.json\nstate_dir: s\nsource: {type: file, file: {path: u.csv}}\n"
	for _, tt := range []struct{ yml, want string }{
		{head + "psa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de, base_url: 'https:/u:Hunter2SECRET@webservices5.autotask.net/'}}\n",
			`psa.autotask.base_url: "xxxxx@webservices5.autotask.net/xxxxx" is not an http(s) URL`},
		{head + "psa: {system: connectwise, connectwise: {site: 'https://na.myconnectwise.net/?privatekey=Hunter2SECRET', company_id: c, public_key: pubkey, private_key: privkey, client_id: clientid}}\n",
			`psa.connectwise.site: "https://na.myconnectwise.net/?privatekey=xxxxx" must not have a path`},
		{"export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
			"source: {type: sophos, sophos: {client_id: cid1, client_secret: s3cr3t, auth_url: 'https:/cid1:Hunter2SECRET@id.sophos.com/api/v2/oauth2/token'}}\n",
			`source.sophos.auth_url: "xxxxx@id.sophos.com/xxxxx" is not an http(s) URL`},
		// A secret in the query or fragment of a vendor's URL: Go's
		// errors, the retries' log lines and an echo quote the URL whole.
		{head + "psa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de, base_url: 'https://webservices5.autotask.net/atservicesrest/?ApiIntegrationCode=Hunter2SECRET'}}\n",
			`psa.autotask.base_url: "https://webservices5.autotask.net/atservicesrest/?ApiIntegrationCode=xxxxx" must not carry a secret in its query or fragment; give the credentials in psa.autotask.username, secret and integration_code`},
		{"export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
			"source: {type: sophos, sophos: {client_id: cid1, client_secret: s3cr3t, auth_url: 'https://id.sophos.com/api/v2/oauth2/token?client_secret=Hunter2SECRET'}}\n",
			`source.sophos.auth_url: "https://id.sophos.com/api/v2/oauth2/token?client_secret=xxxxx" must not carry a secret in its query or fragment`},
		{"export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n" +
			"source: {type: sophos, sophos: {client_id: cid1, client_secret: s3cr3t, api_url: 'https://api.central.sophos.com/#access_token=Hunter2SECRET'}}\n",
			`source.sophos.api_url: "https://api.central.sophos.com/#access_token=xxxxx" must not carry a secret in its query or fragment`},
		// Not a file of that name, which every message would name.
		{"export_url: 'https:/ci:Hunter2SECRET@psa-syncd.internal:9810'\nstate_dir: s\nsource: {type: file, file: {path: u.csv}}\n" +
			"psa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n",
			`export_url: export: "xxxxx@psa-syncd.internal:9810" lacks the "//" after its scheme`},
		{"export_path: 'https:/ci:Hunter2SECRET@psa-syncd.internal:9810'\nstate_dir: s\nsource: {type: file, file: {path: u.csv}}\n" +
			"psa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\n",
			`export_path: export: "xxxxx@psa-syncd.internal:9810" lacks the "//" after its scheme`},
	} {
		p := filepath.Join(dir, "c.yml")
		if err := os.WriteFile(p, []byte(tt.yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, func(string) string { return "" })
		if err == nil || strings.Contains(err.Error(), "Hunter2") || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Load(%q) = %v, want an error containing %q, without the secret", tt.yml, err, tt.want)
		}
	}
}

// TestLoad_advertiseURL: state.advertise_url, which every instance reads
// and a standby shows without authentication, takes no credentials, query
// or fragment, and the error does not show the password.
func TestLoad_advertiseURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for url, want := range map[string]string{
		"https://psa-syncd-a.internal:9810":                           "",
		"https://automation:APITOKENSECRET@psa-syncd-a.internal:9810": `state.advertise_url: "https://xxxxx@psa-syncd-a.internal:9810" must not include credentials`,
		"https://psa-syncd-a.internal:9810/?token=APITOKENSECRET":     "state.advertise_url: https://psa-syncd-a.internal:9810/?token=xxxxx must not have a query or a fragment",
		"https://psa-syncd-a.internal:9810/#x":                        "must not have a query or a fragment",
		"https://":                                                    `state.advertise_url: "https://" is not an http(s) URL with a host`,
	} {
		p := filepath.Join(dir, "c.yml")
		yml := "export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t}}\nstate:\n  advertise_url: " + url + "\n"
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("advertise_url %s: %v", url, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "SECRET")):
			t.Errorf("advertise_url %s: error %v, want one containing %q, without the secret", url, err, want)
		}
	}
}

// TestLoad_postgresURLReason: a state.url the driver cannot parse fails
// the config load (so `psa-syncd validate` does not call it valid first)
// with the parser's reason, and never with the password.
func TestLoad_postgresURLReason(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for url, want := range map[string]string{
		"postgres://psa:S3CRETpw@db/psa?sslmode=bogus":      "connection string: failed to configure TLS (sslmode is invalid)",
		"postgres://psa:S3CRETpw@db:notaport/psa":           "connection string: invalid port",
		"postgres://psa:S3CRET/pw@db/psa":                   "invalid port (in a URL, a password with /, @, : or % must be percent-encoded)",
		"postgres://psa:S3CRET%zzpw@db/psa":                 "invalid percent-encoded token in password",
		"host=db password=S3CRETpw connect_timeout=abc":     "invalid connect_timeout",
		"postgres://psa:S3CRET%2Fpw@db/psa?sslmode=require": "",
	} {
		p := filepath.Join(dir, "c.yml")
		yml := "export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t}}\nstate:\n  driver: postgres\n  url: '" + url + "'\n"
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, nil)
		switch {
		case want == "" && err != nil:
			t.Errorf("state.url %s: %v", url, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "S3CRET")):
			t.Errorf("state.url %s: error %v, want one containing %q, without the password", url, err, want)
		}
	}
}

// TestLoad_urlFileHoldingTheURL: a connection string given in
// state.url_file instead of state.url was read as a file of that name, and
// the error quoted the "path", password included.
func TestLoad_urlFileHoldingTheURL(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, v := range []string{"postgres://psa:S3CRETpw@db/psa?sslmode=require", "host=db user=psa password=S3CRETpw"} {
		p := filepath.Join(dir, "c.yml")
		yml := "export_path: m.json\nstate_dir: s\npsa: {system: autotask, autotask: {username: u, secret: s3cr3t, integration_code: c0de}}\nsource: {type: sophos, sophos: {client_id: client-id, client_secret: s3cr3t}}\nstate:\n  driver: postgres\n  url_file: '" + v + "'\n"
		if err := os.WriteFile(p, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Load(p, nil)
		if err == nil || strings.Contains(err.Error(), "S3CRET") || !strings.Contains(err.Error(), "state.url_file: the value is a connection string") {
			t.Errorf("state.url_file %s: error %v, want one saying it is a connection string, without the password", v, err)
		}
	}
}

// TestLoad_shortSecrets: a secret shorter than redact.MinSecret, which the
// redactor would leave in the PSA's errors (logs, the status page, the
// API), is refused whether it is given in the setting, its file or the
// environment; the error names the setting and never the value. One of
// redact.MinSecret characters loads.
func TestLoad_shortSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const short, long = "Q7z", "Q7zW"
	cfgWriteFile(t, filepath.Join(dir, "short"), short+"\n")
	const head = "export_path: x.json\nstate_dir: s\n"
	const fileSource = "source: {type: file, file: {path: u.csv}}\n"
	at := func(secret, code string) string {
		return "psa:\n  system: autotask\n  autotask: {username: u" + secret + code + "}\n"
	}
	const atSecret, atCode = ", secret: at-secret", ", integration_code: at-code"
	cw := func(pub, priv, id string) string {
		return "psa:\n  system: connectwise\n  connectwise: {site: api-na.myconnectwise.net, company_id: msp" + pub + priv + id + "}\n"
	}
	const cwPub, cwPriv, cwID = ", public_key: pubkey", ", private_key: privkey", ", client_id: client-id"
	bms := func(pw string) string {
		return "psa:\n  system: kaseya_bms\n  kaseya_bms: {hostname: bmsemea.kaseya.com, username: u, tenant: t" + pw + "}\n"
	}
	sophos := func(s string) string {
		return "source:\n  type: sophos\n  sophos: {client_id: abcd" + s + "}\n"
	}
	for _, tt := range []struct {
		name, yml string
		env       map[string]string
		key       string
	}{
		{"autotask secret", head + at(", secret: "+short, atCode) + fileSource, nil, "psa.autotask.secret"},
		{"autotask secret_file", head + at(", secret_file: short", atCode) + fileSource, nil, "psa.autotask.secret"},
		{"autotask secret env", head + at("", atCode) + fileSource, map[string]string{"PSA_AUTOTASK_SECRET": short + "\n"}, "psa.autotask.secret"},
		{"autotask integration_code", head + at(atSecret, ", integration_code: "+short) + fileSource, nil, "psa.autotask.integration_code"},
		{"autotask integration_code env", head + at(atSecret, "") + fileSource, map[string]string{"PSA_AUTOTASK_INTEGRATION_CODE": short}, "psa.autotask.integration_code"},
		{"connectwise public_key", head + cw(", public_key: "+short, cwPriv, cwID) + fileSource, nil, "psa.connectwise.public_key"},
		{"connectwise public_key env", head + cw("", cwPriv, cwID) + fileSource, map[string]string{"PSA_CONNECTWISE_PUBLIC_KEY": short}, "psa.connectwise.public_key"},
		{"connectwise private_key", head + cw(cwPub, ", private_key: "+short, cwID) + fileSource, nil, "psa.connectwise.private_key"},
		{"connectwise private_key_file", head + cw(cwPub, ", private_key_file: short", cwID) + fileSource, nil, "psa.connectwise.private_key"},
		{"connectwise client_id", head + cw(cwPub, cwPriv, ", client_id: "+short) + fileSource, nil, "psa.connectwise.client_id"},
		{"kaseya_bms password", head + bms(", password: "+short) + fileSource, nil, "psa.kaseya_bms.password"},
		{"kaseya_bms password env", head + bms("") + fileSource, map[string]string{"PSA_KASEYA_BMS_PASSWORD": short}, "psa.kaseya_bms.password"},
		{"sophos client_secret", head + at(atSecret, atCode) + sophos(", client_secret: "+short), nil, "source.sophos.client_secret"},
		{"sophos client_secret_file", head + at(atSecret, atCode) + sophos(", client_secret_file: short"), nil, "source.sophos.client_secret"},
		{"sophos client_secret env", head + at(atSecret, atCode) + sophos(""), map[string]string{"PSA_SOPHOS_CLIENT_SECRET": short}, "source.sophos.client_secret"},
		{"web api_token", head + at(atSecret, atCode) + fileSource + "web: {api_token: " + short + "}\n", nil, "web.api_token"},
		{"web api_token_file", head + at(atSecret, atCode) + fileSource + "web: {api_token_file: short}\n", nil, "web.api_token"},
		{"web api_token env", head + at(atSecret, atCode) + fileSource, map[string]string{"PSA_SYNCD_API_TOKEN": short}, "web.api_token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yml")
			cfgWriteFile(t, p, tt.yml)
			_, err := Load(p, cfgEnv(tt.env))
			if err == nil {
				t.Fatalf("Load accepted a %d-character %s", len(short), tt.key)
			}
			if !strings.Contains(err.Error(), tt.key+" (or ") || !strings.Contains(err.Error(), "shorter than 4 characters") || strings.Contains(err.Error(), short) {
				t.Errorf("error %q: want it to name %s and the length, and not to show the value", err, tt.key)
			}
			// The same setting with one more character loads.
			longYML := strings.ReplaceAll(tt.yml, ": "+short, ": "+long)
			longEnv := map[string]string{}
			for k, v := range tt.env {
				longEnv[k] = strings.ReplaceAll(v, short, long)
			}
			if strings.Contains(tt.yml, "_file: short") {
				longYML = strings.ReplaceAll(tt.yml, "_file: short", "_file: long")
				cfgWriteFile(t, filepath.Join(dir, "long"), long+"\n")
			}
			cfgWriteFile(t, p, longYML)
			if _, err := Load(p, cfgEnv(longEnv)); err != nil {
				t.Errorf("a %d-character %s: %v", len(long), tt.key, err)
			}
		})
	}
}

// TestLoad_examplePlaceholderSecret: the placeholder of the Kubernetes
// example's Secret (examples/deploy/kubernetes/secret.yaml), long enough to
// pass the length check, is refused as every secret, in the setting, its
// file or the environment, in any case: a Secret created from files and
// then replaced by kubectl apply of secret.yaml would otherwise start
// psa-syncd with CHANGE-ME as its API token. The error names the setting.
func TestLoad_examplePlaceholderSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgWriteFile(t, filepath.Join(dir, "placeholder"), "CHANGE-ME\n")
	const head = "export_path: x.json\nstate_dir: s\n"
	const fileSource = "source: {type: file, file: {path: u.csv}}\n"
	const at = "psa:\n  system: autotask\n  autotask: {username: u, secret: at-secret, integration_code: at-code}\n"
	for _, tt := range []struct {
		name, yml string
		env       map[string]string
		key       string
	}{
		{"web api_token_file", head + at + fileSource + "web: {api_token_file: placeholder}\n", nil, "web.api_token"},
		{"web api_token env", head + at + fileSource, map[string]string{"PSA_SYNCD_API_TOKEN": "CHANGE-ME\n"}, "web.api_token"},
		{"web api_token lower case", head + at + fileSource + "web: {api_token: change-me}\n", nil, "web.api_token"},
		{"autotask secret", head + "psa:\n  system: autotask\n  autotask: {username: u, secret: CHANGE-ME, integration_code: at-code}\n" + fileSource, nil, "psa.autotask.secret"},
		{"sophos client_secret_file", head + at + "source:\n  type: sophos\n  sophos: {client_id: abcd, client_secret_file: placeholder}\n", nil, "source.sophos.client_secret"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yml")
			cfgWriteFile(t, p, tt.yml)
			_, err := Load(p, cfgEnv(tt.env))
			if err == nil || !strings.Contains(err.Error(), tt.key+" (or ") || !strings.Contains(err.Error(), "the placeholder of the examples' Secret") {
				t.Errorf("Load: %v, want an error naming %s and the examples' placeholder", err, tt.key)
			}
		})
	}
}

// TestConfig_credentials_connectWiseClientID: the ConnectWise clientId,
// which the provider and the ConnectWise client treat as a credential, is
// one of those a standby takes out of the active instance's answers too
// (its status page, its API), as psa-syncd's log of the configuration
// hides it: it was left out of both, the one place that showed it.
func TestConfig_credentials_connectWiseClientID(t *testing.T) {
	t.Parallel()
	const clientID = "5f0c2d1e-7a4b-4c3d-9e8f-0a1b2c3d4e5f"
	c := &Config{PSA: PSAConfig{ConnectWise: &ConnectWiseConfig{CompanyID: "acme", PublicKey: "pubkey", PrivateKey: "privkey", ClientID: clientID}}}
	if got := redact.New(c.credentials()...).String("echo: clientId: " + clientID); strings.Contains(got, clientID) {
		t.Errorf("redacted by the configuration's credentials: %q, want the client id out", got)
	}
}

// TestLoadState_readsTheStateSettingsOnly: LoadState, for backup and ledger
// run by hand, reads no secret file but the state's (the others may be
// systemd credentials that exist only while the service runs), and still
// decodes the whole file strictly and checks the state settings.
func TestLoadState_readsTheStateSettingsOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgWriteFile(t, filepath.Join(dir, "state-url"), "postgres://psa@db.example:5432/psa_syncd\n")
	const rest = "psa:\n  system: autotask\n  autotask: {username: u, secret_file: /run/credentials/psa-syncd.service/autotask-secret, integration_code_file: missing}\n" +
		"source: {type: file, file: {path: u.csv}}\nweb: {api_token_file: api-token}\n"
	for _, tt := range []struct {
		name, yml, err string
	}{
		{"sqlite", "export_path: x.json\nstate_dir: s\n" + rest, ""},
		{"postgres", "export_path: x.json\nstate:\n  driver: postgres\n  url_file: state-url\n" + rest, ""},
		{"state url unreadable", "export_path: x.json\nstate:\n  driver: postgres\n  url_file: no-such-file\n" + rest, "state.url_file: "},
		{"no state_dir", "export_path: x.json\n" + rest, "state_dir is required"},
		{"unknown key", "export_path: x.json\nstate_dir: s\nstate_dri: x\n" + rest, "state_dri"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yml")
			cfgWriteFile(t, p, tt.yml)
			if _, err := Load(p, nil); err == nil {
				t.Fatal("Load with unreadable secret files: no error")
			}
			c, err := LoadState(p, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("LoadState: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadState: %v", err)
			}
			if c.Web.APITokenFile != filepath.Join(dir, "api-token") {
				t.Errorf("web.api_token_file = %q, want it absolute (for the hint of a locked database)", c.Web.APITokenFile)
			}
			switch db := c.State.Database(c.StateDir); tt.name {
			case "postgres":
				if db.URL != "postgres://psa@db.example:5432/psa_syncd" {
					t.Error("LoadState did not read state.url_file")
				}
			default:
				if db.Path != filepath.Join(dir, "s") {
					t.Errorf("the state database's path = %q, want state_dir made absolute", db.Path)
				}
			}
		})
	}
}

// TestLoadStateExport_readsTheExportSettingsToo: LoadStateExport, for status
// run by hand, reads the state's settings and the export's (export_path made
// absolute; export_token_file for another psa-syncd as the store, the
// export's one secret) and psa.system, which the export is checked against,
// and no other secret file.
func TestLoadStateExport_readsTheExportSettingsToo(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgWriteFile(t, filepath.Join(dir, "export-token"), "export-token-0123456789\n")
	const rest = "state_dir: s\npsa:\n  system: autotask\n  autotask: {username: u, secret_file: /run/credentials/psa-syncd.service/autotask-secret, integration_code_file: missing}\n" +
		"source: {type: file, file: {path: u.csv}}\nweb: {api_token_file: /run/credentials/psa-syncd.service/api-token}\n"
	for _, tt := range []struct {
		name, yml, err string
	}{
		{"file", "export_path: x.json\n" + rest, ""},
		{"self", "export_url: self\n" + rest, ""},
		{"remote", "export_url: https://psa-syncd.example:9810\nexport_token_file: export-token\n" + rest, ""},
		{"remote token unreadable", "export_url: https://psa-syncd.example:9810\nexport_token_file: no-such-file\n" + rest, "export_token_file: "},
		{"no export", rest, "export_path or export_url is required"},
		{"unknown system", "export_path: x.json\n" + strings.Replace(rest, "system: autotask", "system: halopsa", 1), "psa.system: unknown system"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yml")
			cfgWriteFile(t, p, tt.yml)
			c, err := LoadStateExport(p, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("LoadStateExport: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadStateExport: %v", err)
			}
			if c.StateDir != filepath.Join(dir, "s") {
				t.Errorf("state_dir = %q, want it absolute", c.StateDir)
			}
			switch tt.name {
			case "file":
				if c.ExportPath != filepath.Join(dir, "x.json") {
					t.Errorf("export_path = %q, want it absolute", c.ExportPath)
				}
			case "remote":
				if c.ExportToken != "export-token-0123456789" {
					t.Error("LoadStateExport did not read export_token_file")
				}
			}
		})
	}
}

// TestLoadStateMonth_readsWhichMonthTooNoSecret: LoadStateMonth, for
// set-by-hand by hand, checks what says which month has ended (timezone,
// schedule, policies) besides LoadStateExport's settings, and reads no PSA,
// source or API secret.
func TestLoadStateMonth_readsWhichMonthTooNoSecret(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const rest = "export_url: self\nstate_dir: s\npsa:\n  system: autotask\n  autotask: {username: u, secret_file: /run/credentials/psa-syncd.service/autotask-secret, integration_code_file: missing}\n" +
		"source: {type: file, file: {path: u.csv}}\nweb: {api_token_file: /run/credentials/psa-syncd.service/api-token}\n"
	for _, tt := range []struct {
		name, yml, err string
	}{
		{"ok", rest + "timezone: Europe/Rome\npolicies: {usage_period: previous}\n", ""},
		{"bad timezone", rest + "timezone: Europe/Nowhere\n", "timezone: "},
		{"bad schedule", rest + "schedule: sometimes\n", `schedule "sometimes"`},
		{"bad usage period", rest + "policies: {usage_period: last}\n", "usage_period"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yml")
			cfgWriteFile(t, p, tt.yml)
			c, err := LoadStateMonth(p, nil)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("LoadStateMonth: %v, want an error with %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("LoadStateMonth: %v", err)
			}
			if c.Location().String() != "Europe/Rome" || c.Policies.UsagePeriod != usage.UsagePeriodPrevious {
				t.Errorf("timezone %v, usage_period %q; want Europe/Rome, previous", c.Location(), c.Policies.UsagePeriod)
			}
		})
	}
}

// TestLoadStatePSA_readsThePSASecretsOnly: LoadStatePSA, for rebind by
// hand, resolves the psa section's secrets besides the state's, and not the
// source's, the export's or the API's; a PSA secret it cannot read fails.
func TestLoadStatePSA_readsThePSASecretsOnly(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfgWriteFile(t, filepath.Join(dir, "autotask-secret"), "at-secret-0123456789\n")
	cfgWriteFile(t, filepath.Join(dir, "autotask-code"), "at-code-0123456789\n")
	const rest = "export_url: https://psa-syncd.example:9810\nexport_token_file: /run/credentials/psa-syncd.service/export-token\nstate_dir: s\n" +
		"source: {type: sophos, sophos: {client_id: c, client_secret_file: /run/credentials/psa-syncd.service/sophos-client-secret}}\n" +
		"web: {api_token_file: /run/credentials/psa-syncd.service/api-token}\n"
	p := filepath.Join(dir, "ok.yml")
	cfgWriteFile(t, p, rest+"psa:\n  system: autotask\n  autotask: {username: u, secret_file: autotask-secret, integration_code_file: autotask-code}\n")
	c, err := LoadStatePSA(p, nil)
	if err != nil {
		t.Fatalf("LoadStatePSA: %v", err)
	}
	if string(c.PSA.Autotask.Secret) != "at-secret-0123456789" || string(c.PSA.Autotask.IntegrationCode) != "at-code-0123456789" {
		t.Error("LoadStatePSA did not read the Autotask secret files")
	}
	if c.Source.Sophos.ClientSecret != "" || c.Web.APIToken != "" || c.ExportToken != "" {
		t.Error("LoadStatePSA read a secret that is not the PSA's")
	}
	p = filepath.Join(dir, "missing.yml")
	cfgWriteFile(t, p, rest+"psa:\n  system: autotask\n  autotask: {username: u, secret_file: /run/credentials/psa-syncd.service/autotask-secret, integration_code_file: autotask-code}\n")
	if _, err := LoadStatePSA(p, nil); err == nil || !strings.Contains(err.Error(), "psa.autotask.secret_file") {
		t.Errorf("LoadStatePSA with the PSA secret unreadable: %v, want an error naming psa.autotask.secret_file", err)
	}
}

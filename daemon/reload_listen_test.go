package daemon

import (
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"
)

// With psa-syncd run -web.listen-address, a reload keeps the flag's
// address as the running one: it neither warns that web.listen_address
// changed (the first SIGHUP did, although nothing had) nor reports the
// file's address, even when the file's address did change.
func TestDaemon_Reload_keepsListenAddressOverride(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	e := dtSetup(t, dtOptions{daemonOpts: Options{
		Logger:        slog.New(slog.NewTextHandler(&logs, nil)),
		ListenAddress: ":9810",
	}})
	if got := e.d.cfg.Load().Web.ListenAddress; got != ":9810" {
		t.Fatalf("after New, web.listen_address = %q, want the override :9810", got)
	}
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(e.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dtWrite(t, e.cfgPath, strings.Replace(string(raw), "listen_address: 127.0.0.1:0", "listen_address: 127.0.0.1:9999", 1))
	if err := e.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logs.String(), "listen_address") {
		t.Errorf("a reload with -web.listen-address logged a restart warning:\n%s", logs.String())
	}
	if got := e.d.cfg.Load().Web.ListenAddress; got != ":9810" {
		t.Errorf("after a reload, web.listen_address = %q, want the override :9810", got)
	}
}

package main

import (
	"os"
	"strings"
	"testing"
)

// TestRun_reload: psa-syncd reload -web.url has the daemon read its config
// file and the export again (POST /-/reload), as SIGHUP does, which in a
// container without a shell (kubectl exec) nothing else can send: it says
// the daemon took them (exit 0), or prints the daemon's refusal naming the
// key at fault (exit 1, the daemon keeps what it runs). It needs the API
// token and -web.url.
func TestRun_reload(t *testing.T) {
	t.Parallel()
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	conf := string(must(os.ReadFile(cfg)))
	base := startDaemon(t, cfg)

	code, stdout, stderr := runCmd(t, "reload", "-web.url", base, "-web.token-file", tokenFile)
	if code != 0 || stdout != "Reloaded config and mapping export.\n" {
		t.Errorf("reload: exit %d\nstdout: %s\nstderr: %s\nwant 0 and the daemon's answer", code, stdout, stderr)
	}
	writeFile(t, cfg, conf+"schedule: every fortnight\n")
	code, stdout, stderr = runCmd(t, "reload", "-web.url", base, "-web.token-file", tokenFile)
	if code != 1 || stdout != "" || !strings.Contains(stderr, "500") || !strings.Contains(stderr, "schedule") {
		t.Errorf("reload of a broken config file: exit %d\nstdout: %s\nstderr: %s\nwant 1 and the daemon's refusal naming the key", code, stdout, stderr)
	}
	writeFile(t, cfg, conf)
	if code, stdout, stderr = runCmd(t, "reload", "-web.url", base); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("reload without the token: exit %d\nstdout: %s\nstderr: %s\nwant 1 and the daemon's 401", code, stdout, stderr)
	}
	if code, _, stderr = runCmd(t, "reload", "-web.token-file", tokenFile); code != 2 || !strings.Contains(stderr, "-web.url") {
		t.Errorf("reload without -web.url: exit %d, stderr %q; want 2, a usage error", code, stderr)
	}
}

package main

import (
	"crypto/x509"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"go.yaml.in/yaml/v3"
)

const deployDir = "../../../examples/deploy"

// systemdAnalyze returns the path of systemd-analyze; the GNUmakefile
// installs Debian's systemd package for it when it is missing.
func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Fatalf("systemd-analyze is needed to check the unit (make test installs Debian's systemd package): %v", err)
	}
	return p
}

// TestDeploySystemd_unit checks examples/deploy/systemd/psa-syncd.service
// with systemd's own tools: `systemd-analyze verify` (syntax, directives,
// the executable) with ExecStart pointing at a freshly built psa-syncd, and
// `systemd-analyze security --offline`, whose exposure rating must stay
// "OK" (at most 2.0 of 10).
func TestDeploySystemd_unit(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=/usr/local/bin/psa-syncd run ") {
		t.Fatal("the unit's ExecStart does not run /usr/local/bin/psa-syncd run")
	}
	// ProcSubset=pid would gain little exposure score, but it hides
	// /proc/stat, whose btime the process collector needs: without it
	// process_start_time_seconds disappears silently, and the alert
	// PsaSyncDaemonRestarting, which counts its changes, can never fire.
	if regexp.MustCompile(`(?m)^ProcSubset=pid\s*$`).Match(unit) {
		t.Error("the unit sets ProcSubset=pid, which hides /proc/stat: process_start_time_seconds vanishes and PsaSyncDaemonRestarting never fires")
	}
	// systemd kills the process TimeoutStopSec after SIGTERM: it must
	// leave the shutdown timeout, then a Kaseya BMS post already sent
	// (usage.SentWriteGrace; cut off, its line waits for an operator), and
	// a margin to record how the pass ended.
	if m := regexp.MustCompile(`(?m)^TimeoutStopSec=(\S+)\s*$`).FindSubmatch(unit); m == nil {
		t.Error("the unit sets no TimeoutStopSec: systemd's default of 90s kills psa-syncd before a pass stopped at the shutdown timeout has let a Kaseya BMS post finish")
	} else if d, err := time.ParseDuration(string(m[1])); err != nil || d < daemon.DefaultShutdownTimeout+usage.SentWriteGrace+10*time.Second {
		t.Errorf("TimeoutStopSec=%s (%v): want at least the shutdown timeout %s plus the %s a Kaseya BMS post already sent is given plus 10s",
			m[1], err, daemon.DefaultShutdownTimeout, usage.SentWriteGrace)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-syncd.service")
	writeFile(t, path, strings.ReplaceAll(string(unit), "/usr/local/bin/psa-syncd", binary))

	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err = exec.Command(analyze, "security", "--offline=true", "--no-pager", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for psa-syncd\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("systemd-analyze security printed no exposure level:\n%s", out)
	}
	if level, _ := strconv.ParseFloat(string(m[1]), 64); level > 2.0 {
		t.Errorf("exposure level %.1f, want at most 2.0:\n%s", level, out)
	}
}

// TestDeploySystemd_config loads the unit's psa-syncd.yml the way the
// service would: every *_file setting is a credential the unit loads, and
// state_dir is its StateDirectory.
func TestDeploySystemd_config(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	const credDir = "/run/credentials/psa-syncd.service/"
	creds := regexp.MustCompile(`(?m)^LoadCredential=([a-z-]+):/etc/psa-syncd/credentials/([a-z-]+)$`).FindAllStringSubmatch(string(unit), -1)
	loaded := map[string]bool{}
	for _, c := range creds {
		if c[1] != c[2] {
			t.Errorf("LoadCredential=%s:.../%s: name the credential after its file", c[1], c[2])
		}
		loaded[c[1]] = true
	}
	used := regexp.MustCompile(`_file: `+regexp.QuoteMeta(credDir)+`([a-z-]+)`).FindAllStringSubmatch(string(cfg), -1)
	if len(used) != 4 {
		t.Errorf("psa-syncd.yml reads %d credentials, want 4 (Autotask secret and integration code, Sophos secret, API token)", len(used))
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "credentials"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, u := range used {
		if !loaded[u[1]] {
			t.Errorf("psa-syncd.yml reads credential %s, which the unit does not load", u[1])
		}
		writeFile(t, filepath.Join(dir, "credentials", u[1]), "secret-"+u[1]+"\n")
	}
	if !strings.Contains(string(unit), "\nStateDirectory=psa-syncd\n") || !strings.Contains(string(cfg), "\nstate_dir: /var/lib/psa-syncd\n") {
		t.Error("state_dir is not the unit's StateDirectory (/var/lib/psa-syncd)")
	}
	local := strings.ReplaceAll(string(cfg), credDir, filepath.Join(dir, "credentials")+"/")
	writeFile(t, filepath.Join(dir, "psa-syncd.yml"), local)
	c, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatal(err)
	}
	if got := string(c.Web.APIToken); got != "secret-api-token" {
		t.Errorf("web.api_token from its credential = %q", got)
	}
	// A throw-away CI runner cannot write a file on the VM.
	if c.ExportStore() == daemon.StoreFile {
		t.Errorf("psa-syncd.yml reads the export from the file %s, which a CI job cannot write: use export_url self or s3://", c.ExportName())
	}
}

// TestDeploySystemd_s3 checks the S3 alternative that the example shows
// commented out: psa-syncd.yml's export_url s3://... loads, and the unit's
// two lines that hand the AWS SDK a shared credentials file as a systemd
// credential (so that no access key is in the environment under
// DynamicUser, where there is no ~/.aws) pass `systemd-analyze verify`
// once uncommented, keeping the credential's name after its file.
func TestDeploySystemd_s3(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	const (
		load = "#LoadCredential=aws:/etc/psa-syncd/credentials/aws\n"
		env  = "#Environment=AWS_SHARED_CREDENTIALS_FILE=%d/aws\n"
	)
	if !strings.Contains(string(unit), load+env) {
		t.Fatalf("the unit does not show the S3 credential lines\n%s%s", load, env)
	}
	s3unit := strings.NewReplacer(load, load[1:], env, env[1:], "/usr/local/bin/psa-syncd", binary).Replace(string(unit))
	dir := t.TempDir()
	path := filepath.Join(dir, "psa-syncd.service")
	writeFile(t, path, s3unit)
	out, err := exec.Command(analyze, "verify", path).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify with the S3 credential lines: %v\n%s", err, out)
	}

	cfg, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.yml"))
	if err != nil {
		t.Fatal(err)
	}
	alt := regexp.MustCompile(`(?m)^#(export_url: s3://\S+)$`).FindSubmatch(cfg)
	if alt == nil {
		t.Fatal("psa-syncd.yml shows no commented export_url: s3://... alternative")
	}
	s3cfg := regexp.MustCompile(`(?m)^export_url: .*$`).ReplaceAll(cfg, alt[1])
	s3cfg = []byte(strings.ReplaceAll(string(s3cfg), "_file: /run/credentials/psa-syncd.service/", "_file: "+dir+"/"))
	for _, f := range []string{"autotask-secret", "autotask-integration-code", "sophos-client-secret", "api-token"} {
		writeFile(t, filepath.Join(dir, f), "secret\n")
	}
	writeFile(t, filepath.Join(dir, "psa-syncd.yml"), string(s3cfg))
	c, err := daemon.Load(filepath.Join(dir, "psa-syncd.yml"), func(string) string { return "" })
	if err != nil {
		t.Fatalf("psa-syncd.yml with its S3 alternative: %v", err)
	}
	if c.ExportStore() != daemon.StoreS3 {
		t.Errorf("the S3 alternative's store is %s, want s3", c.ExportStore())
	}
}

// TestDeploySystemd_installCommands: the unit's head comment installs it
// from the directory the release archive was extracted to, so each file it
// installs is at that path in the archive (.goreleaser.yml's psa-syncd
// archive keeps the repository's paths) and goes where the unit reads it:
// the binary where ExecStart runs it, the configuration where -config.file
// names it, and one credential file for each LoadCredential= line. (The
// commands once named psa-syncd.yml and psa-syncd.service in the current
// directory, where the archive has neither.)
func TestDeploySystemd_installCommands(t *testing.T) {
	t.Parallel()
	const root = "../../.."
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	release, err := os.ReadFile(filepath.Join(root, ".goreleaser.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, archive, _ := strings.Cut(string(release), `name_template: "psa-syncd_`)
	archive, _, _ = strings.Cut(archive, "\nchecksum:")
	var globs []string
	for _, m := range regexp.MustCompile(`(?m)^ +- (\S+)$`).FindAllStringSubmatch(archive, -1) {
		globs = append(globs, m[1])
	}
	inArchive := func(path string) bool {
		for _, g := range globs {
			if ok, _ := filepath.Match(g, path); ok {
				return true
			}
		}
		return false
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=(\S+) run -config\.file=(\S+)`).FindStringSubmatch(string(unit))
	if exec == nil {
		t.Fatal("the unit's ExecStart is not `BINARY run -config.file=FILE`")
	}
	want := map[string]string{
		"psa-syncd":                                 exec[1],
		"examples/deploy/systemd/psa-syncd.yml":     exec[2],
		"examples/deploy/systemd/psa-syncd.service": "/etc/systemd/system/psa-syncd.service",
	}
	if tls := regexp.MustCompile(`(?m)^#ExecStart=\S+ run -config\.file=\S+ -web\.config\.file=(\S+)$`).FindStringSubmatch(string(unit)); tls != nil {
		want["examples/deploy/systemd/web-config.yml"] = tls[1]
	}
	installed := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#\s+install (?:-D )?-m \d+ (\S+) (\S+)`).FindAllStringSubmatch(string(unit), -1) {
		src, dst := m[1], m[2]
		if !strings.Contains(src, "/") && src != "psa-syncd" {
			continue // the operator's own TLS certificate and key (TestDeploySystemd_tls)
		}
		installed[src] = true
		if w, ok := want[src]; !ok || dst != w {
			t.Errorf("the unit's comment installs %s as %s; want %v, each where the unit reads it", src, dst, want)
		}
		if src == "psa-syncd" {
			continue // the binary, at the archive's top
		}
		if _, err := os.Stat(filepath.Join(root, src)); err != nil || !inArchive(src) {
			t.Errorf("the unit's comment installs %s, which the release archive does not hold there (%v; archive files %q)", src, err, globs)
		}
	}
	if len(installed) != len(want) {
		t.Errorf("the unit's comment installs %v; want %v", slices.Sorted(maps.Keys(installed)), slices.Sorted(maps.Keys(want)))
	}
	loop := regexp.MustCompile(`(?m)^#.*for f in ([a-z -]+); do\n#.*> "(\S+)/\$f"`).FindStringSubmatch(string(unit))
	if loop == nil {
		t.Fatal("the unit's comment has no loop writing the credential files")
	}
	var creds []string
	for _, m := range regexp.MustCompile(`(?m)^LoadCredential=([^:]+):(\S+)$`).FindAllStringSubmatch(string(unit), -1) {
		if m[2] != loop[2]+"/"+m[1] {
			t.Errorf("LoadCredential=%s:%s: want the file %s/%s the comment writes", m[1], m[2], loop[2], m[1])
		}
		creds = append(creds, m[1])
	}
	if written := strings.Fields(loop[1]); !slices.Equal(written, creds) {
		t.Errorf("the comment writes the credential files %q; the unit loads %q", written, creds)
	}
}

// TestDeploySystemd_oneStartDropIn: README's procedure for a command that
// needs the service stopped (rebind, -state.allow-restore,
// -state.allow-empty) runs it as the service, through a runtime drop-in,
// so that it reads the credentials that exist only inside the service. The
// drop-in passes `systemd-analyze verify` over the unit, replaces
// ExecStart with a command of the unit's binary and configuration, whose
// flags (and those of the variants the README gives) that command takes,
// and the procedure removes it before the service starts again.
func TestDeploySystemd_oneStartDropIn(t *testing.T) {
	t.Parallel()
	analyze := systemdAnalyze(t)
	readme := string(must(os.ReadFile("../../../README.md")))
	i, j := strings.Index(readme, "\n### systemd\n"), strings.Index(readme, "\n### Container image\n")
	if i < 0 || j < i {
		t.Fatal("README.md has no systemd section")
	}
	section := readme[i:j]
	const dropInDir = "/run/systemd/system/psa-syncd.service.d/"
	m := regexp.MustCompile(`(?s)\ncat > ` + regexp.QuoteMeta(dropInDir) + `(\S+\.conf) <<'EOF'\n(.*?)\nEOF\n(.*?)\n` + "```").FindStringSubmatch(section)
	if m == nil {
		t.Fatalf("README.md's systemd section writes no drop-in into %s", dropInDir)
	}
	name, dropIn, after := m[1], m[2], m[3]
	if !strings.Contains(after, "rm "+dropInDir+name+"\nsystemctl daemon-reload\nsystemctl start psa-syncd") {
		t.Errorf("the procedure does not remove %s (and reload systemd) before starting psa-syncd again:\n%s", name, after)
	}
	unit := string(must(os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))))
	execStart := regexp.MustCompile(`(?m)^ExecStart=(\S+) run (-config\.file=\S+)$`).FindStringSubmatch(unit)
	if execStart == nil {
		t.Fatal("the unit's ExecStart is not `psa-syncd run -config.file=...`")
	}
	once := regexp.MustCompile(`(?m)^ExecStart=(\S+) ([a-z-]+)((?: -\S+)*)$`).FindStringSubmatch(dropIn)
	if once == nil || !strings.Contains(dropIn, "\nExecStart=\n") {
		t.Fatalf("the drop-in does not reset ExecStart and set a psa-syncd command:\n%s", dropIn)
	}
	if once[1] != execStart[1] || !strings.Contains(once[3], " "+execStart[2]) {
		t.Errorf("the drop-in runs %s%s, want the unit's binary %s with its %s", once[1], once[3], execStart[1], execStart[2])
	}

	// Each command and its flags, the drop-in's and the variants'.
	cmds := [][]string{append([]string{once[2]}, strings.Fields(once[3])...)}
	for _, v := range regexp.MustCompile("`(sync [^`]*)`").FindAllStringSubmatch(strings.Join(strings.Fields(section), " "), -1) {
		cmds = append(cmds, strings.Fields(v[1]))
	}
	variants := map[string]bool{}
	for _, c := range cmds {
		help, _ := exec.Command(binary, c[0], "-h").CombinedOutput()
		for _, a := range c[1:] {
			if a == "..." {
				continue
			}
			flag, _, _ := strings.Cut(a, "=")
			if !regexp.MustCompile(`(?m)^  ` + regexp.QuoteMeta(flag) + `\b`).Match(help) {
				t.Errorf("psa-syncd %s has no flag %s (README's systemd procedure):\n%s", c[0], flag, help)
			}
			variants[flag] = true
		}
	}
	for _, f := range []string{"-state.allow-restore", "-state.allow-empty"} {
		if !variants[f] {
			t.Errorf("README's systemd procedure gives no command with %s", f)
		}
	}

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "psa-syncd.service"), strings.ReplaceAll(unit, execStart[1], binary))
	if err := os.Mkdir(filepath.Join(dir, "psa-syncd.service.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "psa-syncd.service.d", name), strings.ReplaceAll(dropIn, execStart[1], binary)+"\n")
	out, err := exec.Command(analyze, "verify", filepath.Join(dir, "psa-syncd.service")).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify of the unit with README's drop-in: %v\n%s", err, out)
	}
}

// TestDeploySystemd_tls: the unit's listener serves the export API, which
// CI runners write with the API token, so the example ships a TLS web
// configuration next to the unit. The unit's commented ExecStart= gives
// run the file where the head comment installs it, its commented
// LoadCredential= loads the key the file names from the credentials
// directory, the unit with those lines in place of the plain ExecStart=
// passes `systemd-analyze verify`, and the file, with a certificate and
// key where it names them, is one that run can use (check
// -web.config.file).
func TestDeploySystemd_tls(t *testing.T) {
	t.Parallel()
	unit, err := os.ReadFile(filepath.Join(deployDir, "systemd", "psa-syncd.service"))
	if err != nil {
		t.Fatal(err)
	}
	// The TLS ExecStart= and, on the next line, the TLS key's LoadCredential=.
	m := regexp.MustCompile(`(?m)^#(ExecStart=\S+ run -config\.file=\S+ -web\.config\.file=(\S+))\n#(LoadCredential=([a-z-]+):(\S+))$`).FindStringSubmatch(string(unit))
	if m == nil {
		t.Fatal("the unit has no commented ExecStart= with -web.config.file followed by the LoadCredential= of the TLS key")
	}
	execLine, webPath, keyLine, keyName, keySource := m[1], m[2], m[3], m[4], m[5]
	if !strings.Contains(string(unit), "#   install -m 0644 examples/deploy/systemd/web-config.yml "+webPath+"\n") {
		t.Errorf("the unit's head comment does not install web-config.yml as %s, which its TLS ExecStart= reads", webPath)
	}
	if !regexp.MustCompile(`(?m)^#\s+install -m 0600 \S+ ` + regexp.QuoteMeta(keySource) + `$`).Match(unit) {
		t.Errorf("the unit's head comment does not install the TLS key as %s (root only), which its LoadCredential= loads", keySource)
	}

	webConfig, err := os.ReadFile(filepath.Join(deployDir, "systemd", "web-config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	web := readWebConfigTLS(t, webConfig)
	if want := "/run/credentials/psa-syncd.service/" + keyName; web.KeyFile != want {
		t.Errorf("web-config.yml's key_file is %q, want the credential the unit loads, %s", web.KeyFile, want)
	}
	if web.CertFile == "" || !strings.Contains(string(unit), " "+web.CertFile+"\n") {
		t.Errorf("web-config.yml's cert_file %q is not where the unit's head comment installs the certificate", web.CertFile)
	}
	checkWebConfigUsable(t, webConfig, web)

	tlsUnit := regexp.MustCompile(`(?m)^ExecStart=.*\n`).ReplaceAllString(string(unit), "")
	tlsUnit = strings.NewReplacer("#"+execLine, execLine, "#"+keyLine, keyLine).Replace(tlsUnit)
	tlsUnit = strings.ReplaceAll(tlsUnit, "/usr/local/bin/psa-syncd", binary)
	path := filepath.Join(t.TempDir(), "psa-syncd.service")
	writeFile(t, path, tlsUnit)
	if out, err := exec.Command(systemdAnalyze(t), "verify", path).CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify of the unit with TLS: %v\n%s", err, out)
	}
}

// webConfigTLS is the tls_server_config of an example's web config file.
type webConfigTLS struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

func readWebConfigTLS(t *testing.T, webConfig []byte) webConfigTLS {
	t.Helper()
	var web struct {
		TLS webConfigTLS `yaml:"tls_server_config"`
	}
	if err := yaml.Unmarshal(webConfig, &web); err != nil {
		t.Fatal(err)
	}
	return web.TLS
}

// checkWebConfigUsable checks that run can use an example's web config
// file (check -web.config.file), with a certificate and key written where
// it names them.
func checkWebConfigUsable(t *testing.T, webConfig []byte, web webConfigTLS) {
	t.Helper()
	e := newTestEnv(t, nil)
	certFile, keyFile := filepath.Join(e.dir, "tls.crt"), filepath.Join(e.dir, "tls-key")
	writeSelfSigned(t, certFile, keyFile, 2, x509.ExtKeyUsageServerAuth, time.Now().Add(60*24*time.Hour))
	path := filepath.Join(e.dir, "web-config.yml")
	writeFile(t, path, strings.NewReplacer(web.CertFile, certFile, web.KeyFile, keyFile).Replace(string(webConfig)))
	if code, stdout, stderr := runCmd(t, "check", "-config.file", e.cfgPath, "-web.config.file", path); code != 0 || !strings.Contains(stdout, "ok   web config: "+path+"\n") {
		t.Errorf("check -web.config.file of the example's web config: exit %d, want 0 and the web config ok\n%s\n%s", code, stdout, stderr)
	}
}

// TestDeployContainer_tls: README's container commands with TLS mount
// examples/deploy/container/web-config.yml where -web.config.file names
// it, put the certificate and key in the credentials directory where the
// file names them, and the file is one that run can use. Without TLS, the
// API token the CI runners send to the export API crosses the network in
// clear text.
func TestDeployContainer_tls(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, block, ok := strings.Cut(string(readme), "\ncp examples/deploy/container/web-config.yml web-config.yml\n")
	if !ok {
		t.Fatal("README.md has no container commands with TLS (cp examples/deploy/container/web-config.yml web-config.yml)")
	}
	block, _, _ = strings.Cut(block, "\n```")
	m := regexp.MustCompile(` -web\.config\.file=(\S+)`).FindStringSubmatch(block)
	if m == nil || !strings.Contains(block, " -v ./web-config.yml:"+m[1]+":ro ") {
		t.Fatalf("README's container commands with TLS do not mount web-config.yml where -web.config.file names it:\n%s", block)
	}
	webConfig, err := os.ReadFile(filepath.Join(deployDir, "container", "web-config.yml"))
	if err != nil {
		t.Fatal(err)
	}
	web := readWebConfigTLS(t, webConfig)
	const credDir = "/etc/psa-syncd/credentials/"
	for _, file := range []string{web.CertFile, web.KeyFile} {
		name, inCreds := strings.CutPrefix(file, credDir)
		if !inCreds || !strings.Contains(block, " credentials/"+name+"\n") {
			t.Errorf("web-config.yml names %q, which README's commands do not put in the mounted credentials directory (%s)", file, credDir)
		}
	}
	if !strings.Contains(block, " -v ./credentials:"+strings.TrimSuffix(credDir, "/")+":") {
		t.Errorf("README's container commands with TLS do not mount the credentials directory at %s", credDir)
	}
	checkWebConfigUsable(t, webConfig, web)
}

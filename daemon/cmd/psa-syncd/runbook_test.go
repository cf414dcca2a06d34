package main

import (
	"database/sql"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.yaml.in/yaml/v3"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestAlerts_noActiveInstanceRunbookEndsOnlyThisLock: the description of
// PsaSyncNoActiveInstance tells the operator how to find the session that
// still holds the leadership lock of a dead active instance, and to end
// it. A PostgreSQL server often holds more than one psa-syncd database
// (one per PSA tenant, as README advises) and other applications' advisory
// locks: pg_locks shows the locks of every database of the server, so a
// query that matched any advisory lock named those sessions too, and the
// operator ended another tenant's active instance or another
// application's session. Run in one psa-syncd database, the query must
// find that database's leadership lock only.
func TestAlerts_noActiveInstanceRunbookEndsOnlyThisLock(t *testing.T) {
	t.Parallel()
	rules := readAlertRules(t)
	var query string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "PsaSyncNoActiveInstance" {
				if m := regexp.MustCompile("`(SELECT pid[^`]*)`").FindStringSubmatch(r.Annotations["description"]); m != nil {
					query = m[1]
				}
			}
		}
	}
	if query == "" {
		t.Fatal("the description of PsaSyncNoActiveInstance gives no query for the session that holds the lock")
	}

	cluster := pgtest.New(t)
	lead := func(url, holder string) *state.Leadership {
		db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		l, err := db.TryLead(t.Context(), state.LeaderInfo{Holder: holder}, 100*time.Millisecond)
		if err != nil || l == nil {
			t.Fatalf("TryLead of %s = %v, %v", holder, l, err)
		}
		return l
	}
	var urls [2]string
	for i := range urls {
		var err error
		if urls[i], err = cluster.CreateDatabase(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ours, theirs := lead(urls[0], "this tenant's"), lead(urls[1], "another tenant's")
	conn, err := sql.Open("pgx", urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Another application's advisory lock, in the same database.
	other, err := conn.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(t.Context(), `SELECT pg_advisory_lock(42)`); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("the query of PsaSyncNoActiveInstance's description: %v\n%s", err, query)
	}
	var pids []int64
	for rows.Next() {
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		// The pid first, as the description's pg_terminate_backend(pid)
		// takes it; the other columns are for the operator.
		var pid int64
		dest := []any{&pid}
		for range cols[1:] {
			dest = append(dest, new(any))
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("the query of PsaSyncNoActiveInstance's description found %d sessions (%v), want 1, the one holding this database's leadership lock:\n%s",
			len(pids), pids, strings.TrimSpace(query))
	}
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_terminate_backend($1)`, pids[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ours.Lost():
	case <-time.After(10 * time.Second):
		t.Error("ending the session the query found did not end this database's leadership")
	}
	select {
	case <-theirs.Lost():
		t.Error("ending the session the query found ended another database's leadership")
	case <-time.After(500 * time.Millisecond):
	}
}

// TestAlerts_runbookCommandsAskTheDaemon: every psa-syncd command an
// alert's description gives works while psa-syncd runs, as it does when
// the alert fires, in every shipped deployment. Run by hand without
// -web.url a command opens the state database, which the daemon holds
// locked, and loads the config file, whose secrets the daemon alone can
// read there (systemd credentials under /run/credentials/, a Kubernetes
// Secret in the pod), so each must ask the daemon. Each is run against a
// daemon as given, the API token file for the FILE placeholder, and must be
// understood and answered; one with an ID, N, CODE, REF or YYYY-MM placeholder, left
// to the operator, is run with a value for it, and must not be refused for
// want of the token. A command that needs the token gives -web.token-file:
// without it the daemon answered 401 "missing bearer token" to an operator
// who copied `psa-syncd check -web.url ...` from the alert.
func TestAlerts_runbookCommandsAskTheDaemon(t *testing.T) {
	t.Parallel()
	rules := readAlertRules(t)
	cfg, tokenFile, _, _ := ticketsSetupToken(t)
	base := startDaemon(t, cfg)
	command := regexp.MustCompile("`psa-syncd ([^`]*)`")
	word := regexp.MustCompile(`"[^"]*"|\S+`)
	placeholder := regexp.MustCompile(`\b(ID|N|CODE|REF|YYYY-MM)\b`)
	values := map[string]string{"FILE": tokenFile, "ID": "1", "N": "1", "CODE": "0123456789ab", "YYYY-MM": time.Now().UTC().Format("2006-01")}
	ran := map[string]bool{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			for _, m := range command.FindAllStringSubmatch(r.Annotations["description"], -1) {
				var args []string
				for _, w := range word.FindAllString(m[1], -1) {
					args = append(args, strings.Trim(w, `"`))
				}
				if !slices.Contains(args, "-web.url") {
					t.Errorf("%s: `psa-syncd %s` does not ask the running daemon (-web.url): by hand it cannot open the state database "+
						"the daemon holds, nor read the secrets of the shipped deployments", r.Alert, m[1])
					continue
				}
				// Plans are rate-limited: each command once.
				if ran[m[1]] {
					continue
				}
				ran[m[1]] = true
				for i, a := range args {
					if v, ok := values[a]; ok {
						args[i] = v
					}
					args[i] = strings.Replace(args[i], "http://127.0.0.1:9810", base, 1)
				}
				code, stdout, stderr := runCmd(t, args...)
				switch {
				case strings.Contains(stderr, "401 Unauthorized") || strings.Contains(stderr, "needs the API token"):
					t.Errorf("%s: `psa-syncd %s` is refused without the API token: give it -web.token-file FILE\n%s", r.Alert, m[1], stderr)
				case code != 0 && !placeholder.MatchString(m[1]):
					t.Errorf("%s: `psa-syncd %s` against a running daemon: exit %d\n%s\n%s", r.Alert, m[1], code, stdout, stderr)
				}
			}
		}
	}
	if len(ran) == 0 {
		t.Fatal("no psa-syncd command in the alerts' descriptions")
	}
}

// TestRunbooks_deploymentCommands: the per-deployment commands that the
// README, the alerts' header and the systemd unit give for asking the
// running daemon use what that deployment provides: the URL where its
// configuration listens, and a token file that exists where the command
// runs: on a systemd host the root-only source of the unit's api-token
// credential (its copy under /run/credentials/ exists only inside the
// service), in a pod the file the ConfigMap's configuration reads, with
// the image's binary by its path (the image has no shell).
func TestRunbooks_deploymentCommands(t *testing.T) {
	t.Parallel()
	read := func(path ...string) string {
		return string(must(os.ReadFile(filepath.Join(append([]string{"..", "..", ".."}, path...)...))))
	}
	readme, alerts := read("README.md"), read("examples", "prometheus", "alerts.yml")
	unit, systemdCfg := read("examples", "deploy", "systemd", "psa-syncd.service"), read("examples", "deploy", "systemd", "psa-syncd.yml")
	image := read("examples", "deploy", "container", "main.go")
	var cm struct {
		Data map[string]string `yaml:"data"`
	}
	if err := yaml.Unmarshal([]byte(read("examples", "deploy", "kubernetes", "configmap.yaml")), &cm); err != nil {
		t.Fatal(err)
	}
	type web struct {
		Web struct {
			ListenAddress string `yaml:"listen_address"`
			APITokenFile  string `yaml:"api_token_file"`
		} `yaml:"web"`
	}
	var sys, kube web
	if err := yaml.Unmarshal([]byte(systemdCfg), &sys); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(cm.Data["psa-syncd.yml"]), &kube); err != nil {
		t.Fatal(err)
	}
	// The systemd token: the source of the credential the config reads.
	cred := strings.TrimPrefix(sys.Web.APITokenFile, "/run/credentials/psa-syncd.service/")
	m := regexp.MustCompile(`(?m)^LoadCredential=` + regexp.QuoteMeta(cred) + `:(\S+)$`).FindStringSubmatch(unit)
	if cred == sys.Web.APITokenFile || m == nil {
		t.Fatalf("the systemd config's api_token_file %s is no credential the unit loads", sys.Web.APITokenFile)
	}
	systemdToken := m[1]
	section := func(text, from, to string) string {
		t.Helper()
		i := strings.Index(text, from)
		j := strings.Index(text[i+1:], to)
		if i < 0 || j < 0 {
			t.Fatalf("no text from %q to %q", from, to)
		}
		return text[i : i+1+j]
	}
	alertsHeader := section(alerts, "#   systemd:", "\ngroups:")
	for _, tt := range []struct {
		where, text, listen, token string
		kube                       bool
	}{
		{"README.md, systemd", section(readme, "\n### systemd\n", "\n### Container image\n"), sys.Web.ListenAddress, systemdToken, false},
		{"the systemd unit", unit, sys.Web.ListenAddress, systemdToken, false},
		{"alerts.yml, systemd", section(alertsHeader, "#   systemd:", "#   Kubernetes:"), sys.Web.ListenAddress, systemdToken, false},
		{"README.md, Kubernetes", section(readme, "\n### Kubernetes\n", "\n## Development\n"), kube.Web.ListenAddress, kube.Web.APITokenFile, true},
		{"alerts.yml, Kubernetes", section(alerts, "#   Kubernetes:", "\ngroups:"), kube.Web.ListenAddress, kube.Web.APITokenFile, true},
	} {
		text := strings.Join(strings.Fields(strings.NewReplacer("#", " ", "\\\n", " ").Replace(tt.text)), " ")
		urls := regexp.MustCompile(`-web\.url (\S+)`).FindAllStringSubmatch(text, -1)
		tokens := regexp.MustCompile(`-web\.token-file (\S+)`).FindAllStringSubmatch(text, -1)
		if len(urls) == 0 || len(tokens) == 0 {
			t.Errorf("%s: no command with -web.url and -web.token-file", tt.where)
			continue
		}
		_, port, _ := net.SplitHostPort(tt.listen)
		for _, u := range urls {
			if strings.TrimRight(u[1], "`,.;)") != "http://127.0.0.1:"+port {
				t.Errorf("%s: -web.url %s, but the deployment's psa-syncd listens at %q", tt.where, u[1], tt.listen)
			}
		}
		for _, tok := range tokens {
			if strings.TrimRight(tok[1], "`,.;)") != tt.token {
				t.Errorf("%s: -web.token-file %s, want %s, which the command can read there", tt.where, tok[1], tt.token)
			}
		}
		if tt.kube {
			execs := regexp.MustCompile(`kubectl exec .*?-- (\S+)`).FindAllStringSubmatch(text, -1)
			if len(execs) == 0 {
				t.Errorf("%s: no kubectl exec", tt.where)
			}
			for _, exec := range execs {
				if !strings.Contains(image, `binaryPath = "`+exec[1]+`"`) {
					t.Errorf("%s: kubectl exec runs %s, not the image's binary by its path (examples/deploy/container: binaryPath)", tt.where, exec[1])
				}
			}
		}
	}
}

// TestRunbooks_systemdHandRunSaysWhy: run by hand on a host where the
// shipped systemd unit runs psa-syncd, a command that needs the secrets
// (plan, validate: not status, orphans, ledger or backup, which read the
// state alone, see TestStatus_systemdStoppedByHand) cannot read them,
// systemd credentials that exist only inside the service. The error says
// so and how to ask the service instead, not only "no such file or
// directory".
func TestRunbooks_systemdHandRunSaysWhy(t *testing.T) {
	t.Parallel()
	cfg := filepath.Join(deployDir, "systemd", "psa-syncd.yml")
	for _, args := range [][]string{{"plan"}, {"validate"}} {
		code, _, stderr := runCmd(t, append(args, "-config.file", cfg)...)
		if code != 1 || !strings.Contains(stderr, "/run/credentials/psa-syncd.service/") ||
			!strings.Contains(stderr, "a systemd credential, which only its service can read") || !strings.Contains(stderr, "-web.url") {
			t.Errorf("%v with the systemd configuration, by hand: exit %d, stderr %q; want 1 and why, with -web.url", args, code, stderr)
		}
	}
}

// TestAlerts_serviceDownSaysWhereToLookInEachDeployment: the alerts for a
// psa-syncd that is not running say how to look at it both as the systemd
// service and as the Kubernetes pod of examples/deploy/.
func TestAlerts_serviceDownSaysWhereToLookInEachDeployment(t *testing.T) {
	t.Parallel()
	rules := readAlertRules(t)
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			d := r.Annotations["description"]
			if strings.Contains(d, "`systemctl ") && !strings.Contains(d, "`kubectl ") {
				t.Errorf("%s: the description says how to look at the systemd service, not at the Kubernetes pod:\n%s", r.Alert, d)
			}
		}
	}
}

// alertRules is what the runbook tests read of the example alert rules.
type alertRules struct {
	Groups []struct {
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

// readAlertRules reads the example alert rules (alertsFile).
func readAlertRules(t *testing.T) alertRules {
	t.Helper()
	var rules alertRules
	if err := yaml.Unmarshal(must(os.ReadFile(alertsFile)), &rules); err != nil {
		t.Fatal(err)
	}
	return rules
}

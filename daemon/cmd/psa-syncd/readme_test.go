package main

import (
	"context"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/impact"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/file"
	"github.com/psa-sync/terraform-provider-psa/internal/sizecap"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// README's Authentication paragraph names every endpoint that needs the
// API token: it goes on to call the others read-only and token-free, so an
// endpoint the table marks "token" but the paragraph leaves out (such as
// GET /api/v1/backup, a copy of the state database) reads as open.
func TestREADME_authenticationListsEveryTokenEndpoint(t *testing.T) {
	t.Parallel()
	readme := string(must(os.ReadFile(filepath.Join("..", "..", "..", "README.md"))))
	start := strings.Index(readme, "### HTTP endpoints")
	if start < 0 {
		t.Fatal("README.md has no HTTP endpoints section")
	}
	section := readme[start:]
	auth := strings.Index(section, "**Authentication.**")
	if auth < 0 {
		t.Fatal("README.md's HTTP endpoints section has no Authentication paragraph")
	}
	para := section[auth:]
	if end := strings.Index(para, "\n\n"); end > 0 {
		para = para[:end]
	}
	para = strings.Join(strings.Fields(para), " ")
	row := regexp.MustCompile("(?m)^\\| `((?:GET|POST|PUT|DELETE) [^`]+)` \\| token \\|")
	rows := row.FindAllStringSubmatch(section[:auth], -1)
	if len(rows) == 0 {
		t.Fatal("no endpoint with auth `token` in README.md's table")
	}
	for _, m := range rows {
		if !strings.Contains(para, "`"+m[1]+"`") {
			t.Errorf("README.md: %s needs the token (endpoint table) but is not in the Authentication paragraph, which calls every other endpoint read-only and token-free", m[1])
		}
	}
}

// TestREADME_sectionReferences: every README section that the examples,
// the deployment files, the alert rules and the generated docs send a reader
// to by name (README: "High availability with PostgreSQL", "Backup and
// restore" in README) is a heading of README.md, so that a renamed section
// leaves no comment pointing at nothing.
func TestREADME_sectionReferences(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	readme := string(must(os.ReadFile(filepath.Join(root, "README.md"))))
	headings := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^#+ (.+)$`).FindAllStringSubmatch(readme, -1) {
		headings[strings.TrimSpace(m[1])] = true
	}
	ref := regexp.MustCompile(`README(?:\.md)?(?:'s)?[:,]?\s+"([^"\n]{4,80})"|"([^"\n]{4,80})"\s+(?:in|of|under)\s+(?:README(?:\.md)?|the (?:daemon )?documentation)\b`)
	found := 0
	for _, dir := range []string{"examples", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, "_test.go") {
				return err
			}
			src := string(must(os.ReadFile(path)))
			for _, m := range ref.FindAllStringSubmatch(src, -1) {
				found++
				name := strings.Join(strings.Fields(m[1]+m[2]), " ")
				if !headings[name] {
					t.Errorf("%s refers to README section %q, which README.md has no heading for", path, name)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found == 0 {
		t.Error("found no reference to a README section in examples/ and docs/; the pattern no longer matches how they are written")
	}
}

// readmeSection returns README.md from the heading start up to end.
func readmeSection(t *testing.T, start, end string) string {
	t.Helper()
	readme := string(must(os.ReadFile(filepath.Join("..", "..", "..", "README.md"))))
	i := strings.Index(readme, start)
	if i < 0 {
		t.Fatalf("README.md has no %q", start)
	}
	section := readme[i:]
	j := strings.Index(section, end)
	if j < 0 {
		t.Fatalf("README.md has no %q after %q", end, start)
	}
	return section[:j]
}

// yamlKeys lists the dotted keys of the settings of a config struct, by its
// yaml tags: a struct (or a pointer to one) is a section, anything else a
// setting.
func yamlKeys(typ reflect.Type, prefix string, keys map[string]bool) {
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != reflect.TypeFor[time.Time]() {
			yamlKeys(ft, prefix+name+".", keys)
			continue
		}
		keys[prefix+name] = true
	}
}

// TestREADME_configurationTableMatchesConfig: README's configuration table
// names every key of the configuration file, and only those: a key it leaves
// out is a setting an operator cannot find, a key it names that the strict
// decoder does not know is refused at start-up.
func TestREADME_configurationTableMatchesConfig(t *testing.T) {
	t.Parallel()
	section := readmeSection(t, "\n### Configuration\n", "\n**Reloading.**")
	known := map[string]bool{}
	yamlKeys(reflect.TypeFor[daemon.Config](), "", known)
	documented := map[string]bool{}
	row := regexp.MustCompile("(?m)^\\| (`[^|]+) \\|[^|]*\\| ")
	key := regexp.MustCompile("`([a-z_.]+)`")
	for _, m := range row.FindAllStringSubmatch(section, -1) {
		var first string
		for _, k := range key.FindAllStringSubmatch(m[1], -1) {
			// "`state.url` / `url_file`", "`state.connect_timeout`, `query_timeout`":
			// a key without a dot is a sibling of the first.
			name := k[1]
			if first == "" {
				first = name
			} else if !strings.Contains(name, ".") {
				if i := strings.LastIndex(first, "."); i >= 0 {
					name = first[:i+1] + name
				}
			}
			documented[name] = true
		}
	}
	if len(documented) == 0 {
		t.Fatal("found no key in README.md's configuration table; the pattern no longer matches how it is written")
	}
	for k := range documented {
		if !known[k] {
			t.Errorf("README.md's configuration table names %q, which is no key of the configuration file", k)
		}
	}
	for k := range known {
		if !documented[k] {
			t.Errorf("configuration key %q is not in README.md's configuration table", k)
		}
	}
}

// TestREADME_commandsTableMatchesFlags: the last column of README's Commands
// table lists every flag of each command (besides -config.file and -log.*),
// and only its flags; each command of psa-syncd has a row.
func TestREADME_commandsTableMatchesFlags(t *testing.T) {
	t.Parallel()
	section := readmeSection(t, "\n### Commands\n", "\n### Billing impact in pull requests\n")
	rows := map[string]string{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z][a-z-]*)` \\| .*$").FindAllStringSubmatch(section, -1) {
		// "-format table\|csv": an escaped bar is no cell border.
		cells := strings.Split(strings.ReplaceAll(m[0], `\|`, "/"), "|")
		rows[m[1]] = cells[len(cells)-2]
	}
	flagRE := regexp.MustCompile("`(-[a-z][a-z.-]*)")
	for _, c := range commands {
		cell, ok := rows[c.name]
		if !ok {
			t.Errorf("README.md's Commands table has no row for %q", c.name)
			continue
		}
		documented := map[string]bool{}
		for _, m := range flagRE.FindAllStringSubmatch(cell, -1) {
			documented[m[1]] = true
		}
		var help strings.Builder
		if code := run(context.Background(), []string{c.name, "--help"}, &help, io.Discard, func(string) string { return "" }); code != 0 {
			t.Fatalf("psa-syncd %s --help: exit code %d", c.name, code)
		}
		flags := map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^  (-[a-z][a-z.-]*)`).FindAllStringSubmatch(help.String(), -1) {
			flags[m[1]] = true
		}
		for f := range documented {
			if !flags[f] {
				t.Errorf("README.md's Commands table lists %s for %q, which has no such flag", f, c.name)
			}
		}
		for f := range flags {
			if f == "-config.file" || strings.HasPrefix(f, "-log.") {
				continue
			}
			if !documented[f] {
				t.Errorf("psa-syncd %s has %s, which README.md's Commands table does not list", c.name, f)
			}
		}
	}
}

// TestDocs_metricNamesExported: every psa_sync_ metric that README.md, the
// generated docs and the examples (alert rules, dashboards, deployment
// files, comments) name is one psa-syncd exports, so that no alert or
// runbook query selects a series that never exists.
func TestDocs_metricNamesExported(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	exported := exportedMetrics(t)
	name := regexp.MustCompile(`\bpsa_sync_[a-z_]*[a-z]\b`)
	check := func(path string) {
		for _, n := range name.FindAllString(string(must(os.ReadFile(path))), -1) {
			if !exported[n] {
				t.Errorf("%s names metric %s, which psa-syncd does not export", path, n)
			}
		}
	}
	check(filepath.Join(root, "README.md"))
	for _, dir := range []string{"examples", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
				return err
			}
			check(path)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestREADME_layoutNamesEveryPackage: the Layout block of README's
// Development section names every Go package directory of the repository
// (examples/ aside), or its parent names it in its description ("daemon/source/
// usage sources: sophos, file"), so that a package added later has a line.
func TestREADME_layoutNamesEveryPackage(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	section := readmeSection(t, "\nLayout:\n", "\nThe simulators are ordinary packages")
	described := map[string]string{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9_/.-]*/)\s+(.*)$`).FindAllStringSubmatch(section, -1) {
		described[strings.TrimSuffix(m[1], "/")] = m[2]
	}
	if len(described) == 0 {
		t.Fatal("found no directory in README.md's Layout block; the pattern no longer matches how it is written")
	}
	dirs := map[string]bool{}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(must(filepath.Rel(root, path)))
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && rel != "." || d.Name() == "testdata" || rel == "examples" || rel == "bin") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") {
			dirs[filepath.ToSlash(filepath.Dir(rel))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for dir := range dirs {
		if dir == "." {
			continue
		}
		if _, ok := described[dir]; ok {
			continue
		}
		parent, base := filepath.ToSlash(filepath.Dir(dir)), filepath.Base(dir)
		if regexp.MustCompile(`\b` + regexp.QuoteMeta(base) + `\b`).MatchString(described[parent]) {
			continue
		}
		t.Errorf("README.md's Layout block has no line for %s/ (nor does %s/ name it)", dir, parent)
	}
}

// TestHelp_saysWhatREADMESays: a command's --help, where an operator looks
// mid-task, says what README promises about it.
func TestHelp_saysWhatREADMESays(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		command, want, why string
	}{
		// README, Backup and restore: a restored copy writes to Kaseya BMS
		// and files tickets only once confirmed.
		{"backup", "-state.allow-restore", "its restore steps end in a daemon that refuses to write until started with -state.allow-restore"},
		// README, Reloading: the instance is the ConnectWise login company
		// and the BMS tenant at their hosts, not the host alone.
		{"rebind", "ConnectWise login company or the Kaseya BMS tenant", "the instance of ConnectWise and Kaseya BMS is the company or tenant at its host"},
		// validate -export.file replaces export_url too (an S3 store, say).
		{"validate", "export_url", "-export.file replaces the export_url as well as export_path"},
		// README, HTTP endpoints: a listener requiring client certificates
		// refuses a standby without state.advertise_client_cert_file.
		{"run", "state.advertise_client_cert_file", "a standby needs it to forward to a listener that requires client certificates"},
	} {
		var help strings.Builder
		if code := run(context.Background(), []string{tc.command, "--help"}, &help, io.Discard, func(string) string { return "" }); code != 0 {
			t.Fatalf("psa-syncd %s --help: exit code %d", tc.command, code)
		}
		if !strings.Contains(strings.Join(strings.Fields(help.String()), " "), tc.want) {
			t.Errorf("psa-syncd %s --help does not say %q: %s. It says:\n%s", tc.command, tc.want, tc.why, help.String())
		}
	}
}

// TestREADME_metricsTableMatchesRegistry: each row of README's metrics table
// gives the type the metric has, its labels and (after "=") every value
// of the enumerated one: an alert written from the table selects series
// that exist. A metric psa-syncd exports has a row.
func TestREADME_metricsTableMatchesRegistry(t *testing.T) {
	t.Parallel()
	section := readmeSection(t, "\n| Metric | Type | Labels | Meaning |\n", "\n### Performance\n")
	families := map[string]*dto.MetricFamily{}
	for _, mf := range exportedFamilies(t) {
		if strings.HasPrefix(mf.GetName(), "psa_sync_") {
			families[mf.GetName()] = mf
		}
	}
	code := regexp.MustCompile("`([^`]+)`")
	documented := map[string]bool{}
	for _, line := range strings.Split(section, "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 5 || !strings.HasPrefix(line, "| `psa_sync_") {
			continue
		}
		typ, labelCell := strings.TrimSpace(cells[2]), strings.TrimSpace(cells[3])
		// "`system`, `result` = `success`, `partial`, `failure`": the
		// labels, the last one enumerated with its values; "..." leaves
		// labels out.
		wantLabels, wantValues, enumerated := map[string]bool{}, map[string]bool{}, ""
		for _, item := range strings.Split(labelCell, ", ") {
			name, value, isEnum := strings.Cut(item, " = ")
			switch {
			case enumerated != "":
				wantValues[strings.Trim(item, "` ")] = true
			case isEnum:
				enumerated = strings.Trim(name, "` ")
				wantLabels[enumerated] = true
				wantValues[strings.Trim(value, "` ")] = true
			case code.MatchString(item):
				wantLabels[strings.Trim(item, "` ")] = true
			}
		}
		partial := strings.Contains(labelCell, "...")
		for _, m := range code.FindAllStringSubmatch(cells[1], -1) {
			name := m[1]
			documented[name] = true
			mf := families[name]
			if mf == nil {
				t.Errorf("README.md's metrics table has %s, which psa-syncd does not export", name)
				continue
			}
			if got := strings.ToLower(mf.GetType().String()); got != typ {
				t.Errorf("README.md's metrics table gives %s the type %s; it is a %s", name, typ, got)
			}
			gotLabels, gotValues := map[string]bool{}, map[string]bool{}
			for _, s := range mf.GetMetric() {
				for _, l := range s.GetLabel() {
					gotLabels[l.GetName()] = true
					if l.GetName() == enumerated {
						gotValues[l.GetValue()] = true
					}
				}
			}
			for l := range wantLabels {
				if !gotLabels[l] {
					t.Errorf("README.md's metrics table gives %s the label %s, which it does not have", name, l)
				}
			}
			for l := range gotLabels {
				if !wantLabels[l] && !partial {
					t.Errorf("%s has the label %s, which README.md's metrics table does not give", name, l)
				}
			}
			if enumerated != "" && !maps.Equal(wantValues, gotValues) {
				t.Errorf("README.md's metrics table gives %s's %s the values %v; it has %v", name, enumerated, slices.Sorted(maps.Keys(wantValues)), slices.Sorted(maps.Keys(gotValues)))
			}
		}
	}
	for name := range families {
		if !documented[name] {
			t.Errorf("psa-syncd exports %s, which README.md's metrics table has no row for", name)
		}
	}
}

// TestDocs_commandLinesUseTheirCommandsFlags: every psa-syncd command line in
// README.md, docs/ and examples/ (runbooks in alert descriptions, deployment
// comments, CI snippets) gives only flags its command has, so that no
// operator copies a command that stops at a usage error.
func TestDocs_commandLinesUseTheirCommandsFlags(t *testing.T) {
	t.Parallel()
	root := filepath.Join("..", "..", "..")
	flags := map[string]map[string]bool{}
	var names []string
	for _, c := range commands {
		var help strings.Builder
		if code := run(context.Background(), []string{c.name, "--help"}, &help, io.Discard, func(string) string { return "" }); code != 0 {
			t.Fatalf("psa-syncd %s --help: exit code %d", c.name, code)
		}
		flags[c.name] = map[string]bool{}
		for _, m := range regexp.MustCompile(`(?m)^  -([a-z][a-z.-]*)`).FindAllStringSubmatch(help.String(), -1) {
			flags[c.name][m[1]] = true
		}
		names = append(names, c.name)
	}
	// A command line runs to the end of its code span, line or sentence;
	// a backslash continues it on the next line.
	line := regexp.MustCompile(`psa-syncd (` + strings.Join(names, "|") + `)((?: +[^ \n` + "`" + `|;)]+)*)`)
	flag := regexp.MustCompile(`^--?([a-z][a-z.-]*)(?:=.*)?$`)
	found := 0
	check := func(path string) {
		text := regexp.MustCompile(`\\\n[ \t#]*`).ReplaceAllString(string(must(os.ReadFile(path))), " ")
		for _, m := range line.FindAllStringSubmatch(text, -1) {
			found++
			for _, arg := range strings.Fields(m[2]) {
				if f := flag.FindStringSubmatch(arg); f != nil && !flags[m[1]][f[1]] {
					t.Errorf("%s: %q gives -%s, which psa-syncd %s does not have", path, m[0], f[1], m[1])
				}
			}
		}
	}
	check(filepath.Join(root, "README.md"))
	for _, dir := range []string{"examples", "docs"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") || strings.HasSuffix(path, ".json") {
				return err
			}
			check(path)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if found < 50 {
		t.Errorf("found %d psa-syncd command lines in README.md, docs/ and examples/; the pattern no longer matches how they are written", found)
	}
}

// TestREADME_sizeCaps: README gives the caps on the files psa-sync reads
// whole, as the code has them: the export (every store and PUT
// /api/v1/export), the usage file, the -terraform-plan file and the
// config file, whose
// tests use files just over these constants.
func TestREADME_sizeCaps(t *testing.T) {
	t.Parallel()
	readme := string(must(os.ReadFile(filepath.Join("..", "..", "..", "README.md"))))
	rowOf := func(prefix string) string {
		for line := range strings.SplitSeq(readme, "\n") {
			if strings.HasPrefix(line, prefix) {
				return line
			}
		}
		t.Fatalf("README.md has no line starting %q", prefix)
		return ""
	}
	for _, tc := range []struct {
		row, want string
	}{
		{"| `export_url` |", "a file larger than " + sizecap.Format(export.MaxSize)},
		{"| `source.file.path` |", "up to " + sizecap.Format(file.MaxSize)},
		{"| `plan` |", "`terraform show -json tfplan`, at most " + sizecap.Format(impact.MaxPlanSize)},
	} {
		if !strings.Contains(rowOf(tc.row), tc.want) {
			t.Errorf("README.md's row %s does not say %q", tc.row, tc.want)
		}
	}
	if want := "A YAML file of at most " + sizecap.Format(daemon.MaxConfigFile); !strings.Contains(readme, want) {
		t.Errorf("README.md's Configuration section does not say %q", want)
	}
	var help strings.Builder
	run(context.Background(), []string{"plan", "--help"}, &help, io.Discard, func(string) string { return "" })
	if want := "(at most " + sizecap.Format(impact.MaxPlanSize) + ")"; !strings.Contains(help.String(), want) {
		t.Errorf("psa-syncd plan --help does not say %q for -terraform-plan:\n%s", want, help.String())
	}
}

// TestREADME_commandsThatNeedTheToken: README's list of the commands that
// send the API token because they need it ("A command sends the API token
// it has (...; `check`, ... need it)") names each command with -web.url
// that the daemon refuses without the token, and no other: it named
// neither reload nor set-by-hand nor orphans -clear, which answered 401
// "missing bearer token" to an operator who left the token out. The
// refusal says how to give the token.
func TestREADME_commandsThatNeedTheToken(t *testing.T) {
	t.Parallel()
	readme, err := os.ReadFile("../../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("`PSA_SYNCD_API_TOKEN`; ((?:`[^`]+`(?: computed now)?(?:,\\s+|,?\\s+and\\s+))+`[^`]+`) need it\\)").FindSubmatch(readme)
	if m == nil {
		t.Fatal("README.md has no list of the commands that need the API token (\"`PSA_SYNCD_API_TOKEN`; `check`, ... need it)\")")
	}
	listed := map[string]bool{}
	for _, c := range regexp.MustCompile("`([^`]+)`").FindAllSubmatch(m[1], -1) {
		listed[string(c[1])] = true
	}
	cfg, _, _, _ := ticketsSetupToken(t)
	base := startDaemon(t, cfg)
	out := filepath.Join(t.TempDir(), "backup.db")
	period := time.Now().UTC().Format("2006-01")
	// Each command with -web.url, by its name in the list, with the
	// arguments it needs to send its request.
	for _, c := range []struct {
		name string
		args []string
	}{
		{"check", []string{"check"}},
		{"reload", []string{"reload"}},
		{"sync", []string{"sync"}},
		{"plan", []string{"plan", "-period", period}},
		{"tickets", []string{"tickets", "-dry-run"}},
		{"resolve", []string{"resolve", "-intent", "1", "-posted"}},
		{"set-by-hand", []string{"set-by-hand", "-period", period, "-note", "x"}},
		{"orphans -clear", []string{"orphans", "-clear", "-all"}},
		{"backup", []string{"backup", "-output", out}},
		{"status", []string{"status"}},
		{"ledger", []string{"ledger"}},
		{"orphans", []string{"orphans"}},
	} {
		_, _, stderr := runCmd(t, append(c.args, "-web.url", base)...)
		refused := strings.Contains(stderr, "401 Unauthorized") || strings.Contains(stderr, "needs the API token")
		if refused && !strings.Contains(stderr, "-web.token-file FILE") && !strings.Contains(stderr, "(-web.token-file") {
			t.Errorf("psa-syncd %s -web.url without the API token: %q, want it to say to give -web.token-file", strings.Join(c.args, " "), stderr)
		}
		if refused != listed[c.name] {
			t.Errorf("psa-syncd %s -web.url without the API token: refused for want of it %v, README's list names it %v (%s)\n%s",
				strings.Join(c.args, " "), refused, listed[c.name], m[1], stderr)
		}
		delete(listed, c.name)
	}
	for name := range listed {
		t.Errorf("README's list of the commands that need the API token names %q, which this test does not run", name)
	}
}

// TestREADME_flagsRefusedWithWebURL: README's sentence on the flags that
// are a usage error because they would be ignored ("A flag that would be
// ignored is a usage error ...") names every flag a command refuses with
// -web.url: it left out sync's -dry-run and -metrics.file, so the dry run
// of a surge approval read as one the daemon could run.
func TestREADME_flagsRefusedWithWebURL(t *testing.T) {
	t.Parallel()
	section := readmeSection(t, "\n### Commands\n", "\n### Billing impact in pull requests\n")
	_, sentence, _ := strings.Cut(section, "that would be ignored is a usage error")
	sentence, _, _ = strings.Cut(sentence, "A `-config.file` given with")
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`(?:[a-z-]+ )?(-[a-z][a-z.-]*)").FindAllStringSubmatch(sentence, -1) {
		named[m[1]] = true
	}
	// A value for each kind of flag value that --help names.
	values := map[string]string{"duration": "1s", "YYYY-MM": "2026-11", "units": "1", "N": "1", "id": "1", "code": "0123456789ab",
		"file": filepath.Join(t.TempDir(), "out"), "format": "table", "status": "failed", "string": "x", "name": "x", "int": "1"}
	// With the token, so that no flag is refused for want of it.
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(tokenFile, []byte("test-token"), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := 0
	for _, c := range commands {
		var help strings.Builder
		if code := run(context.Background(), []string{c.name, "--help"}, &help, io.Discard, func(string) string { return "" }); code != 0 {
			t.Fatalf("psa-syncd %s --help: exit code %d", c.name, code)
		}
		if !strings.Contains(help.String(), "\n  -web.url ") {
			continue
		}
		for _, m := range regexp.MustCompile(`(?m)^  (-[a-z][a-z.-]*)(?: (\S+))?$`).FindAllStringSubmatch(help.String(), -1) {
			flag, kind := m[1], m[2]
			if strings.HasPrefix(flag, "-web.") || strings.HasPrefix(flag, "-log.") || flag == "-config.file" {
				continue
			}
			args := []string{c.name, flag}
			if kind != "" {
				v, ok := values[kind]
				if !ok {
					t.Fatalf("psa-syncd %s %s %s: no value for a flag of this kind", c.name, flag, kind)
				}
				args = append(args, v)
			}
			// Nothing listens there: a command that sends its request
			// ends with exit code 3.
			code, _, stderr := runCmd(t, append(args, "-web.url", "http://127.0.0.1:1", "-web.token-file", tokenFile)...)
			if code != 2 || !strings.Contains(stderr, "with -web.url") {
				continue
			}
			refused++
			if !named[flag] {
				t.Errorf("psa-syncd %s -web.url refuses %s (%s), which README's sentence on flags that would be ignored does not name",
					c.name, flag, strings.TrimSpace(stderr))
			}
		}
	}
	if refused == 0 {
		t.Fatal("no command refused a flag with -web.url")
	}
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/schedule"
)

func cmdSync(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf          commonFlags
		dryRun      bool
		approve     bool
		customer    string
		metricsFile string
		asJSON      bool
	)
	fs := newFlagSet(e, "sync", "Run one sync pass now and exit. Open intents left by an interrupted pass are\n"+
		"reconciled first. The exit code is 1 when the pass failed or was partial.")
	cf.register(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "Compute and report the changes, write nothing to the PSA.")
	fs.BoolVar(&approve, "approve", false, "Apply decreases that the max_decrease_percent guard holds for review. Lines held because the PSA changes them again later in the period are never released by it.")
	fs.StringVar(&customer, "customer", "", "Limit the pass to one source customer `id`.")
	fs.StringVar(&metricsFile, "metrics.file", "", "After the pass, write the metrics in the Prometheus text format to this `file`.")
	fs.BoolVar(&asJSON, "json", false, "Print the result as JSON instead of tables.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	reg := prometheus.NewRegistry()
	d, logger, code := cf.setup(e, reg)
	if code >= 0 {
		return code
	}
	defer closeDaemon(d, logger, &rc)
	ctx, stop := signalContext(ctx)
	defer stop()
	if err := d.Reload(); err != nil {
		return 1 // logged by Reload
	}
	if n, err := d.Reconcile(ctx); err != nil {
		logger.Error("Error reconciling open intents; not syncing", "err", err)
		return 1
	} else if n > 0 {
		logger.Info("Reconciled open intents from an interrupted pass", "intents", n)
	}
	res, err := d.SyncOnce(ctx, daemon.PassOptions{DryRun: dryRun, Approve: approve, Customer: customer, Trigger: daemon.TriggerCLI})
	if metricsFile != "" {
		if werr := prometheus.WriteToTextfile(metricsFile, reg); werr != nil {
			logger.Error("Error writing metrics file", "file", metricsFile, "err", werr)
		}
	}
	if res != nil {
		if asJSON {
			writeResultJSON(e.stdout, res)
		} else {
			printResult(e.stdout, res)
		}
	}
	if err != nil {
		logger.Error("Sync pass failed", "err", err)
		return 1
	}
	if res.Run.Result != "success" {
		return 1
	}
	return 0
}

func cmdPlan(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		asJSON   bool
		all      bool
		customer string
		tf       impactFlags
	)
	fs := newFlagSet(e, "plan", "Print the quantity changes the next pass would make, and the usage that is not\n"+
		"mapped or has no customer. Nothing is written.")
	cf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "Print the plan as JSON.")
	fs.BoolVar(&all, "all", false, "Also list the lines that do not change.")
	fs.StringVar(&customer, "customer", "", "Limit the plan to one source customer `id`.")
	tf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if tf.terraformPlan != "" {
		return runImpact(ctx, e, &cf, tf)
	}
	d, logger, code := cf.setup(e, nil)
	if code >= 0 {
		return code
	}
	defer closeDaemon(d, logger, &rc)
	ctx, stop := signalContext(ctx)
	defer stop()
	if err := d.Reload(); err != nil {
		return 1
	}
	p, err := d.Plan(ctx, daemon.PassOptions{DryRun: true, Customer: customer, Trigger: daemon.TriggerCLI})
	if err != nil {
		logger.Error("Error computing plan", "err", err)
		return 1
	}
	if asJSON {
		if err := daemon.WritePlanJSON(e.stdout, p); err != nil {
			logger.Error("Error writing plan", "err", err)
			return 1
		}
		return 0
	}
	printPlan(e.stdout, p, all)
	return 0
}

func cmdCheck(ctx context.Context, e *env, args []string) int {
	var cf commonFlags
	fs := newFlagSet(e, "check", "Authenticate against the PSA and the usage source with the configured credentials\n"+
		"and say what works. The exit code is 1 when anything fails.")
	cf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	cfg, err := daemon.Load(cf.configFile, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stdout, "FAIL config %s: %v\n", cf.configFile, err)
		return 1
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	hc := &http.Client{Timeout: 60 * time.Second}
	failed := false
	report := func(ok bool, what, detail string) {
		mark := "ok  "
		if !ok {
			mark, failed = "FAIL", true
		}
		fmt.Fprintf(e.stdout, "%s %s: %s\n", mark, what, detail)
	}
	report(true, "config", cf.configFile)

	sys := string(cfg.PSA.System)
	be, err := backends.New(cfg.BackendConfig(hc, logger.With("component", "psa", "system", sys)))
	if err != nil {
		report(false, "psa "+sys, err.Error())
	} else {
		if err := be.Ping(ctx); err != nil {
			report(false, "psa "+sys, "authentication: "+err.Error())
		} else {
			report(true, "psa "+sys, "authenticated at "+be.Instance())
			if d, ok := be.(psa.Describer); ok {
				detail, err := d.Describe(ctx)
				report(err == nil, "psa "+sys+" connection", errText(detail, err))
			}
			b, err := be.Budget(ctx)
			switch {
			case errors.Is(err, psa.ErrNotSupported) && cfg.PSA.System == psa.SystemKaseyaBMS:
				report(true, "psa "+sys+" budget", "Kaseya BMS reports no request budget; the client keeps below its limit of 1,500 calls per hour per endpoint")
			case errors.Is(err, psa.ErrNotSupported) && cfg.PSA.System == psa.SystemConnectWise:
				report(true, "psa "+sys+" budget", "ConnectWise reports no request budget and documents no hourly limit")
			case errors.Is(err, psa.ErrNotSupported):
				report(true, "psa "+sys+" budget", "the PSA does not report an API request budget")
			case err != nil:
				report(false, "psa "+sys+" budget", err.Error())
			default:
				report(b.Remaining() > cfg.Policies.BudgetReserve, "psa "+sys+" budget",
					fmt.Sprintf("%d of %d requests left this %s (passes stop writing at %d)", b.Remaining(), b.Limit, b.Timeframe, cfg.Policies.BudgetReserve))
			}
		}
	}

	if notes := daemon.SystemNotes(cfg.PSA.System); len(notes) > 0 {
		if cfg.PSA.System == psa.SystemKaseyaBMS {
			notes = append(notes, "The state database is in "+cfg.StateDir+".")
		}
		note(e.stdout, "psa "+sys, notes)
	}

	src, err := cfg.NewSource(hc, logger.With("component", "source"))
	if err != nil {
		report(false, "source", err.Error())
	} else if err := src.Check(ctx); err != nil {
		report(false, "source "+src.Name(), err.Error())
	} else {
		report(true, "source "+src.Name(), "reachable and authenticated")
	}

	if _, err := readExport(cfg); err != nil {
		report(false, "mapping export", err.Error())
	} else {
		report(true, "mapping export", cfg.ExportPath)
	}
	if failed {
		return 1
	}
	return 0
}

// note prints what the operator must know about an item of check: not a
// failure. Each paragraph is wrapped and indented under the item.
func note(w io.Writer, what string, paragraphs []string) {
	fmt.Fprintf(w, "NOTE %s:\n", what)
	for _, p := range paragraphs {
		prefix := "   - "
		line := ""
		for _, word := range strings.Fields(p) {
			if line != "" && len(line)+1+len(word) > 88 {
				fmt.Fprintf(w, "%s%s\n", prefix, line)
				prefix, line = "     ", ""
			}
			if line != "" {
				line += " "
			}
			line += word
		}
		if line != "" {
			fmt.Fprintf(w, "%s%s\n", prefix, line)
		}
	}
}

// errText returns err's message when err is not nil, else text.
func errText(text string, err error) string {
	if err != nil {
		return err.Error()
	}
	return text
}

// readExport reads and validates the mapping export the config names, and
// checks it against the config.
func readExport(cfg *daemon.Config) (*export.Document, error) {
	data, err := os.ReadFile(cfg.ExportPath)
	if err != nil {
		return nil, fmt.Errorf("mapping export: %w", err)
	}
	doc, err := export.Decode(data)
	if err != nil {
		return nil, fmt.Errorf("mapping export %s: %w", cfg.ExportPath, err)
	}
	if doc.PSA.System != cfg.PSA.System {
		return nil, fmt.Errorf("mapping export %s: psa.system: the export is for %q but the config file is for %q", cfg.ExportPath, doc.PSA.System, cfg.PSA.System)
	}
	if in := doc.Integration; in != nil {
		if in.Schedule != "" {
			if _, err := schedule.Parse(in.Schedule); err != nil {
				return nil, fmt.Errorf("mapping export %s: integration.schedule: %w", cfg.ExportPath, err)
			}
		}
		if _, err := schedule.LoadLocation(in.Timezone); err != nil {
			return nil, fmt.Errorf("mapping export %s: integration.timezone: %w", cfg.ExportPath, err)
		}
	}
	return doc, nil
}

func cmdValidate(_ context.Context, e *env, args []string) int {
	var (
		cf         commonFlags
		exportFile string
	)
	fs := newFlagSet(e, "validate", "Validate the config file and the mapping export it names. Errors name the file,\n"+
		"the entry and the field. The exit code is 1 when either is invalid.")
	cf.register(fs)
	fs.StringVar(&exportFile, "export.file", "", "Validate this mapping export `file` instead of the config file's export_path.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	cfg, err := daemon.Load(cf.configFile, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	fmt.Fprintf(e.stdout, "config file %s: valid\n", cf.configFile)
	if exportFile != "" {
		cfg.ExportPath = exportFile
	}
	doc, err := readExport(cfg)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	usage, tickets := 0, 0
	for _, c := range doc.CustomerMappings {
		if c.UsageSync {
			usage++
		}
		if c.TicketSync {
			tickets++
		}
	}
	fmt.Fprintf(e.stdout, "mapping export %s: valid (revision %d, %d product mappings, %d customer mappings, %d with usage sync, %d with ticket sync)\n",
		cfg.ExportPath, doc.Revision, len(doc.ProductMappings), len(doc.CustomerMappings), usage, tickets)
	return 0
}

func cmdStatus(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf     commonFlags
		failed bool
		asJSON bool
		url    string
	)
	fs := newFlagSet(e, "status", "Print the per-customer sync status from the state database, or from a running\n"+
		"daemon's API with -web.url (the database is locked while the daemon runs).")
	cf.register(fs)
	fs.BoolVar(&failed, "failed", false, "Only list customers whose last sync failed or was partial.")
	fs.BoolVar(&asJSON, "json", false, "Print JSON.")
	fs.StringVar(&url, "web.url", "", "Base `URL` of a running psa-syncd, e.g. http://127.0.0.1:9810, to ask instead of opening the state database.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	var (
		customers []statusRow
		intents   []daemon.IntentView
	)
	if url != "" {
		rows, err := fetchStatus(ctx, url, failed)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		customers = rows
		if intents, err = fetchIntents(ctx, url); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
	} else {
		cfg, err := daemon.Load(cf.configFile, e.getenv)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		db, err := state.Open(cfg.StateDir)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		defer func() {
			if err := db.Close(); err != nil {
				fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
				rc = 1
			}
		}()
		sts, err := db.CustomerStatuses()
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		for _, cs := range sts {
			if failed && cs.Result != "failed" && cs.Result != "partial" {
				continue
			}
			customers = append(customers, newStatusRow(cs))
		}
		open, err := db.OpenIntents()
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		for _, in := range open {
			intents = append(intents, daemon.NewIntentView(in))
		}
	}
	if asJSON {
		if intents == nil {
			intents = []daemon.IntentView{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"customers": customers, "intents": intents})
		return 0
	}
	defer printIntents(e.stdout, intents)
	if len(customers) == 0 {
		if failed {
			fmt.Fprintln(e.stdout, "No customer's last sync failed.")
		} else {
			fmt.Fprintln(e.stdout, "No customer has been synced yet.")
		}
		return 0
	}
	tw := tabwriter.NewWriter(e.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CUSTOMER\tNAME\tCONTRACT\tUSAGE SYNC\tSTATUS\tLAST ATTEMPT\tLAST SUCCESS\tUPDATED\tUNCHANGED\tHELD\tFAILED\tERROR")
	for _, c := range customers {
		msg := c.Error
		if c.Hint != "" {
			msg += " (hint: " + c.Hint + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n",
			c.CustomerID, c.CustomerName, c.ContractID, c.UsageSync, c.Status, fmtTime(c.LastAttempt), fmtTime(c.LastSuccess),
			c.Updated, c.Unchanged, c.Held, c.Failed, oneLine(msg))
	}
	_ = tw.Flush()
	return 0
}

// statusRow is one customer in the status output; its JSON matches
// GET /api/v1/customers.
type statusRow struct {
	Source       string    `json:"source"`
	CustomerID   string    `json:"customer_id"`
	CustomerName string    `json:"customer_name,omitempty"`
	ContractID   string    `json:"contract_id,omitempty"`
	UsageSync    bool      `json:"usage_sync"`
	Status       string    `json:"status"`
	LastAttempt  time.Time `json:"last_attempt,omitzero"`
	LastSuccess  time.Time `json:"last_success,omitzero"`
	Error        string    `json:"error,omitempty"`
	Hint         string    `json:"hint,omitempty"`
	Updated      int       `json:"updated"`
	Unchanged    int       `json:"unchanged"`
	Held         int       `json:"held"`
	Failed       int       `json:"failed"`
}

func fetchStatus(ctx context.Context, base string, failed bool) ([]statusRow, error) {
	u := strings.TrimRight(base, "/") + "/api/v1/customers"
	if failed {
		u += "?status=failed"
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, strings.TrimSpace(string(body)))
	}
	var out struct {
		Customers []statusRow `json:"customers"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, fmt.Errorf("GET %s: decoding answer: %w", u, err)
	}
	return out.Customers, nil
}

// printResult prints the per-customer report of a pass.
func printResult(w io.Writer, res *daemon.Result) {
	r := res.Run
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing written)"
	}
	fmt.Fprintf(w, "Run %d%s: %s\n", r.ID, mode, r.Result)
	fmt.Fprintf(w, "  period %s, %d customers, lines: %d updated, %d unchanged, %d held, %d failed; %d PSA requests; %s\n",
		r.Period, r.Customers, r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", oneLine(r.Error))
	}
	if len(res.Customers) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tNAME\tCONTRACT\tRESULT\tUPDATED\tUNCHANGED\tHELD\tFAILED\tERROR")
		for _, c := range res.Customers {
			msg := c.Error
			if c.Hint != "" {
				msg += " (hint: " + c.Hint + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", c.CustomerID, c.CustomerName, c.ContractID, c.Result,
				c.Updated, c.Unchanged, c.Held, c.Failed, oneLine(msg))
		}
		_ = tw.Flush()
	}
	if res.Plan != nil {
		fmt.Fprintln(w)
		printChanges(w, res.Plan, false)
	}
}

// writeResultJSON prints a pass's run, customers and plan as JSON, in the
// shapes of the HTTP API.
func writeResultJSON(w io.Writer, res *daemon.Result) {
	customers := make([]statusRow, 0, len(res.Customers))
	for _, cs := range res.Customers {
		customers = append(customers, newStatusRow(cs))
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(map[string]any{"run": daemon.NewRunView(res.Run), "customers": customers, "plan": res.Plan})
}

func newStatusRow(cs state.CustomerStatus) statusRow {
	return statusRow{
		Source: cs.Source, CustomerID: cs.CustomerID, CustomerName: cs.CustomerName, ContractID: cs.ContractID,
		UsageSync: cs.UsageSync, Status: cs.Result, LastAttempt: cs.LastAttempt, LastSuccess: cs.LastSuccess,
		Error: cs.Error, Hint: cs.Hint, Updated: cs.Updated, Unchanged: cs.Unchanged, Held: cs.Held, Failed: cs.Failed,
	}
}

// printPlan prints a plan as aligned tables: the lines that change (all
// lines with all), then unmapped and unassigned usage and skipped rows.
func printPlan(w io.Writer, p *daemon.Plan, all bool) {
	fmt.Fprintf(w, "Plan for period %s (effective %s), %d customers with usage sync\n\n", p.Period, fmtDate(p.EffectiveDate), p.Customers)
	printChanges(w, p, all)
}

// printChanges prints the lines of a plan (those that change, or all),
// their counts, and the usage that cannot be billed.
func printChanges(w io.Writer, p *daemon.Plan, all bool) {
	counts := map[string]int{}
	var rows []daemon.Change
	for _, c := range p.Changes {
		counts[c.Action]++
		if all || c.Action != "unchanged" {
			rows = append(rows, c)
		}
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "No changes: every contract line already has the right quantity.")
	} else {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CUSTOMER\tCONTRACT\tSERVICE\tCURRENT\tDESIRED\tEFFECTIVE\tREASON")
		for _, c := range rows {
			cur := "-"
			if c.CurrentKnown {
				cur = strconv.FormatInt(c.Current, 10)
			}
			reason := c.Reason
			if c.Action != "update" {
				reason = c.Action + ": " + reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", nameID(c.CustomerName, c.CustomerID), c.ContractID,
				nameID(c.ServiceName, c.ServiceID), cur, c.Desired, fmtDate(c.EffectiveDate), oneLine(reason))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\n%d to update, %d unchanged, %d held for review, %d skipped.\n",
		counts["update"], counts["unchanged"], counts["held"], counts["skipped"])
	printUnmapped(w, p)
}

func nameID(name, id string) string {
	if name == "" || name == id {
		return id
	}
	return name + " (" + id + ")"
}

func fmtDate(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format("2006-01-02")
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

// oneLine keeps a message on one table row.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// signalContext cancels ctx on SIGINT or SIGTERM, so that a one-shot pass
// stops safely (its writes are guarded by intents).
func signalContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
}

// printUnmapped prints the usage a pass cannot bill, the customers that
// failed as a whole and the source rows that were skipped.
func printUnmapped(w io.Writer, p *daemon.Plan) {
	u := p.Unmapped
	section := func(title, header string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, header)
		for _, r := range rows {
			fmt.Fprintln(tw, strings.Join(r, "\t"))
		}
		_ = tw.Flush()
	}
	var rows [][]string
	for _, c := range u.Customers {
		rows = append(rows, []string{c.CustomerID, c.CustomerName, strings.Join(c.Products, ","), strconv.FormatInt(c.Quantity, 10)})
	}
	section("Unmapped customers (usage not billed; add a psa_customer_mapping):", "CUSTOMER\tNAME\tPRODUCTS\tQUANTITY", rows)
	rows = nil
	for _, pr := range u.Products {
		rows = append(rows, []string{pr.Product, pr.ProductName, strconv.Itoa(pr.Customers), strconv.FormatInt(pr.Quantity, 10)})
	}
	section("Unmapped products (usage not billed; add a psa_product_mapping):", "PRODUCT\tNAME\tCUSTOMERS\tQUANTITY", rows)
	rows = nil
	for _, r := range u.Unassigned {
		rows = append(rows, []string{r.Product, r.ProductName, strconv.FormatInt(r.Quantity, 10), r.Where})
	}
	section("Usage with no customer (reported, never billed):", "PRODUCT\tNAME\tQUANTITY\tWHERE", rows)
	rows = nil
	for _, pr := range u.SyncOff {
		rows = append(rows, []string{pr.Product, pr.ProductName, strconv.Itoa(pr.Customers), strconv.FormatInt(pr.Quantity, 10)})
	}
	section("Products mapped with sync_enabled = false (not synced on purpose):", "PRODUCT\tNAME\tCUSTOMERS\tQUANTITY", rows)
	rows = nil
	for _, f := range p.Failures {
		msg := f.Error
		if f.Hint != "" {
			msg += " (hint: " + f.Hint + ")"
		}
		rows = append(rows, []string{nameID(f.CustomerName, f.CustomerID), f.ContractID, oneLine(msg)})
	}
	section("Customers that cannot be synced:", "CUSTOMER\tCONTRACT\tERROR", rows)
	if len(p.Problems) > 0 {
		fmt.Fprintf(w, "\nSkipped source rows:\n")
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "  %s\n", oneLine(pr.String()))
		}
	}
}

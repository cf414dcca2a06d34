package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

func cmdSync(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf          commonFlags
		rf          remoteFlags
		dryRun      bool
		approve     bool
		customer    string
		service     string
		units       int64
		surge       string
		metricsFile string
		asJSON      bool
		timeout     time.Duration
		period      string
	)
	fs := newFlagSet(e, "sync", "Run one sync pass now and exit. Open intents left by an interrupted pass are\n"+
		"reconciled first. With -web.url the running daemon runs the pass (it holds the state\n"+
		"database) and the command waits for it. The exit code is 1 when the pass failed or was partial,\n"+
		"as a pass whose usage sets no mapped line is: it leaves every line as it was, the period is not billed.")
	cf.register(fs)
	rf.register(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "Compute and report the changes, write nothing to the PSA.")
	fs.BoolVar(&approve, "approve", false, "Apply decreases and increases that the max_decrease_percent and max_increase_percent guards hold for review,\nfor the -customer (and only its -service line, when given). Give -units too: without it the pass applies\nwhatever change it computes, which can be larger than the one reviewed when usage moved again since. Lines held\nbecause the PSA changes them again later in the period are never released by it.")
	fs.StringVar(&customer, "customer", "", "Limit the pass to one source customer `id`.")
	fs.StringVar(&service, "service", "", "With -approve: approve only the customer's line of this PSA service `id`.")
	fs.Int64Var(&units, "units", 0, "With -approve and -service: approve the line only at these desired `units`, the ones reviewed in plan or on\nthe status page. When the pass computes other units (usage changed since the review), the line stays held.\nGive the -period the line's reason names too, the month reviewed: without it the pass approves the month it syncs now.")
	fs.StringVar(&surge, "surge", "", "With -approve and no -customer: approve every line the surge guard (policies.surge_lines_percent) holds, at once, with this review `code`\n"+
		"(psa-syncd plan, the pass's log and the status page give it). The pass writes them only when it holds exactly the lines, at the units,\n"+
		"that were reviewed, and none otherwise (exit code 1); it releases no other hold. Give the -period the code was given for.\n"+
		"With -dry-run it writes nothing and says whether the approval would be applied (exit code 1 if not).")
	fs.StringVar(&period, "period", "", periodHelp("Sync")+"\nOn ConnectWise PSA, whose addition quantities are undated, a pass that writes the month that ended is refused.")
	fs.StringVar(&metricsFile, "metrics.file", "", "After the pass, write the metrics in the Prometheus text format to this `file` (exit code 1 when it cannot be).")
	fs.BoolVar(&asJSON, "json", false, "Print the result as JSON instead of tables.")
	fs.DurationVar(&timeout, "timeout", 0, fmt.Sprintf("With -web.url: stop waiting for the daemon's pass after this long (0: wait until it ends), with exit code %d;\n"+
		"the pass goes on in the daemon (psa-syncd status -web.url shows it). For a CI job that must not hang behind a long pass.", exitUnreachable))
	fs.BoolVar(&cf.allowEmpty, "state.allow-empty", false, allowEmptyHelp)
	fs.BoolVar(&cf.allowRestore, "state.allow-restore", false, allowRestoreHelp)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	var approveUnits *int64
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "units" {
			approveUnits = &units
		}
	})
	switch {
	case surge != "" && !approve:
		fmt.Fprintln(e.stderr, "psa-syncd: -surge is only used with -approve: it is the review code of the lines held for a surge")
		return 2
	case surge != "" && !usage.IsSurgeReview(surge):
		fmt.Fprintf(e.stderr, "psa-syncd: -surge %q: not a review code; give the 12 hexadecimal digits psa-syncd plan gives\n", surge)
		return 2
	case surge != "" && (customer != "" || service != "" || approveUnits != nil):
		fmt.Fprintln(e.stderr, "psa-syncd: -approve -surge approves every line held for the surge in a pass over all customers, at the units its review code names: give no -customer, -service or -units")
		return 2
	case approve && customer == "" && surge == "":
		fmt.Fprintln(e.stderr, "psa-syncd: -approve needs -customer: review and approve held changes one customer (or line) at a time, or the lines held for a surge with -surge CODE")
		return 2
	case service != "" && !approve:
		fmt.Fprintln(e.stderr, "psa-syncd: -service is only used with -approve")
		return 2
	case approveUnits != nil && service == "":
		fmt.Fprintln(e.stderr, "psa-syncd: -units needs -approve, -customer and -service: it is the reviewed quantity of one line")
		return 2
	case units < 0:
		fmt.Fprintf(e.stderr, "psa-syncd: -units %d: units must not be negative\n", units)
		return 2
	case timeout < 0:
		fmt.Fprintf(e.stderr, "psa-syncd: -timeout %s: must not be negative\n", timeout)
		return 2
	case timeout > 0 && rf.url == "":
		fmt.Fprintln(e.stderr, "psa-syncd: -timeout needs -web.url: it limits the wait for a running daemon's pass (stop a pass of this command with SIGINT or SIGTERM)")
		return 2
	}
	billing, ok := parsePeriodFlag(e, period)
	if !ok {
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if api != nil {
		switch {
		case dryRun:
			fmt.Fprintln(e.stderr, "psa-syncd: -dry-run with -web.url: use `psa-syncd plan -web.url ...` to see what a pass would change")
			return 2
		case metricsFile != "":
			fmt.Fprintln(e.stderr, "psa-syncd: -metrics.file with -web.url: the running daemon serves its metrics on /metrics")
			return 2
		case cf.stateFlag() != "":
			fmt.Fprintf(e.stderr, "psa-syncd: %s with -web.url: the running daemon opened the state database; give it to `psa-syncd run`\n", cf.stateFlag())
			return 2
		}
		return syncRemote(ctx, e, api, daemon.SyncRequest{Customer: customer, Approve: approve, Service: service, Units: approveUnits, Surge: surge, Period: billing}, asJSON, timeout)
	}
	reg := prometheus.NewRegistry()
	d, logger, code := cf.setup(e, reg)
	if code >= 0 {
		return code
	}
	defer closeDaemon(d, logger, &rc)
	if err := d.Reload(); err != nil {
		return 1 // logged by Reload
	}
	if err := d.BecomeActive(ctx); err != nil {
		logger.Error("Not syncing", "err", err)
		return 1
	}
	// A state database of another PSA instance is refused by the pass as
	// well, which records the refused run (its result and metrics).
	var otherInstance *usage.InstanceMismatchError
	if n, err := d.Reconcile(ctx); err != nil && !errors.As(err, &otherInstance) {
		logger.Error("Error reconciling open intents; not syncing", "err", err)
		return 1
	} else if n > 0 {
		logger.Info("Reconciled open intents from an interrupted pass", "intents", n)
	}
	if metricsFile != "" && !billing.IsZero() {
		// A pass of the month that ended moves no last-run gauge
		// (usage.RanEarlierPeriod): the file, which a textfile collector
		// may read in place of a pass's of the schedule, keeps those of
		// the passes before it instead of zeros.
		if err := d.RestoreMetrics(); err != nil {
			logger.Error("Could not restore metrics from the state database", "err", err)
		}
	}
	o := usage.PassOptions{DryRun: dryRun, Approve: approve, ApproveService: service, ApproveUnits: approveUnits,
		Customer: customer, Trigger: usage.TriggerCLI, Period: billing}
	if surge != "" {
		o = usage.PassOptions{DryRun: dryRun, ApproveSurge: surge, Trigger: usage.TriggerCLI, Period: billing}
	}
	res, err := d.SyncOnce(ctx, o)
	var metricsErr error
	if metricsFile != "" {
		if metricsErr = prometheus.WriteToTextfile(metricsFile, reg); metricsErr != nil {
			logger.Error("Error writing metrics file", "file", metricsFile, "err", metricsErr)
		}
	}
	if res != nil {
		if asJSON {
			if werr := writeResultJSON(e.stdout, res); werr != nil {
				logger.Error("Error writing the result", "err", werr)
			}
		} else {
			printResult(e.stdout, res)
		}
	}
	if err != nil {
		logger.Error("Sync pass failed", "err", err)
		return 1
	}
	if surge != "" && surgeNotApproved(e, res.Plan, dryRun) {
		return 1
	}
	if approveUnits != nil {
		for _, cs := range res.Customers {
			if cs.CustomerID == customer && approvalNotApplied(e, cs.Result, cs.Error) {
				return 1
			}
		}
	}
	// Metrics that could not be written fail the command too: a textfile
	// collector would go on showing the last ones.
	if res.Run.Result != "success" || metricsErr != nil {
		return 1
	}
	return 0
}

// periodHelp is the help text of sync's and plan's -period flag; verb
// starts it.
func periodHelp(verb string) string {
	return verb + " the usage of this billing month, `YYYY-MM`: the one a pass syncs now, or the one before it, to run a month-end\n" +
		"pass that failed or was partial again once its month has ended, with the effective dates the policies give for that month\n" +
		"(effective_date: today dates them on its last day). Older months are refused. Default: the month a pass syncs now."
}

// parsePeriodFlag parses a -period flag ("" is none), or says on stderr
// what is wrong with it.
func parsePeriodFlag(e *env, v string) (source.Period, bool) {
	if v == "" {
		return source.Period{}, true
	}
	p, err := source.ParsePeriod(v)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: -period %q: want a billing month, YYYY-MM\n", v)
		return source.Period{}, false
	}
	return p, true
}

// approvalNotApplied reports, on stderr too, whether the status of the
// customer of an approval that names units says the units were not the
// ones the pass computed, or that the line stays held for a reason no
// approval releases: a held customer has an error only then.
func approvalNotApplied(e *env, status, errText string) bool {
	if status != state.CustomerHeld || errText == "" {
		return false
	}
	fmt.Fprintf(e.stderr, "psa-syncd: the approval was not applied: %s\n", errText)
	return true
}

// surgeNotApproved reports, on stderr, whether a pass asked to approve a
// surge (-approve -surge) did not: the lines held for it changed since
// the review, or the pass held none. A dry run (-dry-run) reports whether
// the approval would not be applied, with the same exit code as the pass
// would have: it writes nothing either way.
func surgeNotApproved(e *env, plan *usage.Plan, dryRun bool) bool {
	was, written := "was not applied", "was written"
	if dryRun {
		was, written = "would not be applied (dry run: nothing written)", "would be written"
	}
	switch {
	case plan == nil:
		return false
	case plan.Surge == nil:
		fmt.Fprintf(e.stderr, "psa-syncd: the approval %s: the pass held no line for a surge\n", was)
		return true
	case plan.Surge.Approval != "applied":
		fmt.Fprintf(e.stderr, "psa-syncd: the approval %s: the lines held for the surge changed since the review (their review code is now %s); nothing held for it %s: review them again (psa-syncd plan), then approve with -surge %s -period %s\n",
			was, plan.Surge.Review, written, plan.Surge.Review, plan.Surge.Period)
		return true
	}
	return false
}

// syncRemote asks a running daemon for a pass, waits for it (up to timeout,
// when it is not 0) and prints it like a local pass (its JSON with the sync
// request too).
func syncRemote(ctx context.Context, e *env, api *apiClient, r daemon.SyncRequest, asJSON bool, timeout time.Duration) int {
	var tk daemon.SyncTicket
	if err := api.post(ctx, "/api/v1/sync", r.APIBody(), &tk); err != nil {
		return requestFailed(e, err)
	}
	fmt.Fprintf(e.stderr, "Sync request %s queued; waiting for the pass to finish.\n", tk.ID)
	id := tk.ID
	wait := ctx
	if timeout > 0 {
		var cancel context.CancelFunc
		wait, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	tk, run, err := api.waitRun(wait, id)
	see := fmt.Sprintf("the daemon runs its pass all the same: see `psa-syncd status -web.url %s` or GET /api/v1/runs/%s", strings.TrimSpace(api.shownURL()+" "+api.tls.flags()), id)
	if err != nil && ctx.Err() != nil {
		// Interrupted (SIGINT, SIGTERM): the daemon's pass goes on.
		fmt.Fprintf(e.stderr, "psa-syncd: stopped waiting for sync request %s; %s\n", id, see)
		return 1
	}
	if err != nil && wait.Err() != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: sync request %s did not finish within -timeout %s; %s\n", id, timeout, see)
		return exitUnreachable
	}
	if err != nil {
		return requestFailed(e, err)
	}
	if run == nil {
		fmt.Fprintf(e.stderr, "psa-syncd: sync request %s failed before its pass started: %s\n", tk.ID, tk.Error)
		return 1
	}
	var out struct {
		Customers []statusRow `json:"customers"`
	}
	if err := api.get(ctx, "/api/v1/customers", nil, &out); err != nil {
		return requestFailed(e, err)
	}
	customers := []statusRow{}
	for _, c := range out.Customers {
		if c.RunID == strconv.FormatInt(run.ID, 10) {
			customers = append(customers, c)
		}
	}
	// The plan of the pass, as sync prints it without a daemon (the lines
	// it changed, and the usage it could not bill): the daemon's last
	// plan when it is this pass's.
	var plan *usage.Plan
	var last usage.Plan
	if err := api.get(ctx, "/api/v1/plan", nil, &last); err == nil && last.RunID == run.ID {
		plan = &last
	}
	if asJSON {
		writeJSON(e.stdout, map[string]any{"request": tk, "run": run, "customers": customers, "plan": plan})
	} else {
		printRun(e.stdout, *run, customers)
		if plan != nil {
			fmt.Fprintln(e.stdout)
			printChanges(e.stdout, plan, false, false)
		}
	}
	if r.Surge != "" && (plan == nil || surgeNotApproved(e, plan, false)) {
		if plan == nil {
			fmt.Fprintf(e.stderr, "psa-syncd: could not tell whether the surge was approved: the daemon's last plan is not this pass's; see GET /api/v1/plan\n")
		}
		return 1
	}
	if r.Units != nil {
		for _, c := range customers {
			if c.CustomerID == r.Customer && approvalNotApplied(e, c.Status, c.Error) {
				return 1
			}
		}
	}
	if run.Result != "success" {
		return 1
	}
	return 0
}

// planFlagConflict names a flag of plan given with, or without,
// -terraform-plan where it has no effect, "" when there is none.
func planFlagConflict(fs *flag.FlagSet, billingImpact bool) string {
	var msg string
	fs.Visit(func(f *flag.Flag) {
		switch {
		case msg != "":
		case billingImpact && f.Name == "json":
			msg = "-json does not apply to -terraform-plan: give -format json"
		case billingImpact && slices.Contains([]string{"all", "customer", "period"}, f.Name):
			msg = "-" + f.Name + " does not apply to -terraform-plan: the billing impact covers every customer, from the config file's PSA and usage source"
		case !billingImpact && f.Name == "format":
			msg = "-format applies to -terraform-plan only: give -json for the plan as JSON"
		case !billingImpact && (f.Name == "reviewed" || f.Name == "json.file"):
			msg = "-" + f.Name + " applies to -terraform-plan only: the report of a Terraform plan's billing impact"
		}
	})
	return msg
}

func cmdPlan(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		rf       remoteFlags
		asJSON   bool
		all      bool
		customer string
		period   string
		tf       impactFlags
	)
	fs := newFlagSet(e, "plan", "Print the quantity changes the next pass would make, and the usage that is not\n"+
		"mapped or has no customer. Nothing is written. With -web.url and the API token the running daemon\n"+
		"computes it now; with -web.url and no token it shows the plan of the daemon's last pass.\n"+
		"The exit code is 1 when a customer or line cannot be planned (the table then starts with\n"+
		"an ERROR: line naming them): a CI job must not trust such a plan.")
	cf.register(fs)
	// With -terraform-plan and no -web.url, the TLS flags are for the
	// read of the export from the daemon on this machine.
	rf.localWith = "-terraform-plan"
	rf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "Print the plan as JSON.")
	fs.BoolVar(&all, "all", false, "Also list the lines that do not change.")
	fs.StringVar(&customer, "customer", "", "Limit the plan to one source customer `id`.")
	fs.StringVar(&period, "period", "", periodHelp("Plan")+"\nWith -web.url it needs the API token: the plan is computed now.")
	tf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if msg := planFlagConflict(fs, tf.terraformPlan != ""); msg != "" {
		fmt.Fprintf(e.stderr, "psa-syncd: %s\n", msg)
		return 2
	}
	if tf.terraformPlan != "" {
		return runImpact(ctx, e, &cf, tf, &rf)
	}
	billing, ok := parsePeriodFlag(e, period)
	if !ok {
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	var p *usage.Plan
	if api != nil {
		q := url.Values{}
		if customer != "" {
			q.Set("customer", customer)
		}
		p = new(usage.Plan)
		if !billing.IsZero() && api.token == "" {
			fmt.Fprintln(e.stderr, "psa-syncd: -period with -web.url needs the API token (-web.token-file or PSA_SYNCD_API_TOKEN): "+
				"the plan of a period is computed now; without the token the command shows the plan of the daemon's last pass")
			return 2
		}
		// Computing a plan reads the PSA, so it needs the token; the last
		// pass's plan does not.
		if api.token != "" {
			body := map[string]string{"customer": customer}
			if !billing.IsZero() {
				body["period"] = billing.String()
			}
			err = api.postWithin(ctx, "/api/v1/plan", body, p, remotePassTimeout)
		} else {
			err = api.get(ctx, "/api/v1/plan", q, p)
		}
		if err != nil {
			return requestFailed(e, err)
		}
	} else {
		d, logger, code := cf.setup(e, nil)
		if code >= 0 {
			return code
		}
		defer closeDaemon(d, logger, &rc)
		if err := d.Reload(); err != nil {
			return 1
		}
		if p, err = d.Plan(ctx, usage.PassOptions{DryRun: true, Customer: customer, Trigger: usage.TriggerCLI, Period: billing}); err != nil {
			logger.Error("Error computing plan", "err", err)
			return 1
		}
	}
	// A plan that leaves customers out is not a plan a CI job may trust:
	// the exit code says so, and so does the first line of the table.
	rc = 0
	if len(unplanned(p)) > 0 {
		rc = 1
	}
	if asJSON {
		if err := daemon.WritePlanJSON(e.stdout, p); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: writing plan: %v\n", err)
			return 1
		}
		return rc
	}
	printPlan(e.stdout, p, all)
	return rc
}

// unplanned returns the customers of p that cannot be planned as a whole or
// have lines that cannot, "name (id)", in plan order.
func unplanned(p *usage.Plan) []string {
	var out []string
	seen := map[string]bool{}
	add := func(source, id, name string) {
		if k := source + "/" + id; !seen[k] {
			seen[k] = true
			out = append(out, nameID(name, id))
		}
	}
	for _, f := range p.Failures {
		add(f.Source, f.CustomerID, f.CustomerName)
	}
	for _, c := range p.Changes {
		if c.Action == usage.ActionFailed {
			add(c.Source, c.CustomerID, c.CustomerName)
		}
	}
	return out
}

func cmdCheck(ctx context.Context, e *env, args []string) int {
	var (
		cf            commonFlags
		rf            remoteFlags
		asJSON        bool
		webConfigFile string
	)
	fs := newFlagSet(e, "check", "Authenticate against the PSA and the usage source with the configured credentials\n"+
		"and say what works. The exit code is 1 when anything fails. With -web.url a running\n"+
		"psa-syncd runs the tests with its config file, environment and secret files (which a\n"+
		"shell often cannot read: systemd credentials, a Secret mounted in a pod) and needs the\n"+
		"API token.")
	cf.register(fs)
	// Without -web.url, the TLS flags are for the read of the export from
	// the daemon on this machine.
	rf.local = true
	rf.register(fs)
	fs.BoolVar(&asJSON, "json", false, "Print the report as JSON: {\"ok\": bool, \"items\": [{\"result\": \"ok\"|\"fail\"|\"note\", \"item\", \"detail\", \"notes\"}]}.")
	fs.StringVar(&webConfigFile, "web.config.file", "", "The web configuration `file` run is given (its -web.config.file): check that run\ncan use it and list its certificate files with their expiry, as check -web.url does for\nthe running daemon. Without -web.url only: the running daemon checks its own.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if api != nil && webConfigFile != "" {
		// Not silently ignored: the daemon checks the file it was started
		// with, which may be another one.
		fmt.Fprintf(e.stderr, "psa-syncd: -web.config.file applies without -web.url only: with -web.url the daemon checks the web config file it was started with\n")
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	var items []daemon.CheckItem
	if api != nil {
		var out daemon.CheckReport
		if err := api.postWithin(ctx, "/api/v1/check", struct{}{}, &out, remotePassTimeout); err != nil {
			return requestFailed(e, err)
		}
		if !asJSON {
			fmt.Fprint(e.stdout, out.Report)
			return checkExit(out.OK)
		}
		if out.Items == nil {
			// A psa-syncd from before the report had items.
			fmt.Fprintf(e.stderr, "psa-syncd: the daemon at %s answers its check report as text only (an older psa-syncd): "+
				"upgrade it for -json, or leave -json out\n", api.shownURL())
			return 1
		}
		items = out.Items
	} else {
		logger, err := cf.logger(e)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 2
		}
		w := e.stdout
		if asJSON {
			w = io.Discard
		}
		if cfg, err := daemon.Load(cf.configFile, e.getenv); err != nil {
			fmt.Fprintf(w, "FAIL config %s: %v\n", cf.configFile, err)
			items = []daemon.CheckItem{{Result: daemon.CheckFail, Item: "config", Detail: fmt.Sprintf("%s: %v", cf.configFile, err)}}
		} else if err := rf.tls.localRead(cfg); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 2
		} else {
			items = runChecks(ctx, cfg, cf.configFile, nil, nil, rf.tls, logger, w)
			items = append(items, daemon.CheckTLS(webConfigFile, cfg, time.Now(), w)...)
		}
	}
	if asJSON {
		writeJSON(e.stdout, struct {
			OK    bool               `json:"ok"`
			Items []daemon.CheckItem `json:"items"`
		}{daemon.CheckPassed(items), items})
	}
	return checkExit(daemon.CheckPassed(items))
}

// checkExit is check's exit code: 0 when every test passed, else 1.
func checkExit(ok bool) int {
	if ok {
		return 0
	}
	return 1
}

// checker returns the tests of psa-syncd check for a running daemon (POST
// /api/v1/check), logging to logger. Their PSA backend is the daemon's
// kind (newBackend): on Kaseya BMS their calls count against the hourly
// limit that the passes keep in the state database.
func checker(configFile string, logger *slog.Logger) func(context.Context, *daemon.Config, func() ([]byte, error), func(*daemon.Config) (psa.Backend, error), io.Writer) []daemon.CheckItem {
	return func(ctx context.Context, cfg *daemon.Config, stored func() ([]byte, error), newBackend func(*daemon.Config) (psa.Backend, error), w io.Writer) []daemon.CheckItem {
		return runChecks(ctx, cfg, configFile, stored, newBackend, remoteTLS{}, logger, w)
	}
}

// runChecks runs psa-syncd check's tests with cfg, loaded from configFile,
// writing a line per test to w, and returns the report's items (see
// daemon.CheckPassed). stored, when not nil, reads the export of
// export_url: self: the daemon running the tests holds the state database
// that stores it; else local are the TLS files with which to read it from
// the daemon on this machine that holds it (see readExportData).
// newBackend, when not nil, builds the PSA backend (the daemon's, whose
// Kaseya BMS calls count in its state database); else a backend of
// check's own counts them, in memory, and check logs how many it sent
// (countUncounted).
func runChecks(ctx context.Context, cfg *daemon.Config, configFile string, stored func() ([]byte, error), newBackend func(*daemon.Config) (psa.Backend, error), local remoteTLS, logger *slog.Logger, w io.Writer) []daemon.CheckItem {
	hc := &http.Client{Timeout: 60 * time.Second}
	if newBackend == nil {
		logCalls := func(*slog.Logger) {}
		defer func() { logCalls(logger) }()
		newBackend = func(cfg *daemon.Config) (psa.Backend, error) {
			// backends.New adds the system to its clients' logger.
			bc := cfg.BackendConfig(hc, logger.With("component", "psa"))
			logCalls = countUncounted(&bc)
			return backends.New(bc)
		}
	}
	var items []daemon.CheckItem
	report := func(ok bool, what, detail string) {
		mark, result := "ok  ", daemon.CheckOK
		if !ok {
			mark, result = "FAIL", daemon.CheckFail
		}
		fmt.Fprintf(w, "%s %s: %s\n", mark, what, detail)
		items = append(items, daemon.CheckItem{Result: result, Item: what, Detail: detail})
	}
	note := func(what string, paragraphs []string) {
		writeNote(w, what, paragraphs)
		items = append(items, daemon.CheckItem{Result: daemon.CheckNote, Item: what, Notes: paragraphs})
	}
	report(true, "config", configFile)
	if w := cfg.Warnings(); len(w) > 0 {
		note("config policies", w)
	}

	sys := string(cfg.PSA.System)
	connected := false
	be, err := newBackend(cfg)
	if err != nil {
		report(false, "psa "+sys, err.Error())
	} else {
		if err := be.Ping(ctx); err != nil {
			report(false, "psa "+sys, "authentication: "+err.Error())
		} else {
			connected = true
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
					fmt.Sprintf("%d of %d requests left this %s (usage passes stop writing at %d, ticket passes at %d)", b.Remaining(), b.Limit, b.Timeframe,
						cfg.Policies.BudgetReserve, cfg.Policies.TicketReserve()))
			}
		}
	}

	if notes := usage.SystemNotes(cfg.PSA.System); len(notes) > 0 {
		if cfg.PSA.System == psa.SystemKaseyaBMS {
			notes = append(notes, "The state database is in "+cfg.StateDir+".")
		}
		note("psa "+sys, notes)
	}

	src, err := cfg.NewSource(hc, logger.With("component", "source"))
	if err != nil {
		report(false, "source", err.Error())
	} else if d, ok := src.(source.Describer); ok {
		// What the check found: the file's rows, the partner's tenants.
		detail, err := d.Describe(ctx)
		report(err == nil, "source "+src.Name(), errText(detail, err))
	} else if err := src.Check(ctx); err != nil {
		report(false, "source "+src.Name(), err.Error())
	} else {
		report(true, "source "+src.Name(), "reachable and authenticated")
	}

	// The export must be for the instance psa-syncd connects to; an
	// instance that could not be reached is not compared.
	instance := ""
	if be != nil && connected {
		instance = be.Instance()
	}
	if doc, via, err := readExportFrom(ctx, cfg, instance, stored, local, logger); err != nil {
		// The line names the item already: "FAIL mapping export: <store>: ...".
		report(false, "mapping export", strings.TrimPrefix(err.Error(), "mapping export "))
	} else if msg := sourceMismatch(cfg, doc); msg != "" {
		report(false, "mapping export", cfg.ExportName()+via+": "+msg)
	} else {
		report(true, "mapping export", cfg.ExportName()+via)
	}
	// So must the state database: passes refuse one that holds another
	// instance's usage.
	if be != nil && connected {
		ok, detail, skipped := checkStateInstance(ctx, cfg, be)
		if skipped {
			note("state database", []string{detail})
		} else {
			report(ok, "state database", detail)
		}
	}
	return items
}

// checkStateInstance checks, for psa-syncd check, that the state database
// holds the usage of the PSA instance be is connected to, as a pass does
// (see usage.InstanceMismatchError, which it reports in the pass's words).
// It opens the database as it is (state.Config.Existing): it creates,
// imports and migrates nothing. It says nothing of a database that is not
// there yet, and skips the check (skipped, detail saying why) for one
// whose schema records no instance yet, or that another psa-syncd process
// holds: that daemon's passes check it themselves. A database whose schema
// a newer psa-syncd migrated fails, in the words with which run refuses it.
func checkStateInstance(ctx context.Context, cfg *daemon.Config, be psa.Backend) (ok bool, detail string, skipped bool) {
	sys := be.System()
	cur, err := usage.ConnectedInstance(ctx, be)
	if err != nil {
		return false, err.Error(), false
	}
	dbc := cfg.State.Database(cfg.StateDir)
	dbc.Existing = true // only read from
	db, err := state.OpenConfig(ctx, dbc)
	switch {
	case errors.Is(err, state.ErrNoState):
		return true, fmt.Sprintf("none yet: the first pass creates it and records %s instance %q as the one whose usage it holds", sys, cur), false
	case err != nil && strings.Contains(err.Error(), "is locked by another psa-syncd process"):
		return false, fmt.Sprintf("Not checked which PSA instance's usage it holds: %v; that psa-syncd refuses every pass connected to another instance.", err), true
	case err != nil:
		return false, err.Error(), false
	}
	defer func() { _ = db.Close() }() // only read from
	if err := db.CheckNotNewer(); err != nil {
		return false, err.Error(), false // psa-syncd run refuses it
	}
	v, err := db.Version()
	if err != nil {
		return false, err.Error(), false
	}
	if v < state.InstanceSchemaVersion {
		return false, fmt.Sprintf("Not checked which PSA instance's usage it holds: its schema (version %d) predates version %d, which records it; "+
			"the next pass migrates it and records %s instance %q.", v, state.InstanceSchemaVersion, sys, cur), true
	}
	bound, found, err := db.BoundInstance(sys)
	switch {
	case err != nil:
		return false, err.Error(), false
	case !found:
		return true, fmt.Sprintf("records no %s instance yet: the next pass that writes records %s instance %q", sys, sys, cur), false
	case !export.SameInstance(bound.Instance, cur):
		return false, strings.TrimPrefix((&usage.InstanceMismatchError{Bound: bound, Connected: cur}).Error(), "daemon: "), false
	}
	return true, fmt.Sprintf("holds the usage of %s (recorded %s), the instance psa-syncd is connected to", bound, bound.BoundAt.Format(time.DateOnly)), false
}

// writeNote prints what the operator must know about an item of check: not
// a failure. Each paragraph is wrapped and indented under the item.
func writeNote(w io.Writer, what string, paragraphs []string) {
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

// sourceMismatch says, when the export maps products or customers but
// none of the usage source the config names, that the names differ (a
// source.file.name left out, say): every pass would find each customer of
// the usage unmapped and write nothing. It returns "" otherwise.
func sourceMismatch(cfg *daemon.Config, doc *export.Document) string {
	src, err := cfg.NewSource(nil, nil) // no I/O; its errors are Load's
	if err != nil {
		return ""
	}
	own := src.Name()
	var others []string
	add := func(source string) bool {
		if source == own {
			return false
		}
		if q := strconv.Quote(source); !slices.Contains(others, q) {
			others = append(others, q)
		}
		return true
	}
	for _, pm := range doc.ProductMappings {
		if !add(pm.Source) {
			return ""
		}
	}
	for _, cm := range doc.CustomerMappings {
		if !add(cm.Source) {
			return ""
		}
	}
	if len(others) == 0 {
		return ""
	}
	key := "source.type"
	if cfg.Source.Type == daemon.SourceFile {
		key = "source.file.name"
	}
	return fmt.Sprintf("it maps no product or customer of the usage source %q (%s), only of %s: every customer in the usage "+
		"would be unmapped and no line written; give the source the name the export uses", own, key, strings.Join(others, ", "))
}

// readExport reads the mapping export from the store the config names
// and checks it against the config and, when instance is not empty, the
// PSA instance psa-syncd connects to. via says, when it is not empty,
// where the export was read instead (", read through ...").
func readExport(ctx context.Context, cfg *daemon.Config, instance string, local remoteTLS, logger *slog.Logger) (doc *export.Document, via string, err error) {
	return readExportFrom(ctx, cfg, instance, nil, local, logger)
}

// readExportFrom is readExport in a running daemon, whose state database
// stored reads (nil: open it).
func readExportFrom(ctx context.Context, cfg *daemon.Config, instance string, stored func() ([]byte, error), local remoteTLS, logger *slog.Logger) (doc *export.Document, via string, err error) {
	var data []byte
	if stored != nil && cfg.ExportStore() == daemon.StoreSelf {
		data, err = stored()
	} else {
		data, via, err = readExportData(ctx, cfg, local, logger)
	}
	if err != nil {
		return nil, "", cfg.ExportError(err)
	}
	doc, err = daemon.CheckExport(cfg, data, instance)
	if err != nil {
		return nil, "", fmt.Errorf("mapping export %s%s: %w", cfg.ExportName(), via, err)
	}
	return doc, via, nil
}

// openExportBackend opens the export store of a command; logger takes the
// AWS SDK's messages of an S3 store (tests replace it).
var openExportBackend = func(ctx context.Context, cfg *daemon.Config, hc *http.Client, logger *slog.Logger) (export.Backend, error) {
	return cfg.OpenExportBackend(ctx, hc, logger)
}

// readExportData reads the mapping export's bytes from the store the
// config names. With export_url: self the store is the state database;
// while the daemon holds it locked, the export is read from the daemon's
// API on this machine (GET /api/v1/export), which serves the same newest
// stored version, and via says so; local are the TLS files of that read,
// for a listener that serves TLS (check's, validate's and plan
// -terraform-plan's -web.ca-file and the like): unused when no daemon
// holds the database, which a warning says.
func readExportData(ctx context.Context, cfg *daemon.Config, local remoteTLS, logger *slog.Logger) (data []byte, via string, err error) {
	if cfg.ExportStore() == daemon.StoreSelf {
		dbc := cfg.State.Database(cfg.StateDir)
		dbc.Existing = true // only read from
		db, err := state.OpenConfig(ctx, dbc)
		if err != nil && strings.Contains(err.Error(), "is locked by another psa-syncd process") {
			base := localDaemonURL(cfg)
			data, ferr := fetchDaemonExport(ctx, base, local)
			if ferr != nil {
				return nil, "", fmt.Errorf("%w, and its export could not be read from its API on this machine either: %w "+
					"(a listener that serves TLS needs the -web.ca-file, -web.server-name, -web.cert-file and -web.key-file its clients do; "+
					"at another address, read it with GET <its URL>%s)", err, ferr, export.ExportAPIPath)
			}
			return data, ", read through the running psa-syncd that holds it, at " + base + export.ExportAPIPath, nil
		}
		if err != nil {
			return nil, "", err
		}
		defer func() { _ = db.Close() }() // only read from
		if local.given() {
			// Not an error: the command works while the daemon is stopped,
			// as a runbook's command line with the flags must.
			logger.Warn("No psa-syncd holds the state database: the export is read from it, and the TLS flags for its API are unused",
				"flags", local.flags())
		}
		_, data, err := db.CurrentExport()
		return data, "", err
	}
	b, err := openExportBackend(ctx, cfg, &http.Client{Timeout: 60 * time.Second}, logger)
	if err != nil {
		return nil, "", err
	}
	blob, err := b.Load(ctx, "")
	return blob.Data, "", err
}

func cmdValidate(ctx context.Context, e *env, args []string) int {
	var (
		cf         commonFlags
		exportFile string
		local      remoteTLS
	)
	fs := newFlagSet(e, "validate", "Validate the config file and the mapping export it names. Errors name the file,\n"+
		"the entry and the field. The exit code is 1 when either is invalid. Where only the running\n"+
		"psa-syncd can read the config's secrets (systemd credentials, a Kubernetes Secret), run\n"+
		"`psa-syncd check -web.url URL -web.token-file FILE`: the daemon validates its config file as\n"+
		"a reload would read it, and the export, and tests its credentials. With export_url: self,\n"+
		"while psa-syncd runs, the export is read from its API on this machine: -web.ca-file and the\n"+
		"like are for a listener that serves TLS.")
	cf.register(fs)
	fs.StringVar(&exportFile, "export.file", "", "Validate this mapping export `file` instead of the export the config file names (export_url or export_path).")
	local.registerFor(fs, localDaemon)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if exportFile != "" && local.given() {
		fmt.Fprintf(e.stderr, "psa-syncd: %s: for the export of export_url: self read from the psa-syncd on this machine; -export.file is read from the file\n", local.flags())
		return 2
	}
	if _, err := local.transport(); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	// The logger takes what the AWS SDK says while the S3 store is read,
	// in -log.format like any other command's messages.
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	cfg, err := daemon.Load(cf.configFile, e.getenv)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	if err := local.localRead(cfg); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	fmt.Fprintf(e.stdout, "config file %s: valid\n", cf.configFile)
	if exportFile != "" {
		// A URL, or one a slash short (https:/user:password@host), would
		// be read as a file of that name, which the error would quote.
		if strings.Contains(exportFile, "://") {
			fmt.Fprintf(e.stderr, "psa-syncd: -export.file: %q is a URL, not a file path: a store is validated as the config file's export_url\n",
				export.Redact(exportFile))
			return 2
		}
		if err := export.CheckSchemeSlashes(exportFile); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: -export.file: %v\n", err)
			return 2
		}
		cfg.ExportPath, cfg.ExportURL = exportFile, ""
	}
	doc, via, err := readExport(ctx, cfg, "", local, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 1
	}
	if msg := sourceMismatch(cfg, doc); msg != "" {
		fmt.Fprintf(e.stderr, "psa-syncd: mapping export %s%s: %s\n", cfg.ExportName(), via, msg)
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
	fmt.Fprintf(e.stdout, "mapping export %s%s: valid (revision %d, %s, %s, %d with usage sync, %d with ticket sync)\n",
		cfg.ExportName(), via, doc.Revision, nouns(len(doc.ProductMappings), "product mapping"), nouns(len(doc.CustomerMappings), "customer mapping"), usage, tickets)
	return 0
}

// nouns is n and noun, plural unless n is 1: "1 product mapping", "2
// product mappings".
func nouns(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func cmdStatus(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		rf       remoteFlags
		failed   bool
		status   string
		asJSON   bool
		exitCode bool
	)
	fs := newFlagSet(e, "status", "Print the per-customer sync status, the writes awaiting review and the open ticket creates (those a\n"+
		"ticket pass held for an operator marked HELD, with the resolve command that answers them), from the state\n"+
		"database, or from a running daemon's API with -web.url (the daemon holds the database locked); a daemon\n"+
		"too old to list ticket creates gets a line saying so, and the rest is printed.\n"+
		"Without -web.url only state_dir, the state section, the export's settings and psa.system of the config\n"+
		"file are read (no PSA, source or API secret), so that it runs by hand while psa-syncd is stopped; an\n"+
		"export of another PSA instance than the one the state database is bound to is refused, as a pass does.\n"+
		"The exit code is 0 whatever the customers' status, or with -exit-code 1 when a customer listed failed.")
	cf.register(fs)
	rf.register(fs)
	fs.BoolVar(&failed, "failed", false, "Only list customers with usage sync on whose last sync failed or was partial (same as -status failed).")
	fs.StringVar(&status, "status", "", "Only list customers with this `status`: "+strings.Join(daemon.StatusFilters, ", ")+
		"\n(failed includes partial; failed, partial and held list customers with usage sync on only; never: mapped but not\nsynced yet; removed: synced before, no longer in the mapping export).")
	fs.BoolVar(&asJSON, "json", false, "Print JSON.")
	fs.BoolVar(&exitCode, "exit-code", false, "Exit with code 1 when a customer listed with usage sync on failed its last sync or was partial (those\nthe psa_sync_customers{status=\"failed\"} metric counts), so that a script need not read -json.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if failed {
		if status != "" && status != "failed" {
			fmt.Fprintln(e.stderr, "psa-syncd: -failed and -status "+status+" contradict each other")
			return 2
		}
		status = "failed"
	}
	if err := daemon.CheckStatusFilter(status); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: -status: %v\n", err)
		return 2
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	var (
		customers []statusRow
		intents   []daemon.IntentView
		creates   []daemon.TicketIntentView
		// unlisted: the daemon asked is older than GET
		// /api/v1/tickets/intents.
		unlisted bool
	)
	if api != nil {
		q := url.Values{}
		if status != "" {
			q.Set("status", status)
		}
		var out struct {
			Customers []statusRow `json:"customers"`
		}
		if err := api.get(ctx, "/api/v1/customers", q, &out); err != nil {
			return requestFailed(e, err)
		}
		// An older daemon lists customers whose usage sync is off too.
		for _, c := range out.Customers {
			if daemon.CustomerMatches(status, c) {
				customers = append(customers, c)
			}
		}
		if intents, err = fetchIntents(ctx, api); err != nil {
			return requestFailed(e, err)
		}
		var held struct {
			Tickets []daemon.TicketIntentView `json:"tickets"`
		}
		// An older daemon does not have the route: the rest is shown.
		switch err := api.get(ctx, "/api/v1/tickets/intents", nil, &held); {
		case errors.Is(err, errNoEndpoint):
			unlisted = true
		case err != nil:
			return requestFailed(e, err)
		}
		creates = held.Tickets
	} else {
		// The state database and the export alone: no PSA, source or
		// API secret is read, so that status runs by hand while
		// psa-syncd is stopped, where the service's other secrets may
		// not be readable.
		logger, err := cf.logger(e)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 2
		}
		db, cfg, err := openStateByHand(ctx, e, cf.configFile, daemon.LoadStateExport)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			if hint := lockedHint(cfg, "status", err); hint != "" {
				fmt.Fprintf(e.stderr, "psa-syncd: %s\n", hint)
			}
			return 1
		}
		defer func() {
			if err := db.Close(); err != nil {
				fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
				rc = 1
			}
		}()
		// Without a valid export the stored statuses still show; why
		// is logged. With export_url: self it is the database's.
		stored := func() ([]byte, error) {
			_, data, err := db.CurrentExport()
			return data, err
		}
		// The export's psa.instance is compared with the instance the
		// database is bound to, which a pass connects to (it refuses
		// another): an export of another instance shows as refused, as
		// a pass refuses it, with no PSA connection and its secrets.
		bound, err := boundInstance(db, cfg)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		doc, _, err := readExportFrom(ctx, cfg, bound, stored, remoteTLS{}, logger)
		if err != nil {
			logger.Error("Error loading mapping export", "err", err)
		}
		all, err := daemon.StoredCustomers(db, doc)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		for _, c := range all {
			if daemon.CustomerMatches(status, c) {
				customers = append(customers, c)
			}
		}
		open, err := db.OpenIntents()
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		for _, in := range open {
			intents = append(intents, daemon.NewIntentView(in))
		}
		held, err := db.TicketIntents()
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		for _, r := range held {
			creates = append(creates, daemon.NewTicketIntentView(r))
		}
	}
	// With -exit-code, a customer listed that failed fails the command:
	// one of those psa_sync_customers{status="failed"} counts, with usage
	// sync on. A failure of a customer whose usage sync was turned off
	// since is history that no pass will change.
	done := 0
	if exitCode && slices.ContainsFunc(customers, func(c statusRow) bool { return c.UsageSync && daemon.StatusMatches("failed", c.Status) }) {
		done = 1
	}
	if asJSON {
		if intents == nil {
			intents = []daemon.IntentView{}
		}
		if customers == nil {
			customers = []statusRow{}
		}
		if creates == nil && !unlisted {
			creates = []daemon.TicketIntentView{}
		}
		if unlisted {
			// null: not known, rather than none.
			fmt.Fprintf(e.stderr, "psa-syncd: this daemon does not list ticket creates (GET /api/v1/tickets/intents): it is a psa-syncd older "+
				"than this one (%s); ticket_creates is null: upgrade it to see them\n", buildVersion())
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"customers": customers, "intents": intents, "ticket_creates": creates})
		return done
	}
	defer func() {
		resolve := resolveCommand(e, &rf)
		printIntents(e.stdout, intents, resolve)
		printTicketCreates(e.stdout, creates, resolve, unlisted)
	}()
	if len(customers) == 0 {
		switch status {
		case "failed":
			fmt.Fprintln(e.stdout, "No customer's last sync failed.")
		case "":
			fmt.Fprintln(e.stdout, "No customer is mapped or has been synced yet.")
		default:
			fmt.Fprintf(e.stdout, "No customer has status %s.\n", status)
		}
		return done
	}
	tw := newTable(e.stdout)
	fmt.Fprintln(tw, "CUSTOMER\tNAME\tCONTRACT\tUSAGE SYNC\tSTATUS\tLAST ATTEMPT\tLAST SUCCESS\tUPDATED\tUNCHANGED\tHELD\tFAILED\tERROR")
	var hints []customerHint
	for _, c := range customers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%t\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n",
			c.CustomerID, c.CustomerName, c.ContractID, c.UsageSync, c.Status, fmtTime(c.LastAttempt), fmtTime(c.LastSuccess),
			c.Updated, c.Unchanged, c.Held, c.Failed, dash(daemon.ShortError(c.Error)))
		hints = append(hints, customerHint{c.CustomerID, c.Hint})
	}
	_ = tw.Flush()
	printHints(e.stdout, hints)
	return done
}

// openStateByHand opens the state database of the config file, loaded
// with load (daemon.LoadState, or LoadStateExport, LoadStateMonth or
// LoadStatePSA for what else the command reads), for a command that uses
// only it (orphans, status, resolve, set-by-hand, rebind): no secret but
// the state's (and the export's or the PSA's) is read, so that it runs by
// hand while psa-syncd is stopped, where the service's systemd credentials
// or Kubernetes Secret cannot be read. The database is opened as it is: state.ErrNoState for a
// mistyped state_dir, which must not show an empty list out of a database
// made for it. The Config is returned with the error too, for lockedHint
// (nil when it could not be loaded).
func openStateByHand(ctx context.Context, e *env, configFile string, load func(string, func(string) string) (*daemon.Config, error)) (*state.DB, *daemon.Config, error) {
	cfg, err := load(configFile, e.getenv)
	if err != nil {
		return nil, nil, err
	}
	dbc := cfg.State.Database(cfg.StateDir)
	dbc.Existing = true
	db, err := state.OpenConfig(ctx, dbc)
	if err != nil {
		return nil, cfg, err
	}
	return db, cfg, nil
}

// handLead is the state database a command run by hand opened and leads
// (leadByHand), with the settings and logger it was opened with.
type handLead struct {
	*daemon.ByHand
	db     *state.DB
	cfg    *daemon.Config
	logger *slog.Logger
}

// leadByHand opens the state database of the config file with load
// (openStateByHand) and takes its leadership (daemon.LeadByHand) for
// command, one that records in the state database alone (orphans -clear,
// rebind, resolve, set-by-hand). What fails is printed, with lockedHint's
// hint for a database another psa-syncd holds, and the exit code returned
// (2 for an unusable -log flag, 1 otherwise; 0 when it led). The caller
// defers release.
func leadByHand(ctx context.Context, e *env, cf *commonFlags, command string, load func(string, func(string) string) (*daemon.Config, error)) (*handLead, int) {
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return nil, 2
	}
	db, cfg, err := openStateByHand(ctx, e, cf.configFile, load)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		if hint := lockedHint(cfg, command, err); hint != "" {
			fmt.Fprintf(e.stderr, "psa-syncd: %s\n", hint)
		}
		return nil, 1
	}
	h, err := daemon.LeadByHand(ctx, db, cfg, logger)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		rc := 1
		closeState(e, db, &rc)
		return nil, rc
	}
	return &handLead{ByHand: h, db: db, cfg: cfg, logger: logger}, 0
}

// release gives the leadership up and closes the state database, in that
// order; an error turns the exit code *rc into 1.
func (l *handLead) release(e *env, rc *int) {
	closeByHand(e, l.ByHand, rc)
	closeState(e, l.db, rc)
}

// closeState closes db, the state database a command run by hand opened
// (openStateByHand) to record in it; an error (the file lock or the file
// itself) turns the exit code *rc into 1.
func closeState(e *env, db *state.DB, rc *int) {
	if err := db.Close(); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: closing the state database: %v\n", err)
		*rc = 1
	}
}

// closeByHand gives up the leadership that a command run by hand took
// (daemon.LeadByHand); an error turns the exit code *rc into 1.
func closeByHand(e *env, h *daemon.ByHand, rc *int) {
	if err := h.Close(); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: giving the state database's leadership up: %v\n", err)
		*rc = 1
	}
}

// boundInstance is the PSA instance of cfg's system that db holds the
// usage of (recorded by the first pass, or rebind), "" when none is
// recorded yet.
func boundInstance(db *state.DB, cfg *daemon.Config) (string, error) {
	in, ok, err := db.BoundInstance(cfg.PSA.System)
	if err != nil || !ok {
		return "", err
	}
	return in.Instance, nil
}

// customerHint is a customer's hint, printed under a table whose error
// column only has room for a short error.
type customerHint struct{ customer, hint string }

// printHints lists the hints of the customers that have one, and says where
// the full errors are.
func printHints(w io.Writer, hints []customerHint) {
	n := 0
	for _, h := range hints {
		if h.hint == "" {
			continue
		}
		if n == 0 {
			fmt.Fprintln(w, "\nHints:")
		}
		n++
		fmt.Fprintf(w, "  %s: %s\n", h.customer, oneLine(h.hint))
	}
	if n > 0 {
		fmt.Fprintln(w, "Full errors: add -json, or GET /api/v1/customers.")
	}
}

// dash stands in for an empty table cell.
func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// statusRow is one customer in the status output; its JSON matches
// GET /api/v1/customers.
type statusRow = daemon.CustomerView

// printResult prints the per-customer report of a pass.
func printResult(w io.Writer, res *usage.Result) {
	customers := make([]statusRow, 0, len(res.Customers))
	for _, cs := range res.Customers {
		customers = append(customers, newStatusRow(cs))
	}
	printRun(w, daemon.NewRunView(res.Run), customers)
	if res.Plan != nil {
		fmt.Fprintln(w)
		printChanges(w, res.Plan, false, res.Run.DryRun)
	}
}

// table is a tabwriter that writes to its output through a buffer:
// tabwriter writes every cell and every padding with a call of its own,
// which on a file or pipe is a system call each (some 360,000 for the
// customers of a pass over 20,000).
type table struct {
	*tabwriter.Writer
	out *bufio.Writer
}

// newTable returns a table writing aligned columns to w, two spaces apart.
func newTable(w io.Writer) table {
	out := bufio.NewWriter(w)
	return table{tabwriter.NewWriter(out, 0, 0, 2, ' ', 0), out}
}

// Flush writes the table out.
func (t table) Flush() error {
	if err := t.Writer.Flush(); err != nil {
		return err
	}
	return t.out.Flush()
}

// printRun prints a run and the customers it synced.
func printRun(w io.Writer, r daemon.RunView, customers []statusRow) {
	mode := ""
	if r.DryRun {
		mode = " (dry run: nothing written)"
	}
	fmt.Fprintf(w, "Run %d%s: %s\n", r.ID, mode, r.Result)
	fmt.Fprintf(w, "  period %s, %d customers, lines: %d updated, %d unchanged, %d held, %d failed; %d PSA requests; %s\n",
		r.Period, r.Customers, r.Updated, r.Unchanged, r.Held, r.Failed, r.Requests, r.Finished.Sub(r.Started).Round(time.Millisecond))
	if r.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", daemon.ShortError(r.Error))
	}
	if len(customers) == 0 {
		return
	}
	fmt.Fprintln(w)
	tw := newTable(w)
	fmt.Fprintln(tw, "CUSTOMER\tNAME\tCONTRACT\tRESULT\tUPDATED\tUNCHANGED\tHELD\tFAILED\tERROR")
	var hints []customerHint
	for _, c := range customers {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\t%s\n", c.CustomerID, c.CustomerName, c.ContractID, c.Status,
			c.Updated, c.Unchanged, c.Held, c.Failed, dash(daemon.ShortError(c.Error)))
		hints = append(hints, customerHint{c.CustomerID, c.Hint})
	}
	_ = tw.Flush()
	printHints(w, hints)
}

// writeResultJSON prints a pass's run, customers and plan as JSON, in the
// shapes of the HTTP API: the object {"customers", "plan", "run"}, indented
// as json.Encoder with SetIndent("", "  ") would. The plan's changes are
// streamed (see usage.Plan.WriteJSON), so that the output of a pass over
// 100,000 lines is never held in memory as a whole.
func writeResultJSON(w io.Writer, res *usage.Result) error {
	customers := make([]statusRow, 0, len(res.Customers))
	for _, cs := range res.Customers {
		customers = append(customers, newStatusRow(cs))
	}
	const indent = "  "
	bw := bufio.NewWriter(w)
	field := func(sep, key string, v any) error {
		b, err := json.MarshalIndent(v, indent, indent)
		if err != nil {
			return err
		}
		fmt.Fprintf(bw, "%s\n%s%q: ", sep, indent, key)
		_, err = bw.Write(b)
		return err
	}
	fmt.Fprintf(bw, "{\n%s%q: ", indent, "customers")
	if err := writeArrayJSON(bw, customers, indent, indent); err != nil {
		return err
	}
	if res.Plan == nil {
		if err := field(",", "plan", nil); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(bw, ",\n%s%q: ", indent, "plan")
		if err := res.Plan.WriteJSON(bw, indent, indent); err != nil {
			return err
		}
	}
	if err := field(",", "run", daemon.NewRunView(res.Run)); err != nil {
		return err
	}
	bw.WriteString("\n}\n")
	return bw.Flush()
}

// writeArrayJSON writes vs as json.MarshalIndent(vs, prefix, indent) would,
// one element at a time: at 20,000 customers the array is megabytes of
// JSON that need not be in memory at once.
func writeArrayJSON[T any](w *bufio.Writer, vs []T, prefix, indent string) error {
	if len(vs) == 0 {
		_, err := w.WriteString("[]")
		return err
	}
	w.WriteString("[")
	for i, v := range vs {
		b, err := json.MarshalIndent(v, prefix+indent, indent)
		if err != nil {
			return err
		}
		if i > 0 {
			w.WriteString(",")
		}
		w.WriteString("\n" + prefix + indent)
		w.Write(b)
	}
	_, err := w.WriteString("\n" + prefix + "]")
	return err
}

func newStatusRow(cs state.CustomerStatus) statusRow { return daemon.NewCustomerView(cs) }

// printPlan prints a plan as aligned tables: the lines that change (all
// lines with all), then unmapped and unassigned usage and skipped rows.
func printPlan(w io.Writer, p *usage.Plan, all bool) {
	if bad := unplanned(p); len(bad) > 0 {
		fmt.Fprintf(w, "ERROR: %d of %d customers cannot be planned (see \"Customers that cannot be synced\" and the failed lines below): %s\n\n",
			len(bad), p.Customers, strings.Join(bad, ", "))
	}
	fmt.Fprintf(w, "Plan for period %s (effective %s), %d customers with usage sync\n", p.Period, fmtDate(p.EffectiveDate), p.Customers)
	if !p.ComputedAt.IsZero() {
		by := ""
		if p.RunID != 0 {
			by = fmt.Sprintf(" by the pass of run %d", p.RunID)
		}
		fmt.Fprintf(w, "Computed at %s%s\n", p.ComputedAt.Format(time.RFC3339), by)
	}
	if p.WritesDisabled {
		fmt.Fprintln(w, "The integration is disabled in the mapping export: a pass writes none of these changes.")
	}
	if p.WritesHeld != "" {
		fmt.Fprintf(w, "A pass that writes is refused: %s\n", p.WritesHeld)
	}
	fmt.Fprintln(w)
	printChanges(w, p, all, false)
}

// printChanges prints the lines of a plan (those that change, or all),
// their counts, and the usage that cannot be billed; dryRun says that the
// plan is a dry run's, which writes nothing.
func printChanges(w io.Writer, p *usage.Plan, all, dryRun bool) {
	counts := map[string]int{}
	var rows []usage.Change
	for _, c := range p.Changes {
		counts[c.Action]++
		if all || c.Action != "unchanged" {
			rows = append(rows, c)
		}
	}
	switch {
	case len(rows) == 0 && len(p.Failures) > 0:
		fmt.Fprintln(w, "No changes for the customers that could be read; the others are listed under \"Customers that cannot be synced\".")
	case len(rows) == 0:
		fmt.Fprintln(w, "No changes: every contract line already has the right quantity.")
	default:
		tw := newTable(w)
		fmt.Fprintln(tw, "CUSTOMER\tCONTRACT\tSERVICE\tCURRENT\tDESIRED\tEFFECTIVE\tREASON")
		for _, c := range rows {
			cur := "-"
			if c.CurrentKnown {
				cur = strconv.FormatInt(c.Current, 10)
			}
			reason := c.Reason
			if c.Action == usage.ActionFailed {
				reason = daemon.ShortError(reason)
			}
			if c.Action != usage.ActionUpdate {
				reason = c.Action + ": " + reason
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", nameID(c.CustomerName, c.CustomerID), c.ContractID,
				nameID(c.ServiceName, c.ServiceID), cur, c.Desired, fmtDate(c.EffectiveDate), oneLine(reason))
		}
		_ = tw.Flush()
	}
	fmt.Fprintf(w, "\n%d to update, %d unchanged, %d held for review, %d skipped.\n",
		counts["update"], counts["unchanged"], counts["held"], counts["skipped"])
	printSurge(w, p.Surge, dryRun)
	printUnmapped(w, p)
}

// printSurge prints what a plan over all customers held for a surge, and
// the review code that approves it; of a dry run's approval of the surge,
// what the approval would do.
func printSurge(w io.Writer, s *usage.SurgeHold, dryRun bool) {
	switch {
	case s == nil:
	case dryRun && s.Approval == "applied":
		fmt.Fprintf(w, "Surge would be approved with review code %s (dry run: nothing written): the pass holds exactly the lines reviewed, and sync -approve -surge %s -period %s without -dry-run writes its %d line(s) at the units above, if they do not change before.\n",
			s.Review, s.Review, s.Period, s.Lines)
	case dryRun && s.Approval == "stale":
		fmt.Fprintf(w, "Surge would NOT be approved (dry run: nothing written): the lines held for it changed since the review; %d line(s) held now, review code %s.\n"+
			"Review them again, then approve them all at these units with: psa-syncd sync -approve -surge %s -period %s\n", s.Lines, s.Review, s.Review, s.Period)
	case s.Approval == "applied":
		fmt.Fprintf(w, "Surge approved with review code %s: its %d line(s) are written.\n", s.Review, s.Lines)
	case s.Approval == "stale":
		fmt.Fprintf(w, "Surge NOT approved: the lines held for it changed since the review; %d line(s) held now, review code %s.\n"+
			"Review them again, then approve them all at these units with: psa-syncd sync -approve -surge %s -period %s\n", s.Lines, s.Review, s.Review, s.Period)
	default:
		fmt.Fprintf(w, "%d line(s) held for a surge (policies.surge_lines_percent: many lines rise sharply at once, as when the vendor counts twice), review code %s.\n"+
			"Check them with the vendor; if its usage is right, approve them all at the units above with: psa-syncd sync -approve -surge %s -period %s\n", s.Lines, s.Review, s.Review, s.Period)
	}
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
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	// Once the first signal has stopped the command, a second one takes
	// its default action: an operator's second Ctrl-C ends a command that
	// waits for a sent write to finish (up to the PSA client's timeout).
	context.AfterFunc(ctx, stop)
	return ctx, stop
}

// vendorListing says in the plan's VENDOR column what the vendor's
// customer list says of an unreported customer (UnreportedCustomer.Vendor).
func vendorListing(v string) string {
	switch v {
	case usage.VendorGone:
		return "gone (deleted or moved to another partner)"
	case usage.VendorListed:
		return "listed, no usage"
	}
	return "-"
}

// printUnmapped prints the usage a pass cannot bill, the customers that
// failed as a whole and the source rows that were skipped.
func printUnmapped(w io.Writer, p *usage.Plan) {
	u := p.Unmapped
	section := func(title, header string, rows [][]string) {
		if len(rows) == 0 {
			return
		}
		fmt.Fprintf(w, "\n%s\n", title)
		tw := newTable(w)
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
	for _, id := range u.UnreadableCustomers {
		rows = append(rows, []string{"customer", id})
	}
	for _, id := range u.UnreadableProducts {
		rows = append(rows, []string{"product", id})
	}
	section("Unmapped, with rows that cannot be read (usage unknown and billed to no one: have the rows fixed, see Source problems below, and add the mappings):", "KIND\tID", rows)
	rows = nil
	for _, c := range u.ZeroCustomers {
		rows = append(rows, []string{"customer", c.CustomerID, c.CustomerName, strings.Join(c.Products, ",")})
	}
	for _, pr := range u.ZeroProducts {
		rows = append(rows, []string{"product", pr.Product, pr.ProductName, ""})
	}
	for _, r := range u.ZeroUnassigned {
		rows = append(rows, []string{"no customer", r.Product, r.ProductName, ""})
	}
	section("Unmapped with quantity 0 only (a trial tenant? nothing unbilled, not counted as unmapped; map it, or assign it at the vendor, before its usage starts):", "KIND\tID\tNAME\tPRODUCTS", rows)
	rows = nil
	for _, pr := range u.SyncOff {
		rows = append(rows, []string{pr.Product, pr.ProductName, strconv.Itoa(pr.Customers), strconv.FormatInt(pr.Quantity, 10)})
	}
	section("Products mapped with sync_enabled = false (not synced on purpose):", "PRODUCT\tNAME\tCUSTOMERS\tQUANTITY", rows)
	rows = nil
	for _, c := range u.SyncOffCustomers {
		rows = append(rows, []string{c.CustomerID, c.CustomerName, strings.Join(c.Products, ","), strconv.FormatInt(c.Quantity, 10)})
	}
	section("Customers mapped with usage_sync = false (usage not billed, on purpose):", "CUSTOMER\tNAME\tPRODUCTS\tQUANTITY", rows)
	rows = nil
	for _, c := range u.Unreported {
		rows = append(rows, []string{c.CustomerID, c.CustomerName, c.ContractID, strconv.FormatInt(c.Quantity, 10), vendorListing(c.Vendor)})
	}
	section("Mapped customers with no usage row at all while their contracts bill (tenant removed or moved, or a misspelled psa_customer_mapping.customer_id?):",
		"CUSTOMER\tNAME\tCONTRACT\tBILLED\tVENDOR", rows)
	rows = nil
	for _, l := range u.InactiveServices {
		pass := "unchanged"
		if l.Failed {
			pass = "change failed"
		}
		if l.Gone {
			pass += " (service deleted in the PSA)"
		}
		rows = append(rows, []string{nameID(l.CustomerName, l.CustomerID), l.ContractID, nameID(l.ServiceName, l.ServiceID), strconv.FormatInt(l.Quantity, 10), pass})
	}
	section("Lines that go on invoicing a service the PSA says is inactive or no longer has (end the line, or make the service active again; see the line's reason):",
		"CUSTOMER\tCONTRACT\tSERVICE\tBILLED\tTHIS PASS", rows)
	rows = nil
	for _, l := range u.Orphaned {
		from := "ledger"
		if l.Read {
			from = "read"
		}
		why := "no product mapping names the service"
		if l.Reason == usage.OrphanCustomer {
			why = "no customer mapping names the contract"
		}
		rows = append(rows, []string{nameID(l.CustomerName, l.CustomerID), l.ContractID, l.ServiceID, strconv.FormatInt(l.Quantity, 10), from, l.Since, why})
	}
	section("Orphaned lines: psa-syncd set them, no mapping makes it write them any more, and they go on invoicing (set each to 0 or end it in the PSA, or map the product or customer again):",
		"CUSTOMER\tCONTRACT\tSERVICE\tBILLED\tFROM\tSINCE\tWHY", rows)
	if u.OrphanedUnread {
		kept := "none listed."
		if len(u.Orphaned) > 0 {
			kept = "these are the lines an earlier pass listed."
		}
		fmt.Fprintf(w, "\nOrphaned lines: psa-syncd's ledger could not be read (see the log); %s\n", kept)
	}
	rows = nil
	var hints []customerHint
	for _, f := range p.Failures {
		rows = append(rows, []string{nameID(f.CustomerName, f.CustomerID), f.ContractID, daemon.ShortError(f.Error)})
		hints = append(hints, customerHint{f.CustomerID, f.Hint})
	}
	section("Customers that cannot be synced:", "CUSTOMER\tCONTRACT\tERROR", rows)
	printHints(w, hints)
	rows = nil
	for _, c := range p.ContractsEnding {
		if c.When != usage.EndingEnded { // those are among the failures above
			rows = append(rows, []string{nameID(c.CustomerName, c.CustomerID), nameID(c.ContractName, c.ContractID), c.EndDate.Format(time.DateOnly)})
		}
	}
	section("Contracts that end this month or next (name the contracts that follow in next_contract_id before then):", "CUSTOMER\tCONTRACT\tEND DATE", rows)
	rows = nil
	for _, r := range p.Renewals {
		takes := "unknown"
		if !r.TakesOver.IsZero() {
			takes = r.TakesOver.Format(time.DateOnly)
		}
		rows = append(rows, []string{nameID(r.CustomerName, r.CustomerID), cmp.Or(r.BillsTo, "unknown"), r.ContractID, r.NextContractID, takes})
	}
	section("Contract renewals (the renewal bills from the day it takes over):", "CUSTOMER\tBILLS TO\tCONTRACT_ID\tNEXT_CONTRACT_ID\tTAKES OVER", rows)
	if len(p.Problems) > 0 {
		fmt.Fprintf(w, "\nSource problems (rows skipped, and notices):\n")
		for _, pr := range p.Problems {
			fmt.Fprintf(w, "  %s\n", oneLine(pr.String()))
		}
	}
}

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
)

// remotePassTimeout is how long plan and tickets with -web.url wait for
// the daemon's answer to a plan or ticket pass computed for them: a little
// longer than the daemon takes at most to write it (10 minutes).
const remotePassTimeout = 11 * time.Minute

func cmdTickets(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf          commonFlags
		rf          remoteFlags
		dryRun      bool
		asJSON      bool
		forgetOther bool
	)
	fs := newFlagSet(e, "tickets", "Run one ticket pass and exit: the open Sophos Central alerts of the customers with\n"+
		"ticket_sync on become PSA tickets as the export's psa_ticket_routing says, and the tickets\n"+
		"of resolved alerts are closed or annotated. Exits non-zero when a customer failed.\n"+
		"With -dry-run, print what the pass would create, close, annotate or reopen, and write nothing;\n"+
		"the creates of earlier passes whose outcome is unknown are searched for, and the notes say\n"+
		"which tickets the pass would adopt, which creates wait for policies.settle_time and which\n"+
		"it would send again. While the export switches the integration off, every pass is such a\n"+
		"dry run.\n"+
		"With -forget-other-psa, the pass also deletes the customers' ticket records of another PSA\n"+
		"system or instance (left by a switch of PSA), which it otherwise reports every pass and\n"+
		"leaves alone, and lists their tickets: close those still open in that PSA by hand. Only\n"+
		"the customers with ticket_sync on are passed: the records of the others are neither\n"+
		"reported nor deleted.\n"+
		"With -web.url and the API token the running daemon (which holds the state database) runs\n"+
		"the pass, or the dry run, one at a time with its scheduled ticket passes, and the command\n"+
		"prints its report; a pass that writes runs on the active instance and is recorded as the\n"+
		"daemon's last ticket pass.")
	cf.register(fs)
	rf.register(fs)
	fs.BoolVar(&dryRun, "dry-run", false, "Print what the pass would create, close, annotate or reopen; write nothing to the PSA or the state.")
	fs.BoolVar(&forgetOther, "forget-other-psa", false, "Delete the customers' ticket records of another PSA system or instance, and list their tickets; "+
		"with -dry-run, list what would be deleted.")
	fs.BoolVar(&asJSON, "json", false, "Print the report as JSON, in the format of POST /api/v1/tickets, instead of the table.")
	fs.BoolVar(&cf.allowRestore, "state.allow-restore", false, allowRestoreHelp)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if api != nil {
		if cf.stateFlag() != "" {
			fmt.Fprintf(e.stderr, "psa-syncd: %s with -web.url: the running daemon opened the state database; give it to `psa-syncd run`\n", cf.stateFlag())
			return 2
		}
		return ticketsRemote(ctx, e, &cf, api, dryRun, forgetOther, asJSON)
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
	// A pass that writes needs the state database's leadership, as sync
	// does: with PostgreSQL, not while another psa-syncd is active (its own
	// ticket passes run on its schedule).
	if !dryRun {
		if err := d.BecomeActive(ctx); err != nil {
			logger.Error("Not running the ticket pass", "err", err)
			return 1
		}
	}
	pass := d.TicketPass
	if forgetOther {
		pass = d.TicketPassForgettingOtherPSA
	}
	rep, err := pass(ctx, dryRun)
	if err != nil {
		logger.Error("Error running the ticket pass", "err", err)
		return 1
	}
	if asJSON {
		writeJSON(e.stdout, daemon.NewTicketPassView(rep, dryRun))
	} else {
		printTickets(e.stdout, rep, dryRun)
	}
	return ticketsExit(logger, rep)
}

// ticketsExit logs each customer that failed and returns the exit code of
// the pass: 1 when one did.
func ticketsExit(logger *slog.Logger, rep tickets.Report) int {
	rc := 0
	for _, c := range rep.Customers {
		if c.Err != nil {
			logger.Error("Ticket pass failed for a customer", "source", c.Customer.Source, "customer", c.Customer.CustomerID, "err", c.Err)
			rc = 1
		}
	}
	return rc
}

// ticketsRemote asks a running daemon for a ticket pass (or a dry run),
// waits for its report and prints it like a local pass.
func ticketsRemote(ctx context.Context, e *env, cf *commonFlags, api *apiClient, dryRun, forgetOther, asJSON bool) int {
	logger, err := cf.logger(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	var v daemon.TicketPassView
	body := map[string]bool{"dry_run": dryRun}
	if forgetOther {
		// Only when asked: a daemon older than the flag refuses the field.
		body["forget_other_psa"] = true
	}
	if err := api.postWithin(ctx, "/api/v1/tickets", body, &v, remotePassTimeout); err != nil {
		return requestFailed(e, err)
	}
	rep := v.Report()
	if asJSON {
		writeJSON(e.stdout, v)
	} else {
		printTickets(e.stdout, rep, dryRun)
	}
	return ticketsExit(logger, rep)
}

// writeJSON prints v as indented JSON, as the other commands' -json do.
func writeJSON(w io.Writer, v any) {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// printTickets writes one line per customer and the totals. A pass that
// was a dry run although askedDryRun is false (the export switches the
// integration off) is printed as the dry run it was, and says why.
func printTickets(w io.Writer, rep tickets.Report, askedDryRun bool) {
	dryRun := askedDryRun || rep.DryRun
	if dryRun && !askedDryRun {
		fmt.Fprintln(w, "dry run: the export switches the integration off (psa_integration enabled = false), so the pass wrote nothing")
		fmt.Fprintln(w)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if dryRun {
		fmt.Fprintln(tw, "CUSTOMER\tWOULD CREATE\tWOULD CLOSE\tWOULD NOTE\tWOULD REOPEN\tERROR")
		for _, c := range rep.Customers {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%s\n", customerName(c.Customer), len(c.WouldCreate), len(c.WouldClose), len(c.WouldNote),
				len(c.WouldReopen), ticketErr(c.Err))
			for _, ref := range c.WouldCreate {
				fmt.Fprintf(tw, "  create\t%s\t\t\t\t\n", ref)
			}
			for _, id := range c.WouldClose {
				fmt.Fprintf(tw, "  close\tticket %s\t\t\t\t\n", id)
			}
			for _, id := range c.WouldNote {
				fmt.Fprintf(tw, "  note\tticket %s (resolved; left open)\t\t\t\t\n", id)
			}
			for _, id := range c.WouldReopen {
				fmt.Fprintf(tw, "  reopen\tticket %s (alert raised again)\t\t\t\t\n", id)
			}
		}
	} else {
		fmt.Fprintln(tw, "CUSTOMER\tCREATED\tADOPTED\tCLOSED\tNOTED\tREOPENED\tSUMMARISED\tREFUSED\tERROR")
		for _, c := range rep.Customers {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", customerName(c.Customer), c.Created, c.Adopted, c.Closed, c.Noted,
				c.Reopened, c.Summarised, c.Failed, ticketErr(c.Err))
		}
	}
	_ = tw.Flush()
	for _, c := range rep.Customers {
		for _, n := range c.Notices {
			fmt.Fprintf(w, "note: %s: %s\n", customerName(c.Customer), n)
		}
	}
	t := rep.Totals()
	switch {
	case dryRun:
		fmt.Fprintf(w, "\nwould create %d tickets and close %d", len(t.WouldCreate), len(t.WouldClose))
		if len(t.WouldNote) > 0 {
			fmt.Fprintf(w, "; would add a resolve note to %d and leave them open (on_resolve = \"note\")", len(t.WouldNote))
		}
		if len(t.WouldReopen) > 0 {
			fmt.Fprintf(w, "; would reopen %d (alerts raised again)", len(t.WouldReopen))
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintf(w, "\ncreated %d, adopted %d, closed %d, noted %d, reopened %d, summarised %d alerts, refused %d creates; settled %d earlier creates\n",
			t.Created, t.Adopted, t.Closed, t.Noted, t.Reopened, t.Summarised, t.Failed, rep.Settled)
	}
	// REFUSED counts the creates the PSA refused; a customer can fail
	// without one (its alerts could not be listed, a close failed).
	failed := 0
	for _, c := range rep.Customers {
		if c.Err != nil {
			failed++
		}
	}
	if failed > 0 {
		fmt.Fprintf(w, "%d of %d customers failed: see ERROR above\n", failed, len(rep.Customers))
	}
	if rep.RateLimited {
		fmt.Fprintln(w, "the PSA throttled the pass: it stopped writing; the rest (deferred) is done next pass")
	}
	switch {
	case rep.BudgetUnknown:
		fmt.Fprintln(w, "the PSA's hourly API budget could not be read, so the pass does not know how far it is from policies.ticket_budget_reserve: the pass stopped writing; the rest (deferred) is done by a later pass (psa-syncd check tests the PSA)")
	case rep.BudgetLimited:
		fmt.Fprintln(w, "the PSA's hourly API budget reached policies.ticket_budget_reserve, which keeps the rest for the usage passes: the pass stopped writing; the rest (deferred) is done by a later pass")
	}
	if rep.WritesHeld != "" {
		fmt.Fprintf(w, "A pass that writes is refused: %s\n", rep.WritesHeld)
	}
}

func customerName(c tickets.Customer) string {
	if c.CustomerName != "" {
		return c.CustomerName + " (" + c.CustomerID + ")"
	}
	return c.CustomerID
}

func ticketErr(err error) string {
	if err == nil {
		return "-"
	}
	return err.Error()
}

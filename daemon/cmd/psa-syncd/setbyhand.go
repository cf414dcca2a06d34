package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

func cmdSetByHand(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		period   string
		noteText string
		rf       remoteFlags
	)
	fs := newFlagSet(e, "set-by-hand", "Record that the quantities of the month that has ended were set in the PSA by hand (or its\n"+
		"invoices corrected) after its last pass over all customers failed, was partial or held lines (for review,\n"+
		"or for the reason each line's reason gives). On ConnectWise PSA,\n"+
		"whose addition quantities are undated, psa-syncd does not write a month once it has ended (sync -period\n"+
		"is refused, and a month-end pass caught up after midnight skips its lines): plan -period YYYY-MM shows\n"+
		"the quantities, and once they are set by hand this records it. The record is a run of that month\n"+
		"(trigger by_hand, with the note, in GET /api/v1/runs and the status page's runs); psa_sync_ended_period_last_run_result\n"+
		"then reads success and psa_sync_ended_period_held_lines 0, so PsaSyncEndedMonthNotSynced resolves, and the status page no longer offers\n"+
		"to sync the month. Nothing is sent to the PSA: without -web.url the run is recorded in the state database\n"+
		"(as the active instance, with PostgreSQL), reading only state_dir, the state section, the export's settings,\n"+
		"psa.system, the schedules, timezone and policies of the config file, so that it runs by hand while\n"+
		"psa-syncd is stopped.")
	cf.register(fs)
	fs.StringVar(&period, "period", "", "The month that has ended, `YYYY-MM` (in psa-syncd's timezone). Required.")
	fs.StringVar(&noteText, "note", "", "Recorded with the run, one line: who set which quantities, e.g. \"jane: additions set in ConnectWise before invoicing\". Required.")
	rf.register(fs)
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	switch {
	case period == "":
		fmt.Fprintln(e.stderr, "psa-syncd: -period is required: the month that has ended, YYYY-MM")
		return 2
	case strings.TrimSpace(noteText) == "":
		fmt.Fprintln(e.stderr, "psa-syncd: -note is required: who set which quantities of the month by hand")
		return 2
	}
	p, ok := parsePeriodFlag(e, period)
	if !ok {
		return 2
	}
	var run daemon.RunView
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	if api != nil {
		var out struct {
			Run daemon.RunView `json:"run"`
		}
		err = api.post(ctx, "/api/v1/periods/"+p.String()+"/set-by-hand", map[string]any{"note": noteText}, &out)
		run = out.Run
	} else {
		// The run is recorded in the state database alone: no secret but
		// the state's (and the export's, for another psa-syncd as its
		// store) is read, so that it runs by hand while psa-syncd is
		// stopped, where the service's other secrets may not be
		// readable. A mistyped state_dir gets no new empty database.
		h, code := leadByHand(ctx, e, &cf, "set-by-hand", daemon.LoadStateMonth)
		if code != 0 {
			return code
		}
		defer h.release(e, &rc)
		// The month is in the export's timezone when it names one;
		// without a valid export (why is logged), the config's.
		stored := func() ([]byte, error) {
			_, data, err := h.db.CurrentExport()
			return data, err
		}
		doc, _, xerr := readExportFrom(ctx, h.cfg, "", stored, remoteTLS{}, h.logger)
		if xerr != nil {
			h.logger.Error("Error loading mapping export", "err", xerr)
		}
		var st state.Run
		if st, err = h.RecordSetByHand(p, noteText, e.getenv("USER"), doc); err == nil {
			run = daemon.NewRunView(st)
		}
	}
	if err != nil {
		return requestFailed(e, err)
	}
	fmt.Fprintf(e.stdout, "Run %d records the quantities of %s as set by hand: %s\n", run.ID, run.Period, run.Note)
	fmt.Fprintln(e.stdout, "psa_sync_ended_period_last_run_result now reads success; PsaSyncEndedMonthNotSynced resolves at its next evaluation.")
	return 0
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

func cmdOrphans(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		rf       remoteFlags
		doClear  bool
		all      bool
		contract string
		service  string
		noteText string
		zeroed   bool
		asJSON   bool
	)
	fs := newFlagSet(e, "orphans", "List the orphaned lines the last pass found: lines psa-syncd set above 0 that no mapping makes\n"+
		"it write any more, which go on invoicing (see \"Orphaned lines\" in the README). With -clear, clear one\n"+
		"(-contract and -service) or every one (-all: but those the last pass read above 0 in the PSA, which bill)\n"+
		"once it is zeroed or ended in the PSA, or billed on purpose: it leaves the list and psa_sync_orphaned_lines\n"+
		"at once, and later passes do not list it until psa-syncd changes the line again, or a mapping names it\n"+
		"again and is then removed. On Kaseya BMS, whose lines cannot be read, a line listed (cleared or not) and\n"+
		"mapped again is posted again at its usage: the list, or the clear, says it may no longer hold what\n"+
		"psa-syncd set; a clear with -zeroed, that it holds 0, which also releases a line held for it (a product\n"+
		"mapping moved from its service, then back), as the approval of that line does (also of a line cleared\n"+
		"already). Nothing is sent to the PSA. From the state\n"+
		"database, or from a running daemon\n"+
		"with -web.url (its API token is needed to clear). Without -web.url the list reads only state_dir and the\n"+
		"state section of the config file, and -clear those and psa.system, recording the clear as the active\n"+
		"instance (with PostgreSQL), so that it runs by hand while psa-syncd is stopped.")
	cf.register(fs)
	rf.register(fs)
	fs.BoolVar(&doClear, "clear", false, "Clear the line named by -contract and -service, or every line with -all.")
	fs.BoolVar(&all, "all", false, "With -clear: every orphaned line listed but those the last pass read above 0 in the PSA\n(they bill, and leave the list once zeroed there; clear one by name to bill it on purpose).")
	fs.StringVar(&contract, "contract", "", "With -clear: the PSA contract `id` of the line.")
	fs.StringVar(&service, "service", "", "With -clear: the PSA service `id` of the line.")
	fs.BoolVar(&zeroed, "zeroed", false, "With -clear: the line was set to 0 in the PSA (not ended, nor billed on purpose). On Kaseya BMS\na line held for it as previous_service is released, as the approval of the held line does.")
	fs.StringVar(&noteText, "note", "", "With -clear: recorded with it, one line: who and why, e.g. \"jane: zeroed in the PSA\".")
	fs.BoolVar(&asJSON, "json", false, "Print JSON: the lines listed (or cleared).")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	named := contract != "" || service != ""
	switch {
	case !doClear && (all || named || noteText != "" || zeroed):
		fmt.Fprintln(e.stderr, "psa-syncd: -all, -contract, -service, -zeroed and -note go with -clear")
		return 2
	case doClear && all == named:
		fmt.Fprintln(e.stderr, "psa-syncd: -clear needs -contract and -service of one line, or -all")
		return 2
	case doClear && named && (contract == "" || service == ""):
		fmt.Fprintln(e.stderr, "psa-syncd: -clear needs both -contract and -service of the line")
		return 2
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	var lines []usage.OrphanedLine
	var rep usage.UnmappedReport
	// already says that the line named was cleared already (a clear
	// sent again).
	var already string
	if api != nil {
		if doClear {
			var out struct {
				Cleared        []usage.OrphanedLine `json:"cleared"`
				AlreadyCleared string               `json:"already_cleared"`
			}
			err = api.post(ctx, "/api/v1/orphans/clear", map[string]any{"contract_id": contract, "service_id": service, "all": all, "zeroed": zeroed, "note": noteText}, &out)
			lines, already = out.Cleared, out.AlreadyCleared
		} else {
			err = api.get(ctx, "/api/v1/unmapped", nil, &rep)
			lines = rep.Unmapped.Orphaned
		}
	} else if !doClear {
		// The list is in the state database alone: read with no secret
		// but the state's, so that it runs by hand while psa-syncd is
		// stopped, where the service's other secrets may not be readable.
		db, cfg, oerr := openStateByHand(ctx, e, cf.configFile, daemon.LoadState)
		if oerr != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", oerr)
			if hint := lockedHint(cfg, "orphans", oerr); hint != "" {
				fmt.Fprintf(e.stderr, "psa-syncd: %s\n", hint)
			}
			return 1
		}
		rep, err = daemon.StoredUnmapped(db)
		if cerr := db.Close(); err == nil {
			err = cerr
		}
		lines = rep.Unmapped.Orphaned
	} else {
		// The clear is recorded in the state database alone: no secret
		// but the state's is read, so that it runs by hand while
		// psa-syncd is stopped, where the service's other secrets may not
		// be readable. A mistyped state_dir gets no new empty database.
		h, code := leadByHand(ctx, e, &cf, "orphans", daemon.LoadState)
		if code != 0 {
			return code
		}
		defer h.release(e, &rc)
		lines, err = h.ClearOrphans(contract, service, noteText, e.getenv("USER"), zeroed)
		if errors.Is(err, usage.ErrAlreadyCleared) {
			already, err = strings.TrimPrefix(err.Error(), "daemon: "), nil
		}
	}
	if err != nil {
		return requestFailed(e, err)
	}
	if already != "" && !asJSON {
		// A clear sent again: done already.
		fmt.Fprintln(e.stdout, "Nothing to do: "+already+".")
		return 0
	}
	if asJSON {
		if lines == nil {
			lines = []usage.OrphanedLine{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(lines); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		return 0
	}
	switch {
	case doClear:
		fmt.Fprintf(e.stdout, "Cleared %d orphaned line(s); later passes do not list them until psa-syncd changes them again:\n", len(lines))
	case rep.Unmapped.OrphanedUnread:
		fmt.Fprintln(e.stdout, "The last pass could not read psa-syncd's ledger (see its log): these are the lines an earlier pass listed.")
	case len(lines) == 0:
		fmt.Fprintln(e.stdout, "No orphaned line.")
		return 0
	}
	printOrphans(e.stdout, lines)
	if !doClear {
		fmt.Fprintln(e.stdout, "\nSet each to 0 (or end it) in the PSA, or map the product or customer again; once zeroed by hand where psa-syncd\n"+
			"cannot read it (contract no longer mapped, Kaseya BMS): psa-syncd orphans -clear -contract ID -service ID.")
	}
	return 0
}

// printOrphans prints orphaned lines as the plan's table does.
func printOrphans(w io.Writer, lines []usage.OrphanedLine) {
	tw := newTable(w)
	fmt.Fprintln(tw, "CUSTOMER\tCONTRACT\tSERVICE\tBILLED\tFROM\tSINCE\tWHY")
	for _, l := range lines {
		from := "ledger"
		if l.Read {
			from = "read"
		}
		why := "no product mapping names the service"
		if l.Reason == usage.OrphanCustomer {
			why = "no customer mapping names the contract"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", nameID(l.CustomerName, l.CustomerID), l.ContractID, l.ServiceID,
			strconv.FormatInt(l.Quantity, 10), from, l.Since, why)
	}
	_ = tw.Flush()
}

package main

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
)

func cmdLedger(ctx context.Context, e *env, args []string) (rc int) {
	var (
		cf       commonFlags
		rf       remoteFlags
		customer string
		contract string
		service  string
		period   string
		limit    int
		format   string
		asJSON   bool
	)
	fs := newFlagSet(e, "ledger", "Print the ledger: every quantity change psa-syncd made on a contract line (before, after,\n"+
		"effective date, run), newest first. From the state database, or from a running daemon's\n"+
		"API with -web.url (the daemon holds the database locked), page by page.")
	cf.register(fs)
	rf.register(fs)
	fs.StringVar(&customer, "customer", "", "Only changes for this source customer `id`.")
	fs.StringVar(&contract, "contract", "", "Only changes on this PSA contract `id`.")
	fs.StringVar(&service, "service", "", "Only changes of this PSA service `id`.")
	fs.StringVar(&period, "period", "", "Only changes effective in this billing month, `YYYY-MM`.")
	fs.IntVar(&limit, "limit", 0, "Print at most this many changes (0: all).")
	fs.StringVar(&format, "format", "table", "Output `format`: table, csv or json.")
	fs.BoolVar(&asJSON, "json", false, "Print JSON: -format json, as the other commands' -json.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	if asJSON {
		if format != "table" && format != "json" {
			fmt.Fprintf(e.stderr, "psa-syncd: -json and -format %s contradict each other\n", format)
			return 2
		}
		format = "json"
	}
	if format != "table" && format != "csv" && format != "json" {
		fmt.Fprintf(e.stderr, "psa-syncd: -format %q: want table, csv or json\n", format)
		return 2
	}
	// The API's query parser checks these too, in the words of its
	// query parameters: the flags are named here.
	switch {
	case limit < 0:
		fmt.Fprintf(e.stderr, "psa-syncd: -limit %d: must not be negative (0: all)\n", limit)
		return 2
	case period != "":
		if _, err := source.ParsePeriod(period); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: -period %q: want a billing month, YYYY-MM\n", period)
			return 2
		}
	}
	q := url.Values{}
	for k, v := range map[string]string{"customer": customer, "contract": contract, "service": service, "period": period} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if limit != 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	f, err := daemon.ParseLedgerQuery(q.Get)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	api, err := rf.client(e)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	var entries []daemon.LedgerView
	if api != nil {
		if entries, err = remoteLedger(ctx, api, q, limit); err != nil {
			return requestFailed(e, err)
		}
	} else {
		cfg, err := daemon.Load(cf.configFile, e.getenv)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
		// The database the daemon uses (SQLite in state_dir, or the
		// state section's PostgreSQL), as it is: a wrong state_dir must
		// not show an empty ledger out of a database made for it.
		dbc := cfg.State.Database(cfg.StateDir)
		dbc.Existing = true
		db, err := state.OpenConfig(ctx, dbc)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			if hint := lockedHint(cfg, "ledger", err); hint != "" {
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
		if entries, err = daemon.FilterLedger(db, f); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
	}
	switch format {
	case "json":
		if entries == nil {
			entries = []daemon.LedgerView{}
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(map[string]any{"ledger": entries})
	case "csv":
		if err := writeLedgerCSV(e.stdout, entries); err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: writing CSV: %v\n", err)
			return 1
		}
	default:
		printLedger(e.stdout, entries)
	}
	return 0
}

// remoteLedger reads the ledger from a daemon's API, newest first: query q
// (limit included), following the answers' "next" pages until limit
// entries (0: all) are read. The daemon answers at most
// daemon.LedgerPageSize entries at once; one that does not page answers
// everything at once, without a next page.
func remoteLedger(ctx context.Context, api *apiClient, q url.Values, limit int) ([]daemon.LedgerView, error) {
	var entries []daemon.LedgerView
	for {
		var out struct {
			Ledger []daemon.LedgerView `json:"ledger"`
			Next   string              `json:"next"`
		}
		if err := api.get(ctx, "/api/v1/ledger", q, &out); err != nil {
			return nil, err
		}
		entries = append(entries, out.Ledger...)
		if out.Next == "" || len(out.Ledger) == 0 || (limit > 0 && len(entries) >= limit) {
			break
		}
		next, err := url.Parse(out.Next)
		if err != nil {
			return nil, fmt.Errorf("the daemon's next page of the ledger %q: %w", out.Next, err)
		}
		q = next.Query()
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit-len(entries)))
		}
	}
	if limit > 0 && len(entries) > limit {
		entries = entries[:limit]
	}
	return entries, nil
}

var ledgerColumns = []string{"seq", "time", "run_id", "system", "source", "customer_id", "contract_id", "service_id",
	"before", "after", "change", "effective_date", "intent_id"}

func ledgerRow(l daemon.LedgerView) []string {
	return []string{strconv.FormatInt(l.Seq, 10), l.Time.UTC().Format(time.RFC3339), strconv.FormatInt(l.RunID, 10), l.System, l.Source,
		l.CustomerID, l.ContractID, l.ServiceID, strconv.FormatInt(l.Before, 10), strconv.FormatInt(l.After, 10),
		fmt.Sprintf("%+d", l.After-l.Before), l.EffectiveDate, strconv.FormatInt(l.IntentID, 10)}
}

// writeLedgerCSV writes the entries as CSV with a header row, for a
// spreadsheet or a billing reconciliation.
func writeLedgerCSV(w io.Writer, entries []daemon.LedgerView) error {
	cw := csv.NewWriter(w)
	_ = cw.Write(ledgerColumns)
	for _, l := range entries {
		_ = cw.Write(ledgerRow(l))
	}
	cw.Flush()
	return cw.Error()
}

func printLedger(w io.Writer, entries []daemon.LedgerView) {
	if len(entries) == 0 {
		fmt.Fprintln(w, "No quantity changes match.")
		return
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "TIME\tRUN\tCUSTOMER\tCONTRACT\tSERVICE\tBEFORE\tAFTER\tCHANGE\tEFFECTIVE")
	for _, l := range entries {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%+d\t%s\n", l.Time.UTC().Format(time.RFC3339), l.RunID, l.CustomerID, l.ContractID,
			l.ServiceID, l.Before, l.After, l.After-l.Before, l.EffectiveDate)
	}
	_ = tw.Flush()
}

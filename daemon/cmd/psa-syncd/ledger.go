package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

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
		"effective date, run, and the period: the billing month whose usage its run synced), newest\n"+
		"first. From the state database (reading only state_dir and the state section of the config\n"+
		"file, no other secret), or from a running daemon's\n"+
		"API with -web.url (the daemon holds the database locked), page by page, each page printed\n"+
		"as it is read.")
	cf.register(fs)
	rf.register(fs)
	fs.StringVar(&customer, "customer", "", "Only changes for this source customer `id`.")
	fs.StringVar(&contract, "contract", "", "Only changes on this PSA contract `id`.")
	fs.StringVar(&service, "service", "", "Only changes of this PSA service `id`.")
	fs.StringVar(&period, "period", "", "Only changes whose effective date is in this billing month, `YYYY-MM`; not the period\n"+
		"column (the month whose usage the change billed): with effective_date: next_period_start a\n"+
		"change of November's usage is dated 1 December and listed under 2026-12.")
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
	// The rows are printed a page at a time as they are read (from the
	// API's pages, or LedgerPageSize rows at a time from the state
	// database): a ledger of years is never held in memory at once.
	p := &ledgerPrinter{w: e.stdout, format: format}
	if api != nil {
		if err := remoteLedger(ctx, api, q, limit, p.page); err != nil {
			if p.err != nil {
				fmt.Fprintf(e.stderr, "psa-syncd: writing the ledger: %v\n", p.err)
				return 1
			}
			return requestFailed(e, err)
		}
	} else {
		// Only the state database is read: the other secrets are
		// not needed, and may be readable by the service only.
		cfg, err := daemon.LoadState(cf.configFile, e.getenv)
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
		if err := localLedger(db, f, p.page); err != nil {
			if p.err != nil {
				err = fmt.Errorf("writing the ledger: %w", p.err)
			}
			fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
			return 1
		}
	}
	if err := p.end(); err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: writing the ledger: %v\n", err)
		return 1
	}
	return 0
}

// localLedger reads the entries f selects from db, newest first, and
// passes them to page daemon.LedgerPageSize at a time (f.Limit in all, 0:
// all), so that memory does not grow with the ledger.
func localLedger(db *state.DB, f daemon.LedgerFilter, page func([]daemon.LedgerView) error) error {
	limit, read := f.Limit, 0
	for {
		f.Limit = daemon.LedgerPageSize
		if limit > 0 {
			f.Limit = min(f.Limit, limit-read)
		}
		entries, err := daemon.FilterLedger(db, f)
		if err != nil {
			return err
		}
		if len(entries) > 0 {
			if err := page(entries); err != nil {
				return err
			}
		}
		read += len(entries)
		if len(entries) < f.Limit || (limit > 0 && read >= limit) {
			return nil
		}
		f.Before = entries[len(entries)-1].Seq
	}
}

// remoteLedger reads the ledger from a daemon's API, newest first: query q
// (limit included), following the answers' "next" pages until limit
// entries (0: all) are read, and passes each page to page as it arrives.
// The daemon answers at most daemon.LedgerPageSize entries at once; one
// that does not page answers everything at once, without a next page.
func remoteLedger(ctx context.Context, api *apiClient, q url.Values, limit int, page func([]daemon.LedgerView) error) error {
	read := 0
	for {
		var out struct {
			Ledger []daemon.LedgerView `json:"ledger"`
			Next   string              `json:"next"`
		}
		if err := api.get(ctx, "/api/v1/ledger", q, &out); err != nil {
			return err
		}
		if limit > 0 && read+len(out.Ledger) > limit {
			out.Ledger = out.Ledger[:limit-read]
		}
		if len(out.Ledger) > 0 {
			if err := page(out.Ledger); err != nil {
				return err
			}
		}
		read += len(out.Ledger)
		if out.Next == "" || len(out.Ledger) == 0 || (limit > 0 && read >= limit) {
			return nil
		}
		next, err := url.Parse(out.Next)
		if err != nil {
			return fmt.Errorf("the daemon's next page of the ledger %q: %w", out.Next, err)
		}
		q = next.Query()
		if limit > 0 {
			q.Set("limit", strconv.Itoa(limit-read))
		}
	}
}

// ledgerColumns are the CSV's columns; a new one goes last, so that a
// reader by position keeps working.
var ledgerColumns = []string{"seq", "time", "run_id", "system", "source", "customer_id", "contract_id", "service_id",
	"before", "after", "change", "effective_date", "intent_id", "period"}

func ledgerRow(l daemon.LedgerView) []string {
	return []string{strconv.FormatInt(l.Seq, 10), l.Time.UTC().Format(time.RFC3339), strconv.FormatInt(l.RunID, 10), l.System, l.Source,
		l.CustomerID, l.ContractID, l.ServiceID, strconv.FormatInt(l.Before, 10), strconv.FormatInt(l.After, 10),
		fmt.Sprintf("%+d", l.After-l.Before), l.EffectiveDate, strconv.FormatInt(l.IntentID, 10), l.Period}
}

// ledgerPrinter prints the ledger a page at a time, in format table, csv
// or json, as the pages are read: page for each page, newest first, then
// end. It holds no more than the page it prints.
type ledgerPrinter struct {
	w      io.Writer
	format string
	n      int   // entries printed
	widths []int // the table's column widths, grown as pages need
	err    error // the first write error
}

var ledgerTableHeader = []string{"TIME", "RUN", "CUSTOMER", "CONTRACT", "SERVICE", "BEFORE", "AFTER", "CHANGE", "EFFECTIVE", "PERIOD"}

func (p *ledgerPrinter) page(entries []daemon.LedgerView) error {
	if p.err != nil {
		return p.err
	}
	out := bufio.NewWriter(p.w)
	switch p.format {
	case "json":
		p.err = p.json(out, entries)
	case "csv":
		cw := csv.NewWriter(out)
		if p.n == 0 {
			_ = cw.Write(ledgerColumns)
		}
		for _, l := range entries {
			_ = cw.Write(ledgerRow(l))
		}
		cw.Flush()
		p.err = cw.Error()
	default:
		p.table(out, entries)
	}
	p.n += len(entries)
	if err := out.Flush(); p.err == nil {
		p.err = err
	}
	return p.err
}

// json writes the entries as elements of {"ledger": [...]}, the document
// json.Encoder with a two-space indent writes, opening it with the first
// page; end closes it.
func (p *ledgerPrinter) json(w *bufio.Writer, entries []daemon.LedgerView) error {
	if p.n == 0 {
		_, _ = w.WriteString("{\n  \"ledger\": [")
	}
	for i, l := range entries {
		data, err := json.MarshalIndent(l, "    ", "  ")
		if err != nil {
			return err
		}
		if p.n+i > 0 {
			_ = w.WriteByte(',')
		}
		_, _ = w.WriteString("\n    ")
		_, _ = w.Write(data)
	}
	return nil
}

// table writes the entries as rows of the table, with its header before
// the first page. A column is as wide as its widest cell so far (the
// header's and the first page's, for most ledgers all of them): a later
// page with a wider cell widens the column from that page on, so that
// each page is aligned in itself without the whole ledger being read
// first to measure it.
func (p *ledgerPrinter) table(w *bufio.Writer, entries []daemon.LedgerView) {
	rows := make([][]string, 0, len(entries)+1)
	if p.n == 0 {
		rows = append(rows, ledgerTableHeader)
		p.widths = make([]int, len(ledgerTableHeader)-1)
	}
	for _, l := range entries {
		rows = append(rows, []string{l.Time.UTC().Format(time.RFC3339), strconv.FormatInt(l.RunID, 10), l.CustomerID, l.ContractID,
			l.ServiceID, strconv.FormatInt(l.Before, 10), strconv.FormatInt(l.After, 10), fmt.Sprintf("%+d", l.After-l.Before), l.EffectiveDate,
			cmp.Or(l.Period, "-")})
	}
	for _, row := range rows {
		for i, cell := range row[:len(p.widths)] {
			p.widths[i] = max(p.widths[i], utf8.RuneCountInString(cell))
		}
	}
	// As the other commands' tables (newTable): two spaces between
	// columns, the last one unpadded.
	for _, row := range rows {
		for i, cell := range row[:len(p.widths)] {
			_, _ = w.WriteString(cell)
			_, _ = w.WriteString(strings.Repeat(" ", p.widths[i]-utf8.RuneCountInString(cell)+2))
		}
		_, _ = w.WriteString(row[len(row)-1])
		_ = w.WriteByte('\n')
	}
}

// end finishes the output: the json document's closing, or the table's
// line saying that nothing matched.
func (p *ledgerPrinter) end() error {
	if p.err != nil {
		return p.err
	}
	var err error
	switch {
	case p.format == "json" && p.n == 0:
		_, err = io.WriteString(p.w, "{\n  \"ledger\": []\n}\n")
	case p.format == "json":
		_, err = io.WriteString(p.w, "\n  ]\n}\n")
	case p.format == "csv" && p.n == 0:
		err = p.page(nil) // the header
	case p.format == "table" && p.n == 0:
		_, err = fmt.Fprintln(p.w, "No quantity changes match.")
	}
	return err
}

package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestRun_remoteLedgerPages: the daemon's API answers the ledger a page
// at a time, and psa-syncd ledger reads the state database a page at a
// time; psa-syncd ledger, with and without -web.url, still prints every
// change (or -limit of them) once, following the pages.
func TestRun_remoteLedgerPages(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	total := daemon.LedgerPageSize + daemon.LedgerPageSize/2
	fillLedger(t, e, total)
	// From the state database first (a running daemon locks it), then
	// from the daemon's API.
	checkLedgerPages(t, "-config.file="+e.cfgPath, total)
	checkLedgerPages(t, "-web.url="+startDaemon(t, e.cfgPath), total)
}

func checkLedgerPages(t *testing.T, src string, total int) {
	t.Helper()
	for _, tc := range []struct {
		args []string
		want int
	}{
		{nil, total},
		{[]string{"-limit", "0"}, total},
		{[]string{"-limit", strconv.Itoa(daemon.LedgerPageSize + 10)}, daemon.LedgerPageSize + 10},
		{[]string{"-limit", "7"}, 7},
	} {
		code, stdout, stderr := runCmd(t, append([]string{"ledger", src, "-format", "csv"}, tc.args...)...)
		rows, err := csv.NewReader(strings.NewReader(stdout)).ReadAll()
		if code != 0 || err != nil || len(rows) != tc.want+1 {
			t.Errorf("ledger %s %v: exit %d, %v, %d rows (%s); want a header and %d changes", src, tc.args, code, err, len(rows), stderr, tc.want)
			continue
		}
		for i, row := range rows[1:] {
			if row[0] != strconv.Itoa(total-i) {
				t.Errorf("ledger %s %v: row %d has seq %s, want %d (newest first, each once)", src, tc.args, i+1, row[0], total-i)
				break
			}
		}
	}
}

// status, like ledger, reads the state database as it is: with a
// state_dir where none is (a typo, another user's path) it fails naming
// the file, instead of creating an empty database and saying that no
// customer was ever synced. So do resolve and rebind, which act on a
// database that holds an open intent or refused a pass.
func TestRun_statusWithoutStateDatabase(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	for _, args := range [][]string{{"status"}, {"ledger"}, {"resolve", "-intent", "1", "-posted"}, {"rebind"}} {
		code, stdout, stderr := runCmd(t, append(args, "-config.file", e.cfgPath)...)
		if code != 1 || stdout != "" || !strings.Contains(stderr, "is the state directory right?") {
			t.Errorf("%v without a state database: exit %d\nstdout: %s\nstderr: %s\nwant 1 and the missing database named", args, code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(e.dir, "state")); !os.IsNotExist(err) {
			t.Fatalf("state directory after %v: %v, want none created", args, err)
		}
	}
}

// ledger takes -json like status, plan, sync and tickets (a flag copied
// from them is no usage error): the same as -format json.
func TestRun_ledgerJSONFlag(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, nil)
	if code, _, stderr := runCmd(t, "sync", "-config.file", e.cfgPath); code != 0 {
		t.Fatalf("sync: exit %d\n%s", code, stderr)
	}
	code, viaFormat, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-format", "json")
	if code != 0 || !strings.Contains(viaFormat, `"ledger": [`) {
		t.Fatalf("ledger -format json: exit %d\n%s\n%s", code, viaFormat, stderr)
	}
	if code, stdout, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-json"); code != 0 || stdout != viaFormat {
		t.Errorf("ledger -json: exit %d\n%s\n%s\nwant what -format json prints:\n%s", code, stdout, stderr, viaFormat)
	}
	if code, _, stderr := runCmd(t, "ledger", "-config.file", e.cfgPath, "-json", "-format", "csv"); code != 2 || !strings.Contains(stderr, "contradict") {
		t.Errorf("ledger -json -format csv: exit %d, stderr %q; want a usage error", code, stderr)
	}
}

// fillLedger writes n quantity changes of one line into e's state
// database, seq 1 to n.
func fillLedger(t *testing.T, e *testEnv, n int) {
	t.Helper()
	db, err := state.Open(filepath.Join(e.dir, "state"))
	if err != nil {
		t.Fatal(err)
	}
	ins := make([]state.Intent, n)
	for i := range ins {
		ins[i] = state.Intent{RunID: 1, System: psa.SystemAutotask, Source: "file", CustomerID: "cust-acme", ContractID: itoa(e.contracts[0]),
			ServiceID: itoa(e.services[0]), Before: int64(i), After: int64(i + 1), BeforeKnown: true,
			EffectiveDate: time.Date(2026, time.November, 1, 0, 0, 0, 0, time.UTC), Created: time.Now()}
	}
	opened, err := db.OpenIntentBatch(context.Background(), ins)
	if err != nil {
		t.Fatal(err)
	}
	cs := make([]state.IntentCompletion, len(opened))
	for i, in := range opened {
		cs[i] = state.IntentCompletion{ID: in.ID, State: state.IntentDone}
	}
	if err := db.CompleteIntentBatch(context.Background(), cs); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

// heapSampler is a stdout that measures, every 512 KiB written, the heap
// that is live (after a collection), and counts the lines.
type heapSampler struct {
	written, lines int
	peak           uint64
}

func (h *heapSampler) Write(p []byte) (int, error) {
	if h.written/(512<<10) != (h.written+len(p))/(512<<10) {
		h.sample()
	}
	h.written += len(p)
	h.lines += bytes.Count(p, []byte("\n"))
	return len(p), nil
}

func (h *heapSampler) sample() {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	h.peak = max(h.peak, ms.HeapAlloc)
}

// The ledger is never pruned: psa-syncd ledger prints it a page at a
// time as it reads it, from the state database or the API, and its
// memory does not grow with the number of rows, in every format.
// Not parallel: the heap it measures is the process's.
func TestRun_ledgerStreams(t *testing.T) {
	const small, large = 5000, 50000
	envs := map[int]*testEnv{}
	for _, n := range []int{small, large} {
		envs[n] = newTestEnv(t, nil)
		fillLedger(t, envs[n], n)
	}
	webs := map[int]string{} // once the state database is read: the daemon locks it
	// growth is how much the live heap grew over what it was before,
	// at its peak while ledger printed n rows.
	growth := func(from string, n int, format string) uint64 {
		src := "-config.file=" + envs[n].cfgPath
		if from == "api" {
			src = webs[n]
		}
		var stdout heapSampler
		var stderr bytes.Buffer
		stdout.sample()
		before := stdout.peak
		stdout.peak = 0
		code := run(t.Context(), []string{"ledger", src, "-format", format}, &stdout, &stderr, func(string) string { return "" })
		stdout.sample()
		if code != 0 || stdout.lines < n {
			t.Fatalf("ledger %s -format %s of %d rows: exit %d, %d lines\n%s", src, format, n, code, stdout.lines, stderr.String())
		}
		if stdout.peak < before {
			return 0
		}
		return stdout.peak - before
	}
	for _, from := range []string{"db", "api"} {
		if from == "api" {
			for n, e := range envs {
				webs[n] = "-web.url=" + startDaemon(t, e.cfgPath)
			}
		}
		for _, format := range []string{"table", "csv", "json"} {
			g5, g50 := growth(from, small, format), growth(from, large, format)
			t.Logf("ledger from the %s, -format %s: %d KiB for %d rows, %d KiB for %d", from, format, g5>>10, small, g50>>10, large)
			if g50 > g5+4<<20 {
				t.Errorf("ledger from the %s, -format %s: the live heap grew by %d KiB printing %d rows, by %d KiB printing %d: want no growth with the rows",
					from, format, g50>>10, large, g5>>10, small)
			}
		}
	}
}

// The ledger printed a page at a time reads as it did printed at once:
// the table aligned, one CSV header, one JSON document of the same shape
// as json.Encoder writes, across pages and when nothing matches.
func TestLedgerPrinter_pages(t *testing.T) {
	t.Parallel()
	var entries []daemon.LedgerView
	for i := range 5 {
		entries = append(entries, daemon.LedgerView{Seq: int64(5 - i), Time: time.Date(2026, time.November, 2, 3, 4, 5, 0, time.UTC), RunID: 7,
			System: "autotask", Source: "file", CustomerID: "cust-<acme>", ContractID: strings.Repeat("9", i+1), ServiceID: "42",
			Before: int64(i), After: int64(i * 3), EffectiveDate: "2026-11-01", IntentID: int64(100 + i), Period: "2026-10"})
	}
	entries[4].Period = "" // its run has left the run history
	for _, pages := range [][][]daemon.LedgerView{nil, {entries}, {entries[:2], entries[2:3], entries[3:]}} {
		var all []daemon.LedgerView
		for _, pg := range pages {
			all = append(all, pg...)
		}
		out := map[string]*bytes.Buffer{}
		for _, format := range []string{"table", "csv", "json"} {
			out[format] = &bytes.Buffer{}
			p := &ledgerPrinter{w: out[format], format: format}
			for _, pg := range pages {
				if err := p.page(pg); err != nil {
					t.Fatal(err)
				}
			}
			if err := p.end(); err != nil {
				t.Fatal(err)
			}
		}
		var want bytes.Buffer
		enc := json.NewEncoder(&want)
		enc.SetIndent("", "  ")
		if all == nil {
			all = []daemon.LedgerView{}
		}
		_ = enc.Encode(map[string]any{"ledger": all})
		if got := out["json"].String(); got != want.String() {
			t.Errorf("%d pages, json:\n%s\nwant:\n%s", len(pages), got, want.String())
		}
		rows, err := csv.NewReader(out["csv"]).ReadAll()
		if err != nil || len(rows) != len(all)+1 || rows[0][0] != "seq" {
			t.Errorf("%d pages, csv: %v, %q; want a header and %d rows", len(pages), err, rows, len(all))
		}
		var tw bytes.Buffer
		tbl := newTable(&tw)
		if len(all) == 0 {
			tw.WriteString("No quantity changes match.\n")
		} else {
			fmt.Fprintln(tbl, strings.Join(ledgerTableHeader, "\t"))
		}
		for _, l := range all {
			fmt.Fprintf(tbl, "%s\t%d\t%s\t%s\t%s\t%d\t%d\t%+d\t%s\t%s\n", l.Time.UTC().Format(time.RFC3339), l.RunID, l.CustomerID, l.ContractID,
				l.ServiceID, l.Before, l.After, l.After-l.Before, l.EffectiveDate, cmp.Or(l.Period, "-"))
		}
		_ = tbl.Flush()
		if len(pages) <= 1 && out["table"].String() != tw.String() {
			t.Errorf("%d pages, table:\n%s\nwant:\n%s", len(pages), out["table"], tw.String())
		}
		if len(pages) > 1 {
			// The first page sets the widths; the contract column widens
			// on later pages, and the columns after it move with it.
			lines := strings.Split(strings.TrimSuffix(out["table"].String(), "\n"), "\n")
			if len(lines) != len(all)+1 || strings.Index(lines[0], "SERVICE") != strings.Index(lines[2], " 42 ")+1 {
				t.Errorf("%d pages, table not aligned within its first page:\n%s", len(pages), out["table"])
			}
		}
	}
}

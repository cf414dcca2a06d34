// Command simstate prints the contract lines of a running PSA simulator
// (psa-syncd simulate) as a table, read from its inspection endpoint:
// /_sim/autotask/state, /_sim/connectwise/state or /_sim/kaseyabms/state.
// Those endpoints belong to the simulator, not to the PSA. The demo
// (examples/demo/run.sh) uses simstate to show quantities before and after a
// sync.
//
//	go run ./examples/demo/simstate http://127.0.0.1:41234/_sim/autotask/state
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func main() {
	args := os.Args[1:]
	tickets := len(args) == 2 && args[0] == "-tickets"
	if tickets {
		args = args[1:]
	}
	if len(args) != 1 {
		fmt.Fprintln(os.Stderr, "usage: simstate [-tickets] <simulator state URL>")
		os.Exit(2)
	}
	run := run
	if tickets {
		run = runTickets
	}
	if err := run(args[0], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simstate:", err)
		os.Exit(1)
	}
}

// table is what simstate prints: a header, rows and a closing line.
type table struct {
	header string
	rows   [][]string
	footer string
}

func run(url string, w io.Writer) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var t table
	switch {
	case strings.HasSuffix(url, "/_sim/autotask/state"):
		var st psatest.AutotaskState
		if err = json.NewDecoder(resp.Body).Decode(&st); err == nil {
			t = autotaskTable(st)
		}
	case strings.HasSuffix(url, "/_sim/connectwise/state"):
		var st psatest.ConnectWiseState
		if err = json.NewDecoder(resp.Body).Decode(&st); err == nil {
			t = connectWiseTable(st)
		}
	case strings.HasSuffix(url, "/_sim/kaseyabms/state"):
		var st psatest.KaseyaBMSState
		if err = json.NewDecoder(resp.Body).Decode(&st); err == nil {
			t = kaseyaBMSTable(st)
		}
	default:
		return fmt.Errorf("%s is not a simulator state URL (/_sim/<system>/state)", url)
	}
	if err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	sort.Slice(t.rows, func(i, j int) bool {
		if t.rows[i][1] != t.rows[j][1] {
			return t.rows[i][1] < t.rows[j][1]
		}
		return t.rows[i][2] < t.rows[j][2]
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, t.header)
	for _, r := range t.rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	if len(t.rows) == 0 {
		fmt.Fprintln(tw, "(no contract lines)")
	}
	if t.footer != "" {
		fmt.Fprintf(tw, "\n%s\n", t.footer)
	}
	return tw.Flush()
}

func nameID[T int | int64](name string, id T) string { return fmt.Sprintf("%s (%d)", name, id) }

// autotaskTable lists each contract service with its units now and the
// number of ContractServiceAdjustments posted to it.
func autotaskTable(st psatest.AutotaskState) table {
	companies := map[int64]string{}
	for _, c := range st.Companies {
		companies[c.ID] = c.Name
	}
	contracts := map[int64]psatest.AutotaskContract{}
	for _, c := range st.Contracts {
		contracts[c.ID] = c
	}
	services := map[int64]string{}
	for _, s := range st.Services {
		services[s.ID] = s.Name
	}
	adjustments := map[[2]int64]int{}
	for _, a := range st.Adjustments {
		adjustments[[2]int64{a.ContractID, a.ServiceID}]++
	}
	t := table{
		header: "COMPANY\tCONTRACT\tSERVICE\tUNITS NOW\tADJUSTMENTS",
		footer: fmt.Sprintf("%d API requests in the last hour (limit %d)", st.HourlyCount, st.HourlyLimit),
	}
	for _, l := range st.Lines {
		units := "-"
		if l.CurrentUnits != nil {
			units = strconv.FormatInt(*l.CurrentUnits, 10)
		}
		k := contracts[l.ContractID]
		t.rows = append(t.rows, []string{companies[k.CompanyID], nameID(k.Name, k.ID), nameID(services[l.ServiceID], l.ServiceID),
			units, strconv.Itoa(adjustments[[2]int64{l.ContractID, l.ServiceID}])})
	}
	return t
}

// connectWiseTable lists each agreement addition (ConnectWise's contract
// line) with its quantity and status.
func connectWiseTable(st psatest.ConnectWiseState) table {
	companies := map[int64]string{}
	for _, c := range st.Companies {
		companies[c.ID] = c.Name
	}
	agreements := map[int64]psatest.ConnectWiseAgreement{}
	for _, a := range st.Agreements {
		agreements[a.ID] = a
	}
	products := map[int64]string{}
	for _, p := range st.Catalog {
		products[p.ID] = p.Description
	}
	t := table{
		header: "COMPANY\tAGREEMENT\tPRODUCT\tQUANTITY\tADDITION\tSTATUS",
		footer: "codebase " + st.Codebase,
	}
	for _, a := range st.Additions {
		ag := agreements[a.AgreementID]
		t.rows = append(t.rows, []string{companies[ag.CompanyID], nameID(ag.Name, ag.ID), nameID(products[a.ProductID], a.ProductID),
			strconv.FormatFloat(a.Quantity, 'f', -1, 64), strconv.FormatInt(a.ID, 10), a.Status})
	}
	return t
}

// kaseyaBMSTable lists each service on each contract with the units in
// force today (those of the latest line in effect) and how many
// recurring-service lines have been posted for it: BMS keeps every posted
// line, so each change psa-syncd makes adds one.
func kaseyaBMSTable(st psatest.KaseyaBMSState) table {
	accounts := map[int]string{}
	for _, a := range st.Accounts {
		accounts[a.ID] = a.Name
	}
	contracts := map[int]psatest.KaseyaBMSContract{}
	for _, c := range st.Contracts {
		contracts[c.ID] = c
	}
	services := map[int]string{}
	for _, s := range st.Services {
		services[s.ID] = s.Name
	}
	posted := map[[2]int][]string{}
	for _, l := range st.Lines {
		k := [2]int{l.ContractID, l.ServiceID}
		posted[k] = append(posted[k], fmt.Sprintf("%d from %s", l.Units, l.EffectiveDate.Format(time.DateOnly)))
	}
	t := table{header: "ACCOUNT\tCONTRACT\tSERVICE\tUNITS TODAY\tLINES POSTED"}
	for _, u := range st.Units {
		c := contracts[u.ContractID]
		t.rows = append(t.rows, []string{accounts[c.AccountID], nameID(c.Name, c.ID), nameID(services[u.ServiceID], u.ServiceID),
			strconv.Itoa(u.Units), strings.Join(posted[[2]int{u.ContractID, u.ServiceID}], "; ")})
	}
	calls := 0
	for _, n := range st.Hourly {
		calls += n
	}
	t.footer = fmt.Sprintf("%d API calls in the last hour over %d endpoints (limit 1,500 per endpoint)", calls, len(st.Hourly))
	return t
}

// runTickets prints the tickets of an Autotask simulator's state: number,
// status, priority, external id and title.
func runTickets(url string, w io.Writer) error {
	if !strings.HasSuffix(url, "/_sim/autotask/state") {
		return fmt.Errorf("%s: only the Autotask simulator's state lists tickets", url)
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	var st psatest.AutotaskState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NUMBER\tSTATUS\tPRIORITY\tEXTERNAL ID\tTITLE")
	for _, t := range st.Tickets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Number, t.Status, t.Priority, t.ExternalID, t.Title)
	}
	if len(st.Tickets) == 0 {
		fmt.Fprintln(tw, "(no tickets)")
	}
	return tw.Flush()
}

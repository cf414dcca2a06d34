// Command simstate prints the contract lines of a running Autotask simulator
// (psa-syncd simulate) as a table, read from its /_sim/autotask/state
// inspection endpoint, which belongs to the simulator and not to Autotask.
// The demo (examples/demo/run.sh) uses it to show quantities before and
// after a sync.
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
	"text/tabwriter"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: simstate <simulator state URL>")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "simstate:", err)
		os.Exit(1)
	}
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
	var st psatest.AutotaskState
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return fmt.Errorf("decoding %s: %w", url, err)
	}
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
	type row struct{ company, contract, service, units, adj string }
	var rows []row
	for _, l := range st.Lines {
		units := "-"
		if l.CurrentUnits != nil {
			units = strconv.FormatInt(*l.CurrentUnits, 10)
		}
		k := contracts[l.ContractID]
		rows = append(rows, row{companies[k.CompanyID], fmt.Sprintf("%s (%d)", k.Name, k.ID),
			fmt.Sprintf("%s (%d)", services[l.ServiceID], l.ServiceID), units,
			strconv.Itoa(adjustments[[2]int64{l.ContractID, l.ServiceID}])})
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].contract != rows[j].contract {
			return rows[i].contract < rows[j].contract
		}
		return rows[i].service < rows[j].service
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "COMPANY\tCONTRACT\tSERVICE\tUNITS NOW\tADJUSTMENTS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.company, r.contract, r.service, r.units, r.adj)
	}
	if len(rows) == 0 {
		fmt.Fprintln(tw, "(no contract lines)")
	}
	fmt.Fprintf(tw, "\n%d API requests in the last hour (limit %d)\n", st.HourlyCount, st.HourlyLimit)
	return tw.Flush()
}

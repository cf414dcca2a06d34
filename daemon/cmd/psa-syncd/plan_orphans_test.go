package main

import (
	"errors"
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// TestPrintPlan_orphanedLines: the plan's table lists the orphaned lines
// (psa-syncd set them, no mapping makes it write them any more), with
// where the quantity comes from, since when, and why.
func TestPrintPlan_orphanedLines(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Unmapped: usage.Unmapped{
		Orphaned: []usage.OrphanedLine{
			{Reason: usage.OrphanService, CustomerID: "cust-acme", CustomerName: "Acme", ContractID: "29684001", ServiceID: "30000012", Quantity: 5, Read: true, Since: "2026-10-01", RunID: 2},
			{Reason: usage.OrphanCustomer, CustomerID: "cust-globex", ContractID: "29684002", ServiceID: "30000013", Quantity: 2, Since: "2026-09-01", RunID: 1}},
	}}, false)
	for _, want := range []string{"Orphaned lines", "set each to 0 or end it in the PSA, or map the product or customer again",
		"Acme (cust-acme)", "30000012", "read", "2026-10-01", "no product mapping names the service",
		"cust-globex", "ledger", "no customer mapping names the contract"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("printPlan output lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPrintPlan_sourceProblems: the plan's section of the source's
// problems holds notices too (a duplicate_rows: sum notice, whose rows were
// added up, not skipped), and its header says so.
func TestPrintPlan_sourceProblems(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	printPlan(&b, &usage.Plan{Problems: []source.Problem{
		{Where: "usage.csv:3", Err: errors.New(`customer "c1" has 2 rows of product "P" (usage.csv:3, usage.csv:4), added up to 10 (duplicate_rows: sum)`)},
		{Where: "usage.csv:5", Err: errors.New(`quantity "x" is not a whole number`)},
	}}, false)
	want := "\nSource problems (rows skipped, and notices):\n" +
		`  usage.csv:3: customer "c1" has 2 rows of product "P" (usage.csv:3, usage.csv:4), added up to 10 (duplicate_rows: sum)` + "\n" +
		`  usage.csv:5: quantity "x" is not a whole number` + "\n"
	if !strings.Contains(b.String(), want) {
		t.Errorf("printPlan output lacks\n%s\nin:\n%s", want, b.String())
	}
}

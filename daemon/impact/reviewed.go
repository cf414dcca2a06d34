package impact

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// ReadReport reads a report written with -format json, such as the one a
// pull request's plan job keeps for its apply job to compare with.
func ReadReport(data []byte) (*Report, error) {
	var r Report
	if err := json.NewDecoder(bytes.NewReader(data)).Decode(&r); err != nil {
		return nil, fmt.Errorf("impact: not the JSON of a billing impact report (psa-syncd plan -terraform-plan -format json): %w", err)
	}
	if r.System == "" {
		return nil, errors.New("impact: not the JSON of a billing impact report (psa-syncd plan -terraform-plan -format json): no system")
	}
	return &r, nil
}

// Differences lists what r changes in billing that reviewed, the report
// reviewers read, did not, and what it no longer changes: the contract
// lines that change (by customer, contract and service), whether
// psa-syncd sets each before and after, through which customer, and at
// which unit price; the customers whose usage sync starts or stops; the
// usage that becomes unmapped or newly billed; the integration switched
// on or off. Quantities and amounts are left out: they move with usage
// between the review and the apply, which the pass bills as it comes. An
// empty list is the billing change that was reviewed.
func (r *Report) Differences(reviewed *Report) []string {
	var diffs []string
	if r.System != reviewed.System {
		diffs = append(diffs, fmt.Sprintf("PSA system: %s, reviewed %s", r.System, reviewed.System))
	}
	if (r.NoExport == "") != (reviewed.NoExport == "") {
		diffs = append(diffs, fmt.Sprintf("current mappings: %s, reviewed %s", exportState(r.NoExport), exportState(reviewed.NoExport)))
	}
	if r.Integration != reviewed.Integration {
		diffs = append(diffs, fmt.Sprintf("integration switched: %s, reviewed %s", orNone(r.Integration), orNone(reviewed.Integration)))
	}
	diffs = append(diffs, differ(r.Lines, reviewed.Lines, lineDiffKey, lineHow, "contract line")...)
	diffs = append(diffs, differ(r.UsageSync, reviewed.UsageSync, func(s SyncChange) string {
		return s.Source + "/" + s.CustomerID
	}, func(s SyncChange) string {
		how := "usage sync stops"
		if s.Starts {
			how = "usage sync starts"
		}
		return how + replacing(s.Replaces, s.ReplacedBy)
	}, "customer")...)
	usageKey := func(u UsageChange) string { return u.Kind + " " + u.ID }
	usageHow := func(u UsageChange) string { return strings.TrimPrefix(replacing(u.Replaces, ""), ", ") }
	diffs = append(diffs, differ(r.Unmapped, reviewed.Unmapped, usageKey, usageHow, "unmapped")...)
	diffs = append(diffs, differ(r.NewlyBilled, reviewed.NewlyBilled, usageKey, usageHow, "newly billed")...)
	return diffs
}

// differ compares two lists of a report's items by key: the items only in
// now, those only in reviewed, and those whose how differs.
func differ[T any](now, reviewed []T, key, how func(T) string, what string) []string {
	before := make(map[string]string, len(reviewed))
	for _, it := range reviewed {
		before[key(it)] = how(it)
	}
	var diffs []string
	seen := make(map[string]bool, len(now))
	for _, it := range now {
		k, h := key(it), how(it)
		seen[k] = true
		switch was, ok := before[k]; {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("%s %s: changes now%s, not in the reviewed report", what, k, parens(h)))
		case was != h:
			diffs = append(diffs, fmt.Sprintf("%s %s: %s, reviewed %s", what, k, h, was))
		}
	}
	for _, it := range reviewed {
		if k := key(it); !seen[k] {
			diffs = append(diffs, fmt.Sprintf("%s %s: changed in the reviewed report%s, no longer changes", what, k, parens(before[k])))
		}
	}
	slices.Sort(diffs)
	return diffs
}

// lineDiffKey names a line by customer, contract and service; a service
// the plan creates has no id yet, so its name stands for it.
func lineDiffKey(l Line) string {
	svc := l.ServiceID
	if l.NewService {
		svc = "new service " + strconv.Quote(l.ServiceName)
	}
	return fmt.Sprintf("%s/%s contract %s service %s", l.Source, l.CustomerID, l.ContractID, svc)
}

// lineHow is what changes on a line but its units: who sets it before and
// after, through which customer, and its unit price after.
func lineHow(l Line) string {
	how := fmt.Sprintf("set by psa-syncd %s → %s", yesNo(l.CurrentSynced), yesNo(l.ProposedSynced))
	if l.CurrentCustomerID != "" {
		how += ", before through customer " + l.CurrentCustomerID
	}
	if l.ProposedUnitPrice != nil {
		how += ", unit price " + strconv.FormatFloat(*l.ProposedUnitPrice, 'f', -1, 64)
	}
	return how
}

func parens(s string) string {
	if s == "" {
		return ""
	}
	return " (" + s + ")"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "not switched"
	}
	return s
}

func exportState(noExport string) string {
	if noExport == "" {
		return "read from the export"
	}
	return "none yet (no export)"
}

func replacing(replaces, replacedBy string) string {
	switch {
	case replaces != "":
		return ", replacing " + replaces
	case replacedBy != "":
		return ", replaced by " + replacedBy
	}
	return ""
}

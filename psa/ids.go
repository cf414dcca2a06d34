package psa

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// CheckID returns why id cannot be the id of an object (a company,
// contract or service) in system, or nil. The ranges are those the
// backends parse (Autotask: 0 or more; ConnectWise: 1 or more; Kaseya
// BMS: 1 to 2^31-1). The spelling is stricter than theirs: decimal digits
// without sign, spaces or leading zeros, as the PSA itself writes the id,
// because the export, the provider's plan checks and psa-syncd compare ids
// as strings: the backends would read "029684183" as contract 29684183,
// but the lines they return are keyed by "29684183", so psa-syncd would
// never find the line it changes. A system without a rule accepts any id.
//
// The error completes a sentence that names the field, such as
// `contract_id "0174" is not a valid Autotask id: Autotask ids are ...`.
func CheckID(system System, id string) error {
	var bits, low = 64, int64(1)
	switch system {
	case SystemAutotask:
		low = 0
	case SystemConnectWise:
	case SystemKaseyaBMS:
		bits = 32
	default:
		return nil
	}
	n, err := strconv.ParseInt(id, 10, bits)
	if err != nil || n < low || strconv.FormatInt(n, 10) != id {
		return fmt.Errorf("%q is not a valid %s id: %s", id, system.Title(), idForm(system))
	}
	return nil
}

// idForm says what the ids of system look like, for messages.
func idForm(system System) string {
	switch system {
	case SystemAutotask:
		return "Autotask ids are whole numbers from 0 up, written in decimal digits alone, such as \"29684183\""
	case SystemConnectWise:
		return "ConnectWise PSA ids are whole numbers from 1 up, written in decimal digits alone, such as \"174\""
	case SystemKaseyaBMS:
		return "Kaseya BMS ids are whole numbers from 1 to 2147483647, written in decimal digits alone, such as \"174\""
	}
	return ""
}

// Spellings maps the PSA's spelling of each id in ids (decimal digits
// without sign, spaces or leading zeros) to the spellings the caller gave
// for it, in order, for a backend that keys what it returns by the ids it
// was asked for. It returns nil when every id is spelled as the PSA spells
// it (CheckID), the case of every export psa-syncd accepts. An id that does
// not parse is left out: the backend refused it before.
func Spellings(system System, ids []string) map[string][]string {
	if !slices.ContainsFunc(ids, func(s string) bool { return CheckID(system, s) != nil }) {
		return nil
	}
	spellings := map[string][]string{}
	for _, s := range ids {
		n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
		if err != nil {
			continue
		}
		c := strconv.FormatInt(n, 10)
		if !slices.Contains(spellings[c], s) {
			spellings[c] = append(spellings[c], s)
		}
	}
	return spellings
}

// RespellLines returns lines with each ContractID spelled as spellings
// (from Spellings) says, a line once under each spelling; lines itself when
// spellings is nil.
func RespellLines(lines []ContractLine, spellings map[string][]string) []ContractLine {
	if spellings == nil {
		return lines
	}
	out := make([]ContractLine, 0, len(lines))
	for _, l := range lines {
		for _, s := range spellings[l.ContractID] {
			l.ContractID = s
			out = append(out, l)
		}
	}
	return out
}

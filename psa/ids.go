package psa

import (
	"fmt"
	"strconv"
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

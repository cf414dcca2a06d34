package psa_test

import (
	"slices"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestCheckID(t *testing.T) {
	t.Parallel()
	tests := []struct {
		system psa.System
		id     string
		valid  bool
	}{
		{psa.SystemAutotask, "29684183", true},
		{psa.SystemAutotask, "0", true}, // the MSP's own company
		{psa.SystemAutotask, "9223372036854775807", true},
		{psa.SystemAutotask, "9223372036854775808", false},
		{psa.SystemAutotask, "-1", false},
		{psa.SystemAutotask, "not-a-contract", false},
		{psa.SystemAutotask, "", false},
		{psa.SystemAutotask, " 174", false},
		{psa.SystemAutotask, "+174", false},
		{psa.SystemAutotask, "0174", false},
		{psa.SystemAutotask, "029684183", false},
		{psa.SystemAutotask, "1e3", false},
		{psa.SystemConnectWise, "174", true},
		{psa.SystemConnectWise, "0", false},
		{psa.SystemConnectWise, "0174", false},
		{psa.SystemConnectWise, "svc-abc", false},
		{psa.SystemKaseyaBMS, "2147483647", true},
		{psa.SystemKaseyaBMS, "2147483648", false},
		{psa.SystemKaseyaBMS, "0", false},
		{psa.SystemKaseyaBMS, "12.5", false},
		{psa.System("other"), " any", true},
	}
	for _, tt := range tests {
		err := psa.CheckID(tt.system, tt.id)
		if (err == nil) != tt.valid {
			t.Errorf("CheckID(%s, %q) = %v, want valid %t", tt.system, tt.id, err, tt.valid)
		}
	}
}

func TestCheckID_message(t *testing.T) {
	t.Parallel()
	err := psa.CheckID(psa.SystemAutotask, "029684183")
	want := `"029684183" is not a valid Autotask id: Autotask ids are whole numbers from 0 up, written in decimal digits alone, such as "29684183"`
	if err == nil || err.Error() != want {
		t.Errorf("CheckID error = %v, want %s", err, want)
	}
}

// TestRespellLines: lines come back under each spelling the caller gave for
// their contract, and as they are when every id is spelled as the PSA
// spells it.
func TestRespellLines(t *testing.T) {
	t.Parallel()
	lines := []psa.ContractLine{{ContractID: "174", ServiceID: "1"}, {ContractID: "29", ServiceID: "2"}}
	if s := psa.Spellings(psa.SystemAutotask, []string{"174", "29"}); s != nil {
		t.Errorf("Spellings of canonical ids = %v, want nil", s)
	}
	got := psa.RespellLines(lines, psa.Spellings(psa.SystemAutotask, []string{"0174", " 174", "29", "x"}))
	want := []psa.ContractLine{{ContractID: "0174", ServiceID: "1"}, {ContractID: " 174", ServiceID: "1"}, {ContractID: "29", ServiceID: "2"}}
	if !slices.EqualFunc(got, want, func(a, b psa.ContractLine) bool { return a.ContractID == b.ContractID && a.ServiceID == b.ServiceID }) {
		t.Errorf("RespellLines = %+v, want %+v", got, want)
	}
}

package daemon

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShortError(t *testing.T) {
	t.Parallel()
	long := "contract 29684183 service 30000012: " + strings.Repeat("the PSA said no ", 20)
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"reading contract 29684183: autotask: GET https://webservices5.autotask.net/ATServicesRest/V1.0/ContractServiceUnits/query: read tcp 127.0.0.1:40112->127.0.0.1:9443: read: connection reset by peer",
			"reading contract 29684183: connection reset by peer"},
		{"reading contract 7: autotask: GET https://sim/ATServicesRest/V1.0/Contracts/7: 401 Unauthorized",
			"reading contract 7: 401 Unauthorized"},
		{"daemon: fetching usage for 2026-12 from file: open usage.csv: no such file or directory",
			"fetching usage for 2026-12 from file: open usage.csv: no such file or directory"},
		{"dial tcp 127.0.0.1:1: connect: connection refused", "connect: connection refused"},
		{"contract 5 is mapped to 2 customers (a, b)", "contract 5 is mapped to 2 customers (a, b)"},
		{"multi\nline\terror", "multi line error"},
	} {
		if got := ShortError(tc.in); got != tc.want {
			t.Errorf("ShortError(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	got := ShortError(long)
	if n := utf8.RuneCountInString(got); n != ShortErrorLen || !strings.HasSuffix(got, "…") || !strings.HasPrefix(got, "contract 29684183 service 30000012: the PSA") {
		t.Errorf("ShortError(long) = %q (%d runes), want %d runes ending in …", got, n, ShortErrorLen)
	}
}

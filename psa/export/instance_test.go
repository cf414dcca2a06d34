package export

import "testing"

func TestSameInstance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want bool
	}{
		{"webservices5.autotask.net", "webservices5.autotask.net", true},
		{"webservices5.autotask.net", "WebServices5.autotask.net", true},
		{"webservices5.autotask.net", "webservices99.autotask.net", false},
		// Two tenants on one zone host.
		{"ci:29683541@webservices5.autotask.net", "ci:11111@webservices5.autotask.net", false},
		// One tenant, moved to another zone.
		{"ci:29683541@webservices5.autotask.net", "ci:29683541@webservices14.autotask.net", true},
		// An export written before the tenant was recorded.
		{"webservices5.autotask.net", "ci:29683541@webservices5.autotask.net", true},
		{"webservices99.autotask.net", "ci:29683541@webservices5.autotask.net", false},
		// Two ConnectWise companies, or Kaseya BMS tenants, on one host.
		{"company:msp@api-na.myconnectwise.net", "company:other@api-na.myconnectwise.net", false},
		{"tenant:Acme MSP@api.bmsemea.kaseya.com", "tenant:Other MSP@api.bmsemea.kaseya.com", false},
		{"tenant:Acme MSP@api.bmsemea.kaseya.com", "tenant:ACME MSP@api.bmsemea.kaseya.com", true},
		// A company id or tenant name is unique on its host only.
		{"company:msp@api-na.myconnectwise.net", "company:msp@api-eu.myconnectwise.net", false},
		{"tenant:Acme MSP@api.bmsemea.kaseya.com", "tenant:Acme MSP@api.bmsnaa.kaseya.com", false},
		// Recorded before companies and tenants were.
		{"api-na.myconnectwise.net", "company:msp@api-na.myconnectwise.net", true},
		{"api.bmsemea.kaseya.com", "tenant:Acme MSP@api.bmsemea.kaseya.com", true},
	}
	for _, tt := range tests {
		if got := SameInstance(tt.a, tt.b); got != tt.want {
			t.Errorf("SameInstance(%q, %q) = %v, want %v", tt.a, tt.b, got, tt.want)
		}
		if got := SameInstance(tt.b, tt.a); got != tt.want {
			t.Errorf("SameInstance(%q, %q) = %v, want %v", tt.b, tt.a, got, tt.want)
		}
	}
}

func TestRecordedInstance(t *testing.T) {
	t.Parallel()
	const tenant = "ci:29683541@webservices5.autotask.net"
	tests := []struct{ old, instance, want string }{
		{"", "webservices5.autotask.net", "webservices5.autotask.net"},
		{"webservices5.autotask.net", "", "webservices5.autotask.net"},
		// The tenant is recorded once a client knows it.
		{"webservices5.autotask.net", tenant, tenant},
		// A tenant that moved to another zone.
		{tenant, "ci:29683541@webservices14.autotask.net", "ci:29683541@webservices14.autotask.net"},
		// A client with base_url set knows only the host: the tenant stays.
		{tenant, "webservices5.autotask.net", tenant},
		{tenant, "WEBSERVICES5.autotask.net", tenant},
	}
	for _, tt := range tests {
		if got := RecordedInstance(tt.old, tt.instance); got != tt.want {
			t.Errorf("RecordedInstance(%q, %q) = %q, want %q", tt.old, tt.instance, got, tt.want)
		}
	}
}

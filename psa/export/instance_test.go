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

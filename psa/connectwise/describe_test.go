package connectwise_test

import (
	"strings"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/connectwise"
)

// The backend satisfies psa.Describer, which psa-syncd check uses.
var _ psa.Describer = (*connectwise.Backend)(nil)

func TestBackend_Describe(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, s, sl := newBackend(t)
	base := s.ConnectWiseBaseURL()
	tests := []struct {
		name string
		opts []connectwise.Option
		want string
	}{
		{"discovered", nil, "codebase v4_6_release/ discovered through /login/companyinfo at site 127.0.0.1"},
		{"codebase pinned", []connectwise.Option{connectwise.WithCodebase("v4_6_release/")}, "codebase v4_6_release/ (pinned by configuration); API root " + base},
		{"base URL pinned", []connectwise.Option{connectwise.WithBaseURL(base)}, "API root " + base + " (pinned by base_url)"},
	}
	for _, tt := range tests {
		b := connectwise.NewBackend(newClient(t, s, sl, tt.opts...))
		got, err := b.Describe(ctx)
		if err != nil {
			t.Fatalf("%s: Describe: %v", tt.name, err)
		}
		if !strings.Contains(got, tt.want) {
			t.Errorf("%s: Describe = %q, want it to contain %q", tt.name, got, tt.want)
		}
	}
}

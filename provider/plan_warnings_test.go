package provider

import (
	"context"
	"fmt"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
)

// planWarnings records the warnings of the provider's answers to
// PlanResourceChange, for acceptance tests that run the Terraform CLI:
// terraform-plugin-testing (v1.16.0) hands its plan checks the plan's
// JSON, which holds no diagnostics, so a plan warning is otherwise
// invisible to a test. Its factories serve the provider as
// testAccProtoV6ProviderFactories does, with the warnings recorded on the
// way to Terraform. Safe for concurrent use: Terraform plans resources in
// parallel.
type planWarnings struct {
	// provider, when set, makes the provider served instead of New's.
	provider func() provider.Provider

	mu       sync.Mutex
	warnings []planWarning
}

// planWarning is one warning of a PlanResourceChange answer; attribute is
// its tftypes.AttributePath's String, "" for none.
type planWarning struct {
	typeName, attribute, summary, detail string
}

func (w planWarning) String() string {
	return fmt.Sprintf("%s %s: %s: %s", w.typeName, w.attribute, w.summary, w.detail)
}

// factories returns the provider factories that record into w.
func (w *planWarnings) factories() map[string]func() (tfprotov6.ProviderServer, error) {
	return map[string]func() (tfprotov6.ProviderServer, error){
		"psa": func() (tfprotov6.ProviderServer, error) {
			p := New("test")()
			if w.provider != nil {
				p = w.provider()
			}
			return warningRecorder{NewProtocol6(p)(), w}, nil
		},
	}
}

// take returns the warnings recorded since the last take, with the given
// summary, and forgets every warning recorded so far.
func (w *planWarnings) take(summary string) []planWarning {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []planWarning
	for _, d := range w.warnings {
		if d.summary == summary {
			out = append(out, d)
		}
	}
	w.warnings = nil
	return out
}

// warningRecorder is a provider server whose PlanResourceChange answers'
// warnings are recorded in w.
type warningRecorder struct {
	tfprotov6.ProviderServer
	w *planWarnings
}

func (s warningRecorder) PlanResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) (*tfprotov6.PlanResourceChangeResponse, error) {
	resp, err := s.ProviderServer.PlanResourceChange(ctx, req)
	if resp != nil {
		s.w.mu.Lock()
		for _, d := range resp.Diagnostics {
			if d.Severity != tfprotov6.DiagnosticSeverityWarning {
				continue
			}
			at := ""
			if d.Attribute != nil {
				at = d.Attribute.String()
			}
			s.w.warnings = append(s.w.warnings, planWarning{req.TypeName, at, d.Summary, d.Detail})
		}
		s.w.mu.Unlock()
	}
	return resp, err
}

package provider

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TestHeldHint: a name held by a service another resource may rename in
// the same plan says to apply that rename first; the import and
// moved-block advice is given for a create only, since a resource in the
// state (a rename, a swap) manages a service already.
func TestHeldHint(t *testing.T) {
	t.Parallel()
	name := &psa.ValidationError{Field: "name", Holder: "42"}
	create := heldHint(name, "")
	for _, want := range []string{"renames service 42 away from this name", "-target=<that resource's address>", "terraform import <this resource's address> 42", "moved block"} {
		if !strings.Contains(create, want) {
			t.Errorf("heldHint for a create = %q, want it to say %q", create, want)
		}
	}
	rename := heldHint(name, "7")
	for _, want := range []string{"(the two swap names)", "through a temporary name", "then service 42 to its new name"} {
		if !strings.Contains(rename, want) {
			t.Errorf("heldHint for a rename = %q, want it to say %q", rename, want)
		}
	}
	for _, wrong := range []string{"import", "moved block"} {
		if strings.Contains(rename, wrong) {
			t.Errorf("heldHint for a rename = %q, want no %q: the resource manages a service already", rename, wrong)
		}
	}
	if got := heldHint(&psa.ValidationError{Field: "identifier", Holder: "42"}, ""); got != importHint("42") {
		t.Errorf("heldHint for a product id = %q, want the import hint", got)
	}
	if got := heldHint(&psa.ValidationError{Field: "name"}, ""); got != "" {
		t.Errorf("heldHint without a holder = %q, want none", got)
	}
}

// lineLister is a Backend whose ServiceLines answers lines, total and err;
// its other methods are not called.
type lineLister struct {
	psa.Backend
	lines []psa.ServiceLine
	total int
	err   error
}

func (l *lineLister) ServiceLines(context.Context, string) ([]psa.ServiceLine, int, error) {
	return l.lines, l.total, l.err
}

// TestCheckServiceUnused: a destroy with deletion_policy = "delete" of a
// service on contract lines fails the plan, naming each contract once and
// counting the lines beyond those read; a read that fails only warns,
// unless the PSA refuses the credentials; a service on no line passes.
func TestCheckServiceUnused(t *testing.T) {
	t.Parallel()
	acme := psa.ServiceLine{ContractID: "5", ContractName: "Acme Managed", CompanyName: "Acme"}
	for _, tc := range []struct {
		name           string
		lister         lineLister
		errors, warned bool
		want           string
	}{
		{"unused", lineLister{}, false, false, ""},
		{"in use", lineLister{lines: []psa.ServiceLine{acme, acme}, total: 30}, true, false,
			`while contract service lines use it, and 30 do (contract 5 "Acme Managed" of "Acme" and 28 more)`},
		{"counted only", lineLister{total: 2}, true, false, "and 2 do (none named in its answer)"},
		{"read fails", lineLister{err: errors.New("kaseyabms: 500 Internal Server Error")}, false, true, "500 Internal Server Error"},
		{"credentials refused", lineLister{err: fmt.Errorf("kaseyabms: %w", psa.ErrUnauthorized)}, true, false, "Unable to Verify PSA Service Is Unused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := &serviceResource{data: &providerData{backend: &tc.lister, system: psa.SystemKaseyaBMS}}
			var diags diag.Diagnostics
			r.checkServiceUnused(t.Context(), &diags, "3001", false)
			if diags.HasError() != tc.errors || (diags.WarningsCount() > 0) != tc.warned {
				t.Fatalf("diagnostics = %v, want errors %v, warnings %v", diags, tc.errors, tc.warned)
			}
			if tc.want == "" {
				return
			}
			text := diags[0].Summary() + ": " + diags[0].Detail()
			if !strings.Contains(text, tc.want) {
				t.Errorf("diagnostic = %q, want it to say %q", text, tc.want)
			}
		})
	}
}

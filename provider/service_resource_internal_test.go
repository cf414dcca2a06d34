package provider

import (
	"strings"
	"testing"

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

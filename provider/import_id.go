package provider

import (
	"fmt"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"
)

// importIDSeparator separates the parts of a composite import identifier.
// Key parts other than the last may not contain it (see keyPart).
const importIDSeparator = "/"

// importIDFormat describes a composite import identifier such as
// "<source>/<product>". The last part may itself contain the separator, so
// vendor ids with slashes still import.
type importIDFormat struct {
	parts   []string
	example string
}

// Import identifier formats of the mapping resources. Their ids in the state
// use the same format, so `terraform import` takes what `terraform state show`
// prints.
var (
	productMappingImportID  = importIDFormat{parts: []string{"source", "product"}, example: "sophos/CIXA-MSP"}
	customerMappingImportID = importIDFormat{parts: []string{"source", "customer_id"}, example: "sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab"}
)

// String returns the format, e.g. "<source>/<product>".
func (f importIDFormat) String() string {
	parts := make([]string, len(f.parts))
	for i, p := range f.parts {
		parts[i] = "<" + p + ">"
	}
	return strings.Join(parts, importIDSeparator)
}

// format joins values into an identifier of this format.
func (f importIDFormat) format(values ...string) string {
	return strings.Join(values, importIDSeparator)
}

// parse splits id into one value per part. Every part must be non-empty.
func (f importIDFormat) parse(id string) ([]string, error) {
	values := strings.SplitN(id, importIDSeparator, len(f.parts))
	if len(values) != len(f.parts) {
		return nil, fmt.Errorf("import identifier %q has %d part(s), want %d: %s", id, len(values), len(f.parts), f)
	}
	for i, v := range values {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("import identifier %q has an empty %s, want %s", id, f.parts[i], f)
		}
	}
	return values, nil
}

// parseOrDiagnose parses id and adds the "Unexpected Import Identifier" error
// when it does not match.
func (f importIDFormat) parseOrDiagnose(id string, diags *diag.Diagnostics) ([]string, bool) {
	values, err := f.parse(id)
	if err != nil {
		diags.AddError(summaryUnexpectedImportID, fmt.Sprintf(detailUnexpectedImportID, f, f.example, id))
		return nil, false
	}
	return values, true
}

package provider

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/terraform-plugin-framework/diag"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
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

// exportForImport reads the export that an import of resourceType takes
// its entry from, and adds an error when the store is not configured, cannot
// be read or holds no export. summary is the import's "Cannot Import ..."
// summary and entry names what was to be imported.
//
// The imports check the export themselves because Read, finding nothing,
// only removes the resource, and Terraform then answers with its generic
// "Cannot import non-existent remote object", which names neither the key
// nor the store that was searched.
func (d *providerData) exportForImport(ctx context.Context, diags *diag.Diagnostics, resourceType, summary, entry string) (*export.Document, bool) {
	if !d.requireStore(diags, resourceType) {
		return nil, false
	}
	doc, found, err := d.readExport(ctx)
	switch {
	case err != nil:
		exportReadError(diags, d.exportPath, err)
		return nil, false
	case !found:
		diags.AddError(summary, fmt.Sprintf(detailImportNoExport, entry, d.exportPath, entry))
		return nil, false
	}
	return doc, true
}

// notInExportDetail explains an import of the mapping key id (e.g.
// "sophos/CIXA-MSP") that the export at store does not hold.
// kind names the mappings ("product mapping"); keys are the keys of the
// export's mappings of that kind. The detail counts the mappings of the
// same source and names the keys closest to id, since a case or spelling
// slip is the usual cause.
func notInExportDetail(kind, id, store string, keys []string) string {
	source, _, _ := strings.Cut(id, importIDSeparator)
	var b strings.Builder
	fmt.Fprintf(&b, "The %s %s is not in the mapping export %q, so there is nothing to import. ", kind, id, store)
	n := 0
	for _, k := range keys {
		if s, _, _ := strings.Cut(k, importIDSeparator); s == source {
			n++
		}
	}
	switch n {
	case 0:
		fmt.Fprintf(&b, "The export holds no %s of source %q", kind, source)
	case 1:
		fmt.Fprintf(&b, "The export holds 1 %s of source %q", kind, source)
	default:
		fmt.Fprintf(&b, "The export holds %d %ss of source %q", n, kind, source)
	}
	if c := closestKeys(id, keys, 3); len(c) > 0 {
		fmt.Fprintf(&b, " (closest: %s)", strings.Join(c, ", "))
	}
	fmt.Fprintf(&b, ". Check the spelling and case of the identifier. To create the %s instead, drop the import "+
		"(the import block or the terraform import command) and apply.", kind)
	return b.String()
}

// closestKeys returns up to maxKeys keys near id: those equal to it but for
// case first, then those within a few edits, nearest first.
func closestKeys(id string, keys []string, maxKeys int) []string {
	type near struct {
		key  string
		dist int
	}
	limit := max(2, len(id)/4)
	var found []near
	for _, k := range keys {
		switch d := editDistance(strings.ToLower(id), strings.ToLower(k)); {
		case k == id:
		case d == 0:
			found = append(found, near{k, -1})
		case d <= limit:
			found = append(found, near{k, d})
		}
	}
	slices.SortStableFunc(found, func(a, b near) int { return cmp.Or(cmp.Compare(a.dist, b.dist), strings.Compare(a.key, b.key)) })
	var out []string
	for _, f := range found[:min(len(found), maxKeys)] {
		out = append(out, f.key)
	}
	return out
}

// editDistance is the Levenshtein distance of a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			sub := prev[j-1]
			if ra[i-1] != rb[j-1] {
				sub++
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, sub)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}

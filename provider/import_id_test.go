package provider

import (
	"slices"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/diag"
)

func TestImportIDFormat_parse(t *testing.T) {
	t.Parallel()

	tests := []struct {
		id      string
		want    []string
		wantErr bool
	}{
		{id: "sophos/CIXA-MSP", want: []string{"sophos", "CIXA-MSP"}},
		{id: "file/pwb/users", want: []string{"file", "pwb/users"}},
		{id: "sophos/718b6047-1a2b", want: []string{"sophos", "718b6047-1a2b"}},
		{id: "CIXA-MSP", wantErr: true},
		{id: "", wantErr: true},
		{id: "/CIXA-MSP", wantErr: true},
		{id: "sophos/", wantErr: true},
		{id: " /x", wantErr: true},
	}
	for _, tt := range tests {
		got, err := productMappingImportID.parse(tt.id)
		if (err != nil) != tt.wantErr {
			t.Errorf("parse(%q) error = %v, wantErr %v", tt.id, err, tt.wantErr)
			continue
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("parse(%q) = %q, want %q", tt.id, got, tt.want)
		}
	}
}

func TestImportIDFormat_roundTrip(t *testing.T) {
	t.Parallel()

	id := customerMappingImportID.format("sophos", "718b6047")
	if id != "sophos/718b6047" {
		t.Fatalf("format = %q, want %q", id, "sophos/718b6047")
	}
	got, err := customerMappingImportID.parse(id)
	if err != nil || !slices.Equal(got, []string{"sophos", "718b6047"}) {
		t.Fatalf("parse(format(...)) = %q, %v", got, err)
	}
	if s := customerMappingImportID.String(); s != "<source>/<customer_id>" {
		t.Errorf("String() = %q, want %q", s, "<source>/<customer_id>")
	}
}

func TestImportIDFormat_parseOrDiagnose(t *testing.T) {
	t.Parallel()

	var diags diag.Diagnostics
	if _, ok := productMappingImportID.parseOrDiagnose("CIXA-MSP", &diags); ok {
		t.Fatal("parseOrDiagnose accepted an id without a source")
	}
	if len(diags) != 1 || diags[0].Summary() != summaryUnexpectedImportID {
		t.Fatalf("diagnostics = %v, want one %q", diags, summaryUnexpectedImportID)
	}
	want := `Expected an import identifier of the form <source>/<product>, for example "sophos/CIXA-MSP". Got: "CIXA-MSP"`
	if got := diags[0].Detail(); got != want {
		t.Errorf("detail = %q, want %q", got, want)
	}
}

func TestNotInExportDetail(t *testing.T) {
	t.Parallel()

	keys := []string{"sophos/CIXA-MSP", "sophos/CIXA-MSP2", "sophos/EDR-MSP", "file/pwb/users"}
	tests := []struct {
		id, want string
	}{
		{
			id: "sophos/cixa-msp",
			want: `The product mapping sophos/cixa-msp is not in the mapping export "/x/psa-mappings.json", so there is nothing to import. ` +
				`The export holds 3 product mappings of source "sophos" (closest: sophos/CIXA-MSP, sophos/CIXA-MSP2). ` +
				`Check the spelling and case of the identifier. To create the product mapping instead, drop the import ` +
				`(the import block or the terraform import command) and apply.`,
		},
		{
			id: "file/pwb/user",
			want: `The product mapping file/pwb/user is not in the mapping export "/x/psa-mappings.json", so there is nothing to import. ` +
				`The export holds 1 product mapping of source "file" (closest: file/pwb/users). ` +
				`Check the spelling and case of the identifier. To create the product mapping instead, drop the import ` +
				`(the import block or the terraform import command) and apply.`,
		},
		{
			id: "vendor/XDR-SERVER",
			want: `The product mapping vendor/XDR-SERVER is not in the mapping export "/x/psa-mappings.json", so there is nothing to import. ` +
				`The export holds no product mapping of source "vendor". ` +
				`Check the spelling and case of the identifier. To create the product mapping instead, drop the import ` +
				`(the import block or the terraform import command) and apply.`,
		},
	}
	for _, tt := range tests {
		if got := notInExportDetail("product mapping", tt.id, "/x/psa-mappings.json", keys); got != tt.want {
			t.Errorf("notInExportDetail(%q) =\n%s\nwant\n%s", tt.id, got, tt.want)
		}
	}
}

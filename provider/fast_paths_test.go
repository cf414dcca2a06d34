package provider

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// TestFastPaths sends the same calls to the provider's server and to the
// framework's own, each with a provider of its own configured against the
// same simulator and export, and requires the same responses: byte for
// byte, diagnostics included. Each call also says whether the fast path
// answers it, so that a change that sends every call to the framework
// fails too.
func TestFastPaths(t *testing.T) {
	t.Parallel()
	for _, system := range systemBlocks {
		t.Run(string(system), func(t *testing.T) {
			t.Parallel()
			testFastPaths(t, system)
		})
	}
}

func testFastPaths(t *testing.T, system psa.System) {
	ctx := t.Context()
	e := newTestEnv(t, system)
	fix := e.addCustomerFixture("Fast Company")
	service := e.addService("Fast Service", 5)
	inactive := e.addService("Fast Inactive", 5)
	e.setServiceActive(inactive, false)
	const missingService = "999999"
	e.updateExport(t, func(doc *export.Document) error {
		doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "P1", ServiceID: service, ServiceName: "Fast Service", SyncEnabled: true})
		doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "DRIFT", ServiceID: service, ServiceName: "Renamed In The Export", SyncEnabled: true})
		doc.PutCustomer(export.CustomerMapping{Source: "sophos", CustomerID: "C1", CompanyID: fix.company, ContractID: fix.contract, UsageSync: true})
		return nil
	})

	p := New("test")()
	fast, ok := NewProtocol6(p)().(releasingServer)
	if !ok {
		t.Fatal("NewProtocol6 does not serve a releasingServer")
	}
	framework := providerserver.NewProtocol6(New("test")())()
	types := configureForTest(t, e, fast, framework)
	productType, customerType, serviceType := types["psa_product_mapping"], types["psa_customer_mapping"], types["psa_service"]

	// product is a psa_product_mapping of service's as Read leaves it.
	productState := func(product, serviceID, name string, changes map[string]tftypes.Value) tftypes.Value {
		return objectValue(productType, with(map[string]tftypes.Value{
			"id": str("sophos/" + product), "source": str("sophos"), "product": str(product),
			"service_id": str(serviceID), "service_name": str(name), "sync_enabled": tftypes.NewValue(tftypes.Bool, true),
		}, changes))
	}
	// productConfig is its configuration, with the defaults left out.
	productConfig := func(product, serviceID string, changes map[string]tftypes.Value) tftypes.Value {
		return objectValue(productType, with(map[string]tftypes.Value{"product": str(product), "service_id": str(serviceID)}, changes))
	}
	customerState := func(changes map[string]tftypes.Value) tftypes.Value {
		return objectValue(customerType, with(map[string]tftypes.Value{
			"id": str("sophos/C1"), "source": str("sophos"), "customer_id": str("C1"), "customer_name": str(""),
			"company_id": str(fix.company), "contract_id": str(fix.contract),
			"usage_sync": tftypes.NewValue(tftypes.Bool, true), "ticket_sync": tftypes.NewValue(tftypes.Bool, false),
		}, changes))
	}
	customerConfig := func(changes map[string]tftypes.Value) tftypes.Value {
		return objectValue(customerType, with(map[string]tftypes.Value{
			"customer_id": str("C1"), "company_id": str(fix.company), "contract_id": str(fix.contract),
		}, changes))
	}
	exportKey := privateJSON(map[string]string{"export_key": `"sophos/P1"`})
	unknown := tftypes.NewValue(tftypes.String, tftypes.UnknownValue)
	null := tftypes.NewValue(tftypes.String, nil)

	p1 := productState("P1", service, "Fast Service", nil)
	plans := []planCase{
		{"refresh", productType, productConfig("P1", service, nil), p1, p1, nil, true},
		{"refresh with private data", productType, productConfig("P1", service, nil), p1, p1, exportKey, true},
		{"refresh with an explicit default", productType, productConfig("P1", service, map[string]tftypes.Value{"source": str("sophos")}), p1, p1, nil, true},
		{"service renamed in the PSA", productType, productConfig("P1", service, nil),
			productState("P1", service, "Old Name", nil), productState("P1", service, "Old Name", nil), nil, true},
		{"prior source is not the default", productType, productConfig("P1", service, nil),
			productState("P1", service, "Fast Service", map[string]tftypes.Value{"source": str("other")}),
			productState("P1", service, "Fast Service", map[string]tftypes.Value{"source": str("other")}), nil, false},
		{"service changed", productType, productConfig("P1", inactive, nil), p1,
			productState("P1", inactive, "Fast Service", nil), nil, false},
		{"unknown service", productType, productConfig("P1", "", map[string]tftypes.Value{"service_id": unknown}), p1,
			productState("P1", "", "Fast Service", map[string]tftypes.Value{"service_id": unknown}), nil, false},
		{"inactive service", productType, productConfig("P2", inactive, nil),
			productState("P2", inactive, "Fast Inactive", nil), productState("P2", inactive, "Fast Inactive", nil), nil, false},
		{"missing service", productType, productConfig("P3", missingService, nil),
			productState("P3", missingService, "Gone", nil), productState("P3", missingService, "Gone", nil), nil, false},
		{"second usage source on the service", productType, productConfig("P4", service, map[string]tftypes.Value{"source": str("other")}),
			productState("P4", service, "Fast Service", map[string]tftypes.Value{"source": str("other"), "id": str("other/P4")}),
			productState("P4", service, "Fast Service", map[string]tftypes.Value{"source": str("other"), "id": str("other/P4")}), nil, false},
		{"create", productType, productConfig("P5", service, nil), nullValue(productType),
			productState("P5", service, "", map[string]tftypes.Value{"id": unknown, "service_name": unknown}), nil, false},
		{"destroy", productType, nullValue(productType), p1, nullValue(productType), nil, false},
		{"framework's private key", productType, productConfig("P1", service, nil), p1, p1,
			privateJSON(map[string]string{".import_before_read": `true`}), false},
		{"private data not JSON", productType, productConfig("P1", service, nil), p1, p1, []byte("{"), false},
		{"customer refresh", customerType, customerConfig(nil), customerState(nil), customerState(nil), nil, true},
		{"customer refresh, defaults in the configuration", customerType,
			customerConfig(map[string]tftypes.Value{"usage_sync": tftypes.NewValue(tftypes.Bool, true), "customer_name": str("")}),
			customerState(nil), customerState(nil), nil, true},
		{"customer ticket_sync left to its default", customerType, customerConfig(nil),
			customerState(map[string]tftypes.Value{"ticket_sync": tftypes.NewValue(tftypes.Bool, true)}),
			customerState(map[string]tftypes.Value{"ticket_sync": tftypes.NewValue(tftypes.Bool, true)}), nil, false},
		{"customer contract changed", customerType, customerConfig(map[string]tftypes.Value{"contract_id": str(fix.otherContract)}),
			customerState(nil), customerState(map[string]tftypes.Value{"contract_id": str(fix.otherContract)}), nil, false},
		{"second customer on the contract", customerType,
			customerConfig(map[string]tftypes.Value{"customer_id": str("C2")}),
			customerState(map[string]tftypes.Value{"customer_id": str("C2"), "id": str("sophos/C2")}),
			customerState(map[string]tftypes.Value{"customer_id": str("C2"), "id": str("sophos/C2")}), nil, false},
		{"customer name null in the prior state", customerType, customerConfig(nil),
			customerState(map[string]tftypes.Value{"customer_name": null}), customerState(map[string]tftypes.Value{"customer_name": null}), nil, false},
	}
	// psa_service as the last read left it, and its configuration.
	serviceState := readServiceState(t, framework, serviceType, service)
	serviceWith := func(v tftypes.Value, changes map[string]tftypes.Value) tftypes.Value {
		var attrs map[string]tftypes.Value
		if err := v.As(&attrs); err != nil {
			t.Fatal(err)
		}
		return tftypes.NewValue(serviceType, with(attrs, changes))
	}
	serviceConfig := objectValue(serviceType, map[string]tftypes.Value{
		"name": str("Fast Service"), "unit_price": tftypes.NewValue(tftypes.Number, 5),
	})
	blockType := func(name string) tftypes.Type {
		return serviceType.(tftypes.Object).AttributeTypes[name] //nolint:forcetypeassert // a schema's type is an object
	}
	other := psa.SystemConnectWise
	if system == psa.SystemConnectWise {
		other = psa.SystemAutotask
	}
	otherBlock := objectValue(blockType(string(other)), nil)
	plans = append(plans, []planCase{
		{"psa_service refresh", serviceType, serviceConfig, serviceState, serviceState, nil, true},
		{"psa_service refresh with private data", serviceType, serviceConfig, serviceState, serviceState, exportKey, true},
		{"psa_service renamed", serviceType, serviceWith(serviceConfig, map[string]tftypes.Value{"name": str("New Name")}),
			serviceState, serviceWith(serviceState, map[string]tftypes.Value{"name": str("New Name")}), nil, false},
		{"psa_service deletion policy not the default", serviceType, serviceConfig,
			serviceWith(serviceState, map[string]tftypes.Value{"deletion_policy": str("abandon")}),
			serviceWith(serviceState, map[string]tftypes.Value{"deletion_policy": str("abandon")}), nil, false},
		{"psa_service with another PSA's block", serviceType,
			serviceWith(serviceConfig, map[string]tftypes.Value{string(other): otherBlock}),
			serviceWith(serviceState, map[string]tftypes.Value{string(other): otherBlock}),
			serviceWith(serviceState, map[string]tftypes.Value{string(other): otherBlock}), nil, false},
		{"psa_service destroy", serviceType, nullValue(serviceType), serviceState, nullValue(serviceType), nil, false},
	}...)
	if system == psa.SystemKaseyaBMS { // the block with defaults
		block := func(category string) tftypes.Value {
			return objectValue(blockType("kaseya_bms"), map[string]tftypes.Value{
				"category": str(category), "subcategory": str(""), "unit_of_measure": str(""), "taxable": tftypes.NewValue(tftypes.Bool, false),
			})
		}
		config := serviceWith(serviceConfig, map[string]tftypes.Value{"kaseya_bms": objectValue(blockType("kaseya_bms"), nil)})
		for _, c := range []struct {
			category string
			fast     bool
		}{{"", true}, {"Hardware", false}} {
			state := serviceWith(serviceState, map[string]tftypes.Value{"kaseya_bms": block(c.category)})
			plans = append(plans, planCase{"psa_service block defaults, category " + strconv.Quote(c.category), serviceType, config, state, state, nil, c.fast})
		}
	}
	for _, c := range plans {
		req := &tfprotov6.PlanResourceChangeRequest{
			TypeName: typeName(types, c.typ), Config: dynamic(t, c.typ, c.config), PriorState: dynamic(t, c.typ, c.prior),
			ProposedNewState: dynamic(t, c.typ, c.proposed), PriorPrivate: c.private,
		}
		want, _ := framework.PlanResourceChange(ctx, req)
		got, _ := fast.PlanResourceChange(ctx, req)
		requireSame(t, "PlanResourceChange: "+c.name, got, want)
		if took := fast.fast.planResourceChange(ctx, req) != nil; took != c.fast {
			t.Errorf("PlanResourceChange: %s: fast path taken = %v, want %v", c.name, took, c.fast)
		}
	}

	reads := []struct {
		name    string
		typ     tftypes.Type
		state   tftypes.Value
		private []byte
		fast    bool
	}{
		{"unchanged", productType, p1, nil, true},
		{"with private data", productType, p1, exportKey, true},
		{"drift", productType, productState("DRIFT", service, "Fast Service", nil), nil, true},
		{"removed from the export", productType, productState("GONE", service, "Fast Service", nil), nil, true},
		{"customer", customerType, customerState(nil), nil, true},
		{"customer drift", customerType, customerState(map[string]tftypes.Value{"ticket_sync": tftypes.NewValue(tftypes.Bool, true)}), nil, true},
		{"after import", productType, objectValue(productType, map[string]tftypes.Value{"id": str("sophos/P1"), "source": str("sophos"), "product": str("P1")}),
			privateJSON(map[string]string{".import_before_read": `true`}), false},
		{"null state", productType, nullValue(productType), nil, false},
		{"psa_service", serviceType, objectValue(serviceType, map[string]tftypes.Value{"id": str(service), "name": str("Old Name")}), nil, true},
		{"psa_service as the last read left it", serviceType, readServiceState(t, framework, serviceType, service), nil, true},
		{"psa_service deleted in the PSA", serviceType, objectValue(serviceType, map[string]tftypes.Value{"id": str(missingService)}), nil, true},
		{"psa_service null state", serviceType, nullValue(serviceType), nil, false},
	}
	for _, c := range reads {
		req := &tfprotov6.ReadResourceRequest{TypeName: typeName(types, c.typ), CurrentState: dynamic(t, c.typ, c.state), Private: c.private}
		want, _ := framework.ReadResource(ctx, req)
		got, _ := fast.ReadResource(ctx, req)
		requireSame(t, "ReadResource: "+c.name, got, want)
		if took := fast.fast.readResource(ctx, req) != nil; took != c.fast {
			t.Errorf("ReadResource: %s: fast path taken = %v, want %v", c.name, took, c.fast)
		}
	}

	validations := []struct {
		name   string
		typ    tftypes.Type
		config tftypes.Value
		fast   bool
	}{
		{"product mapping", productType, productConfig("P1", service, nil), true},
		{"service created in the same apply", productType, productConfig("P1", "", map[string]tftypes.Value{"service_id": unknown}), true},
		{"every attribute set", productType, productConfig("P1", service, map[string]tftypes.Value{
			"source": str("other"), "sync_enabled": tftypes.NewValue(tftypes.Bool, false)}), true},
		{"source with the separator", productType, productConfig("P1", service, map[string]tftypes.Value{"source": str("a/b")}), false},
		{"blank product", productType, productConfig(" ", service, nil), false},
		{"product missing", productType, productConfig("", service, map[string]tftypes.Value{"product": null}), false},
		{"computed id set", productType, productConfig("P1", service, map[string]tftypes.Value{"id": str("x")}), false},
		{"unknown configuration", productType, tftypes.NewValue(productType, tftypes.UnknownValue), false},
		{"customer mapping", customerType, customerConfig(nil), true},
		{"blank contract", customerType, customerConfig(map[string]tftypes.Value{"contract_id": str("")}), false},
		{"psa_service", serviceType, objectValue(serviceType, map[string]tftypes.Value{"name": str("S")}), false},
	}
	for _, c := range validations {
		req := &tfprotov6.ValidateResourceConfigRequest{TypeName: typeName(types, c.typ), Config: dynamic(t, c.typ, c.config)}
		want, _ := framework.ValidateResourceConfig(ctx, req)
		got, _ := fast.ValidateResourceConfig(ctx, req)
		requireSame(t, "ValidateResourceConfig: "+c.name, got, want)
		if took := fast.fast.validateResourceConfig(ctx, req) != nil; took != c.fast {
			t.Errorf("ValidateResourceConfig: %s: fast path taken = %v, want %v", c.name, took, c.fast)
		}
	}

	upgrades := []struct {
		name     string
		typeName string
		version  int64
		json     string
		fast     bool
	}{
		{"product mapping", "psa_product_mapping", 0, `{"id":"sophos/P1","source":"sophos","product":"P1","service_id":"1","service_name":"S","sync_enabled":true}`, true},
		{"attribute no longer in the schema", "psa_product_mapping", 0, `{"id":"sophos/P1","source":"sophos","product":"P1","old":1}`, true},
		{"customer mapping", "psa_customer_mapping", 0, `{"id":"sophos/C1","customer_id":"C1","usage_sync":false}`, true},
		{"psa_service", "psa_service", 0, `{"id":"5","name":"S"}`, true},
		{"other version", "psa_product_mapping", 7, `{"id":"sophos/P1"}`, false},
		{"number for a string", "psa_product_mapping", 0, `{"id":5}`, true},
		// The states stateFromJSON decodes, and those it leaves to
		// tftypes, whose answer the fast path then encodes.
		{"psa_service with blocks and numbers", "psa_service", 0, `{"id":"5","name":"S \u00e9\n\"x\"","unit_price":5.25,"unit_cost":1e2,` +
			`"active":true,"autotask":{"billing_code_id":"29682801","period_type":null},"connectwise":null,"deletion_policy":"deactivate"}`, true},
		{"a precise number", "psa_service", 0, `{"id":"5","unit_price":0.1000000000000000055511151231257827021181583404541015625,"unit_cost":-123456789012345678901234567890}`, true},
		{"a number as a string", "psa_service", 0, `{"id":"5","unit_price":"5.5"}`, true},
		{"a bool for a string", "psa_product_mapping", 0, `{"id":true}`, true},
		{"a bool as a string", "psa_product_mapping", 0, `{"id":"sophos/P1","sync_enabled":"1"}`, true},
		{"a repeated attribute", "psa_product_mapping", 0, `{"id":"a","id":"b"}`, true},
		{"spaces", "psa_product_mapping", 0, " {\n \"id\" : \"sophos/P1\" , \"sync_enabled\" : false }\n", true},
		{"null state", "psa_product_mapping", 0, `null`, true},
		{"a string for a block", "psa_service", 0, `{"id":"5","autotask":"x"}`, false},
		{"a list for a string", "psa_product_mapping", 0, `{"id":["x"]}`, false},
		{"text after the state", "psa_product_mapping", 0, `{"id":"sophos/P1"} {"id":"x"}`, true},
		{"wrong type", "psa_product_mapping", 0, `{"sync_enabled":"maybe"}`, false},
		{"not JSON", "psa_product_mapping", 0, `{`, false},
		{"unknown type", "psa_nothing", 0, `{}`, false},
	}
	for _, c := range upgrades {
		req := &tfprotov6.UpgradeResourceStateRequest{TypeName: c.typeName, Version: c.version, RawState: &tfprotov6.RawState{JSON: []byte(c.json)}}
		want, _ := framework.UpgradeResourceState(ctx, req)
		got, _ := fast.UpgradeResourceState(ctx, req)
		requireSame(t, "UpgradeResourceState: "+c.name, got, want)
		if took := fast.fast.upgradeResourceState(ctx, req) != nil; took != c.fast {
			t.Errorf("UpgradeResourceState: %s: fast path taken = %v, want %v", c.name, took, c.fast)
		}
	}
}

// planCase is a PlanResourceChange of TestFastPaths, and whether the fast
// path answers it.
type planCase struct {
	name                    string
	typ                     tftypes.Type
	config, prior, proposed tftypes.Value
	private                 []byte
	fast                    bool
}

// configureForTest configures both servers with e's provider configuration
// and returns the resources' types by type name.
func configureForTest(t testing.TB, e *testEnv, servers ...tfprotov6.ProviderServer) map[string]tftypes.Type {
	t.Helper()
	var types map[string]tftypes.Type
	for _, s := range servers {
		schemas, err := s.GetProviderSchema(t.Context(), &tfprotov6.GetProviderSchemaRequest{})
		if err != nil || len(schemas.Diagnostics) > 0 {
			t.Fatalf("GetProviderSchema: %v %v", err, schemas.Diagnostics)
		}
		types = map[string]tftypes.Type{}
		for name, r := range schemas.ResourceSchemas {
			types[name] = r.ValueType()
		}
		config := providerConfigValue(t, schemas.Provider.ValueType(), e)
		resp, err := s.ConfigureProvider(t.Context(), &tfprotov6.ConfigureProviderRequest{TerraformVersion: "1.5.7", Config: dynamic(t, schemas.Provider.ValueType(), config)})
		if err != nil || len(resp.Diagnostics) > 0 {
			t.Fatalf("ConfigureProvider: %v %v", err, diagnosticsText(resp.Diagnostics))
		}
	}
	return types
}

// providerConfigValue is e's provider configuration (export_path and the
// PSA block of psaBlock) as a value of the provider schema's type.
func providerConfigValue(t testing.TB, typ tftypes.Type, e *testEnv) tftypes.Value {
	t.Helper()
	attrs := map[string]tftypes.Value{"export_path": str(e.exportPath)}
	block, values := "", map[string]tftypes.Value{}
	for _, line := range strings.Split(e.psaBlock(), "\n") {
		name, value, isAttr := strings.Cut(line, "=")
		switch {
		case strings.HasSuffix(line, "{"):
			block = strings.Fields(line)[0]
		case isAttr:
			v, err := strconv.Unquote(strings.TrimSpace(value))
			if err != nil {
				t.Fatalf("psaBlock line %q: %v", line, err)
			}
			values[strings.TrimSpace(name)] = str(v)
		}
	}
	obj := typ.(tftypes.Object) //nolint:forcetypeassert // a schema's type is an object
	attrs[block] = objectValue(obj.AttributeTypes[block], values)
	return objectValue(typ, attrs)
}

// objectValue is an object of type typ with the given attributes and the
// others null.
func objectValue(typ tftypes.Type, attrs map[string]tftypes.Value) tftypes.Value {
	obj := typ.(tftypes.Object) //nolint:forcetypeassert // only objects are built
	vals := map[string]tftypes.Value{}
	for name, at := range obj.AttributeTypes {
		if v, ok := attrs[name]; ok {
			vals[name] = v
		} else {
			vals[name] = tftypes.NewValue(at, nil)
		}
	}
	return tftypes.NewValue(typ, vals)
}

func nullValue(typ tftypes.Type) tftypes.Value { return tftypes.NewValue(typ, nil) }

func str(s string) tftypes.Value { return tftypes.NewValue(tftypes.String, s) }

// with is base with changes applied.
func with(base, changes map[string]tftypes.Value) map[string]tftypes.Value {
	out := map[string]tftypes.Value{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range changes {
		out[k] = v
	}
	return out
}

// privateJSON is private data as Terraform keeps it: JSON values by key,
// base64-encoded.
func privateJSON(values map[string]string) []byte {
	m := map[string]string{}
	for k, v := range values {
		m[k] = base64.StdEncoding.EncodeToString([]byte(v))
	}
	b, _ := json.Marshal(m)
	return b
}

func dynamic(t testing.TB, typ tftypes.Type, v tftypes.Value) *tfprotov6.DynamicValue {
	t.Helper()
	dv, err := tfprotov6.NewDynamicValue(typ, v)
	if err != nil {
		t.Fatalf("encoding %v: %v", v, err)
	}
	return &dv
}

func typeName(types map[string]tftypes.Type, typ tftypes.Type) string {
	for name, t := range types {
		if t.Equal(typ) {
			return name
		}
	}
	return ""
}

// requireSame fails t when got and want, responses of the provider's
// server, differ in anything but the order of their diagnostics, which the
// framework reports in the order of a map's iteration.
func requireSame(t *testing.T, what string, got, want any) {
	t.Helper()
	sortDiagnostics(got)
	sortDiagnostics(want)
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Errorf("%s: fast path's response differs from the framework's:\n got %s\nwant %s", what, g, w)
	}
}

func diagnosticsText(diags []*tfprotov6.Diagnostic) string {
	var b strings.Builder
	for _, d := range diags {
		b.WriteString(d.Summary + ": " + d.Detail + "\n")
	}
	return b.String()
}

// sortDiagnostics sorts the Diagnostics of the response resp points to.
func sortDiagnostics(resp any) {
	v := reflect.ValueOf(resp)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return
	}
	diags, ok := v.Elem().FieldByName("Diagnostics").Interface().([]*tfprotov6.Diagnostic)
	if !ok {
		return
	}
	key := func(d *tfprotov6.Diagnostic) string {
		k := fmt.Sprint(d.Severity, d.Summary, d.Detail)
		if d.Attribute != nil {
			k += d.Attribute.String()
		}
		return k
	}
	slices.SortFunc(diags, func(a, b *tfprotov6.Diagnostic) int { return strings.Compare(key(a), key(b)) })
}

// readServiceState is the state the server reads for the psa_service with
// the given id.
func readServiceState(t testing.TB, s tfprotov6.ProviderServer, typ tftypes.Type, id string) tftypes.Value {
	t.Helper()
	resp, err := s.ReadResource(t.Context(), &tfprotov6.ReadResourceRequest{
		TypeName: "psa_service", CurrentState: dynamic(t, typ, objectValue(typ, map[string]tftypes.Value{"id": str(id)})),
	})
	if err != nil || len(resp.Diagnostics) > 0 {
		t.Fatalf("reading psa_service %s: %v %s", id, err, diagnosticsText(resp.Diagnostics))
	}
	v, err := resp.NewState.Unmarshal(typ)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// BenchmarkRefreshCalls measures the four calls a refresh plan makes for
// one unchanged psa_product_mapping and one unchanged psa_service
// (UpgradeResourceState, ValidateResourceConfig, ReadResource,
// PlanResourceChange, as Terraform sends them), through the provider's
// server and through the framework's own, without gRPC. It prints
//
//	BENCH refresh-calls <server> cpu_us_per_resource=N wall_us_per_resource=N
//
// The processor time is the whole test process's, the simulator's
// included; the wall time includes the read cache's wait for the reads
// that arrive together (see readCache).
func BenchmarkRefreshCalls(b *testing.B) {
	e := &testEnv{system: psa.SystemAutotask, sim: psatest.NewServer(psatest.WithSystem(psa.SystemAutotask)),
		exportPath: filepath.Join(b.TempDir(), "psa-mappings.json")}
	defer e.sim.Close()
	service := e.addService("Bench Service", 5)
	if _, err := export.NewStore(e.exportPath).Update(e.system, "", func(doc *export.Document) error {
		doc.PutProduct(export.ProductMapping{Source: "sophos", Product: "P1", ServiceID: service, ServiceName: "Bench Service", SyncEnabled: true})
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	servers := map[string]tfprotov6.ProviderServer{
		"provider":  NewProtocol6(New("test")())(),
		"framework": providerserver.NewProtocol6(New("test")())(),
	}
	for _, name := range []string{"framework", "provider"} {
		s := servers[name]
		types := configureForTest(b, e, s)
		product := objectValue(types["psa_product_mapping"], map[string]tftypes.Value{
			"id": str("sophos/P1"), "source": str("sophos"), "product": str("P1"), "service_id": str(service),
			"service_name": str("Bench Service"), "sync_enabled": tftypes.NewValue(tftypes.Bool, true),
		})
		productConfig := objectValue(types["psa_product_mapping"], map[string]tftypes.Value{"product": str("P1"), "service_id": str(service)})
		serviceState := readServiceState(b, s, types["psa_service"], service)
		serviceConfig := objectValue(types["psa_service"], map[string]tftypes.Value{
			"name": str("Bench Service"), "unit_price": tftypes.NewValue(tftypes.Number, 5),
		})
		calls := []func(ctx context.Context) error{}
		for _, r := range []struct {
			typeName      string
			state, config tftypes.Value
		}{{"psa_product_mapping", product, productConfig}, {"psa_service", serviceState, serviceConfig}} {
			typ := types[r.typeName]
			stateJSON, err := tfprotov6.NewDynamicValue(typ, r.state)
			if err != nil {
				b.Fatal(err)
			}
			state, config := dynamic(b, typ, r.state), dynamic(b, typ, r.config)
			raw, err := stateJSON.Unmarshal(typ)
			if err != nil {
				b.Fatal(err)
			}
			rawJSON, err := json.Marshal(tftypesJSON(b, raw))
			if err != nil {
				b.Fatal(err)
			}
			tn := r.typeName
			calls = append(calls, func(ctx context.Context) error {
				if _, err := s.UpgradeResourceState(ctx, &tfprotov6.UpgradeResourceStateRequest{TypeName: tn, RawState: &tfprotov6.RawState{JSON: rawJSON}}); err != nil {
					return err
				}
				if _, err := s.ValidateResourceConfig(ctx, &tfprotov6.ValidateResourceConfigRequest{TypeName: tn, Config: config}); err != nil {
					return err
				}
				if _, err := s.ReadResource(ctx, &tfprotov6.ReadResourceRequest{TypeName: tn, CurrentState: state}); err != nil {
					return err
				}
				_, err := s.PlanResourceChange(ctx, &tfprotov6.PlanResourceChangeRequest{TypeName: tn, Config: config, PriorState: state, ProposedNewState: state})
				return err
			})
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			start := processCPU(b)
			for b.Loop() {
				for _, call := range calls {
					if err := call(b.Context()); err != nil {
						b.Fatal(err)
					}
				}
			}
			per := float64(b.N * len(calls))
			fmt.Printf("BENCH refresh-calls %s cpu_us_per_resource=%.0f wall_us_per_resource=%.0f\n",
				name, float64((processCPU(b)-start).Microseconds())/per, float64(b.Elapsed().Microseconds())/per)
		})
	}
}

// tftypesJSON is v, an object of primitive values and objects of them, as
// Terraform stores it in the state's JSON.
func tftypesJSON(tb testing.TB, v tftypes.Value) any {
	tb.Helper()
	if v.IsNull() {
		return nil
	}
	switch {
	case v.Type().Is(tftypes.String):
		var s string
		_ = v.As(&s)
		return s
	case v.Type().Is(tftypes.Bool):
		var x bool
		_ = v.As(&x)
		return x
	case v.Type().Is(tftypes.Number):
		var f big.Float
		_ = v.As(&f)
		x, _ := f.Float64()
		return x
	}
	var attrs map[string]tftypes.Value
	if err := v.As(&attrs); err != nil {
		tb.Fatalf("%v: %v", v, err)
	}
	out := map[string]any{}
	for k, a := range attrs {
		out[k] = tftypesJSON(tb, a)
	}
	return out
}

func TestSameFlat(t *testing.T) {
	obj := tftypes.Object{AttributeTypes: map[string]tftypes.Type{"s": tftypes.String, "n": tftypes.Number,
		"b": tftypes.Object{AttributeTypes: map[string]tftypes.Type{"x": tftypes.Bool}}}}
	value := func(s string, n float64, b tftypes.Value) tftypes.Value {
		return tftypes.NewValue(obj, map[string]tftypes.Value{"s": str(s), "n": tftypes.NewValue(tftypes.Number, n), "b": b})
	}
	block := func(x any) tftypes.Value {
		return tftypes.NewValue(tftypes.Object{AttributeTypes: map[string]tftypes.Type{"x": tftypes.Bool}}, map[string]tftypes.Value{"x": tftypes.NewValue(tftypes.Bool, x)})
	}
	nullBlock := tftypes.NewValue(tftypes.Object{AttributeTypes: map[string]tftypes.Type{"x": tftypes.Bool}}, nil)
	a := value("a", 5, block(true))
	for _, c := range []struct {
		name string
		b    tftypes.Value
		want bool
	}{
		{"the same", value("a", 5, block(true)), true},
		{"another string", value("b", 5, block(true)), false},
		{"another number", value("a", 5.5, block(true)), false},
		{"another bool in the block", value("a", 5, block(false)), false},
		{"a null bool in the block", value("a", 5, block(nil)), false},
		{"a null block", value("a", 5, nullBlock), false},
		{"unknown", value("a", 5, block(tftypes.UnknownValue)), false},
		{"null", tftypes.NewValue(obj, nil), false},
		{"another type", str("a"), false},
	} {
		if got := sameFlat(a, c.b); got != c.want {
			t.Errorf("sameFlat(%v, %s) = %v, want %v", a, c.name, got, c.want)
		}
	}
	if !sameFlat(value("a", 5, nullBlock), value("a", 5, nullBlock)) {
		t.Error("sameFlat of two equal values with a null block = false, want true")
	}
	if sameFlat(tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, []tftypes.Value{str("a")}), tftypes.NewValue(tftypes.List{ElementType: tftypes.String}, []tftypes.Value{str("a")})) {
		t.Error("sameFlat of two lists = true, want false: it does not look into lists")
	}
}

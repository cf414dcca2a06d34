package provider

import (
	"bytes"
	"context"
	"encoding/json"
	"math/big"
	"slices"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/path"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/resource"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource/schema/defaults"
	"github.com/hashicorp/terraform-plugin-framework/schema/validator"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-go/tfprotov6"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// A refresh plan of a thousand resources makes four calls per resource
// (UpgradeResourceState, ReadResource, ValidateResourceConfig,
// PlanResourceChange), and in terraform-plugin-framework v1.19.0 most of
// each call's CPU time is the framework walking the schema: converting
// values to and from tftypes attribute by attribute, finding each
// attribute by path in a map it rebuilds on every lookup, running the plan
// modifiers, marking computed values unknown, and logging contexts for
// every attribute, even with the logs off. For the calls of a refresh
// whose answer is known without that walk, fastPaths answers them itself
// from the same values, and hands every other call to the framework:
//
//   - UpgradeResourceState of a state stored with the current schema
//     version, for every resource: the framework decodes the JSON state
//     with the schema's type and encodes it again, and so does the fast
//     path, without the rest.
//   - ValidateResourceConfig of psa_product_mapping and
//     psa_customer_mapping: the attributes' validators, called as the
//     framework calls them, and the framework's checks of required and
//     computed attributes.
//   - ReadResource of those two and of psa_service: the resource's own
//     Read, with the state decoded once.
//   - PlanResourceChange of the three when nothing changes: the
//     configuration and the proposed state are known, the proposed state is
//     the prior state, and every attribute with a default that the
//     configuration leaves null already holds the default. The framework's
//     defaults, computed-unknown marking and attribute plan modifiers
//     (UseStateForUnknown, RequiresReplace) then leave the plan as it is,
//     and the fast path calls the resource's own ModifyPlan (or planChecks)
//     on it.
//
// Anything else goes to the framework: a create, a destroy, an import,
// unknown values, a change, private data the framework reserves, a
// diagnostic of any kind or a replacement asked for by the resource. Where
// the resource's code ran before a call fell back, it runs again in the
// framework: its effects (reads from the shared caches, claims of a
// contract or service by the same owner) give the same answer twice.
// TestFastPaths runs both paths on the same requests, with drift, nulls,
// unknowns, defaults, private data and errors, and requires the same
// responses.
type fastPaths struct {
	provider *psaProvider // nil for another provider: no fast paths

	once  sync.Once
	types map[string]*fastType // by resource type name
}

// fastType is what the fast paths know of one resource type.
type fastType struct {
	schema      schema.Schema
	typ         tftypes.Type
	newResource func() resource.Resource
	// fastReads is whether its reads take the fast path, fastPlans whether
	// its refresh plans and configuration checks do.
	fastReads, fastPlans bool
	// defaults are the attributes with a default.
	defaults []fastDefault
	// attributes are the attributes to validate, or nil when the schema
	// has checks the configuration's fast path does not make.
	attributes []fastAttribute
}

// fastAttribute is an attribute, as the configuration's fast path checks it.
type fastAttribute struct {
	name                   string
	required, computedOnly bool
	validators             []validator.String
}

// planner is a resource whose ModifyPlan is planChecks with the private
// data of the plan, which the fast path of plans passes.
type planner interface {
	planChecks(ctx context.Context, req resource.ModifyPlanRequest, resp *resource.ModifyPlanResponse, private privateData)
}

// fastReads are the resources whose reads take the fast path, by the
// suffix of their type name: their Read uses no private data (but that of
// an imported customer mapping, privateKeyUncheckedContract, whose reads
// take the framework's path until it is checked), and their
// schemas no custom types, whose semantic equality the framework would
// check after the read. The built-in Float64 has semantic equality too
// (a float64 equal to a more precise prior value keeps the prior value),
// which the fast path skips: psa_service's Read keeps the prior value
// itself (sameFloat).
var fastReads = []string{"_product_mapping", "_customer_mapping", "_service"}

// fastPlans are the resources whose refresh plans take the fast path, by
// the suffix of their type name, and their configuration checks when their
// schema has no blocks. Their schemas hold attributes of primitive types
// and single nested blocks of them whose plan modifiers change nothing when
// the plan is the prior state (UseStateForUnknown, RequiresReplace), and
// their ModifyPlan uses no private data unless they are planners.
var fastPlans = []string{"_product_mapping", "_customer_mapping", "_service"}

// load reads the provider's resource schemas, once.
func (f *fastPaths) load(ctx context.Context) {
	f.once.Do(func() {
		if f.provider == nil {
			return
		}
		var md provider.MetadataResponse
		f.provider.Metadata(ctx, provider.MetadataRequest{}, &md)
		f.types = map[string]*fastType{}
		for _, newResource := range f.provider.Resources(ctx) {
			r := newResource()
			var name resource.MetadataResponse
			r.Metadata(ctx, resource.MetadataRequest{ProviderTypeName: md.TypeName}, &name)
			var s resource.SchemaResponse
			r.Schema(ctx, resource.SchemaRequest{}, &s)
			if s.Diagnostics.HasError() {
				continue
			}
			suffix := strings.TrimPrefix(name.TypeName, md.TypeName)
			t := &fastType{schema: s.Schema, typ: s.Schema.Type().TerraformType(ctx), newResource: newResource,
				fastReads: slices.Contains(fastReads, suffix)}
			if slices.Contains(fastPlans, suffix) {
				t.defaults, t.fastPlans = attributeDefaults(ctx, s.Schema)
				t.attributes = validatedAttributes(r, s.Schema)
			}
			f.types[name.TypeName] = t
		}
	})
}

// configured returns a resource of type t configured as the framework
// configures it for each call, or nil when the provider is not configured
// yet or the resource's Configure reports anything.
func (f *fastPaths) configured(ctx context.Context, t *fastType) resource.Resource {
	data := f.provider.configured.Load()
	if data == nil {
		return nil
	}
	r := t.newResource()
	if c, ok := r.(resource.ResourceWithConfigure); ok {
		var resp resource.ConfigureResponse
		c.Configure(ctx, resource.ConfigureRequest{ProviderData: data}, &resp)
		if len(resp.Diagnostics) > 0 {
			return nil
		}
	}
	return r
}

// fastDefault is an attribute with a default: its path of attribute and
// block names, and the default.
type fastDefault struct {
	path  []string
	value tftypes.Value
}

// attributeDefaults returns the defaults of the attributes of s and of its
// single nested blocks, and false when s has defaults of another kind or
// other blocks, which the fast path of plans leaves to the framework.
func attributeDefaults(ctx context.Context, s schema.Schema) ([]fastDefault, bool) {
	out, ok := attributesDefaults(ctx, nil, s.Attributes)
	for name, b := range s.Blocks {
		single, isSingle := b.(schema.SingleNestedBlock)
		if !isSingle || len(single.Blocks) > 0 {
			return nil, false
		}
		in, inOK := attributesDefaults(ctx, []string{name}, single.Attributes)
		out, ok = append(out, in...), ok && inOK
	}
	return out, ok
}

// attributesDefaults returns the defaults of attrs, at parent, and false
// when one is of a kind attributeDefaults leaves to the framework.
func attributesDefaults(ctx context.Context, parent []string, attrs map[string]schema.Attribute) ([]fastDefault, bool) {
	var out []fastDefault
	for name, a := range attrs {
		var v attr.Value
		switch a := a.(type) {
		case schema.StringAttribute:
			if a.Default != nil {
				var d defaults.StringResponse
				a.Default.DefaultString(ctx, defaults.StringRequest{}, &d)
				v = d.PlanValue
			}
		case schema.BoolAttribute:
			if a.Default != nil {
				var d defaults.BoolResponse
				a.Default.DefaultBool(ctx, defaults.BoolRequest{}, &d)
				v = d.PlanValue
			}
		case schema.Float64Attribute:
			if a.Default != nil {
				var d defaults.Float64Response
				a.Default.DefaultFloat64(ctx, defaults.Float64Request{}, &d)
				v = d.PlanValue
			}
		default:
			return nil, false
		}
		if v == nil {
			continue
		}
		tv, err := v.ToTerraformValue(ctx)
		if err != nil {
			return nil, false
		}
		out = append(out, fastDefault{path: append(slices.Clone(parent), name), value: tv})
	}
	return out, true
}

// validatedAttributes returns the attributes of s for the configuration's
// fast path, or nil when r or s has checks it does not make: validators of
// the resource, deprecations, write-only attributes, attributes other than
// strings and bools, and validators of bools.
func validatedAttributes(r resource.Resource, s schema.Schema) []fastAttribute {
	_, validators := r.(resource.ResourceWithConfigValidators)
	_, validates := r.(resource.ResourceWithValidateConfig)
	if validators || validates || s.DeprecationMessage != "" || len(s.Blocks) > 0 {
		return nil
	}
	var out []fastAttribute
	for name, a := range s.Attributes {
		if a.GetDeprecationMessage() != "" || a.IsWriteOnly() || !a.IsRequired() && !a.IsOptional() && !a.IsComputed() {
			return nil
		}
		fa := fastAttribute{name: name, required: a.IsRequired(), computedOnly: a.IsComputed() && !a.IsOptional()}
		switch a := a.(type) {
		case schema.StringAttribute:
			fa.validators = a.Validators
		case schema.BoolAttribute:
			if len(a.Validators) > 0 {
				return nil
			}
		default:
			return nil
		}
		out = append(out, fa)
	}
	return out
}

// upgradeResourceState answers an UpgradeResourceState of a state stored
// with the current schema version as the framework does (fwserver's
// "passthrough implementation"), or returns nil.
func (f *fastPaths) upgradeResourceState(ctx context.Context, req *tfprotov6.UpgradeResourceStateRequest) *tfprotov6.UpgradeResourceStateResponse {
	f.load(ctx)
	t := f.types[req.TypeName]
	if t == nil || req.RawState == nil || req.Version != t.schema.Version {
		return nil
	}
	v, ok := stateFromJSON(t.typ, req.RawState.JSON)
	if !ok {
		var err error
		v, err = req.RawState.UnmarshalWithOpts(t.typ, tfprotov6.UnmarshalOpts{
			ValueFromJSONOpts: tftypes.ValueFromJSONOpts{IgnoreUndefinedAttributes: true},
		})
		if err != nil {
			return nil
		}
	}
	state, ok := encodeValue(t.typ, v)
	if !ok {
		return nil
	}
	return &tfprotov6.UpgradeResourceStateResponse{UpgradedState: state}
}

// stateFromJSON decodes the JSON of a stored state of type typ as
// tftypes.ValueFromJSONWithOpts does with IgnoreUndefinedAttributes, for a
// state of the usual shape: an object whose attributes are strings,
// numbers, bools, nulls and objects of them, each of its own JSON type.
// It reports false for anything else (lists, a number stored as a string,
// invalid JSON), which the caller leaves to tftypes.
//
// tftypes reads the JSON token by token with a new json.Decoder for each
// attribute, twice, and builds an attribute path for each: a third of the
// processor time of a refresh plan's calls in the provider went to
// UpgradeResourceState, which Terraform sends for every resource.
func stateFromJSON(typ tftypes.Type, raw []byte) (tftypes.Value, bool) {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return tftypes.NewValue(typ, nil), true
	}
	switch {
	case typ.Is(tftypes.String):
		var s string
		if len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &s) != nil {
			return tftypes.Value{}, false
		}
		return tftypes.NewValue(typ, s), true
	case typ.Is(tftypes.Bool):
		var b bool
		if json.Unmarshal(raw, &b) != nil {
			return tftypes.Value{}, false
		}
		return tftypes.NewValue(typ, b), true
	case typ.Is(tftypes.Number):
		var n json.Number
		if len(raw) == 0 || raw[0] == '"' || json.Unmarshal(raw, &n) != nil {
			return tftypes.Value{}, false
		}
		f, _, err := big.ParseFloat(string(n), 10, 512, big.ToNearestEven)
		if err != nil {
			return tftypes.Value{}, false
		}
		return tftypes.NewValue(typ, f), true
	case typ.Is(tftypes.Object{}):
		obj, _ := typ.(tftypes.Object)
		var fields map[string]json.RawMessage
		if len(obj.OptionalAttributes) > 0 || json.Unmarshal(raw, &fields) != nil || fields == nil {
			return tftypes.Value{}, false
		}
		vals := make(map[string]tftypes.Value, len(obj.AttributeTypes))
		for name, at := range obj.AttributeTypes {
			field, ok := fields[name]
			if !ok {
				vals[name] = tftypes.NewValue(at, nil)
				continue
			}
			if vals[name], ok = stateFromJSON(at, field); !ok {
				return tftypes.Value{}, false
			}
		}
		return tftypes.NewValue(typ, vals), true
	}
	return tftypes.Value{}, false
}

// validateResourceConfig answers a ValidateResourceConfig of a fastPlans
// resource whose configuration passes every check, or returns nil: a
// configuration with anything to report takes the framework's path.
func (f *fastPaths) validateResourceConfig(ctx context.Context, req *tfprotov6.ValidateResourceConfigRequest) *tfprotov6.ValidateResourceConfigResponse {
	f.load(ctx)
	t := f.types[req.TypeName]
	if t == nil || !t.fastPlans || t.attributes == nil || req.Config == nil {
		return nil
	}
	raw, err := req.Config.Unmarshal(t.typ)
	var attrs map[string]tftypes.Value
	if err != nil || raw.IsNull() || !raw.IsKnown() || raw.As(&attrs) != nil {
		return nil
	}
	config := tfsdk.Config{Schema: t.schema, Raw: raw}
	var capabilities validator.ValidateSchemaClientCapabilities
	if req.ClientCapabilities != nil {
		capabilities.WriteOnlyAttributesAllowed = req.ClientCapabilities.WriteOnlyAttributesAllowed
	}
	for _, a := range t.attributes {
		v := attrs[a.name]
		if a.required && v.IsNull() || a.computedOnly && !v.IsNull() {
			return nil
		}
		if len(a.validators) == 0 {
			continue
		}
		value, err := types.StringType.ValueFromTerraform(ctx, v)
		str, ok := value.(types.String)
		if err != nil || !ok {
			return nil
		}
		validateReq := validator.StringRequest{
			ClientCapabilities: capabilities, Config: config, ConfigValue: str,
			Path: path.Root(a.name), PathExpression: path.MatchRoot(a.name),
		}
		for _, check := range a.validators {
			var validateResp validator.StringResponse
			check.ValidateString(ctx, validateReq, &validateResp)
			if len(validateResp.Diagnostics) > 0 {
				return nil
			}
		}
	}
	return &tfprotov6.ValidateResourceConfigResponse{}
}

// readResource answers a ReadResource of a resource of fastReads with its
// Read, or returns nil.
func (f *fastPaths) readResource(ctx context.Context, req *tfprotov6.ReadResourceRequest) *tfprotov6.ReadResourceResponse {
	f.load(ctx)
	t := f.types[req.TypeName]
	if t == nil || !t.fastReads || req.CurrentState == nil || req.CurrentIdentity != nil {
		return nil
	}
	r := f.configured(ctx, t)
	if r == nil {
		return nil
	}
	state, err := req.CurrentState.Unmarshal(t.typ)
	private, ok := decodePrivate(req.Private)
	if err != nil || state.IsNull() || !ok || private[privateKeyUncheckedContract] != nil {
		return nil // the Read of an imported customer mapping uses its private data
	}
	readReq := resource.ReadRequest{State: tfsdk.State{Schema: t.schema, Raw: state}}
	readResp := resource.ReadResponse{State: tfsdk.State{Schema: t.schema, Raw: state}}
	r.Read(ctx, readReq, &readResp)
	if len(readResp.Diagnostics) > 0 || readResp.Deferred != nil {
		return nil
	}
	newState, ok := encodeChanged(t.typ, readResp.State.Raw, state, req.CurrentState)
	if !ok {
		return nil
	}
	return &tfprotov6.ReadResourceResponse{NewState: newState, Private: private.bytes()}
}

// planResourceChange answers a PlanResourceChange of a resource of
// fastPlans that changes nothing (see fastPaths), or returns nil.
func (f *fastPaths) planResourceChange(ctx context.Context, req *tfprotov6.PlanResourceChangeRequest) *tfprotov6.PlanResourceChangeResponse {
	f.load(ctx)
	t := f.types[req.TypeName]
	if t == nil || !t.fastPlans || req.Config == nil || req.PriorState == nil || req.ProposedNewState == nil || req.PriorIdentity != nil {
		return nil
	}
	r := f.configured(ctx, t)
	if r == nil {
		return nil
	}
	config, err1 := req.Config.Unmarshal(t.typ)
	prior, err2 := req.PriorState.Unmarshal(t.typ)
	private, ok := decodePrivate(req.PriorPrivate)
	if err1 != nil || err2 != nil || !ok ||
		config.IsNull() || prior.IsNull() || !config.IsFullyKnown() || !prior.IsFullyKnown() ||
		!sameValue(t.typ, req.ProposedNewState, req.PriorState, prior) || !holdsDefaults(t.defaults, config, prior) {
		return nil
	}
	modifyReq := resource.ModifyPlanRequest{
		Config: tfsdk.Config{Schema: t.schema, Raw: config},
		Plan:   tfsdk.Plan{Schema: t.schema, Raw: prior},
		State:  tfsdk.State{Schema: t.schema, Raw: prior},
	}
	modifyResp := resource.ModifyPlanResponse{Plan: modifyReq.Plan, RequiresReplace: path.Paths{}}
	switch r := r.(type) {
	case planner:
		r.planChecks(ctx, modifyReq, &modifyResp, private)
	case resource.ResourceWithModifyPlan:
		r.ModifyPlan(ctx, modifyReq, &modifyResp) // uses no private data (see fastPlans)
	}
	if len(modifyResp.Diagnostics) > 0 || len(modifyResp.RequiresReplace) > 0 || modifyResp.Deferred != nil {
		return nil
	}
	planned, ok := encodeChanged(t.typ, modifyResp.Plan.Raw, prior, req.PriorState)
	if !ok {
		return nil
	}
	return &tfprotov6.PlanResourceChangeResponse{PlannedState: planned, PlannedPrivate: private.bytes()}
}

// sameValue reports whether the DynamicValue proposed, of type typ, is the
// value prior, whose DynamicValue is priorDV. Terraform encodes the prior
// and the proposed state of a resource that does not change to the same
// MessagePack, so that they compare without decoding the proposed state;
// other encodings of them are decoded and compared by value.
func sameValue(typ tftypes.Type, proposed, priorDV *tfprotov6.DynamicValue, prior tftypes.Value) bool {
	if len(proposed.MsgPack) > 0 && bytes.Equal(proposed.MsgPack, priorDV.MsgPack) {
		return true
	}
	v, err := proposed.Unmarshal(typ)
	return err == nil && v.Equal(prior)
}

// holdsDefaults reports whether every attribute with a default that config
// leaves null (or leaves out with its block) holds the default in prior,
// where its block is there, so that the framework's defaults leave prior as
// it is.
func holdsDefaults(defaults []fastDefault, config, prior tftypes.Value) bool {
	for _, d := range defaults {
		p, ok := valueAt(prior, d.path)
		if !ok {
			continue // in a block that is not there
		}
		if c, ok := valueAt(config, d.path); (!ok || c.IsNull()) && !p.Equal(d.value) {
			return false
		}
	}
	return true
}

// valueAt is the value at path in the object v, or false when an object on
// the way is null.
func valueAt(v tftypes.Value, path []string) (tftypes.Value, bool) {
	for _, name := range path {
		var attrs map[string]tftypes.Value
		if v.IsNull() || v.As(&attrs) != nil {
			return tftypes.Value{}, false
		}
		v = attrs[name]
	}
	return v, true
}

// encodeValue is v of type typ as a DynamicValue, as the framework sends
// it.
func encodeValue(typ tftypes.Type, v tftypes.Value) (*tfprotov6.DynamicValue, bool) {
	dv, err := tfprotov6.NewDynamicValue(typ, v)
	if err != nil {
		return nil, false
	}
	return &dv, true
}

// encodeChanged is v of type typ as a DynamicValue, or oldDV, the
// DynamicValue Terraform sent of old, when v is old: the state of a
// resource that a refresh leaves as it is goes back to Terraform as
// Terraform encoded it, which Terraform decodes to the same value, without
// encoding it again (a third of the allocations of a Read or a plan on the
// fast path).
func encodeChanged(typ tftypes.Type, v, old tftypes.Value, oldDV *tfprotov6.DynamicValue) (*tfprotov6.DynamicValue, bool) {
	if len(oldDV.MsgPack) > 0 && sameFlat(v, old) {
		return oldDV, true
	}
	return encodeValue(typ, v)
}

// sameFlat reports whether a and b are the same known value of the same
// type, for values of the resources' usual shape: strings, numbers, bools
// and objects of them. It reports false for any other value, equal or not,
// as it does not look into it; tftypes' own Equal walks the values with an
// attribute path for each step, and costs more than encoding them.
func sameFlat(a, b tftypes.Value) bool {
	if !a.Type().Equal(b.Type()) || !a.IsKnown() || !b.IsKnown() {
		return false
	}
	if a.IsNull() || b.IsNull() {
		return a.IsNull() && b.IsNull()
	}
	switch typ := a.Type(); {
	case typ.Is(tftypes.String):
		var x, y string
		return a.As(&x) == nil && b.As(&y) == nil && x == y
	case typ.Is(tftypes.Bool):
		var x, y bool
		return a.As(&x) == nil && b.As(&y) == nil && x == y
	case typ.Is(tftypes.Number):
		var x, y big.Float
		return a.As(&x) == nil && b.As(&y) == nil && x.Cmp(&y) == 0
	case typ.Is(tftypes.Object{}):
		var x, y map[string]tftypes.Value
		if a.As(&x) != nil || b.As(&y) != nil || len(x) != len(y) {
			return false
		}
		for name, v := range x {
			if w, ok := y[name]; !ok || !sameFlat(v, w) {
				return false
			}
		}
		return true
	}
	return false
}

// fastPrivate is a resource's private data on a fast path: the keys and
// JSON values the provider keeps, with privatestate.ProviderData's rules.
// Private data with the framework's own keys (those starting with a dot)
// takes the framework's path.
type fastPrivate map[string][]byte

// decodePrivate decodes private data as the framework does
// (privatestate.NewData), or reports false for data it would reject,
// discard or keep keys of its own in.
func decodePrivate(b []byte) (fastPrivate, bool) {
	p := fastPrivate{}
	if len(b) == 0 {
		return p, true
	}
	if json.Unmarshal(b, (*map[string][]byte)(&p)) != nil {
		return nil, false
	}
	if p == nil {
		p = fastPrivate{} // the JSON was null
	}
	for k, v := range p {
		if strings.HasPrefix(k, ".") || !utf8.Valid(v) || !json.Valid(v) {
			return nil, false
		}
	}
	return p, true
}

func (p fastPrivate) GetKey(ctx context.Context, key string) ([]byte, diag.Diagnostics) {
	if strings.HasPrefix(key, ".") {
		return nil, diag.Diagnostics{privateKeyError(key)}
	}
	return p[key], nil
}

func (p fastPrivate) SetKey(ctx context.Context, key string, value []byte) diag.Diagnostics {
	switch {
	case strings.HasPrefix(key, "."):
		return diag.Diagnostics{privateKeyError(key)}
	case len(value) == 0:
		delete(p, key)
	case !utf8.Valid(value) || !json.Valid(value):
		// The framework's error; the call then takes its path.
		return diag.Diagnostics{diag.NewErrorDiagnostic("Invalid Private State Value", "The value of key "+key+" is not valid UTF-8 JSON.")}
	default:
		p[key] = value
	}
	return nil
}

// privateKeyError is the framework's refusal of a key of its own; the call
// then takes its path, which reports it.
func privateKeyError(key string) diag.Diagnostic {
	return diag.NewErrorDiagnostic("Restricted Resource Private State Namespace", "The key "+key+" starts with a period.")
}

// bytes encodes p as the framework does (privatestate.Data.Bytes).
func (p fastPrivate) bytes() []byte {
	if len(p) == 0 {
		return nil
	}
	b, err := json.Marshal(map[string][]byte(p))
	if err != nil {
		return nil // cannot happen: the values are valid UTF-8
	}
	return b
}

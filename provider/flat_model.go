package provider

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-framework/types"
	"github.com/hashicorp/terraform-plugin-framework/types/basetypes"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The framework's Get and Set of a whole model (tfsdk.State.Get,
// tfsdk.Plan.Get, tfsdk.State.Set) find the struct's fields by reflection
// and compile a regular expression to check each field's tag on every call
// (internal/reflect.isValidFieldName in terraform-plugin-framework v1.19.0),
// and so does types.Object's As and types.ObjectValueFrom for a nested
// block. A refresh plan of a thousand mappings converts a few thousand
// models, and those regular expressions were a tenth of the provider's CPU
// time and a sixth of its allocations. The resources called once per
// resource in a plan (the mappings and psa_service), whose models hold
// values of primitive types (types.String, types.Bool, types.Float64) and
// objects of such values (single nested blocks), convert them with getFlat,
// flatValue, objectAs and flatObject instead: the same tfsdk tags, looked
// up once per model type.

// flatField is one field of a flat model: its index, tfsdk tag and type.
type flatField struct {
	index int
	name  string
	typ   attr.Type
}

// flatObjectModel is a flat model with object attributes (types.Object
// fields): their attribute types by tfsdk tag.
type flatObjectModel interface {
	objectAttrTypes() map[string]map[string]attr.Type
}

// flatFieldsByType caches flatFields per model type.
var flatFieldsByType sync.Map // reflect.Type → []flatField

// flatFields returns the tagged fields of the model struct type t.
func flatFields(ctx context.Context, t reflect.Type) []flatField {
	if fs, ok := flatFieldsByType.Load(t); ok {
		return fs.([]flatField) //nolint:forcetypeassert // only []flatField is stored
	}
	objects, _ := reflect.Zero(t).Interface().(flatObjectModel)
	fs := make([]flatField, 0, t.NumField())
	for i := range t.NumField() {
		name := t.Field(i).Tag.Get("tfsdk")
		if name == "" || name == "-" {
			continue
		}
		typ := reflect.Zero(t.Field(i).Type).Interface().(attr.Value).Type(ctx) //nolint:forcetypeassert // flat models hold attr.Values
		if _, ok := typ.(basetypes.ObjectType); ok {
			// A zero types.Object has no attribute types.
			if objects == nil || objects.objectAttrTypes()[name] == nil {
				panic(fmt.Sprintf("flat model %s: no attribute types for object %q", t, name))
			}
			typ = basetypes.ObjectType{AttrTypes: objects.objectAttrTypes()[name]}
		}
		fs = append(fs, flatField{index: i, name: name, typ: typ})
	}
	flatFieldsByType.Store(t, fs)
	return fs
}

// getFlat reads raw, the object value of a plan, state or configuration,
// into the flat model m, as the framework's Get does.
func getFlat[T any](ctx context.Context, raw tftypes.Value, m *T) diag.Diagnostics {
	var attrs map[string]tftypes.Value
	if err := raw.As(&attrs); err != nil {
		return flatModelError(err)
	}
	v := reflect.ValueOf(m).Elem()
	for _, f := range flatFields(ctx, v.Type()) {
		in, ok := attrs[f.name]
		if !ok {
			return flatModelError(fmt.Errorf("the value has no attribute %q", f.name))
		}
		val, err := f.typ.ValueFromTerraform(ctx, in)
		if err != nil {
			return flatModelError(fmt.Errorf("attribute %q: %w", f.name, err))
		}
		v.Field(f.index).Set(reflect.ValueOf(val))
	}
	return nil
}

// flatValue returns the flat model m as an object value for State.Set.
func flatValue[T any](ctx context.Context, m T) (tftypes.Value, diag.Diagnostics) {
	v := reflect.ValueOf(m)
	fields := flatFields(ctx, v.Type())
	types := make(map[string]tftypes.Type, len(fields))
	vals := make(map[string]tftypes.Value, len(fields))
	for _, f := range fields {
		val := v.Field(f.index).Interface().(attr.Value) //nolint:forcetypeassert // flat models hold attr.Values
		tv, err := val.ToTerraformValue(ctx)
		if err != nil {
			return tftypes.Value{}, flatModelError(fmt.Errorf("attribute %q: %w", f.name, err))
		}
		types[f.name], vals[f.name] = tv.Type(), tv
	}
	return tftypes.NewValue(tftypes.Object{AttributeTypes: types}, vals), nil
}

func flatModelError(err error) diag.Diagnostics {
	return diag.Diagnostics{diag.NewErrorDiagnostic("Value Conversion Error",
		"An unexpected error was encountered converting a resource's data. "+
			"Please report this issue to the provider developers.\n\n"+err.Error())}
}

// setFlat sets the whole state to the flat model m, as State.Set does.
func setFlat[T any](ctx context.Context, s *tfsdk.State, m T) diag.Diagnostics {
	v, diags := flatValue(ctx, m)
	if diags.HasError() {
		return diags
	}
	return s.Set(ctx, v)
}

// objectAs reads the object o, a single nested block, into the flat model
// m, as o.As does with UnhandledUnknownAsEmpty: a null or unknown object
// leaves m's fields null.
func objectAs[T any](ctx context.Context, o types.Object, m *T) {
	attrs := o.Attributes()
	v := reflect.ValueOf(m).Elem()
	for _, f := range flatFields(ctx, v.Type()) {
		if a, ok := attrs[f.name]; ok {
			v.Field(f.index).Set(reflect.ValueOf(a))
		}
	}
}

// flatObject returns the flat model m as an object of the given attribute
// types, as types.ObjectValueFrom does.
func flatObject[T any](ctx context.Context, attrTypes map[string]attr.Type, m T) (types.Object, diag.Diagnostics) {
	v := reflect.ValueOf(m)
	fields := flatFields(ctx, v.Type())
	vals := make(map[string]attr.Value, len(fields))
	for _, f := range fields {
		vals[f.name] = v.Field(f.index).Interface().(attr.Value) //nolint:forcetypeassert // flat models hold attr.Values
	}
	return types.ObjectValue(attrTypes, vals)
}

package provider

import (
	"context"
	"fmt"
	"reflect"
	"sync"

	"github.com/hashicorp/terraform-plugin-framework/attr"
	"github.com/hashicorp/terraform-plugin-framework/diag"
	"github.com/hashicorp/terraform-plugin-framework/tfsdk"
	"github.com/hashicorp/terraform-plugin-go/tftypes"
)

// The framework's Get and Set of a whole model (tfsdk.State.Get,
// tfsdk.Plan.Get, tfsdk.State.Set) find the struct's fields by reflection
// and compile a regular expression to check each field's tag on every call
// (internal/reflect.isValidFieldName in terraform-plugin-framework v1.19.0).
// A refresh plan of a thousand mappings converts a few thousand models,
// and those regular expressions were a tenth of the provider's CPU time and
// a sixth of its allocations. The mapping resources, whose models hold only
// values of primitive types (types.String, types.Bool), convert them with
// getFlat and flatValue instead: the same tfsdk tags, looked up once per
// model type.

// flatField is one field of a flat model: its index and tfsdk tag.
type flatField struct {
	index int
	name  string
}

// flatFieldsByType caches flatFields per model type.
var flatFieldsByType sync.Map // reflect.Type → []flatField

// flatFields returns the tagged fields of the model struct type t.
func flatFields(t reflect.Type) []flatField {
	if fs, ok := flatFieldsByType.Load(t); ok {
		return fs.([]flatField) //nolint:forcetypeassert // only []flatField is stored
	}
	fs := make([]flatField, 0, t.NumField())
	for i := range t.NumField() {
		if name := t.Field(i).Tag.Get("tfsdk"); name != "" && name != "-" {
			fs = append(fs, flatField{index: i, name: name})
		}
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
	for _, f := range flatFields(v.Type()) {
		in, ok := attrs[f.name]
		if !ok {
			return flatModelError(fmt.Errorf("the value has no attribute %q", f.name))
		}
		field := v.Field(f.index)
		val, err := field.Interface().(attr.Value).Type(ctx).ValueFromTerraform(ctx, in) //nolint:forcetypeassert // flat models hold attr.Values
		if err != nil {
			return flatModelError(fmt.Errorf("attribute %q: %w", f.name, err))
		}
		field.Set(reflect.ValueOf(val))
	}
	return nil
}

// flatValue returns the flat model m as an object value for State.Set.
func flatValue[T any](ctx context.Context, m T) (tftypes.Value, diag.Diagnostics) {
	v := reflect.ValueOf(m)
	fields := flatFields(v.Type())
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

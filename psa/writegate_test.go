package psa_test

import (
	"context"
	"errors"
	"testing"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

func TestWithWriteGate(t *testing.T) {
	t.Parallel()
	if err := psa.CheckWriteGate(t.Context()); err != nil {
		t.Errorf("CheckWriteGate without a gate = %v, want nil", err)
	}
	errOuter, errInner := errors.New("outer"), errors.New("inner")
	var outer, inner error
	ctx := psa.WithWriteGate(psa.WithWriteGate(t.Context(), func() error { return outer }), func() error { return inner })
	if err := psa.CheckWriteGate(ctx); err != nil {
		t.Errorf("CheckWriteGate with both open = %v, want nil", err)
	}
	inner = errInner
	if err := psa.CheckWriteGate(ctx); !errors.Is(err, errInner) {
		t.Errorf("CheckWriteGate = %v, want the inner gate's refusal", err)
	}
	// A gate added inside a context that has one does not replace it.
	outer = errOuter
	if err := psa.CheckWriteGate(ctx); !errors.Is(err, errOuter) {
		t.Errorf("CheckWriteGate = %v, want the outer gate's refusal first", err)
	}
	if got := psa.WithWriteGate(ctx, nil); got != ctx {
		t.Error("WithWriteGate(ctx, nil) returned another context")
	}
	if err := psa.CheckWriteGate(context.WithoutCancel(ctx)); !errors.Is(err, errOuter) {
		t.Errorf("CheckWriteGate after WithoutCancel = %v, want the gate kept", err)
	}
}

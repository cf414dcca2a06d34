package rest

import (
	"context"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// WriteRefusedError is an attempt of a write that the context's write gate
// (psa.WithWriteGate) refused right before it was sent: it was not sent.
// The clients' Do return at once, without a retry.
type WriteRefusedError struct{ Err error }

// Error says the write was not sent, and why.
func (e *WriteRefusedError) Error() string { return "not sent: " + e.Err.Error() }

// Unwrap returns the gate's error.
func (e *WriteRefusedError) Unwrap() error { return e.Err }

// GateWrite asks ctx's write gate whether an attempt of a write may be sent
// now. A client calls it for every attempt of a write, after it waited for
// its concurrency slot and right before sending, and returns the
// *WriteRefusedError it gives, unsent.
func GateWrite(ctx context.Context) error {
	if err := psa.CheckWriteGate(ctx); err != nil {
		return &WriteRefusedError{Err: err}
	}
	return nil
}

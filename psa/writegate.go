package psa

import "context"

// writeGateKey is the context key of WithWriteGate.
type writeGateKey struct{}

// WithWriteGate returns ctx carrying gate, which the PSA clients call right
// before each attempt of a request that writes is sent: the first, and each
// retry after a throttle or a failed connection. When gate returns an error,
// that attempt is not sent and the call fails with an error matching it (and
// telling the clients' "not processed" when no earlier attempt may have
// been). A write the caller allowed once can otherwise still be sent minutes
// later, after the client waited out a Retry-After, when what allowed it no
// longer holds: the daemon's gate is the lease of the state database's
// leadership lock, so that an instance that lost it sends no retry after
// another took over. A gate already in ctx is asked first.
func WithWriteGate(ctx context.Context, gate func() error) context.Context {
	if gate == nil {
		return ctx
	}
	if outer, ok := ctx.Value(writeGateKey{}).(func() error); ok {
		inner := gate
		gate = func() error {
			if err := outer(); err != nil {
				return err
			}
			return inner()
		}
	}
	return context.WithValue(ctx, writeGateKey{}, gate)
}

// CheckWriteGate returns the error of ctx's write gate (WithWriteGate), or
// nil when ctx carries none. The PSA clients call it right before each
// attempt of a write.
func CheckWriteGate(ctx context.Context) error {
	if gate, ok := ctx.Value(writeGateKey{}).(func() error); ok {
		return gate()
	}
	return nil
}

// Package psa holds the neutral model that psa-sync uses to talk about every
// PSA it supports: services (catalog items), companies, contracts and the
// quantity on a contract line, plus the Backend interface each PSA adapter
// implements and the sentinel errors callers test with errors.Is.
//
// The package imports neither Terraform nor Prometheus, and none of its own
// subpackages. A backend is built by package backends:
//
//	b, err := backends.New(backends.Config{System: psa.SystemAutotask, Autotask: &backends.AutotaskConfig{...}})
//	if err != nil { ... }
//	lines, err := b.ReadLines(ctx, []string{"29684183"}, time.Now())
//	if err != nil { ... }
//	for _, l := range lines {
//		fmt.Println(l.ContractID, l.ServiceID, l.Quantity)
//	}
//
// A caller that may send a write only while a condition holds (psa-syncd:
// while it holds the leadership of a shared state database) puts that
// condition in the write's context with WithWriteGate: every client asks it
// right before each attempt of a write, so that a retry after a throttle's
// Retry-After is not sent once the condition stopped holding.
package psa

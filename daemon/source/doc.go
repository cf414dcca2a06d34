// Package source defines what the daemon needs from a vendor's usage data: a
// Source that, for a billing Period, returns a Report of usage Records (one
// product's quantity for one customer) and the Problems it skipped.
//
// The implementations live in subpackages: sophos (the Sophos Central Partner
// API) and file (a CSV or JSON snapshot, for vendors without a usage API).
// Records whose CustomerID is empty are usage that belongs to no customer;
// they are reported, never billed.
//
//	src, err := file.New(file.Config{Path: "usage.csv"})
//	if err != nil { ... }
//	rep, err := src.Fetch(ctx, source.PeriodOf(time.Now()).Prev())
//	if err != nil { ... }
//	for _, p := range rep.Problems {
//		logger.Warn("Usage problem", "problem", p.String())
//	}
//	sums := rep.Records // a file source sums as it reads (rep.Summed)
//	if !rep.Summed {
//		sums, _ = source.Sum(rep.Records) // and its overflow problems
//	}
//	for _, r := range sums {
//		fmt.Println(r.CustomerID, r.Product, r.Quantity)
//	}
package source

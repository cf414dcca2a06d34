//go:build profile

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles starts a CPU profile of the process into the file that
// PSA_SYNCD_CPUPROFILE names, and an execution trace into the file that
// PSA_SYNCD_TRACE names, when they are set, and returns the function that
// stops them and writes the allocations profile into the file that
// PSA_SYNCD_MEMPROFILE names. It is built only with -tags profile (the benchmarks build
// psa-syncd so when PSA_BENCH_PROFILE_DIR is set, see bench_test.go); the
// psa-syncd that ships has no such variables.
func startProfiles() (stop func()) {
	var stops []func()
	stop = func() {
		for _, s := range stops {
			s()
		}
	}
	if path := os.Getenv("PSA_SYNCD_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "psa-syncd: PSA_SYNCD_CPUPROFILE: %v\n", err)
			os.Exit(1)
		}
		stops = append(stops, func() { pprof.StopCPUProfile(); f.Close() })
	}
	if path := os.Getenv("PSA_SYNCD_MEMPROFILE"); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err == nil {
				err = errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
			}
			if err != nil {
				fmt.Fprintf(os.Stderr, "psa-syncd: PSA_SYNCD_MEMPROFILE: %v\n", err)
			}
		})
	}
	if path := os.Getenv("PSA_SYNCD_TRACE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = trace.Start(f)
		}
		if err != nil {
			fmt.Fprintf(os.Stderr, "psa-syncd: PSA_SYNCD_TRACE: %v\n", err)
			os.Exit(1)
		}
		stops = append(stops, func() { trace.Stop(); f.Close() })
	}
	return stop
}

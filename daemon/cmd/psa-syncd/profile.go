//go:build profile

package main

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"sync"
	"time"
)

// startProfiles starts a CPU profile of the process into the file that
// PSA_SYNCD_CPUPROFILE names, and an execution trace into the file that
// PSA_SYNCD_TRACE names, when they are set, and returns the function that
// stops them and writes the allocations profile into the file that
// PSA_SYNCD_MEMPROFILE names. With PSA_SYNCD_PEAKHEAP set, it writes a heap
// profile into the file it names each time the heap is larger than it has
// been (looked at every 100 ms): what is live near the peak of the
// process's memory. It is built only with -tags profile (the benchmarks build
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
	if path := os.Getenv("PSA_SYNCD_PEAKHEAP"); path != "" {
		done := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			var peak uint64
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-done:
					return
				case <-tick.C:
				}
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc <= peak {
					continue
				}
				peak = ms.HeapAlloc
				f, err := os.Create(path)
				if err == nil {
					err = errors.Join(pprof.Lookup("heap").WriteTo(f, 0), f.Close())
				}
				if err != nil {
					fmt.Fprintf(os.Stderr, "psa-syncd: PSA_SYNCD_PEAKHEAP: %v\n", err)
					return
				}
			}
		})
		stops = append(stops, func() { close(done); wg.Wait() })
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

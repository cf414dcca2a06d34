package main

import (
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa/backends"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
)

// countUncounted makes the Kaseya BMS client of bc, if bc has one, count
// its calls in a store of the command's own, and returns a function that
// logs them. It is for a command that runs beside the daemon without
// writing its state database (plan -terraform-plan, whose connection is
// read-only; check without -web.url, where the daemon holds an SQLite
// file): its calls are not in the count per endpoint that the daemon's
// passes keep there, so a pass may meet BMS's hourly limit (1,500 calls
// per endpoint) sooner than its count says. Saying how many calls the
// command sent, per endpoint, lets the operator see that, where the count
// used to miss them silently.
func countUncounted(bc *backends.Config) (logCalls func(*slog.Logger)) {
	if bc.KaseyaBMS == nil {
		return func(*slog.Logger) {}
	}
	store := kaseyabms.NewCallStore()
	bc.KaseyaBMS.Calls = store
	return func(logger *slog.Logger) {
		calls, err := store.Calls(time.Now(), time.Hour, kaseyabms.HourlyLimit)
		if err != nil || len(calls) == 0 {
			return
		}
		total := 0
		var each []string
		for _, ep := range slices.Sorted(maps.Keys(calls)) {
			total += calls[ep]
			each = append(each, fmt.Sprintf("%s=%d", ep, calls[ep]))
		}
		logger.Warn("Kaseya BMS calls of this command are not in psa-syncd's count of calls per endpoint: a pass within the hour may meet BMS's limit of 1,500 calls per endpoint sooner",
			"calls", total, "endpoints", strings.Join(each, " "))
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func cmdSimulate(ctx context.Context, e *env, args []string) int {
	var (
		autotaskFixture string
		sophosFixture   string
		autotaskAddr    string
		sophosAddr      string
		latency         time.Duration
		hourlyLimit     int
	)
	fs := newFlagSet(e, "simulate", "", "Serve the Autotask simulator and the Sophos Central Partner simulator from JSON\n"+
		"fixtures on loopback ports, print their URLs and credentials as KEY=value lines,\n"+
		"and serve until SIGINT or SIGTERM. The simulators keep their state in memory;\n"+
		"GET <url>/_sim/... shows it (that path is the simulator's, not the vendor's).")
	fs.StringVar(&autotaskFixture, "autotask.fixture", "", "Autotask simulator fixture `file` (JSON); empty starts an empty tenant.")
	fs.StringVar(&sophosFixture, "sophos.fixture", "", "Sophos simulator fixture `file` (JSON); empty starts a partner with no tenants.")
	fs.StringVar(&autotaskAddr, "autotask.listen-address", "127.0.0.1:0", "Loopback address for the Autotask simulator; port 0 picks a free port.")
	fs.StringVar(&sophosAddr, "sophos.listen-address", "127.0.0.1:0", "Loopback address for the Sophos simulator; port 0 picks a free port.")
	fs.DurationVar(&latency, "autotask.latency", 0, "Latency added to every Autotask API request.")
	fs.IntVar(&hourlyLimit, "autotask.hourly-limit", psatest.DefaultHourlyLimit, "Autotask requests allowed per rolling hour.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	atOpts := []psatest.Option{psatest.WithLatency(latency), psatest.WithHourlyLimit(hourlyLimit)}
	if autotaskFixture != "" {
		atOpts = append(atOpts, psatest.WithFixtureFile(autotaskFixture))
	}
	at, err := psatest.NewServerOn(autotaskAddr, atOpts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: autotask simulator: %v\n", err)
		return 1
	}
	defer at.Close()

	var soOpts []sophostest.Option
	clientID, clientSecret := sophostest.DefaultClientID, sophostest.DefaultClientSecret
	if sophosFixture != "" {
		f, err := sophostest.LoadFixture(sophosFixture)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: sophos simulator: %v\n", err)
			return 1
		}
		if f.ClientID != "" {
			clientID = f.ClientID
		}
		if f.ClientSecret != "" {
			clientSecret = f.ClientSecret
		}
		soOpts = append(soOpts, sophostest.WithFixture(f))
	}
	so, err := sophostest.NewServerOn(sophosAddr, soOpts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: sophos simulator: %v\n", err)
		return 1
	}
	defer so.Close()

	user, secret, code := at.Autotask().Credentials()
	// KEY=value lines, so that scripts can read them with `read`; these are
	// the simulators' own throwaway credentials from the fixtures.
	for _, kv := range [][2]string{
		{"AUTOTASK_URL", at.URL()},
		{"AUTOTASK_BASE_URL", at.AutotaskBaseURL()},
		{"AUTOTASK_ZONE_LOOKUP_URL", at.AutotaskZoneLookupURL()},
		{"AUTOTASK_STATE_URL", at.URL() + "/_sim/autotask/state"},
		{"AUTOTASK_USERNAME", user},
		{"AUTOTASK_SECRET", secret},
		{"AUTOTASK_INTEGRATION_CODE", code},
		{"SOPHOS_URL", so.URL()},
		{"SOPHOS_AUTH_URL", so.AuthURL()},
		{"SOPHOS_API_URL", so.APIURL()},
		{"SOPHOS_CLIENT_ID", clientID},
		{"SOPHOS_CLIENT_SECRET", clientSecret},
	} {
		fmt.Fprintf(e.stdout, "%s=%s\n", kv[0], kv[1])
	}
	fmt.Fprintln(e.stdout, "READY=1")
	if f, ok := e.stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "psa-syncd: simulators stopped")
	return 0
}

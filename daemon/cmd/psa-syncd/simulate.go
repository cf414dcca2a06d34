package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

func cmdSimulate(ctx context.Context, e *env, args []string) int {
	var (
		system      string
		psaFixture  string
		sophosFix   string
		psaAddr     string
		sophosAddr  string
		latency     time.Duration
		hourlyLimit int
	)
	fs := newFlagSet(e, "simulate", "Serve a PSA simulator (Autotask, ConnectWise PSA or Kaseya BMS) and the Sophos\n"+
		"Central Partner simulator from JSON fixtures on loopback ports, print their URLs\n"+
		"and credentials as KEY=value lines, and serve until SIGINT or SIGTERM. The\n"+
		"simulators keep their state in memory; GET <url>/_sim/... shows it (that path is\n"+
		"the simulator's, not the vendor's).")
	fs.StringVar(&system, "psa.system", "", "PSA to simulate: autotask, connectwise or kaseya_bms. Empty means the system of the\nfixture's only section (\"autotask\", \"connectwise\" or \"kaseyabms\"), else autotask.")
	fs.StringVar(&psaFixture, "psa.fixture", "", "PSA simulator fixture `file` (JSON, with an \"autotask\", \"connectwise\" or\n\"kaseyabms\" section); empty starts an empty tenant.")
	fs.StringVar(&sophosFix, "sophos.fixture", "", "Sophos simulator fixture `file` (JSON); empty starts a partner with no tenants.")
	fs.StringVar(&psaAddr, "psa.listen-address", "127.0.0.1:0", "Loopback address for the PSA simulator; port 0 picks a free port.")
	fs.StringVar(&sophosAddr, "sophos.listen-address", "127.0.0.1:0", "Loopback address for the Sophos simulator; port 0 picks a free port.")
	fs.DurationVar(&latency, "psa.latency", 0, "Latency added to every PSA API request.")
	fs.IntVar(&hourlyLimit, "psa.hourly-limit", 0, "PSA requests allowed per rolling hour; 0 means the PSA's own: 10,000 per tenant for\nAutotask, 1,500 per endpoint for Kaseya BMS, none for ConnectWise.")
	if rc := parse(fs, e, args); rc >= 0 {
		return rc
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var fixture *psatest.Fixture
	if psaFixture != "" {
		f, err := psatest.LoadFixture(psaFixture)
		if err != nil {
			fmt.Fprintf(e.stderr, "psa-syncd: psa simulator: %v\n", err)
			return 1
		}
		fixture = f
	}
	sys, err := simulatedSystem(system, fixture)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %v\n", err)
		return 2
	}
	opts := []psatest.Option{psatest.WithSystem(sys), psatest.WithLatency(latency), psatest.WithFixture(fixture)}
	if hourlyLimit > 0 {
		opts = append(opts, psatest.WithHourlyLimit(hourlyLimit))
	}
	sim, err := psatest.NewServerOn(psaAddr, opts...)
	if err != nil {
		fmt.Fprintf(e.stderr, "psa-syncd: %s simulator: %v\n", sys, err)
		return 1
	}
	defer sim.Close()

	var soOpts []sophostest.Option
	clientID, clientSecret := sophostest.DefaultClientID, sophostest.DefaultClientSecret
	if sophosFix != "" {
		f, err := sophostest.LoadFixture(sophosFix)
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

	// KEY=value lines, so that scripts can read them with `read`; these are
	// the simulators' own throwaway credentials from the fixtures.
	printVars(e.stdout, simulatorVars(sim))
	printVars(e.stdout, [][2]string{
		{"SOPHOS_URL", so.URL()},
		{"SOPHOS_AUTH_URL", so.AuthURL()},
		{"SOPHOS_API_URL", so.APIURL()},
		{"SOPHOS_CLIENT_ID", clientID},
		{"SOPHOS_CLIENT_SECRET", clientSecret},
	})
	fmt.Fprintln(e.stdout, "READY=1")
	if f, ok := e.stdout.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
	<-ctx.Done()
	fmt.Fprintln(e.stderr, "psa-syncd: simulators stopped")
	return 0
}

// simulatedSystem picks the PSA to simulate: the -psa.system flag, else the
// system of the fixture's only section, else Autotask.
func simulatedSystem(flagValue string, f *psatest.Fixture) (psa.System, error) {
	if flagValue != "" {
		sys := psa.System(flagValue)
		switch sys {
		case psa.SystemAutotask, psa.SystemConnectWise, psa.SystemKaseyaBMS:
			return sys, nil
		}
		return "", fmt.Errorf("-psa.system: unknown system %q: want autotask, connectwise or kaseya_bms", flagValue)
	}
	if f == nil {
		return psa.SystemAutotask, nil
	}
	var found []psa.System
	if f.Autotask != nil {
		found = append(found, psa.SystemAutotask)
	}
	if f.ConnectWise != nil {
		found = append(found, psa.SystemConnectWise)
	}
	if f.KaseyaBMS != nil {
		found = append(found, psa.SystemKaseyaBMS)
	}
	switch len(found) {
	case 0:
		return psa.SystemAutotask, nil
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("-psa.fixture has sections for %v: choose one with -psa.system", found)
}

// simulatorVars returns the URLs and credentials of a PSA simulator, under
// names that say which system they belong to, plus PSA_SYSTEM and
// PSA_STATE_URL (its /_sim/ state endpoint) for scripts that handle every
// system alike.
func simulatorVars(sim *psatest.Server) [][2]string {
	sys := sim.System()
	vars := [][2]string{{"PSA_SYSTEM", string(sys)}}
	switch sys {
	case psa.SystemConnectWise:
		company, publicKey, privateKey, clientID := sim.ConnectWise().Credentials()
		return append(vars,
			[2]string{"PSA_STATE_URL", sim.URL() + "/_sim/connectwise/state"},
			[2]string{"CONNECTWISE_URL", sim.URL()},
			[2]string{"CONNECTWISE_SITE", sim.ConnectWiseSite()},
			[2]string{"CONNECTWISE_CODEBASE", sim.ConnectWise().Codebase()},
			[2]string{"CONNECTWISE_BASE_URL", sim.ConnectWiseBaseURL()},
			[2]string{"CONNECTWISE_COMPANY_ID", company},
			[2]string{"CONNECTWISE_PUBLIC_KEY", publicKey},
			[2]string{"CONNECTWISE_PRIVATE_KEY", privateKey},
			[2]string{"CONNECTWISE_CLIENT_ID", clientID},
		)
	case psa.SystemKaseyaBMS:
		user, password, tenant := sim.KaseyaBMS().Credentials()
		return append(vars,
			[2]string{"PSA_STATE_URL", sim.URL() + "/_sim/kaseyabms/state"},
			[2]string{"KASEYA_BMS_URL", sim.URL()},
			[2]string{"KASEYA_BMS_BASE_URL", sim.KaseyaBMSBaseURL()},
			[2]string{"KASEYA_BMS_USERNAME", user},
			[2]string{"KASEYA_BMS_PASSWORD", password},
			[2]string{"KASEYA_BMS_TENANT", tenant},
		)
	}
	user, secret, code := sim.Autotask().Credentials()
	return append(vars,
		[2]string{"PSA_STATE_URL", sim.URL() + "/_sim/autotask/state"},
		[2]string{"AUTOTASK_URL", sim.URL()},
		[2]string{"AUTOTASK_BASE_URL", sim.AutotaskBaseURL()},
		[2]string{"AUTOTASK_ZONE_LOOKUP_URL", sim.AutotaskZoneLookupURL()},
		[2]string{"AUTOTASK_STATE_URL", sim.URL() + "/_sim/autotask/state"},
		[2]string{"AUTOTASK_USERNAME", user},
		[2]string{"AUTOTASK_SECRET", secret},
		[2]string{"AUTOTASK_INTEGRATION_CODE", code},
	)
}

func printVars(w io.Writer, vars [][2]string) {
	for _, kv := range vars {
		fmt.Fprintf(w, "%s=%s\n", kv[0], kv[1])
	}
}

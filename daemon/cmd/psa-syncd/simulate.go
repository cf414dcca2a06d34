package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
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
		"and credentials as shell variable assignments, then READY=1, and serve until\n"+
		"SIGINT or SIGTERM. The credentials are exported under the names the provider and\n"+
		"psa-syncd read (PSA_AUTOTASK_USERNAME, PSA_SOPHOS_CLIENT_ID, ...), so a shell can\n"+
		"source the output:\n\n"+
		"  psa-syncd simulate -psa.fixture examples/demo/autotask.json \\\n"+
		"    -sophos.fixture examples/demo/sophos.json >sim.env &\n"+
		"  until grep -q '^READY=1$' sim.env; do sleep 0.1; done; . ./sim.env\n\n"+
		"The simulators keep their state in memory; GET $PSA_STATE_URL shows it (that path\n"+
		"is the simulator's, not the vendor's).")
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

	// Shell assignments, so that scripts can source them; these are the
	// simulators' own throwaway credentials from the fixtures.
	fmt.Fprintf(e.stdout, "# psa-syncd simulate: %s and Sophos Central simulators.\n", sim.System())
	fmt.Fprintln(e.stdout, "# Read by the provider and psa-syncd:")
	printVars(e.stdout, "export ", append(simulatorEnv(sim),
		[2]string{"PSA_SOPHOS_CLIENT_ID", clientID},
		[2]string{"PSA_SOPHOS_CLIENT_SECRET", clientSecret},
	))
	fmt.Fprintln(e.stdout, "# For psa-syncd's configuration file (source.sophos.auth_url, api_url) and scripts:")
	printVars(e.stdout, "", [][2]string{
		{"PSA_SYSTEM", string(sim.System())},
		{"PSA_STATE_URL", sim.URL() + "/_sim/" + strings.ReplaceAll(string(sim.System()), "_", "") + "/state"},
		{"SOPHOS_AUTH_URL", so.AuthURL()},
		{"SOPHOS_API_URL", so.APIURL()},
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

// simulatorEnv returns the URL and credentials of a PSA simulator under the
// environment variables the provider and psa-syncd read for its system.
func simulatorEnv(sim *psatest.Server) [][2]string {
	switch sim.System() {
	case psa.SystemConnectWise:
		// Only the site: the codebase is discovered through
		// /login/companyinfo, as against a hosted ConnectWise.
		company, publicKey, privateKey, clientID := sim.ConnectWise().Credentials()
		return [][2]string{
			{"PSA_CONNECTWISE_SITE", sim.ConnectWiseSite()},
			{"PSA_CONNECTWISE_COMPANY_ID", company},
			{"PSA_CONNECTWISE_PUBLIC_KEY", publicKey},
			{"PSA_CONNECTWISE_PRIVATE_KEY", privateKey},
			{"PSA_CONNECTWISE_CLIENT_ID", clientID},
		}
	case psa.SystemKaseyaBMS:
		// A real tenant takes PSA_KASEYA_BMS_HOSTNAME; the simulator's
		// API root is given as the base URL instead.
		user, password, tenant := sim.KaseyaBMS().Credentials()
		return [][2]string{
			{"PSA_KASEYA_BMS_BASE_URL", sim.KaseyaBMSBaseURL()},
			{"PSA_KASEYA_BMS_USERNAME", user},
			{"PSA_KASEYA_BMS_PASSWORD", password},
			{"PSA_KASEYA_BMS_TENANT", tenant},
		}
	}
	// The zone root is given, so zone discovery is skipped.
	user, secret, code := sim.Autotask().Credentials()
	return [][2]string{
		{"PSA_AUTOTASK_USERNAME", user},
		{"PSA_AUTOTASK_SECRET", secret},
		{"PSA_AUTOTASK_INTEGRATION_CODE", code},
		{"PSA_AUTOTASK_BASE_URL", sim.AutotaskBaseURL()},
	}
}

// printVars writes one shell assignment per variable, each after prefix
// ("export " or nothing), quoting values that a shell would otherwise split
// or expand.
func printVars(w io.Writer, prefix string, vars [][2]string) {
	for _, kv := range vars {
		fmt.Fprintf(w, "%s%s=%s\n", prefix, kv[0], shellQuote(kv[1]))
	}
}

// shellQuote returns v as a POSIX shell word: as it is when it holds only
// characters no shell treats specially, else in single quotes.
func shellQuote(v string) string {
	if v != "" && strings.Trim(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return v
	}
	return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'"
}

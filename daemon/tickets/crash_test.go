package tickets_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophostest"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/tickets"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/autotask"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// crashChildEnv names the environment variable that makes the test binary
// run crashChild instead of the tests (the os/exec helper-process idiom);
// its value is the child's settings as JSON.
const crashChildEnv = "PSA_SYNC_TICKETS_CRASH_CHILD"

type crashSettings struct {
	StateDir, AutotaskURL, SophosURL, SophosAuthURL, Company string
	User, Secret, Code, SophosID, SophosSecret               string
}

func TestMain(m *testing.M) {
	if s := os.Getenv(crashChildEnv); s != "" {
		os.Exit(crashChild(s))
	}
	os.Exit(m.Run())
}

// crashChild runs ticket passes until one has nothing left to do, as
// psa-syncd would; the parent kills it with SIGKILL mid-way.
func crashChild(settings string) int {
	var s crashSettings
	if err := json.Unmarshal([]byte(settings), &s); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	db, err := state.Open(s.StateDir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	defer func() { _ = db.Close() }()
	at, err := autotask.NewClient(autotask.WithBaseURL(s.AutotaskURL), autotask.WithCredentials(s.User, s.Secret, s.Code))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	sc, err := sophos.NewClient(sophos.WithCredentials(s.SophosID, s.SophosSecret), sophos.WithAuthURL(s.SophosAuthURL), sophos.WithBaseURL(s.SophosURL))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	routing := routings[psa.SystemAutotask]
	routing.MaxPerCustomer, routing.MaxPerPass = 100, 100
	eng, err := tickets.New(tickets.Config{System: psa.SystemAutotask, PSA: autotask.NewBackend(at), Store: db,
		Alerts: tickets.NewSophosAlerts(sc), Routing: routing})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	customers := []tickets.Customer{{Source: "sophos", CustomerID: acme, CustomerName: "Acme", CompanyID: s.Company}}
	for range 20 {
		rep, err := eng.Pass(context.Background(), customers, false)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		intents, _ := db.TicketIntents()
		if t := rep.Totals(); t.Created == 0 && rep.Settled == 0 && len(intents) == 0 {
			return 0
		}
	}
	return 1
}

// TestEngine_kill9 kills psa-syncd's ticket pass with SIGKILL right after
// the PSA applied a create, over repeated trials, and checks that the
// passes after it leave exactly one ticket per alert: zero duplicates.
func TestEngine_kill9(t *testing.T) {
	t.Parallel()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	const alerts, trials = 12, 6
	sim := psatest.Start(t)
	company := id(sim.Autotask().AddCompany("Acme"))
	sop := sophostest.Start(t, sophostest.WithFixtureFile("../source/sophostest/testdata/fixture.json"))
	for i := range alerts {
		sop.AddAlert(acme, sophostest.Alert{Severity: "high", Description: fmt.Sprintf("Threat %d", i)})
	}
	user, secret, code := sim.Autotask().Credentials()
	settings, _ := json.Marshal(crashSettings{StateDir: t.TempDir(), AutotaskURL: sim.AutotaskBaseURL(), SophosURL: sop.APIURL(),
		SophosAuthURL: sop.AuthURL(), Company: company, User: user, Secret: secret, Code: code,
		SophosID: sop.ClientID(), SophosSecret: sop.ClientSecret()})
	run := func() *exec.Cmd {
		cmd := exec.Command(exe, "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+string(settings))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	creates := func() int {
		n := 0
		for _, r := range sim.Requests() {
			if r.Method == http.MethodPost && strings.EqualFold(r.Path, "/ATServicesRest/V1.0/Tickets") && r.Status == http.StatusOK {
				n++
			}
		}
		return n
	}

	var st crashSettings
	_ = json.Unmarshal(settings, &st)
	// openIntents counts the creates a kill left unsettled (applied or not).
	openIntents := func() int {
		db, err := state.Open(st.StateDir)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := db.Close(); err != nil {
				t.Error(err)
			}
		}()
		in, err := db.TicketIntents()
		if err != nil {
			t.Fatal(err)
		}
		return len(in)
	}
	killed, unsettled := 0, 0
	for trial := range trials {
		before := creates()
		cmd := run()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		// Kill the child as soon as the PSA has applied one more create
		// (the simulator logs a request before it answers).
		deadline := time.Now().Add(30 * time.Second)
	wait:
		for {
			select {
			case err := <-done:
				t.Logf("trial %d: the child finished before it was killed (%v)", trial, err)
				break wait
			default:
			}
			if creates() > before {
				if err := cmd.Process.Kill(); err == nil {
					killed++
				}
				t.Logf("trial %d: killed the child (%v)", trial, <-done)
				unsettled += openIntents()
				break
			}
			if time.Now().After(deadline) {
				_ = cmd.Process.Kill()
				t.Logf("trial %d: killed the child (%v)", trial, <-done)
				t.Fatalf("trial %d: no create within 30s", trial)
			}
			time.Sleep(time.Millisecond)
		}
	}
	if killed == 0 {
		t.Fatal("no trial killed the child mid-pass")
	}
	// A last, undisturbed run settles whatever the kills left open.
	if err := run().Wait(); err != nil {
		t.Fatalf("final run: %v", err)
	}
	seen := map[string]int{}
	for _, tk := range sim.Autotask().Tickets() {
		seen[tk.ExternalID]++
	}
	dups := 0
	for ref, n := range seen {
		if n > 1 {
			dups += n - 1
			t.Errorf("reference %s has %d tickets", ref, n)
		}
	}
	if len(seen) != alerts || dups != 0 {
		t.Errorf("%d references with tickets and %d duplicates after %d kills, want %d and 0", len(seen), dups, killed, alerts)
	}
	t.Logf("BENCH tickets_kill9 trials=%d kills=%d unsettled_after_kill=%d creates_sent=%d tickets=%d duplicates=%d",
		trials, killed, unsettled, creates(), len(sim.Autotask().Tickets()), dups)
}

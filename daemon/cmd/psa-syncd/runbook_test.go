package main

import (
	"database/sql"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"
	"go.yaml.in/yaml/v3"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/daemon/state/pgtest"
)

// TestAlerts_noActiveInstanceRunbookEndsOnlyThisLock: the description of
// PsaSyncNoActiveInstance tells the operator how to find the session that
// still holds the leadership lock of a dead active instance, and to end
// it. A PostgreSQL server often holds more than one psa-syncd database
// (one per PSA tenant, as README advises) and other applications' advisory
// locks: pg_locks shows the locks of every database of the server, so a
// query that matched any advisory lock named those sessions too, and the
// operator ended another tenant's active instance or another
// application's session. Run in one psa-syncd database, the query must
// find that database's leadership lock only.
func TestAlerts_noActiveInstanceRunbookEndsOnlyThisLock(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	var query string
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "PsaSyncNoActiveInstance" {
				if m := regexp.MustCompile("`(SELECT pid[^`]*)`").FindStringSubmatch(r.Annotations["description"]); m != nil {
					query = m[1]
				}
			}
		}
	}
	if query == "" {
		t.Fatal("the description of PsaSyncNoActiveInstance gives no query for the session that holds the lock")
	}

	cluster := pgtest.New(t)
	lead := func(url, holder string) *state.Leadership {
		db, err := state.OpenConfig(t.Context(), state.Config{Driver: state.DriverPostgres, URL: url})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		l, err := db.TryLead(t.Context(), state.LeaderInfo{Holder: holder}, 100*time.Millisecond)
		if err != nil || l == nil {
			t.Fatalf("TryLead of %s = %v, %v", holder, l, err)
		}
		return l
	}
	var urls [2]string
	for i := range urls {
		if urls[i], err = cluster.CreateDatabase(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	ours, theirs := lead(urls[0], "this tenant's"), lead(urls[1], "another tenant's")
	conn, err := sql.Open("pgx", urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// Another application's advisory lock, in the same database.
	other, err := conn.Conn(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.ExecContext(t.Context(), `SELECT pg_advisory_lock(42)`); err != nil {
		t.Fatal(err)
	}

	rows, err := conn.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("the query of PsaSyncNoActiveInstance's description: %v\n%s", err, query)
	}
	var pids []int64
	for rows.Next() {
		cols, err := rows.Columns()
		if err != nil {
			t.Fatal(err)
		}
		// The pid first, as the description's pg_terminate_backend(pid)
		// takes it; the other columns are for the operator.
		var pid int64
		dest := []any{&pid}
		for range cols[1:] {
			dest = append(dest, new(any))
		}
		if err := rows.Scan(dest...); err != nil {
			t.Fatal(err)
		}
		pids = append(pids, pid)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(pids) != 1 {
		t.Fatalf("the query of PsaSyncNoActiveInstance's description found %d sessions (%v), want 1, the one holding this database's leadership lock:\n%s",
			len(pids), pids, strings.TrimSpace(query))
	}
	if _, err := conn.ExecContext(t.Context(), `SELECT pg_terminate_backend($1)`, pids[0]); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ours.Lost():
	case <-time.After(10 * time.Second):
		t.Error("ending the session the query found did not end this database's leadership")
	}
	select {
	case <-theirs.Lost():
		t.Error("ending the session the query found ended another database's leadership")
	case <-time.After(500 * time.Millisecond):
	}
}

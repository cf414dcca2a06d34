package daemon

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// An operator reads what psa-syncd runs with at start-up (the config file,
// the PSA, the usage source, the state database), and finds a pass asked
// for through the API by the run_id POST /api/v1/sync answered: under the
// same key on the lines of its start and end, not under "ticket", which
// the ticket passes use for a PSA ticket.
func TestDaemon_Run_logsStartUpAndRequestID(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedLog{}
	e := dtSetup(t, dtOptions{daemonOpts: Options{Listener: ln, WatchInterval: time.Hour,
		Logger: slog.New(slog.NewJSONHandler(logs, nil))}})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.d.Run(ctx) }()
	tk := e.d.RequestSync("cust-globex", "api")
	if _, err := e.d.WaitTicket(t.Context(), tk.ID); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	logs.mu.Lock()
	out := logs.buf.String()
	logs.mu.Unlock()
	var records []map[string]any
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line is not one JSON object: %v\n%s", err, line)
		}
		records = append(records, r)
	}
	find := func(msg string) map[string]any {
		for _, r := range records {
			if r["msg"] == msg {
				return r
			}
		}
		t.Errorf("no %q line in the log:\n%s", msg, out)
		return nil
	}
	if r := find("Loaded config"); r != nil {
		for k, want := range map[string]any{"file": e.cfgPath, "system": "autotask", "source": "file", "database": e.d.State().Path()} {
			if r[k] != want {
				t.Errorf("start-up line %v: %s = %v, want %v", r, k, r[k], want)
			}
		}
	}
	// One line says where the listener is, not exporter-toolkit's as well.
	listening := 0
	for _, r := range records {
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, "Listening") {
			listening++
		}
	}
	if r := find("Listening"); r != nil && (listening != 1 || r["address"] != ln.Addr().String()) {
		t.Errorf("%d lines say the listener's address, want one, Listening with address %s:\n%s", listening, ln.Addr(), out)
	}
	for _, msg := range []string{"Starting pass", "Finished pass"} {
		if r := find(msg); r != nil && r["request"] != tk.ID {
			t.Errorf("%q line %v: request = %v, want the run_id %s", msg, r, r["request"], tk.ID)
		}
	}
	for _, r := range records {
		if r["ticket"] == tk.ID {
			t.Errorf("line %v names the sync request %s under the key ticket", r, tk.ID)
		}
	}
}

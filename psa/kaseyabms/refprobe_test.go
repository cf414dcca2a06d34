package kaseyabms_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/kaseyabms"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
)

// syncBuffer is a bytes.Buffer safe for the logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTickets_refProbe: FindTickets relies on BMS's title filter matching
// the reference token at the end of a title, which the API does not
// document. The first ticket a process creates is searched for by its
// token once, by the first FindTickets at least 10 minutes after the create
// (not before: it may not be searchable yet): found, nothing is logged
// above debug; not found (a title filter matching whole titles), an error
// names the risk of duplicate tickets. One search per process, whatever
// the outcome.
func TestTickets_refProbe(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		wholeOnly bool // BMS answers a search by part of a title with nothing
	}{{"substring", false}, {"wholeTitles", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := psatest.Start(t, psatest.WithSystem(psa.SystemKaseyaBMS))
			var logs syncBuffer
			c, err := kaseyabms.NewClient(
				kaseyabms.WithBaseURL(srv.KaseyaBMSBaseURL()),
				kaseyabms.WithCredentials(psatest.DefaultKaseyaBMSUsername, psatest.DefaultKaseyaBMSPassword, psatest.DefaultKaseyaBMSTenant),
				kaseyabms.WithBackoff(time.Millisecond, 2*time.Millisecond),
				kaseyabms.WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))),
			)
			if err != nil {
				t.Fatal(err)
			}
			b := kaseyabms.NewBackend(c)
			now := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
			b.SetNow(func() time.Time { return now })
			ctx := t.Context()
			acme := strconv.Itoa(srv.KaseyaBMS().AddAccount("Acme"))
			create := func(ref string) *psa.Ticket {
				t.Helper()
				tk, err := b.CreateTicket(ctx, psa.CreateTicketRequest{CompanyID: acme, Title: "t", ExternalRef: ref,
					Routing: psa.TicketRouting{StatusID: "1", TicketTypeID: "2", SourceID: "9"}})
				if err != nil {
					t.Fatal(err)
				}
				return tk
			}
			// probes counts the searches for the first ticket's token (a
			// search BMS answers with nothing but no total may take two
			// requests: the client tries page 0 too).
			token := psa.RefToken("sc:1")
			probes := func() int {
				n := 0
				for _, r := range srv.Requests() {
					if r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/tickets/search") && bytes.Contains(r.Body, []byte(token)) {
						n++
					}
				}
				return n
			}
			find := func(ref string) {
				t.Helper()
				if _, err := b.FindTickets(ctx, psa.TicketQuery{CompanyID: acme, ExternalRef: ref}); err != nil {
					t.Fatal(err)
				}
			}
			first := create("sc:1")
			if tc.wholeOnly {
				srv.AddFault(psatest.Fault{Method: http.MethodPost, Path: "/v2/servicedesk/tickets/search", BodyContains: token, Status: http.StatusOK, Body: "[]"})
			}
			now = now.Add(time.Minute)
			find("sc:2")
			if n := probes(); n != 0 {
				t.Errorf("%d searches for the first ticket's token a minute after its create, want none (the probe waits)", n)
			}
			create("sc:2")
			now = now.Add(10 * time.Minute)
			find("sc:3")
			probed := probes()
			if probed == 0 {
				t.Errorf("no search for the first ticket's token 11 minutes after its create, want the probe")
			}
			find("sc:4")
			if n := probes(); n != probed {
				t.Errorf("%d searches for the first ticket's token, want %d: the probe runs once a process", n, probed)
			}
			got := logs.String()
			if tc.wholeOnly {
				if !strings.Contains(got, "level=ERROR") || !strings.Contains(got, token) || !strings.Contains(got, "ticket="+first.ID) ||
					!strings.Contains(got, "duplicate ticket") {
					t.Errorf("logs = %q, want an error naming ticket %s, its token %s and the duplicates", got, first.ID, token)
				}
			} else if got != "" {
				t.Errorf("logs = %q, want nothing above debug", got)
			}
		})
	}
}

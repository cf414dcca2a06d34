package state

import (
	"testing"
	"time"
)

// TestLeaderSessionLimits pins the timings README's "High availability
// with PostgreSQL" promises: the server ends a dead active instance's
// session after five state.lock_interval, at least 10 s (10 s with the
// default 2 s), through idle_session_timeout,
// idle_in_transaction_session_timeout and tcp_user_timeout alike, with
// the TCP keepalives giving up in about that time; and the instance sends
// PSA writes only while its session answered within half of it (2.5
// intervals, at least 5 s: 5 s with the default). A standby's takeover
// time and a deposed instance's last write both follow from these.
func TestLeaderSessionLimits(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		check       time.Duration
		boundMS     string
		idle, intvl string
		lease       time.Duration
		what        string
	}{
		{2 * time.Second, "10000", "5", "1", 5 * time.Second, "the default lock_interval"},
		{time.Second, "10000", "5", "1", 5 * time.Second, "a shorter lock_interval: at least 10 s"},
		{4 * time.Second, "20000", "10", "2", 10 * time.Second, "a longer lock_interval: five intervals"},
	} {
		got := map[string]string{}
		for _, s := range leaderSessionLimits(tc.check) {
			got[s.name] = s.value
		}
		want := map[string]string{
			"idle_session_timeout":                tc.boundMS,
			"idle_in_transaction_session_timeout": tc.boundMS,
			"tcp_user_timeout":                    tc.boundMS,
			"tcp_keepalives_idle":                 tc.idle,
			"tcp_keepalives_interval":             tc.intvl,
			"tcp_keepalives_count":                "3",
		}
		for name, v := range want {
			if got[name] != v {
				t.Errorf("%s (%s): %s = %q, want %q", tc.what, tc.check, name, got[name], v)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: settings %v, want exactly %v", tc.what, got, want)
		}
		if lease := leaseTermFor(tc.check); lease != tc.lease {
			t.Errorf("%s (%s): lease term %s, want %s", tc.what, tc.check, lease, tc.lease)
		}
	}
}

package usage

import (
	"context"
	"net/http/httptrace"
	"sync"
	"time"
)

// SentWriteGrace bounds how long a contract line write already sent to the
// PSA may go on after its pass is stopped (psa-syncd run's shutdown
// timeout, a lost leadership lock): the PSA clients' own timeout for one
// request, which ends it sooner. Cut off, such a write's intent waits for
// an operator (psa-syncd resolve) on Kaseya BMS, which cannot be read
// back, or for a re-read on the others; let finish, its outcome is
// recorded. A process manager must therefore allow the shutdown timeout
// plus this before it kills psa-syncd (TimeoutStopSec,
// terminationGracePeriodSeconds), or a rolling update in the middle of a
// pass can still cut a post.
const SentWriteGrace = 60 * time.Second

// sentWriteContext returns the context for one write of a pass whose
// context is ctx: cancelled with ctx, except that a request whose bytes
// were sent when ctx ends (httptrace's WroteRequest) is let finish, for up
// to grace; no new request starts after ctx ended (the next one's GetConn
// cancels it before anything is sent). waiting is called when a sent
// request is let go on. done releases the context's resources.
func sentWriteContext(ctx context.Context, grace time.Duration, waiting func()) (wctx context.Context, done func()) {
	wctx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	var (
		mu    sync.Mutex
		sent  bool // the request under way was written
		timer *time.Timer
	)
	trace := &httptrace.ClientTrace{
		GetConn: func(string) {
			mu.Lock()
			sent = false
			mu.Unlock()
			if ctx.Err() != nil {
				cancel(context.Cause(ctx))
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) {
			mu.Lock()
			sent = true
			mu.Unlock()
		},
	}
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !sent {
			cancel(context.Cause(ctx))
			return
		}
		waiting()
		timer = time.AfterFunc(grace, func() { cancel(context.Cause(ctx)) })
	})
	return httptrace.WithClientTrace(wctx, trace), func() {
		stop()
		mu.Lock()
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel(context.Canceled)
	}
}

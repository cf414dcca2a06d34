package rest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"

	"github.com/psa-sync/terraform-provider-psa/psa"
)

// TransportError is a failure to get a complete response: http.Client.Do
// failed, or the body was lost half way.
type TransportError struct {
	// Err is the underlying error.
	Err error
	// NotSent reports that the connection was never established, so the
	// server cannot have processed the request and even a create may be
	// sent again.
	NotSent bool
}

// NewTransportError wraps an error of http.Client.Do, setting NotSent when
// dialing failed. It redacts, in place, the URL that http.Client.Do's
// *url.Error quotes, as RedactURL does: its query may hold search filters
// or customer names, which error messages and logs do not show.
func NewTransportError(err error) *TransportError {
	if ue, ok := err.(*url.Error); ok {
		if u, perr := url.Parse(ue.URL); perr == nil {
			ue.URL = RedactURL(u)
		} else {
			ue.URL = ""
		}
	}
	return &TransportError{Err: err, NotSent: notSent(err)}
}

// Error returns the underlying error's message.
func (e *TransportError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *TransportError) Unwrap() error { return e.Err }

// notSent reports whether err happened before any byte of the request could
// reach the server (dialing failed).
func notSent(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// NotProcessed reports whether err, the failure of one attempt of a
// request, shows that the server did not process it: the connection was
// never made (TransportError.NotSent), or the server throttled it
// (psa.ErrRateLimited), which the PSAs do before any work.
func NotProcessed(err error) bool {
	var te *TransportError
	if errors.As(err, &te) {
		return te.NotSent
	}
	return errors.Is(err, psa.ErrRateLimited)
}

// UnprocessedError is the failure of a request none of whose attempts
// the server processed (NotProcessed held for each): a write that failed
// so was not applied. The clients' Do return it so.
type UnprocessedError struct{ Err error }

// Error returns the underlying error's message.
func (e *UnprocessedError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error.
func (e *UnprocessedError) Unwrap() error { return e.Err }

// Unprocessed returns err, the last failure of a request, as an
// *UnprocessedError unless processed (an attempt may have been processed).
func Unprocessed(err error, processed bool) error {
	if processed || err == nil {
		return err
	}
	return &UnprocessedError{Err: err}
}

// WasUnprocessed reports whether err is the failure of a request that the
// server did not process at any attempt (UnprocessedError).
func WasUnprocessed(err error) bool {
	var ue *UnprocessedError
	return errors.As(err, &ue)
}

// RedactURL returns u without its query string, which may hold search
// filters or customer names, and without user info. It is what error
// messages and logs show of a request; credentials only travel in headers.
func RedactURL(u *url.URL) string {
	r := *u
	r.RawQuery, r.User = "", nil
	return r.String()
}

// Rewind returns a copy of req with a fresh body, to send it again. The
// error, from req.GetBody, carries no package prefix.
func Rewind(req *http.Request) (*http.Request, error) {
	nr := req.Clone(req.Context())
	if req.GetBody != nil {
		b, err := req.GetBody()
		if err != nil {
			return nil, fmt.Errorf("rewinding request body: %w", err)
		}
		nr.Body = b
	}
	return nr, nil
}

// Acquire takes a slot in each semaphore in order, waiting until one is free
// or ctx ends, and returns the function that gives them all back. A nil
// semaphore is no bound. Callers that hold several semaphores must always
// list them in the same order, so that two requests never wait for each
// other. On ctx's end the slots already taken are given back and ctx's error
// is returned.
func Acquire(ctx context.Context, sems ...chan struct{}) (release func(), err error) {
	var held []chan struct{}
	release = func() {
		for _, s := range held {
			<-s
		}
	}
	for _, s := range sems {
		if s == nil {
			continue
		}
		select {
		case s <- struct{}{}:
			held = append(held, s)
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	}
	return release, nil
}

// ReportRateLimit calls hook with err's *psa.RateLimitError, when err
// holds one and hook is set, and returns err. The clients pass every
// answer's error through it, so that a refusal they recognise by its text
// rather than by a 429 (Autotask's thread threshold may come as a 500,
// Kaseya BMS's limit inside a 200's envelope) reaches their caller's
// count too.
func ReportRateLimit(hook func(*psa.RateLimitError), err error) error {
	var rl *psa.RateLimitError
	if hook != nil && errors.As(err, &rl) {
		hook(rl)
	}
	return err
}

// Package rest holds the HTTP plumbing that the Autotask, ConnectWise and
// Kaseya BMS clients share: exponential backoff with full jitter, the
// Retry-After header, telling a request that never left from one whose
// outcome is unknown, bounded body reads, URL redaction for error messages,
// rewinding a request for a retry, concurrency slots, the throttle that
// sends one request at a time while the PSA refuses them for a limit
// (Throttle), and the caller's write gate asked before each attempt of a
// write.
//
// It makes no vendor decision. Which statuses are retried, what counts as
// throttling, how error bodies look and how errors are worded (with their
// "autotask: " style prefix) stay in each client. Errors returned here carry
// no package prefix, so that a client can wrap them with its own.
//
// One attempt of a client's retry loop, in outline:
//
//	release, err := rest.Acquire(ctx, c.sem)
//	if err != nil {
//		return nil, err
//	}
//	defer release()
//	if write {
//		// The caller's write gate (psa.WithWriteGate), for every attempt.
//		if err := rest.GateWrite(ctx); err != nil {
//			return nil, err // a *WriteRefusedError: not sent, not retried
//		}
//	}
//	hr, err := c.client.Do(req)
//	if err != nil {
//		// NotSent is true when dialing failed: even a create may be re-sent.
//		return nil, rest.NewTransportError(err)
//	}
//	defer hr.Body.Close()
//	if hr.StatusCode == http.StatusTooManyRequests {
//		wait := c.backoff.Wait(attempt, rest.RetryAfter(hr))
//		c.logger.Warn("Retrying request", "url", rest.RedactURL(req.URL), "wait", wait)
//		if err := rest.SleepContext(ctx, wait); err != nil {
//			return nil, err
//		}
//		return rest.Rewind(req) // the request to send next
//	}
//	body, err := rest.ReadBody(hr) // at most MaxBody bytes
package rest

package rest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
)

func TestNewTransportError_notSent(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close() // nothing listens there any more

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, addr, nil)
	_, err := http.DefaultClient.Do(req)
	te := NewTransportError(err)
	if !te.NotSent {
		t.Errorf("NewTransportError(%v).NotSent = false, want true for a refused connection", err)
	}
	if te.Error() != err.Error() || !errors.Is(te, err) {
		t.Errorf("TransportError = %q, want the wrapped %q", te, err)
	}
	var op *net.OpError
	if !errors.As(te, &op) {
		t.Errorf("errors.As(TransportError, *net.OpError) = false, want true")
	}
}

func TestNewTransportError_sent(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		io.ErrUnexpectedEOF,
		&net.OpError{Op: "read", Err: errors.New("connection reset by peer")},
		&url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "write", Err: errors.New("broken pipe")}},
	} {
		if te := NewTransportError(err); te.NotSent {
			t.Errorf("NewTransportError(%v).NotSent = true, want false", err)
		}
	}
	dial := &url.Error{Op: "Post", URL: "http://x", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
	if te := NewTransportError(dial); !te.NotSent {
		t.Errorf("NewTransportError(%v).NotSent = false, want true", dial)
	}
}

func TestNewTransportError_redactsURL(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.URL
	srv.Close()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, addr+"/v4_6_release/apis/3.0/company/companies?conditions=name%3D%22Acme+Ltd%22", nil)
	_, err := http.DefaultClient.Do(req)
	te := NewTransportError(err)
	if msg := te.Error(); strings.Contains(msg, "Acme") || strings.Contains(msg, "conditions") || !strings.Contains(msg, addr+"/v4_6_release/apis/3.0/company/companies") {
		t.Errorf("TransportError = %q, want the URL without its query", msg)
	}
	if !te.NotSent {
		t.Errorf("NotSent = false after redaction, want true for a refused connection")
	}
	var ue *url.Error
	if !errors.As(te, &ue) || ue.Op != "Get" {
		t.Errorf("errors.As(TransportError, *url.Error) = %v, want the Get error", ue)
	}
}

func TestRedactURL(t *testing.T) {
	t.Parallel()
	u, _ := url.Parse("https://user:pass@api.example.com/v2/crm/accounts?name=Acme+Ltd&page=2#frag")
	if got, want := RedactURL(u), "https://api.example.com/v2/crm/accounts#frag"; got != want {
		t.Errorf("RedactURL = %q, want %q", got, want)
	}
	if u.RawQuery == "" || u.User == nil {
		t.Errorf("RedactURL changed its argument: %v", u)
	}
}

func TestRewind(t *testing.T) {
	t.Parallel()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, "http://example.com/x", strings.NewReader("body"))
	if _, err := io.ReadAll(req.Body); err != nil {
		t.Fatal(err)
	}
	nr, err := Rewind(req)
	if err != nil {
		t.Fatalf("Rewind: %v", err)
	}
	if b, _ := io.ReadAll(nr.Body); string(b) != "body" {
		t.Errorf("rewound body = %q, want %q", b, "body")
	}
	if nr == req {
		t.Error("Rewind returned the same request, want a copy")
	}

	boom := errors.New("boom")
	req.GetBody = func() (io.ReadCloser, error) { return nil, boom }
	if _, err := Rewind(req); !errors.Is(err, boom) || err.Error() != "rewinding request body: boom" {
		t.Errorf("Rewind with a failing GetBody = %v, want %q wrapping it", err, "rewinding request body: boom")
	}

	req, _ = http.NewRequestWithContext(t.Context(), http.MethodGet, "http://example.com/x", http.NoBody)
	req.GetBody = nil
	if nr, err := Rewind(req); err != nil || nr.Body != http.NoBody {
		t.Errorf("Rewind without GetBody = %v, %v, want the same body", nr.Body, err)
	}
}

func TestAcquire(t *testing.T) {
	t.Parallel()
	a, b := make(chan struct{}, 1), make(chan struct{}, 2)
	release, err := Acquire(t.Context(), a, nil, b)
	if err != nil {
		t.Fatalf("Acquire: %v", err)
	}
	if len(a) != 1 || len(b) != 1 {
		t.Errorf("slots in use = %d, %d, want 1, 1", len(a), len(b))
	}

	// a is full: waiting for it ends with the context, and the slot
	// already taken in b is given back.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := Acquire(ctx, b, a); err != context.Canceled {
		t.Errorf("Acquire on a full semaphore with a canceled context = %v, want context.Canceled", err)
	}
	if len(b) != 1 {
		t.Errorf("slots in use in b after a failed Acquire = %d, want 1", len(b))
	}

	release()
	if len(a) != 0 || len(b) != 0 {
		t.Errorf("slots in use after release = %d, %d, want 0, 0", len(a), len(b))
	}
	if release, err := Acquire(t.Context()); err != nil {
		t.Errorf("Acquire() = %v, want nil", err)
	} else {
		release()
	}
}

package export

import (
	"context"
	"errors"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export/s3test"
	"github.com/psa-sync/terraform-provider-psa/psa/psatest"
	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// An S3 error reads the same every time it happens: no request ids, which
// change with each request and would make psa-syncd log a store that keeps
// refusing it at every poll instead of once.
func TestS3Backend_errorTextIsStable(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := *b
	bad.client = s3.New(b.client.Options(), func(o *s3.Options) {
		o.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider("psa-sync-test", "wrong-secret", ""))
	})
	_, e1 := bad.Load(t.Context(), "")
	_, e2 := bad.Load(t.Context(), "")
	if e1 == nil || e2 == nil {
		t.Fatalf("Load with a wrong secret = %v, %v; want errors", e1, e2)
	}
	if e1.Error() != e2.Error() {
		t.Errorf("two identical failures read differently:\n%v\n%v", e1, e2)
	}
	if !strings.Contains(e1.Error(), "GetObject: S3 answered 403 Forbidden") || strings.Contains(e1.Error(), "RequestID") {
		t.Errorf("error = %q, want the operation and the status, without request ids", e1)
	}
	// S3 answers 403 also for a key that does not exist when the
	// credentials may not list the bucket: the error says so.
	if !strings.Contains(e1.Error(), "s3:ListBucket on the bucket: without it S3 answers 403 instead of 404") {
		t.Errorf("error = %q, want the hint about s3:ListBucket", e1)
	}
	if status(e1) != 403 {
		t.Errorf("status(%v) = %d, want the SDK's error still wrapped (403)", e1, status(e1))
	}
}

// An export deleted behind a Client's back between its read and its
// write is a lost race, as on a file: a change to an existing entry then
// fails with ErrNoExport, not with "does the bucket exist?".
func TestS3Backend_exportDeletedSinceRead(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(b)
	m := acme()
	if _, err := c.Update(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error { d.PutCustomer(m); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := b.client.DeleteObject(t.Context(), &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key)}); err != nil {
		t.Fatal(err)
	}
	_, err = c.UpdateExisting(t.Context(), psa.SystemAutotask, testInstance, func(d *Document) error {
		d.DeleteCustomer(m.Source, m.CustomerID)
		return nil
	})
	if !errors.Is(err, ErrNoExport) {
		t.Errorf("UpdateExisting after the export was deleted = %v, want ErrNoExport", err)
	}
}

// TestS3Backend_storeThatNeverAnswers: a store that takes the connection
// but never answers (a stalled server, a proxy holding the request) fails
// the read and the write after s3Timeout, naming the store, instead of
// hanging the plan or the apply until the CI job is killed. It sets
// s3Timeout, so it does not run in parallel.
func TestS3Backend_storeThatNeverAnswers(t *testing.T) {
	t.Setenv("AWS_ACCESS_KEY_ID", "AKIAEXAMPLE")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	defer func(d time.Duration) { s3Timeout = d }(s3Timeout)
	s3Timeout = 200 * time.Millisecond
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() { _ = ln.Close(); <-done }()
	go func() {
		// Holds every connection unanswered until the listener closes.
		defer close(done)
		var held []net.Conn
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range held {
					_ = c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	b, err := NewS3Backend(t.Context(), "s3://bucket/psa-mappings.json?region=us-east-1&use_path_style=true&endpoint=http://"+ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	_, lerr := b.Load(ctx, "")
	_, serr := b.Save(ctx, []byte("{}"), `"v1"`)
	if ctx.Err() != nil {
		t.Fatalf("the store's silence held Load and Save for 30 s: %v, %v", lerr, serr)
	}
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil || !strings.HasPrefix(err.Error(), `export "s3://bucket/psa-mappings.json`) {
			t.Errorf("%s = %v, want an error naming the store", op, err)
		}
	}
}

// TestS3Backend_errorsKeepNoCredentials: the errors of the S3 store keep
// no credential, not even deep inside (a test's failure message, a
// debugger, a reflection-based logger): the SDK's errors keep the signed
// request, whose headers hold the session token (X-Amz-Security-Token) and
// the signature. They still answer errors.As as the SDK's do. versitygw
// refuses session tokens (400 InvalidToken): an error answer as good as
// any, to a request that carried the token.
func TestS3Backend_errorsKeepNoCredentials(t *testing.T) {
	t.Parallel()
	const token = "canary-session-token-7f3a9c"
	srv := s3test.Start(t)
	b, err := NewS3Backend(t.Context(), srv.ObjectURL("ci/psa-mappings.json"))
	if err != nil {
		t.Fatal(err)
	}
	bad := *b
	bad.client = s3.New(b.client.Options(), func(o *s3.Options) {
		o.Credentials = aws.NewCredentialsCache(credentials.NewStaticCredentialsProvider(s3test.AccessKey, "wrong-secret", token))
	})
	_, lerr := bad.Load(t.Context(), "")
	_, serr := bad.Save(t.Context(), []byte("{}"), "")
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil {
			t.Fatalf("%s with a wrong secret succeeded", op)
		}
		if leaks := psatest.Leaks(err, token, "AWS4-HMAC-SHA256 Credential="); leaks != nil {
			t.Errorf("%s's error %v keeps credentials: %s", op, err, strings.Join(leaks, "; "))
		}
		var ae smithy.APIError
		var oe *smithy.OperationError
		if status(err) <= 0 || !errors.As(err, &ae) || ae.ErrorCode() == "" || !errors.As(err, &oe) {
			t.Errorf("%s's error %v: status %d, want the status, the S3 error code and the operation still found by errors.As", op, err, status(err))
		}
	}
}

// TestS3Backend_echoedCredentialsRedacted: a store or a proxy that quotes
// the request in its error answer (S3's <Message>, as some S3-compatible
// stores and proxies' error pages do) puts the session token of the AWS
// chain (X-Amz-Security-Token) and the request's signature into S3's
// message. The errors of Load and Save, even printed deep, show neither.
// It sets the AWS environment, so it does not run in parallel.
func TestS3Backend_echoedCredentialsRedacted(t *testing.T) {
	const (
		keyID  = "AKIAECHOTEST"
		secret = "echo-test-secret-key"
		token  = "canary-session-token-5e1d2b"
	)
	t.Setenv("AWS_ACCESS_KEY_ID", keyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", token)
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "none"))
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
	var signatures []string
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var echo strings.Builder
		fmt.Fprintf(&echo, "%s %s?%s\n", r.Method, r.URL.Path, r.URL.RawQuery)
		for k, vs := range r.Header {
			fmt.Fprintf(&echo, "%s: %s\n", k, strings.Join(vs, ", "))
		}
		if _, sig, ok := strings.Cut(r.Header.Get("Authorization"), "Signature="); ok {
			mu.Lock()
			signatures = append(signatures, sig)
			mu.Unlock()
		}
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprintf(w, "<Error><Code>InvalidToken</Code><Message>the token is not valid: %s</Message></Error>", html.EscapeString(echo.String()))
	}))
	t.Cleanup(srv.Close)
	b, err := NewS3Backend(t.Context(), "s3://bucket/psa-mappings.json?region=us-east-1&use_path_style=true&endpoint="+srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, lerr := b.Load(t.Context(), "")
	_, serr := b.Save(t.Context(), []byte("{}"), "")
	mu.Lock()
	defer mu.Unlock()
	if len(signatures) == 0 {
		t.Fatal("the store saw no signed request")
	}
	for op, err := range map[string]error{"Load": lerr, "Save": serr} {
		if err == nil {
			t.Fatalf("%s succeeded against a store that refuses everything", op)
		}
		if leaks := psatest.Leaks(err, append([]string{token, secret}, signatures...)...); leaks != nil {
			t.Errorf("%s's error %v shows a credential: %s", op, err, strings.Join(leaks, "; "))
		}
		// Still S3's answer: its status, code and the rest of its message.
		var ae smithy.APIError
		if !strings.Contains(err.Error(), "S3 answered 400 Bad Request: InvalidToken: the token is not valid") ||
			!strings.Contains(err.Error(), "X-Amz-Security-Token: [REDACTED]") || !errors.As(err, &ae) || ae.ErrorCode() != "InvalidToken" {
			t.Errorf("%s's error = %v, want S3's code and its message, redacted", op, err)
		}
	}
}

// TestRedactingCredentials_processOutput: a credential_process whose
// output does not parse (a warning printed before the JSON) has the SDK
// quote the output whole, secret key and session token included, in the
// error of every request. The error keeps the rest, not them.
func TestRedactingCredentials_processOutput(t *testing.T) {
	t.Parallel()
	const out = `warning: cached
{"Version": 1, "AccessKeyId": "AKIAPROCESS", "SecretAccessKey": "process-secret-key", "SessionToken":"process-session-token"}`
	inner := aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
		return aws.Credentials{}, fmt.Errorf("failed to refresh cached credentials, process provider error: parse failed of process output: %s, error: invalid character 'w'", out)
	})
	_, err := (&redactingCredentials{inner: inner, red: redact.New()}).Retrieve(t.Context())
	if err == nil || !strings.Contains(err.Error(), "parse failed of process output") || !strings.Contains(err.Error(), "AKIAPROCESS") {
		t.Fatalf("Retrieve = %v, want the SDK's error", err)
	}
	if leaks := psatest.Leaks(err, "process-secret-key", "process-session-token"); leaks != nil {
		t.Errorf("Retrieve's error %v shows a credential: %s", err, strings.Join(leaks, "; "))
	}
	// A set that was retrieved is redacted wherever it shows later.
	red := redact.New()
	p := &redactingCredentials{inner: credentials.NewStaticCredentialsProvider("AKIAOK", "ok-secret-key", "ok-session-token"), red: red}
	if _, err := p.Retrieve(t.Context()); err != nil {
		t.Fatal(err)
	}
	if got := red.String("token ok-session-token key ok-secret-key"); strings.Contains(got, "ok-") {
		t.Errorf("after Retrieve, the redactor leaves %q", got)
	}
}

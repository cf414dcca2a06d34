package export

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/logging"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// defaultS3Region is the region used when neither the URL nor the AWS
// configuration names one: S3-compatible stores accept any region, and
// us-east-1 is what they expect when they care.
const defaultS3Region = "us-east-1"

// s3Timeout bounds each request to the store, as the 60 seconds of a
// psa-syncd store's client: the SDK's own client waits for an answer
// forever, and a store that takes the connection but never answers (a
// stalled server, a proxy holding the request) would hang a plan until the
// CI job is killed. The SDK tries a request three times.
var s3Timeout = 60 * time.Second

// S3Backend keeps the export as one object in S3 or an S3-compatible store
// (Ceph RGW, Cloudflare R2, Wasabi, Backblaze B2, MinIO, versitygw, Google
// Cloud Storage's XML API). Versions are the object's ETag, and Save is a
// conditional PutObject: If-Match on the ETag read, or If-None-Match: *
// for the first write, so the store itself refuses a lost update with 412.
//
// It uses the AWS SDK for Go v2, whose default configuration is the
// standard AWS credential chain: environment variables, the shared config
// and credentials files with profiles, web identity tokens (GitHub
// Actions' and GitLab's OIDC), SSO, ECS and EC2 instance roles.
type S3Backend struct {
	client *s3.Client
	bucket string
	key    string
	url    string
	// redact holds the credentials the client last signed with (see
	// redactingCredentials), for the texts of the store's answers.
	redact *redact.Redactor

	// uncheckedWrites is conditional_writes=unchecked: Save does not check
	// that the store refuses writes whose condition fails
	// (checkConditionalWrites).
	uncheckedWrites bool
	// check is whether the store refused the check's write yet.
	check *writeCheck
}

// writeCheck records that checkConditionalWrites passed. It is shared by
// copies of an S3Backend.
type writeCheck struct {
	mu     sync.Mutex
	passed bool
}

// conditionalCheckSuffix is appended to the export's key to name the
// object that checkConditionalWrites writes once and then tries to write
// again with conditions that a store must refuse.
const conditionalCheckSuffix = ".conditional-check"

// conditionalCheckBody is the content of that object, for whoever finds it
// in the bucket.
var conditionalCheckBody = []byte("psa-sync checks with this object that the store refuses a write with If-None-Match: * to an object that exists " +
	"and one with a stale If-Match. Keeping it makes the check cost two refused writes per apply; removing it is harmless.\n")

// conditionalCheckETag is the If-Match of the check's write: an ETag that
// no version of any object has (S3's are quoted hex digests).
const conditionalCheckETag = `"psa-sync-no-such-version"`

// Ensure S3Backend satisfies Backend.
var _ Backend = (*S3Backend)(nil)

// s3Params are the query parameters an s3:// URL may carry.
var s3Params = []string{"region", "endpoint", "use_path_style", "profile", "conditional_writes"}

// NewS3Backend returns the Backend for s3://bucket/key. Query parameters:
//
//   - region: the bucket's region (default: the AWS configuration's, else
//     us-east-1);
//   - endpoint: the store's URL, for anything but AWS, e.g.
//     https://<account>.r2.cloudflarestorage.com or http://127.0.0.1:7070;
//   - use_path_style=true: address the bucket in the path instead of the
//     host name, which most self-hosted stores need;
//   - profile: the profile of the shared AWS config to use;
//   - conditional_writes=unchecked: do not check, before the first write,
//     that the store refuses If-None-Match: * on an object that exists and
//     a stale If-Match (see checkConditionalWrites),
//     for a store known to ignore it where one writer at a time is assured
//     otherwise.
//
// NewS3Backend loads the AWS configuration but does not contact the store.
// It uses the SDK's own HTTP client, which honours AWS_CA_BUNDLE and the
// shared config's ca_bundle.
func NewS3Backend(ctx context.Context, rawURL string) (*S3Backend, error) {
	return newS3Backend(ctx, rawURL, nil)
}

// newS3Backend is NewS3Backend with the SDK's messages sent to logger (see
// BackendOptions.Logger).
func newS3Backend(ctx context.Context, rawURL string, logger *slog.Logger) (*S3Backend, error) {
	loc, err := parseS3URL(rawURL)
	if err != nil {
		return nil, err
	}
	q, pathStyle, endpoint := loc.query, loc.pathStyle, loc.endpoint

	var loadOpts []func(*config.LoadOptions) error
	if r := q.Get("region"); r != "" {
		loadOpts = append(loadOpts, config.WithRegion(r))
	}
	if p := q.Get("profile"); p != "" {
		loadOpts = append(loadOpts, config.WithSharedConfigProfile(p))
	}
	red := redact.New()
	if logger != nil {
		store := Redact(rawURL)
		loadOpts = append(loadOpts, config.WithLogger(logging.LoggerFunc(func(c logging.Classification, format string, v ...any) {
			level := slog.LevelDebug
			if c == logging.Warn {
				level = slog.LevelWarn
			}
			logger.Log(context.Background(), level, red.String("AWS SDK: "+fmt.Sprintf(format, v...)), "store", store)
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("export: loading the AWS configuration for %s: %w", Redact(rawURL), err)
	}
	if cfg.Region == "" {
		cfg.Region = defaultS3Region
	}
	if cfg.Credentials != nil {
		cfg.Credentials = &redactingCredentials{inner: cfg.Credentials, red: red}
	}
	// The configuration's client carries AWS_CA_BUNDLE and ca_bundle.
	hc, ok := cfg.HTTPClient.(*awshttp.BuildableClient)
	if !ok && cfg.HTTPClient == nil {
		hc, ok = awshttp.NewBuildableClient(), true
	}
	if ok {
		cfg.HTTPClient = hc.WithTimeout(s3Timeout)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
		// Checksums only where S3 requires them: several S3-compatible
		// stores reject the CRC headers newer SDKs send by default.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3Backend{client: client, bucket: loc.bucket, key: loc.key, url: Redact(rawURL), redact: red, uncheckedWrites: loc.unchecked, check: &writeCheck{}}, nil
}

// redactingCredentials hands the credentials of the AWS chain to the
// client, and each new set to a Redactor first: the session token
// (X-Amz-Security-Token, on every request) and the secret key (never
// sent, but a credential_process's unreadable output quotes it). A
// proxy or a store that echoes the request in its error answer (S3's
// <Message>, an HTML page) then shows neither in the errors or the log.
// Credentials that are renewed (web identity, SSO, instance roles) are
// registered as they come; the Redactor keeps the sets it replaced for a
// while, for a late answer to a request signed with one.
type redactingCredentials struct {
	inner aws.CredentialsProvider
	red   *redact.Redactor

	mu   sync.Mutex
	last aws.Credentials
}

// credentialValue matches a JSON string of a credential in a
// credential_process's output, which the SDK quotes whole when it does
// not parse: the secrets of a set never registered.
var credentialValue = regexp.MustCompile(`(?i)("(?:SecretAccessKey|SessionToken)"\s*:\s*")[^"]*`)

// Retrieve implements aws.CredentialsProvider.
func (p *redactingCredentials) Retrieve(ctx context.Context) (aws.Credentials, error) {
	c, err := p.inner.Retrieve(ctx)
	if err != nil {
		text := credentialValue.ReplaceAllString(p.red.String(err.Error()), "${1}"+redact.Placeholder)
		if text == err.Error() {
			return c, err
		}
		// Without the original, whose text holds the secret.
		return c, errors.New(text)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.SessionToken != p.last.SessionToken || c.SecretAccessKey != p.last.SecretAccessKey {
		p.red.Set("aws", c.SessionToken, c.SecretAccessKey)
		p.last = c
	}
	return c, nil
}

// s3Location is a parsed s3:// URL.
type s3Location struct {
	bucket, key string
	query       url.Values
	pathStyle   bool
	endpoint    string
	// unchecked is conditional_writes=unchecked.
	unchecked bool
}

// parseS3URL checks an s3:// URL without any I/O.
func parseS3URL(rawURL string) (s3Location, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return s3Location{}, fmt.Errorf("export: invalid S3 URL %q: %w", Redact(rawURL), redact.URLError(err))
	}
	key := strings.TrimPrefix(u.Path, "/")
	if u.Host == "" || key == "" || strings.HasSuffix(key, "/") {
		return s3Location{}, fmt.Errorf("export: S3 URL %q must name a bucket and an object key: s3://bucket/path/psa-mappings.json", Redact(rawURL))
	}
	if u.User != nil {
		return s3Location{}, fmt.Errorf("export: S3 URL %q must not carry credentials, which S3 would never see: give them through the AWS environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile=, or a role)", Redact(rawURL))
	}
	q := u.Query()
	for name := range q {
		if !slices.Contains(s3Params, name) {
			return s3Location{}, fmt.Errorf("export: S3 URL %q has unknown parameter %q; known: %s", Redact(rawURL), name, strings.Join(s3Params, ", "))
		}
	}
	loc := s3Location{bucket: u.Host, key: key, query: q, endpoint: q.Get("endpoint")}
	switch v := q.Get("conditional_writes"); v {
	case "", "checked":
	case "unchecked":
		loc.unchecked = true
	default:
		return s3Location{}, fmt.Errorf("export: S3 URL %q: conditional_writes must be checked or unchecked, got %q", Redact(rawURL), v)
	}
	if v := q.Get("use_path_style"); v != "" {
		if loc.pathStyle, err = strconv.ParseBool(v); err != nil {
			return s3Location{}, fmt.Errorf("export: S3 URL %q: use_path_style must be true or false, got %q", Redact(rawURL), v)
		}
	}
	if loc.endpoint != "" {
		if e, err := url.Parse(loc.endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return s3Location{}, fmt.Errorf("export: S3 URL %q: endpoint must be an http:// or https:// URL, got %q", Redact(rawURL), Redact(loc.endpoint))
		}
		if e, _ := url.Parse(loc.endpoint); e.User != nil {
			return s3Location{}, fmt.Errorf("export: S3 URL %q: endpoint %q must not carry credentials, which the store would never see: give them through the AWS environment (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, profile=, or a role)", Redact(rawURL), Redact(loc.endpoint))
		}
	}
	return loc, nil
}

// String returns the s3:// URL.
func (b *S3Backend) String() string { return b.url }

// Endpoint returns the URL the client sends its requests to when it is not
// AWS's own: the URL's endpoint parameter, or else the endpoint of the AWS
// configuration (AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, a profile's
// endpoint_url); "" for AWS S3. Its password, if any, is redacted.
func (b *S3Backend) Endpoint() string {
	if e := aws.ToString(b.client.Options().BaseEndpoint); e != "" {
		return Redact(e)
	}
	return ""
}

// Load gets the object, conditionally on ifNoneMatch.
func (b *S3Backend) Load(ctx context.Context, ifNoneMatch string) (Blob, error) {
	in := &s3.GetObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(b.key)}
	if ifNoneMatch != "" {
		in.IfNoneMatch = aws.String(ifNoneMatch)
	}
	out, err := b.client.GetObject(ctx, in)
	switch status(err) {
	case 0:
	case http.StatusNotModified:
		return Blob{Version: ifNoneMatch}, ErrNotModified
	case http.StatusNotFound:
		return Blob{}, fmt.Errorf("%s%w (no mapping export has been written there yet, or the bucket does not exist)", prefix(b.url), fs.ErrNotExist)
	case http.StatusForbidden:
		// AWS hides whether a key exists from whoever may not list the
		// bucket: without s3:ListBucket, a missing export (before the
		// first apply) is 403, not 404.
		return Blob{}, fmt.Errorf("%sreading: %w (check the credentials, and that they have s3:ListBucket on the bucket: without it S3 answers 403 instead of 404 for an export not written yet)", prefix(b.url), s3Err(err, b.redact))
	default:
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.url), s3Err(err, b.redact))
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > MaxSize {
		return Blob{}, fmt.Errorf("%sreading: the stored export is %d bytes, larger than %d MiB, the most psa-sync reads; is the URL that of the mapping export?", prefix(b.url), n, MaxSize>>20)
	}
	data, err := readExport(out.Body)
	if err != nil {
		return Blob{}, fmt.Errorf("%sreading: %w", prefix(b.url), err)
	}
	return Blob{Data: data, Version: aws.ToString(out.ETag)}, nil
}

// Save puts the object with If-Match: ifMatch, or If-None-Match: * when
// ifMatch is empty. The first Save of a backend checks that the store
// honours both at all (checkConditionalWrites).
func (b *S3Backend) Save(ctx context.Context, data []byte, ifMatch string) (string, error) {
	if err := b.checkConditionalWrites(ctx); err != nil {
		return "", err
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(b.bucket),
		Key:           aws.String(b.key),
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/json"),
	}
	if ifMatch != "" {
		in.IfMatch = aws.String(ifMatch)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := b.client.PutObject(ctx, in)
	switch status(err) {
	case 0:
		return aws.ToString(out.ETag), nil
	case http.StatusPreconditionFailed, http.StatusConflict:
		// 409 is S3's answer when a concurrent conditional write to the
		// same key is still in progress: the same lost race as 412.
		return "", fmt.Errorf("%s%w", prefix(b.url), ErrConflict)
	case http.StatusNotFound:
		if ifMatch != "" && apiCode(err) == "NoSuchKey" {
			// The export was deleted since it was read: the same lost
			// race as 412, which the next read finds out about.
			return "", fmt.Errorf("%sthe export was deleted since it was read: %w", prefix(b.url), ErrConflict)
		}
		return "", fmt.Errorf("%swriting: %w (does the bucket exist?)", prefix(b.url), s3Err(err, b.redact))
	case http.StatusForbidden:
		// Most often a role that may read the export but not write it:
		// the plan's role given to the apply, or a policy without this
		// key.
		return "", fmt.Errorf("%swriting: %w (check the credentials: this write needs s3:PutObject on s3://%s/%s)",
			prefix(b.url), s3Err(err, b.redact), b.bucket, b.key)
	default:
		return "", fmt.Errorf("%swriting: %w", prefix(b.url), s3Err(err, b.redact))
	}
}

// checkConditionalWrites checks, once per backend (per provider process
// and store; psa-syncd only reads an S3 export), that the store refuses a
// write with If-None-Match: * to an object that exists, and one whose
// If-Match names no version of it: Save's compare-and-swap rests on both
// (If-None-Match: * on the first write of an export, If-Match on every
// other), and a store that ignores either (some S3-compatible ones) would
// let two overlapping applies each write the export without an error, the
// second dropping the first one's changes. A plan reads alone and checks
// nothing. AWS S3 itself (no endpoint configured) is not checked.
//
// The writes go to the object conditionalCheckSuffix names beside the
// export, never the export itself, which a store that ignores the
// conditions would overwrite. That object is kept, so that the check costs
// two PUTs, both refused (412) by a store that honours the conditions: a
// write with If-None-Match: *, then one with a stale If-Match. Only the
// first check of a store writes it, with its first PUT, and then asks with
// a third whether If-None-Match: * is refused now that it exists. A store
// that takes a write it must refuse fails the write, with an error naming
// the store's endpoint, the condition and what to do, and the object is
// removed as far as the credentials may, so that the next check starts
// anew. An error of the store (403 without s3:PutObject on that key, 5xx)
// fails the write as well, and the next write checks again.
func (b *S3Backend) checkConditionalWrites(ctx context.Context) error {
	store := b.Endpoint()
	if b.uncheckedWrites || store == "" {
		// AWS S3 itself honours If-Match and If-None-Match on PutObject
		// (since November 2024), so its users' policies need not let
		// the check write beside the export.
		return nil
	}
	b.check.mu.Lock()
	defer b.check.mu.Unlock()
	if b.check.passed {
		return nil
	}
	key := b.key + conditionalCheckSuffix
	put := func(in *s3.PutObjectInput) error {
		in.Bucket, in.Key = aws.String(b.bucket), aws.String(key)
		in.Body, in.ContentLength = bytes.NewReader(conditionalCheckBody), aws.Int64(int64(len(conditionalCheckBody)))
		in.ContentType = aws.String("text/plain")
		_, err := b.client.PutObject(ctx, in)
		return err
	}
	refused := func(err error) bool {
		code := status(err)
		return code == http.StatusPreconditionFailed || code == http.StatusConflict
	}
	failed := func(condition, what string, err error) error {
		return fmt.Errorf("%schecking that the store at %s refuses a write with %s (a write of s3://%s/%s %s; the credentials need s3:PutObject on that key, "+
			"or add conditional_writes=unchecked to the S3 URL to skip the check): %w", prefix(b.url), store, condition, b.bucket, key, what, s3Err(err, b.redact))
	}
	ignored := func(condition, refusal string) error {
		_, derr := b.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(b.bucket), Key: aws.String(key)})
		left := ""
		if derr != nil {
			left = fmt.Sprintf(" (the object s3://%s/%s it wrote could not be removed: %v)", b.bucket, key, s3Err(derr, b.redact))
		}
		return fmt.Errorf("%sthe store at %s ignores %s: it wrote s3://%s/%s %s, where it must refuse with 412 Precondition Failed%s. "+
			"On such a store two overlapping applies each replace the export without an error, and the second drops the first one's changes, "+
			"so the export is not written. Use a store that honours If-Match and If-None-Match on PUT (AWS S3, Cloudflare R2 and versitygw do), "+
			"or, where only one writer at a time is assured otherwise (CI runs one apply at a time), add conditional_writes=unchecked to the S3 URL",
			prefix(b.url), store, condition, b.bucket, key, refusal, left)
	}

	// If-None-Match: * creates the object where it is missing (the first
	// check of this store, or one after a failed check) and must be
	// refused where it exists.
	err := put(&s3.PutObjectInput{IfNoneMatch: aws.String("*")})
	created := err == nil
	if !created && !refused(err) {
		return failed("If-None-Match: *", "that creates it where it is missing", err)
	}
	// The object exists now: a stale If-Match must be refused (a store
	// that answers 404 NoSuchKey has lost it, and checks nothing).
	switch err := put(&s3.PutObjectInput{IfMatch: aws.String(conditionalCheckETag)}); {
	case err == nil:
		return ignored("If-Match", "with an If-Match that names no version of it")
	case !refused(err):
		return failed("a stale If-Match", "with an If-Match that names no version of it", err)
	}
	if created {
		switch err := put(&s3.PutObjectInput{IfNoneMatch: aws.String("*")}); {
		case err == nil:
			return ignored("If-None-Match: *", "with If-None-Match: * while it existed")
		case !refused(err):
			return failed("If-None-Match: *", "while it exists", err)
		}
	}
	b.check.passed = true
	return nil
}

// s3Error is an error answer of S3 whose text names the HTTP status and
// S3's error code and message, but not the request ids of the SDK's text,
// which change with every request: psa-syncd logs a store that keeps
// failing the same way once, by comparing the texts.
type s3Error struct {
	err  error
	text string
}

func (e *s3Error) Error() string { return e.text }
func (e *s3Error) Unwrap() error { return e.err }

// s3Err returns err, an error of the S3 client, as an *s3Error when S3
// answered it; other errors (a network error) are returned unchanged
// unless their text holds a credential.
//
// The *s3Error wraps a copy of the SDK's error that keeps the operation,
// the status, the request id and S3's error code, so that errors.As finds
// them as in the SDK's, but not the answer's request: the SDK's error
// keeps the signed request, whose headers hold the signature and the
// session token (X-Amz-Security-Token), which a deep print of the error
// (a test's failure message, a debugger) would show. S3's message is
// the server's text: a proxy or a store may quote the request in it, so
// it goes through red (the credentials the client signed with) and loses
// any request signature, in the text and in the copy.
func s3Err(err error, red *redact.Redactor) error {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() <= 0 {
		if err != nil && red.Contains(err.Error()) {
			text := red.String(err.Error())
			return &s3Error{err: errors.New(text), text: text}
		}
		return err
	}
	clean := func(s string) string { return signature.ReplaceAllString(red.String(s), "${1}"+redact.Placeholder) }
	code := re.HTTPStatusCode()
	text := fmt.Sprintf("S3 answered %d %s", code, http.StatusText(code))
	// The API error is S3's answer, decoded: strings only. Without one
	// (an answer S3's error codes do not describe), the SDK's text.
	cause := errors.New(clean(re.Err.Error()))
	var ae smithy.APIError
	if errors.As(err, &ae) {
		msg := clean(ae.ErrorMessage())
		cause = &smithy.GenericAPIError{Code: ae.ErrorCode(), Message: msg, Fault: ae.ErrorFault()}
		if c := ae.ErrorCode(); c != "" {
			text += ": " + clean(c)
		}
		if msg != "" {
			text += ": " + msg
		}
	}
	copied := &awshttp.ResponseError{ResponseError: &smithyhttp.ResponseError{
		Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code, Status: fmt.Sprintf("%d %s", code, http.StatusText(code))}},
		Err:      cause,
	}}
	var rid interface{ ServiceRequestID() string }
	if errors.As(err, &rid) {
		copied.RequestID = rid.ServiceRequestID()
	}
	var wrapped error = copied
	var oe *smithy.OperationError
	if errors.As(err, &oe) {
		text = oe.Operation() + ": " + text
		wrapped = &smithy.OperationError{ServiceID: oe.Service(), OperationName: oe.Operation(), Err: copied}
	}
	return &s3Error{err: wrapped, text: text}
}

// signature matches a SigV4 signature, in an Authorization header or a
// presigned URL that an answer quotes: a GET signed with it can be sent
// again for minutes.
var signature = regexp.MustCompile(`(?i)((?:Signature=|X-Amz-Signature=))[0-9a-f]{64}`)

// apiCode returns S3's error code of err ("NoSuchKey"), or "".
func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// status returns the HTTP status of an SDK error, -1 for an error without
// one (a network error), and 0 for no error.
func status(err error) int {
	if err == nil {
		return 0
	}
	var re *smithyhttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() > 0 {
		return re.HTTPStatusCode()
	}
	return -1
}

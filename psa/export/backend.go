package export

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa/redact"
)

// ErrConflict is returned by Backend.Save when the stored export is no
// longer the version the write was based on: another writer saved first.
var ErrConflict = errors.New("export: the export was changed by another writer")

// ErrNotModified is returned by Backend.Load when the stored version is the
// one the caller already has.
var ErrNotModified = errors.New("export: not modified")

// MaxSize bounds what a store's Load reads: far above any real
// export (a thousand mappings are about 250 KiB), and what psa-syncd's PUT
// /api/v1/export accepts. A larger object (a wrong key, a runaway writer)
// is refused rather than read into memory on every poll.
const MaxSize = 64 << 20

// readExport reads a stored export of at most MaxSize bytes; a
// longer one is an error saying so, not an export cut short, which would
// be reported as half-written JSON.
func readExport(r io.Reader) ([]byte, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("the stored export is larger than %d MiB, the most psa-sync reads; is the URL that of the mapping export?", MaxSize>>20)
	}
	return data, nil
}

// Blob is one stored version of the export: its bytes and the version the
// store gave it.
type Blob struct {
	Data []byte
	// Version identifies Data in the store: a content digest for a file,
	// the object's ETag on S3, the revision on psa-syncd. It is opaque to
	// callers and only compared for equality.
	Version string
}

// Backend is a place where the export is kept: a file (FileBackend), an
// S3-compatible bucket (S3Backend) or psa-syncd (HTTPBackend). It moves
// bytes and versions only; Client decodes, validates and updates.
//
// Implementations are safe for concurrent use. They never cache: every
// Load and Save asks the store.
type Backend interface {
	// Load returns the stored export. It returns an error matching
	// fs.ErrNotExist when the store holds none, and ErrNotModified when
	// ifNoneMatch is not empty and equals the stored version.
	Load(ctx context.Context, ifNoneMatch string) (Blob, error)
	// Save stores data if the stored version is still ifMatch, or, when
	// ifMatch is empty, only if the store holds no export yet. It returns
	// the new version, or an error matching ErrConflict when the condition
	// failed and nothing was stored.
	Save(ctx context.Context, data []byte, ifMatch string) (version string, err error)
	// String names the store in messages: a path or URL without
	// credentials.
	String() string
}

// Store kinds, as OpenBackend recognises them from the URL.
const (
	KindFile     = "file"
	KindS3       = "s3"
	KindPSASyncd = "psa-syncd"
)

// BackendOptions are the settings of a store that do not belong in its URL.
type BackendOptions struct {
	// Token is the bearer token of a psa-syncd store (or the basic
	// password of its URL's user, see URLUser).
	Token string
	// HTTPClient is used for psa-syncd stores; nil means a client with a
	// 60-second timeout. S3 stores use the AWS SDK's client, which honours
	// AWS_CA_BUNDLE, with the same timeout for each request.
	HTTPClient *http.Client
	// URLUser lets a psa-syncd store's URL name a user
	// (https://automation@host:9810, no password): Token is then sent as
	// that user's basic password, for a listener with basic_auth_users
	// (see NewHTTPReader). The provider sets it; psa-syncd's own
	// export_url takes no user.
	URLUser bool
	// Logger receives the AWS SDK's own messages for S3 stores (a warning
	// such as "falling back to IMDSv1" at warn, anything else at debug),
	// so that they share the caller's log format; nil leaves them to the
	// SDK, which prints them to standard error.
	Logger *slog.Logger
}

// Kind returns the kind of store rawURL names: KindFile for a path or a
// file:// URL, KindS3 for s3://, KindPSASyncd for http:// and https://.
func Kind(rawURL string) (string, error) {
	scheme, _, found := strings.Cut(rawURL, "://")
	if !found {
		// A path, unless it is a value meant for something else, which
		// would otherwise become a file of that name on a CI runner the
		// daemon never sees.
		switch {
		case strings.EqualFold(strings.TrimSpace(rawURL), "self"):
			return "", errors.New(`export: "self" is psa-syncd's export_url, where psa-syncd keeps the export itself: give the provider that psa-syncd's http(s):// URL, with its API token as export_token (a file named self is ./self)`)
		case hostPort.MatchString(rawURL):
			return "", fmt.Errorf("export: %q is a host and port, not a path: psa-syncd's store is its http(s):// URL, e.g. https://%s (a file of that name is ./%s)", rawURL, rawURL, rawURL)
		}
		if err := CheckSchemeSlashes(rawURL); err != nil {
			return "", err
		}
		return KindFile, nil
	}
	switch strings.ToLower(scheme) {
	case "file":
		return KindFile, nil
	case "s3":
		return KindS3, nil
	case "http", "https":
		return KindPSASyncd, nil
	default:
		return "", fmt.Errorf("export: unsupported export URL scheme %q in %q: use a path, file://, s3:// or the http(s):// URL of psa-syncd", scheme, Redact(rawURL))
	}
}

// CheckSchemeSlashes refuses a file path that starts with a store's scheme
// without the "//" after it (https:/user:password@host), quoting it through
// Redact. Taken as a file's name, such a URL would be shown whole, password
// included, wherever the store is named: messages, psa-syncd's API, the
// Terraform state (psa_integration's id). Kind applies it to a value
// without "://"; psa-syncd applies it to export_path too.
func CheckSchemeSlashes(path string) error {
	if !slashShort.MatchString(path) {
		return nil
	}
	return fmt.Errorf(`export: %q lacks the "//" after its scheme: write https://host:port, s3://bucket/key or file:///path `+
		"(a file's path does not start with a URL scheme)", Redact(path))
}

// slashShort matches a store's scheme without the "//" that follows it.
var slashShort = regexp.MustCompile(`(?i)^(https?|s3|file):`)

// hostPort matches a host and port written without a scheme.
var hostPort = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.-]*:[0-9]{1,5}$`)

// CheckURL checks the form of an export URL without any I/O: what
// OpenBackend would refuse except for a failure to load the AWS
// configuration.
func CheckURL(rawURL string) error {
	kind, err := Kind(rawURL)
	if err != nil {
		return err
	}
	switch kind {
	case KindS3:
		_, err = parseS3URL(rawURL)
	case KindPSASyncd:
		_, err = NewHTTPBackend(rawURL, "", nil)
	default:
		_, err = OpenBackend(context.Background(), rawURL, BackendOptions{})
	}
	return err
}

// CheckUserURL is CheckURL for a URL opened with BackendOptions.URLUser: a
// psa-syncd store's URL may name a user (https://ci-plan@host:9810), never
// a password.
func CheckUserURL(rawURL string) error {
	if kind, err := Kind(rawURL); err == nil && kind == KindPSASyncd {
		_, err = NewHTTPReader(rawURL, "", nil)
		return err
	}
	return CheckURL(rawURL)
}

// URLUser returns the user a psa-syncd store's URL names, "" for none.
func URLUser(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil || u.User == nil {
		return ""
	}
	return u.User.Username()
}

// OpenBackend returns the Backend for the store named by rawURL:
//
//   - a path or file:///path: the export file, written atomically under a
//     lock (see Store);
//   - s3://bucket/key?region=…&endpoint=…&use_path_style=true&profile=…:
//     an object in S3 or an S3-compatible store (see NewS3Backend);
//   - http(s)://host:port: psa-syncd's /api/v1/export (see NewHTTPBackend).
//
// It does not contact the store.
func OpenBackend(ctx context.Context, rawURL string, o BackendOptions) (Backend, error) {
	kind, err := Kind(rawURL)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindS3:
		return newS3Backend(ctx, rawURL, o.Logger)
	case KindPSASyncd:
		if o.URLUser {
			return NewHTTPReader(rawURL, o.Token, o.HTTPClient)
		}
		return NewHTTPBackend(rawURL, o.Token, o.HTTPClient)
	}
	path := rawURL
	if strings.Contains(rawURL, "://") {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("export: invalid file URL %q: %w", Redact(rawURL), redact.URLError(err))
		}
		if u.Host != "" && u.Host != "localhost" {
			return nil, fmt.Errorf("export: file URL %q names host %q: only local files are supported (file:///path)", Redact(rawURL), u.Host)
		}
		path = u.Path
	}
	if path == "" {
		return nil, errors.New("export: the export URL is empty")
	}
	return NewFileBackend(filepath.Clean(path)), nil
}

// Redact returns rawURL for messages and logs: the password of any user
// information replaced by "xxxxx", and so the password of a URL in a query
// parameter (an S3 URL's endpoint) and any query parameter named like a
// secret. A value that does not parse as a URL is never returned as it is
// (see redact.URL). S3 credentials normally come from the AWS credential
// chain and the psa-syncd token from its own setting, but an operator may
// still write them into the URL.
func Redact(rawURL string) string {
	return redact.URL(rawURL)
}

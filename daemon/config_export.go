package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// ExportSelf is the export_url that makes psa-syncd itself the export
// store: the Terraform provider writes to its PUT /api/v1/export, and every
// accepted version is kept in the state database.
const ExportSelf = "self"

// Export store kinds, as ExportStore reports them.
const (
	StoreFile   = export.KindFile
	StoreS3     = export.KindS3
	StoreRemote = export.KindPSASyncd // another psa-syncd, read over HTTP
	StoreSelf   = ExportSelf
)

// validateExport checks export_path and export_url and moves a file URL to
// ExportPath.
func (c *Config) validateExport() error {
	switch {
	case c.ExportPath != "" && c.ExportURL != "":
		return errors.New("export_path and export_url are mutually exclusive: give the store as export_url only")
	case c.ExportPath == "" && c.ExportURL == "":
		return errors.New("export_path or export_url is required: where the Terraform provider writes the mapping export")
	case strings.Contains(c.ExportPath, "://"):
		// It would be read as a file of that name, which never appears.
		return fmt.Errorf("export_path: %q is a URL, not a file path: give it as export_url", export.Redact(c.ExportPath))
	case c.ExportPath != "":
		// One slash short (https:/user:password@host), it would be a
		// file of that name, which every message and the API would show.
		if err := export.CheckSchemeSlashes(c.ExportPath); err != nil {
			return fmt.Errorf("export_path: %w; a URL is given as export_url", err)
		}
		return nil
	case c.ExportURL == "" || c.ExportURL == ExportSelf:
		return nil
	}
	if err := export.CheckUserURL(c.ExportURL); err != nil {
		return fmt.Errorf("export_url: %w", err)
	}
	if kind, _ := export.Kind(c.ExportURL); kind == export.KindFile {
		b, _ := export.OpenBackend(context.Background(), c.ExportURL, export.BackendOptions{}) // checked above
		c.ExportPath, c.ExportURL = b.String(), ""
	}
	return nil
}

// validateExportToken resolves export_token, which only another psa-syncd
// as the store is sent, and which a user in its URL needs: that listener
// (basic_auth_users) asks every request for the user's password.
func (c *Config) validateExportToken(abs func(string) string, getenv func(string) string) error {
	remote := c.ExportStore() == StoreRemote
	if !remote && (c.ExportToken != "" || c.ExportTokenFile != "") {
		return fmt.Errorf("export_token: only for an export_url that is another psa-syncd's http(s):// URL, not %s", c.ExportName())
	}
	if !remote {
		// PSA_EXPORT_TOKEN may be set for the provider in the same
		// environment (a CI job); it is not this store's.
		return nil
	}
	tok, err := resolveSecret(c.ExportToken, c.ExportTokenFile, abs, "PSA_EXPORT_TOKEN", getenv)
	if err != nil {
		return fmt.Errorf("export_token_file: %w", err)
	}
	c.ExportToken, c.ExportTokenFile = tok, abs(c.ExportTokenFile)
	if user := export.URLUser(c.ExportURL); user != "" && tok == "" {
		return fmt.Errorf("export_url names user %q, for a psa-syncd listener with basic_auth_users, but no export_token "+
			"(or export_token_file or PSA_EXPORT_TOKEN) gives that user's password", user)
	}
	return nil
}

// ExportStore returns the kind of store the export is read from:
// StoreFile, StoreS3, StoreRemote or StoreSelf.
func (c *Config) ExportStore() string {
	switch c.ExportURL {
	case ExportSelf:
		return StoreSelf
	case "":
		return StoreFile
	}
	kind, _ := export.Kind(c.ExportURL) // validated by Load
	return kind
}

// ExportName names the export store in messages and logs: the file's path,
// or the URL without credentials.
func (c *Config) ExportName() string {
	switch c.ExportStore() {
	case StoreFile:
		return c.ExportPath
	case StoreSelf:
		return "psa-syncd's state database (export_url: self)"
	}
	return export.Redact(c.ExportURL)
}

// OpenExportBackend opens the store of an export_url that is S3 or another
// psa-syncd; hc is its HTTP client, and logger (nil for the SDK's default,
// standard error) receives the AWS SDK's messages for S3.
func (c *Config) OpenExportBackend(ctx context.Context, hc *http.Client, logger *slog.Logger) (export.Backend, error) {
	switch c.ExportStore() {
	case StoreFile:
		return export.NewFileBackend(c.ExportPath), nil
	case StoreSelf:
		return nil, errors.New("daemon: export_url is self: the export is in the state database")
	}
	b, err := export.OpenBackend(ctx, c.ExportURL, export.BackendOptions{HTTPClient: hc, Logger: logger, Token: string(c.ExportToken), URLUser: true})
	if err != nil {
		return nil, fmt.Errorf("daemon: export_url: %w", err)
	}
	return b, nil
}

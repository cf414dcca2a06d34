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
	case c.ExportURL == "" || c.ExportURL == ExportSelf:
		return nil
	}
	if err := export.CheckURL(c.ExportURL); err != nil {
		return fmt.Errorf("export_url: %w", err)
	}
	if kind, _ := export.Kind(c.ExportURL); kind == export.KindFile {
		b, _ := export.OpenBackend(context.Background(), c.ExportURL, export.BackendOptions{}) // checked above
		c.ExportPath, c.ExportURL = b.String(), ""
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
	b, err := export.OpenBackend(ctx, c.ExportURL, export.BackendOptions{HTTPClient: hc, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("daemon: export_url: %w", err)
	}
	return b, nil
}

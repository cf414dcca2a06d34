// Package provider implements the psa Terraform provider.
package provider

import (
	"context"

	"github.com/hashicorp/terraform-plugin-framework/datasource"
	"github.com/hashicorp/terraform-plugin-framework/provider"
	"github.com/hashicorp/terraform-plugin-framework/provider/schema"
	"github.com/hashicorp/terraform-plugin-framework/resource"
)

// Ensure psaProvider satisfies the provider interface.
var _ provider.Provider = &psaProvider{}

// psaProvider is the psa provider.
type psaProvider struct {
	version string
}

// New returns a function that builds the provider for the given version.
func New(version string) func() provider.Provider {
	return func() provider.Provider {
		return &psaProvider{version: version}
	}
}

func (p *psaProvider) Metadata(_ context.Context, _ provider.MetadataRequest, resp *provider.MetadataResponse) {
	resp.TypeName = "psa"
	resp.Version = p.version
}

func (p *psaProvider) Schema(_ context.Context, _ provider.SchemaRequest, resp *provider.SchemaResponse) {
	resp.Schema = schema.Schema{
		MarkdownDescription: "Manages PSA billing services and the mapping of vendor products and customers to them.",
	}
}

func (p *psaProvider) Configure(context.Context, provider.ConfigureRequest, *provider.ConfigureResponse) {}

func (p *psaProvider) Resources(context.Context) []func() resource.Resource { return nil }

func (p *psaProvider) DataSources(context.Context) []func() datasource.DataSource { return nil }

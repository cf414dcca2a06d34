// Package provider implements the psa Terraform provider with
// terraform-plugin-framework.
//
// The provider talks to a PSA (Autotask, ConnectWise PSA or Kaseya BMS,
// chosen by the one PSA block of the provider configuration) through a
// psa.Backend built by backends.New from that block, and writes product mappings,
// customer mappings and the integration settings to the mapping export
// through export.Store. Resources and data sources receive both in one
// *providerData from Configure.
//
// main.go serves it through NewProtocol6, the framework's server with each
// call's context let go when the call returns:
//
//	provider.TuneGarbageCollector(os.Getenv)
//	tf6server.Serve("registry.terraform.io/psa-sync/psa", provider.NewProtocol6(provider.New(version)()))
//
// Tests run it in-process against a psatest simulator of each PSA; the
// acceptance tests loop over testSystems, and a per-system testEnv seeds the
// simulator and writes the provider block:
//
//	resource.UnitTest(t, resource.TestCase{
//		ProtoV6ProviderFactories: map[string]func() (tfprotov6.ProviderServer, error){
//			"psa": func() (tfprotov6.ProviderServer, error) {
//				return provider.NewProtocol6(provider.New("test")())(), nil
//			},
//		},
//		Steps: ...,
//	})
package provider

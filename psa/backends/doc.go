// Package backends builds a psa.Backend for the PSA system named in a
// Config. It is the only package that knows every system: an explicit map
// from psa.System to a constructor, with no init-time registration (as
// blackbox_exporter maps prober names to probers).
//
// Each system has its own block in Config: Autotask, ConnectWise (PSA,
// formerly Manage) and KaseyaBMS.
//
//	b, err := backends.New(backends.Config{
//		System: psa.SystemAutotask,
//		Autotask: &backends.AutotaskConfig{
//			Username:        "api@msp.example",
//			Secret:          secret,
//			IntegrationCode: code,
//		},
//		MaxRetries: backends.DefaultMaxRetries,
//	})
//	if err != nil {
//		return err
//	}
//	if err := b.Ping(ctx); err != nil { // discovers the zone, checks credentials
//		return err
//	}
//	fmt.Println("connected to", b.Instance())
package backends

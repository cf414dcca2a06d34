package main

import (
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-go/tfprotov6/tf6server"

	"github.com/psa-sync/terraform-provider-psa/provider"
)

// version is set by goreleaser or `go build -ldflags "-X main.version=..."`.
var version = "dev"

func main() {
	var debug bool

	flag.BoolVar(&debug, "debug", false, "set to true to run the provider with support for debuggers like delve")
	flag.Parse()

	// Terraform shows the provider's logs only when asked to; see
	// SilenceDiscardedLogs. With -debug they go to this process's stderr.
	if !debug {
		if err := provider.SilenceDiscardedLogs(os.Getenv, os.Setenv); err != nil {
			log.Fatal(err.Error())
		}
	}

	provider.TuneGarbageCollector(os.Getenv)

	// providerserver.Serve, but with the provider's own server (see
	// provider.NewProtocol6).
	var opts []tf6server.ServeOpt
	if debug {
		opts = append(opts, tf6server.WithManagedDebug())
	}

	err := tf6server.Serve("registry.terraform.io/psa-sync/psa", provider.NewProtocol6(provider.New(version)()), opts...)
	if err != nil {
		log.Fatal(err.Error())
	}
}

package main

import (
	"context"
	"flag"
	"log"
	"os"

	"github.com/hashicorp/terraform-plugin-framework/providerserver"

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

	opts := providerserver.ServeOpts{
		Address: "registry.terraform.io/psa-sync/psa",
		Debug:   debug,
	}

	err := providerserver.Serve(context.Background(), provider.New(version), opts)
	if err != nil {
		log.Fatal(err.Error())
	}
}

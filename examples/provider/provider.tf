terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

# The secret and integration code come from variables (or the
# PSA_AUTOTASK_SECRET and PSA_AUTOTASK_INTEGRATION_CODE environment
# variables), never from the configuration itself.
variable "autotask_secret" {
  type      = string
  sensitive = true
}

variable "autotask_integration_code" {
  type      = string
  sensitive = true
}

provider "psa" {
  # psa-syncd reads the mappings from this file; commit it next to the
  # configuration so that changes to billing are reviewed in pull requests.
  export_path = "psa-mappings.json"

  autotask {
    username         = "api@msp.example"
    secret           = var.autotask_secret
    integration_code = var.autotask_integration_code

    # Optional: the tenant's zone, which skips the zone lookup.
    base_url = "https://webservices5.autotask.net/ATServicesRest/"
  }
}

terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

# The secret and integration code come from variables, never from the
# configuration itself. Left unset (null), the provider reads the
# PSA_AUTOTASK_SECRET and PSA_AUTOTASK_INTEGRATION_CODE environment
# variables instead: the default keeps `terraform plan -input=false` in CI
# from failing for a variable that the environment already covers.
variable "autotask_secret" {
  type      = string
  sensitive = true
  default   = null
}

variable "autotask_integration_code" {
  type      = string
  sensitive = true
  default   = null
}

provider "psa" {
  # Where the mapping export lives, for this provider and for psa-syncd:
  # here an S3 bucket that the CI runner applying this configuration and
  # psa-syncd both reach (credentials from the AWS chain). A local path
  # works on one machine; https://psa-syncd.example:9810 (with export_token)
  # makes psa-syncd itself the store. See the CI workflow guide.
  export_url = "s3://msp-psa-sync/psa-mappings.json?region=eu-central-1"

  autotask {
    username         = "api@msp.example"
    secret           = var.autotask_secret
    integration_code = var.autotask_integration_code

    # Optional: the tenant's zone, which skips the zone lookup.
    base_url = "https://webservices5.autotask.net/ATServicesRest/"
  }
}

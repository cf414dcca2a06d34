terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

# ConnectWise PSA (Manage). The keys come from variables, never from the
# configuration itself. Left unset (null), the provider reads the
# PSA_CONNECTWISE_PUBLIC_KEY and PSA_CONNECTWISE_PRIVATE_KEY environment
# variables instead.
variable "connectwise_public_key" {
  type      = string
  sensitive = true
  default   = null
}

variable "connectwise_private_key" {
  type      = string
  sensitive = true
  default   = null
}

provider "psa" {
  export_path = "psa-mappings.json"

  connectwise {
    site        = "api-na.myconnectwise.net"
    company_id  = "msp"
    public_key  = var.connectwise_public_key
    private_key = var.connectwise_private_key

    # The integration's clientId from the ConnectWise developer portal. It
    # identifies the integration, not the member. The provider treats it as
    # sensitive, like the keys; a literal works as well as a variable.
    client_id = "00000000-0000-4000-8000-000000000000"

    # The codebase is discovered through /login/companyinfo and
    # rediscovered when a hosted upgrade moves it; pin it only when
    # discovery is blocked:
    # codebase = "v2025_1/"

    # An on-premises server older than the API version the provider asks
    # for refuses every request and names its own version; give it here:
    # api_version = "2024.1"
  }
}

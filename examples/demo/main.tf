# The psa-sync demo: bill Sophos usage on Autotask contracts.
#
# examples/demo/run.sh (make demo) applies this against the Autotask
# simulator with a freshly built provider; every input comes from the
# variables below, which run.sh sets through TF_VAR_* environment variables.

terraform {
  required_providers {
    psa = {
      source = "psa-sync/psa"
    }
  }
}

variable "autotask_base_url" {
  description = "Zone root of the Autotask REST API (the simulator's, in the demo)."
  type        = string
}

variable "autotask_username" {
  description = "Autotask API user."
  type        = string
}

variable "autotask_secret" {
  description = "Secret of the Autotask API user."
  type        = string
  sensitive   = true
}

variable "autotask_integration_code" {
  description = "Autotask API tracking identifier."
  type        = string
  sensitive   = true
}

variable "export_path" {
  description = "Where the mapping export that psa-syncd reads is written."
  type        = string
}

provider "psa" {
  export_path = var.export_path
  autotask {
    username         = var.autotask_username
    secret           = var.autotask_secret
    integration_code = var.autotask_integration_code
    base_url         = var.autotask_base_url
  }
}

# A new service, created in Autotask by Terraform.
resource "psa_service" "intercept_x" {
  name                = "Sophos Intercept X Advanced"
  invoice_description = "Sophos Intercept X Advanced endpoint protection, per user"
  unit_price          = 4.50
  unit_cost           = 2.25
}

# A service that already exists in Autotask, looked up by name.
data "psa_service" "intercept_x_server" {
  name = "Sophos Intercept X Advanced for Server"
}

resource "psa_product_mapping" "cixa" {
  product    = "CIXA-MSP"
  service_id = psa_service.intercept_x.id
}

resource "psa_product_mapping" "cixas" {
  product    = "CIXAS-MSP"
  service_id = data.psa_service.intercept_x_server.id
}

# MDR-MSP is deliberately left unmapped: psa-syncd reports its usage as
# unmapped instead of billing it. So is the Sophos tenant Initech.

locals {
  customers = {
    acme = {
      tenant     = "718b6047-2fbc-b4f4-1a43-45ee42bf5d3b"
      name       = "Acme"
      company    = "Acme Corporation"
      contract   = "Acme Managed Services"
      usage_sync = true
    }
    globex = {
      tenant     = "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a"
      name       = "Globex"
      company    = "Globex"
      contract   = "Globex Managed Services"
      usage_sync = true
    }
    # Mapped, but usage sync is off: its contract is left alone.
    umbrella = {
      tenant     = "4d3c2b1a-0f9e-4d8c-8b7a-6f5e4d3c2b1a"
      name       = "Umbrella"
      company    = "Umbrella Corp"
      contract   = "Umbrella Managed Services"
      usage_sync = false
    }
  }
}

data "psa_company" "customer" {
  for_each = local.customers
  name     = each.value.company
}

data "psa_contract" "customer" {
  for_each   = local.customers
  company_id = data.psa_company.customer[each.key].id
  name       = each.value.contract
}

resource "psa_customer_mapping" "customer" {
  for_each      = local.customers
  customer_id   = each.value.tenant
  customer_name = each.value.name
  company_id    = data.psa_company.customer[each.key].id
  contract_id   = data.psa_contract.customer[each.key].id
  usage_sync    = each.value.usage_sync
}

resource "psa_integration" "this" {
  enabled  = true
  schedule = "daily 02:00"
  timezone = "UTC"
}

output "services" {
  value = {
    intercept_x        = psa_service.intercept_x.id
    intercept_x_server = data.psa_service.intercept_x_server.id
  }
}

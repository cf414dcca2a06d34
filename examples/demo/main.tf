# The psa-sync demo: bill Sophos usage on PSA contracts (Autotask contracts,
# ConnectWise agreements or Kaseya BMS recurring-services contracts).
#
# examples/demo/run.sh (make demo, make demo PSA=connectwise, make demo
# PSA=kaseya_bms) applies this against the chosen PSA's simulator with a
# freshly built provider, together with the PSA's own file from psa/
# (autotask.tf, connectwise.tf or kaseya_bms.tf: the provider block and a new
# service). run.sh sets export_path through TF_VAR_export_path and the PSA
# credentials through PSA_<SYSTEM>_* environment variables. The three PSAs'
# demo fixtures hold companies, contracts and services of the same names, so
# this file fits them all.

terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

variable "export_path" {
  description = "Where the mapping export that psa-syncd reads is written."
  type        = string
}

# The provider block and the new service are in psa/<system>.tf, one file
# per PSA; run.sh puts the chosen one next to this file.

# A service that already exists in the PSA, looked up by name.
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
      # Acme's Sophos Central alerts become tickets (see psa_ticket_routing
      # in psa/<system>.tf).
      ticket_sync = true
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
  ticket_sync   = lookup(each.value, "ticket_sync", false)
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

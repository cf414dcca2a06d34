# Many customers from one map, e.g. generated from the vendor's tenant list.
locals {
  customers = {
    "718b6047-1a2b-4c3d-9e8f-0123456789ab" = { company = "Acme Corp", contract = "Acme Managed Services" }
    "2f0c8a9e-5d4b-4e3a-8c1f-fedcba987654" = { company = "Globex", contract = "Globex Security Bundle" }
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
  for_each = local.customers

  customer_id   = each.key
  customer_name = each.value.company
  company_id    = data.psa_company.customer[each.key].id
  contract_id   = data.psa_contract.customer[each.key].id
}

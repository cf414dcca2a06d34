# Look the company and its contract up by name: names are the same in every
# environment, ids are not.
data "psa_company" "acme" {
  name = "Acme Corp"
}

data "psa_contract" "acme_managed" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services"
}

# Bill the usage of Sophos tenant 718b6047-... on Acme's managed services
# contract. The plan fails if the contract is not Acme's or another customer
# in this configuration already uses it.
resource "psa_customer_mapping" "acme" {
  customer_id   = "718b6047-1a2b-4c3d-9e8f-0123456789ab"
  customer_name = "Acme" # shown in psa-syncd's reports
  company_id    = data.psa_company.acme.id
  contract_id   = data.psa_contract.acme_managed.id
}

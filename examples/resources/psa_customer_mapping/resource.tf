# Look the company and its contract up by name: names are the same in every
# environment, ids are not.
data "psa_company" "acme" {
  name = "Acme Corp"
}

data "psa_contract" "acme_managed" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services"
}

# The contract's annual renewal, under a new id from 1 January.
data "psa_contract" "acme_managed_2027" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services 2027"
}

# Bill the usage of Sophos tenant 718b6047-... on Acme's managed services
# contract, and on its renewal from the renewal's start date on: psa-syncd
# chooses the contract by each pass's effective date, so the renewal is
# mapped ahead, not at midnight on 31 December. The plan fails if a contract
# is not Acme's, another customer in this configuration already uses it, or
# the renewal does not start after contract_id ends. Once psa-syncd bills the
# renewal, set contract_id to it and remove next_contract_id (nothing
# written changes).
resource "psa_customer_mapping" "acme" {
  customer_id      = "718b6047-1a2b-4c3d-9e8f-0123456789ab"
  customer_name    = "Acme" # shown in psa-syncd's reports
  company_id       = data.psa_company.acme.id
  contract_id      = data.psa_contract.acme_managed.id
  next_contract_id = data.psa_contract.acme_managed_2027.id
}

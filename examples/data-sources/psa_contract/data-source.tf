data "psa_company" "acme" {
  name = "Acme Corp"
}

# Only active recurring-service contracts are searched: the ones usage sync
# can bill on.
data "psa_contract" "acme_managed" {
  company_id = data.psa_company.acme.id
  name       = "Acme Managed Services"
}

# An ended contract, found only because include_inactive widens the search.
data "psa_contract" "acme_2025" {
  company_id       = data.psa_company.acme.id
  name             = "Acme Managed Services 2025"
  include_inactive = true
}

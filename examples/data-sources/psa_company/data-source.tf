# The name must match the whole company name (case does not matter). Two
# companies with the name fail the plan with a list of both.
data "psa_company" "acme" {
  name = "Acme Corp"
}

output "acme_company_id" {
  value = data.psa_company.acme.id
}

# A per-user service that usage sync bills monthly.
resource "psa_service" "intercept_x" {
  name                = "Sophos Intercept X Advanced"
  invoice_description = "Sophos Intercept X Advanced endpoint protection, per user"
  unit_price          = 4.50
  unit_cost           = 2.25 # lets the PSA report the margin
}

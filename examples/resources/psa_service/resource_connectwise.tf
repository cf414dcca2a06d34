# A ConnectWise catalog item with ConnectWise-specific fields tracked by
# Terraform (needs a connectwise provider block). billing_period is not set:
# ConnectWise bills an agreement addition on its agreement's billing cycle.
resource "psa_service" "datto_saas" {
  name                = "Datto SaaS Protection"
  invoice_description = "Datto SaaS Protection, per seat"
  unit_price          = 3
  unit_cost           = 1.2

  connectwise {
    # The product id agreement additions refer to; derived from the name
    # when unset, and kept if the name changes later.
    identifier    = "DATTO-SAAS"
    product_class = "Service"
  }

  # ConnectWise can delete catalog items that are not in use.
  deletion_policy = "delete"
}

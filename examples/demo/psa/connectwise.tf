# The ConnectWise PSA part of the demo (make demo PSA=connectwise): run.sh
# applies it with ../main.tf. Every setting of the connectwise block comes
# from the environment, which run.sh fills from `psa-syncd simulate`:
# PSA_CONNECTWISE_SITE, PSA_CONNECTWISE_COMPANY_ID,
# PSA_CONNECTWISE_PUBLIC_KEY, PSA_CONNECTWISE_PRIVATE_KEY and
# PSA_CONNECTWISE_CLIENT_ID. The codebase is discovered from the site, as
# with a hosted ConnectWise.
provider "psa" {
  export_path = var.export_path
  connectwise {}
}

# A new ConnectWise catalog item, created by Terraform. Usage sync sets the
# quantity of its additions on the customers' agreements.
resource "psa_service" "intercept_x" {
  name                = "Sophos Intercept X Advanced"
  invoice_description = "Sophos Intercept X Advanced endpoint protection, per user"
  unit_price          = 4.50
  unit_cost           = 2.25

  connectwise {
    # The product id that agreement additions refer to.
    identifier    = "SOPHOS-IXA"
    product_class = "Service"
  }
}

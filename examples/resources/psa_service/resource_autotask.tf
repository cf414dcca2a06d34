# A yearly service with Autotask-specific fields tracked by Terraform.
resource "psa_service" "password_boss" {
  name           = "Password Boss Business"
  description    = "Password manager, billed per user and year"
  unit_price     = 36
  billing_period = "yearly"

  autotask {
    # The allocation code finance reports the revenue under.
    billing_code_id = "29682801"
  }

  # Keep the service in Autotask when it leaves this configuration: it is
  # still on last year's invoices.
  deletion_policy = "abandon"
}

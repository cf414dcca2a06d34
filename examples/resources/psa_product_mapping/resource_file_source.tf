# A vendor without a usage API publishes a usage file; psa-syncd's "file"
# source reads it. The service already exists in the PSA.
data "psa_service" "password_boss" {
  name = "Password Boss Business"
}

resource "psa_product_mapping" "password_boss" {
  source     = "file"
  product    = "PWB-BUSINESS"
  service_id = data.psa_service.password_boss.id

  # Keep the mapping but stop changing quantities while licences are audited.
  sync_enabled = false
}

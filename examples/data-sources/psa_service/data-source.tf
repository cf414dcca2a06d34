# A service created in the PSA by hand, for a product mapping.
data "psa_service" "backup" {
  name = "Datto SaaS Protection"
}

resource "psa_product_mapping" "backup" {
  source     = "file"
  product    = "DATTO-SAAS"
  service_id = data.psa_service.backup.id
}

# Bill Sophos "CIXA-MSP" usage as the Intercept X service. The plan fails if
# the service does not exist or is inactive.
resource "psa_product_mapping" "cixa_msp" {
  product    = "CIXA-MSP"
  service_id = psa_service.intercept_x.id
}

# Server licences add up on the same service.
resource "psa_product_mapping" "cixa_srv" {
  product    = "CIXA-SRV"
  service_id = psa_service.intercept_x.id
}

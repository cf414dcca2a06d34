import {
  to = psa_integration.this
  id = "s3://msp-psa-sync/psa-mappings.json?region=eu-central-1"
}

import {
  to = psa_ticket_routing.this
  id = "s3://msp-psa-sync/psa-mappings.json?region=eu-central-1"
}

import {
  to = psa_integration.this
  id = "psa-mappings.json"
}

import {
  to = psa_customer_mapping.acme
  id = "sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab"
}

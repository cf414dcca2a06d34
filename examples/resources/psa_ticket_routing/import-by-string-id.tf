import {
  to = psa_ticket_routing.this
  id = "psa-mappings.json"
}

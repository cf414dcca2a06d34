# The ticket routing is imported by the provider's export_path, as configured
# in the provider block: there is one psa_ticket_routing per export.
terraform import psa_ticket_routing.this psa-mappings.json

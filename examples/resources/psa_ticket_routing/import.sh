# The ticket routing is imported by the provider's export_url (or
# export_path), as configured in the provider block: there is one
# psa_ticket_routing per export. For an S3 or psa-syncd store that is the
# URL, with any password in it replaced by xxxxx, as the id in the state
# shows it.
terraform import psa_ticket_routing.this psa-mappings.json

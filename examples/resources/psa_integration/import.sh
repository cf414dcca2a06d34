# The integration settings are imported by the provider's export_path, as
# configured in the provider block: there is one psa_integration per export.
terraform import psa_integration.this psa-mappings.json

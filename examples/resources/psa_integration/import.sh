# The integration settings are imported by the provider's export_url (or
# export_path), as configured in the provider block: there is one
# psa_integration per export. Here that is the S3 URL of the provider
# example; for a file it is the path (or the file:// URL of export_url), and
# for an S3 or psa-syncd store the URL with any password in it replaced by
# xxxxx, as the id in the state shows it.
terraform import psa_integration.this 's3://msp-psa-sync/psa-mappings.json?region=eu-central-1'

# A customer mapping is imported by "<source>/<customer_id>", its key in the
# mapping export, for example the Sophos tenant 718b6047-... . Only the
# first "/" separates the parts, so customer ids may contain slashes.
terraform import psa_customer_mapping.acme sophos/718b6047-1a2b-4c3d-9e8f-0123456789ab

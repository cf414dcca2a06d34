# A service is imported by its PSA id, as shown in data.psa_service.<name>.id:
# the Autotask Service id (in the service's URL), the ConnectWise catalog
# item id or the Kaseya BMS service id. The import takes the default
# deletion_policy, "deactivate", and tracks no PSA-specific block: when the
# configuration sets one (autotask { ... }, connectwise { ... } or
# kaseya_bms { ... }), the first plan after the import shows one in-place
# update of the service, which adds the block; applying it sends the
# service's configured values to the PSA, and the plans after it are empty.
terraform import psa_service.intercept_x 30000012

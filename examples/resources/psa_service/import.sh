# A service is imported by its PSA id, the Autotask Service id shown in the
# service's URL and in data.psa_service.<name>.id. The import takes the
# default deletion_policy, "deactivate".
terraform import psa_service.intercept_x 30000012

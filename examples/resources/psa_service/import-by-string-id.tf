import {
  to = psa_service.intercept_x
  id = "30000012"
}

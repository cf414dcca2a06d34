import {
  to = psa_product_mapping.cixa_msp
  id = "sophos/CIXA-MSP"
}

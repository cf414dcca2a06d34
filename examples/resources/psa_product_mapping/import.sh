# A product mapping is imported by "<source>/<product>", its key in the
# mapping export, for example the Sophos product CIXA-MSP. Only the first
# "/" separates the parts, so product codes may contain slashes.
terraform import psa_product_mapping.cixa_msp sophos/CIXA-MSP

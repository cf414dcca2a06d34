# Kaseya BMS. The password comes from a variable (or the
# PSA_KASEYA_BMS_PASSWORD environment variable).
variable "kaseya_bms_password" {
  type      = string
  sensitive = true
}

provider "psa" {
  export_path = "psa-mappings.json"

  kaseya_bms {
    # As the BMS console shows it: no https://, no path.
    hostname = "bmsemea.kaseya.com"
    username = "api.user@msp.example"
    password = var.kaseya_bms_password
    tenant   = "Acme MSP"
  }
}

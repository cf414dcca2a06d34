terraform {
  required_providers {
    psa = {
      source  = "psa-sync/psa"
      version = "~> 0.1"
    }
  }
}

# Kaseya BMS. The password comes from a variable; left unset (null), the
# provider reads the PSA_KASEYA_BMS_PASSWORD environment variable instead.
variable "kaseya_bms_password" {
  type      = string
  sensitive = true
  default   = null
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

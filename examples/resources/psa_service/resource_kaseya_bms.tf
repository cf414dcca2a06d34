# A Kaseya BMS service (needs a kaseya_bms provider block). BMS services
# have no billing period and no invoice description, so neither is set.
resource "psa_service" "password_boss" {
  name        = "Password Boss Business"
  description = "Password manager, per user"
  unit_price  = 3

  kaseya_bms {
    # Names as BMS shows them under Admin > Finance > Services.
    category    = "Managed Services"
    subcategory = "Security"
    # Resolved from a service that already uses it: BMS v2 has no
    # unit-of-measure lookup.
    unit_of_measure = "User"
  }
}

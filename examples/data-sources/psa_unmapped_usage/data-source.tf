# The vendor ids this configuration maps. Keep the mappings' for_each on
# the same lists: psa-syncd reports its last pass, made before this plan's
# new mappings are applied, so the usage they map is left out below.
locals {
  usage_source     = "sophos"
  mapped_customers = ["718b6047-4f5e-4c8a-9a51-0e6ad3c1f0b2", "c3e9a1d4-77f0-4b3e-8d2a-5b6f9e0a1c47"]
  mapped_products  = ["CIXA-MSP", "CIXA-SRV-MSP"]
}

# Reads the psa-syncd of the provider's psa_syncd_url (PSA_SYNCD_URL), or
# else the psa-syncd that is its export store (export_url =
# "https://psa-syncd.example:9810", with export_token).
data "psa_unmapped_usage" "last_pass" {
  # The source of the mappings above: a URL of the psa-syncd of another
  # source (whose lists say nothing of this one's) fails the plan.
  source = local.usage_source

  lifecycle {
    # Fails the plan while usage above 0 bills nobody, naming what to map.
    postcondition {
      condition = alltrue([
        length([for c in self.customers : c if !contains(local.mapped_customers, c.customer_id)]) == 0,
        length([for p in self.products : p if !contains(local.mapped_products, p.product)]) == 0,
      ])
      error_message = format("Usage no contract bills (psa-syncd pass of %s). Customers to map: %s. Products to map: %s.",
        coalesce(self.computed_at, "never"),
        join(", ", [for c in self.customers : "${c.customer_id} (${coalesce(c.customer_name, "no name")}, ${c.quantity})" if !contains(local.mapped_customers, c.customer_id)]),
        join(", ", [for p in self.products : "${p.product} (${p.quantity})" if !contains(local.mapped_products, p.product)]),
      )
    }
  }
}

# Warns, without failing the plan, of usage the vendor has not assigned to a
# customer, of mapped customers the vendor no longer reports, and of a
# psa-syncd whose last pass is more than two days old.
check "psa_syncd_usage" {
  assert {
    condition     = length(data.psa_unmapped_usage.last_pass.unassigned) == 0
    error_message = "Usage assigned to no customer at the vendor: ${join(", ", [for u in data.psa_unmapped_usage.last_pass.unassigned : "${u.product} (${u.quantity})"])}."
  }
  assert {
    condition     = length(data.psa_unmapped_usage.last_pass.unreported) == 0
    error_message = "Mapped customers the vendor no longer reports: ${join(", ", [for c in data.psa_unmapped_usage.last_pass.unreported : "${c.customer_id} (contract ${c.contract_id}, vendor: ${coalesce(c.vendor, "unknown")})"])}."
  }
  assert {
    condition     = timecmp(coalesce(data.psa_unmapped_usage.last_pass.computed_at, "1970-01-01T00:00:00Z"), timeadd(plantimestamp(), "-48h")) > 0
    error_message = "psa-syncd's last pass is older than two days (or it has run none): the unmapped usage above may be out of date."
  }
}

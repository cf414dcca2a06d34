# The Autotask part of the demo (make demo): run.sh applies it with
# ../main.tf. Every setting of the autotask block comes from the
# environment, which run.sh fills from `psa-syncd simulate`:
# PSA_AUTOTASK_USERNAME, PSA_AUTOTASK_SECRET, PSA_AUTOTASK_INTEGRATION_CODE
# and PSA_AUTOTASK_BASE_URL (the zone root; without it the zone is looked up
# from the user name).
provider "psa" {
  export_path = var.export_path
  autotask {}
}

# A new Autotask Service, created by Terraform.
resource "psa_service" "intercept_x" {
  name                = "Sophos Intercept X Advanced"
  invoice_description = "Sophos Intercept X Advanced endpoint protection, per user"
  unit_price          = 4.50
  unit_cost           = 2.25
}

# Ticket sync: Acme's Sophos Central alerts become tickets in the
# "Monitoring Alert" queue; a resolved alert completes its ticket. The ids
# are looked up by name, so this works on every Autotask tenant.
data "psa_ticket_lookup" "queue" {
  kind = "queue"
  name = "Monitoring Alert"
}

data "psa_ticket_lookup" "complete" {
  kind = "status"
  name = "Complete"
}

data "psa_ticket_lookup" "high" {
  kind = "priority"
  name = "High"
}

data "psa_ticket_lookup" "medium" {
  kind = "priority"
  name = "Medium"
}

resource "psa_ticket_routing" "alerts" {
  queue_id         = data.psa_ticket_lookup.queue.id
  closed_status_id = data.psa_ticket_lookup.complete.id
  priorities = {
    high   = data.psa_ticket_lookup.high.id
    medium = data.psa_ticket_lookup.medium.id
  }
}

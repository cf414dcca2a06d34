# The Kaseya BMS part of the demo (make demo PSA=kaseya_bms): run.sh applies
# it with ../main.tf. Every setting of the kaseya_bms block comes from the
# environment, which run.sh fills from `psa-syncd simulate`:
# PSA_KASEYA_BMS_BASE_URL (the simulator's API root; a real tenant sets
# PSA_KASEYA_BMS_HOSTNAME, e.g. bmsemea.kaseya.com), PSA_KASEYA_BMS_USERNAME,
# PSA_KASEYA_BMS_PASSWORD and PSA_KASEYA_BMS_TENANT.
provider "psa" {
  export_path = var.export_path
  kaseya_bms {}
}

# A new Kaseya BMS service, created by Terraform. BMS services have no
# invoice description, so none is set.
resource "psa_service" "intercept_x" {
  name       = "Sophos Intercept X Advanced"
  unit_price = 4.50
  unit_cost  = 2.25

  kaseya_bms {
    category    = "Managed Services"
    subcategory = "Security"
    # Resolved from an existing service that uses it (BMS v2 has no
    # unit-of-measure lookup): the demo's server service does.
    unit_of_measure = "Device"
  }
}

# Ticket sync: Acme's Sophos Central alerts become Alert tickets in the
# "Security Alerts" queue; a resolved alert completes its ticket. Kaseya BMS
# needs the status, type and source of new tickets besides.
data "psa_ticket_lookup" "queue" {
  kind = "queue"
  name = "Security Alerts"
}

data "psa_ticket_lookup" "new" {
  kind = "status"
  name = "New"
}

data "psa_ticket_lookup" "completed" {
  kind = "status"
  name = "Completed"
}

data "psa_ticket_lookup" "alert" {
  kind = "ticket_type"
  name = "Alert"
}

data "psa_ticket_lookup" "monitoring" {
  kind = "source"
  name = "Monitoring"
}

resource "psa_ticket_routing" "alerts" {
  queue_id         = data.psa_ticket_lookup.queue.id
  new_status_id    = data.psa_ticket_lookup.new.id
  closed_status_id = data.psa_ticket_lookup.completed.id
  ticket_type_id   = data.psa_ticket_lookup.alert.id
  source_id        = data.psa_ticket_lookup.monitoring.id
}

# Autotask: Sophos Central alerts of the customers with ticket_sync = true
# become tickets in the "Monitoring Alert" queue. Names are looked up once at
# plan time, so the configuration works on every Autotask tenant.
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

data "psa_ticket_lookup" "source" {
  kind = "source"
  name = "Monitoring Alert"
}

resource "psa_ticket_routing" "this" {
  queue_id = data.psa_ticket_lookup.queue.id
  # A resolved alert closes its ticket with an internal note.
  closed_status_id = data.psa_ticket_lookup.complete.id
  priorities = {
    high   = data.psa_ticket_lookup.high.id
    medium = data.psa_ticket_lookup.medium.id
  }
  source_id = data.psa_ticket_lookup.source.id

  # Low-severity alerts stay in Sophos Central.
  min_severity = "medium"
  # An alert storm cannot flood the queue: what is over the caps is
  # summarised in one ticket per customer.
  max_per_pass     = 50
  max_per_customer = 10
  # Alerts open for more than two days when ticket sync is turned on (or
  # back on) are named in one summary ticket, not filed one ticket each.
  backfill_window = "48h"
}

# Kaseya BMS tickets need a status, a ticket type and a source.
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

resource "psa_ticket_routing" "this" {
  queue_id         = data.psa_ticket_lookup.queue.id
  new_status_id    = data.psa_ticket_lookup.new.id
  closed_status_id = data.psa_ticket_lookup.completed.id
  ticket_type_id   = data.psa_ticket_lookup.alert.id
  source_id        = data.psa_ticket_lookup.monitoring.id
  # Leave resolved tickets to the technician, with a note.
  on_resolve = "note"
}

# ConnectWise PSA: statuses and types belong to a board, so their lookups
# name the board as their scope.
data "psa_ticket_lookup" "board" {
  kind = "queue"
  name = "Alerts"
}

data "psa_ticket_lookup" "new" {
  kind  = "status"
  name  = "New"
  scope = data.psa_ticket_lookup.board.id
}

data "psa_ticket_lookup" "resolved" {
  kind  = "status"
  name  = ">Resolved"
  scope = data.psa_ticket_lookup.board.id
}

data "psa_ticket_lookup" "security" {
  kind  = "ticket_type"
  name  = "Security"
  scope = data.psa_ticket_lookup.board.id
}

resource "psa_ticket_routing" "this" {
  queue_id         = data.psa_ticket_lookup.board.id
  new_status_id    = data.psa_ticket_lookup.new.id
  closed_status_id = data.psa_ticket_lookup.resolved.id
  ticket_type_id   = data.psa_ticket_lookup.security.id

  # An alert that comes back within a day reopens its ticket instead of
  # opening a second one.
  on_return        = "reopen"
  reopen_status_id = data.psa_ticket_lookup.new.id
  reopen_window    = "24h"
  title_format     = "[Sophos] {Severity} on {customer}: {description}"
}

# The ConnectWise PSA part of the demo (make demo PSA=connectwise): run.sh
# applies it with ../main.tf. Every setting of the connectwise block comes
# from the environment, which run.sh fills from `psa-syncd simulate`:
# PSA_CONNECTWISE_SITE, PSA_CONNECTWISE_COMPANY_ID,
# PSA_CONNECTWISE_PUBLIC_KEY, PSA_CONNECTWISE_PRIVATE_KEY and
# PSA_CONNECTWISE_CLIENT_ID. The codebase is discovered from the site, as
# with a hosted ConnectWise.
provider "psa" {
  export_path = var.export_path
  connectwise {}
}

# A new ConnectWise catalog item, created by Terraform. Usage sync sets the
# quantity of its additions on the customers' agreements.
resource "psa_service" "intercept_x" {
  name                = "Sophos Intercept X Advanced"
  invoice_description = "Sophos Intercept X Advanced endpoint protection, per user"
  unit_price          = 4.50
  unit_cost           = 2.25

  connectwise {
    # The product id that agreement additions refer to.
    identifier    = "SOPHOS-IXA"
    product_class = "Service"
  }
}

# Ticket sync: Acme's Sophos Central alerts become Security tickets on the
# "Alerts" service board; a resolved alert moves its ticket to ">Resolved".
# Statuses and types belong to a board, so they are looked up in its scope.
data "psa_ticket_lookup" "board" {
  kind = "queue"
  name = "Alerts"
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

resource "psa_ticket_routing" "alerts" {
  queue_id         = data.psa_ticket_lookup.board.id
  closed_status_id = data.psa_ticket_lookup.resolved.id
  ticket_type_id   = data.psa_ticket_lookup.security.id
}

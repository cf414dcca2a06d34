# The name must match the whole entry name (case does not matter). A name
# that matches nothing fails the plan with the names there are.
data "psa_ticket_lookup" "queue" {
  kind = "queue"
  name = "Monitoring Alert"
}

# Sub-issue types belong to an issue type (ConnectWise statuses and types to
# a board): name it as the scope.
data "psa_ticket_lookup" "security" {
  kind = "issue_type"
  name = "Security"
}

data "psa_ticket_lookup" "malware" {
  kind  = "sub_issue_type"
  name  = "Malware"
  scope = data.psa_ticket_lookup.security.id
}

output "queue_id" {
  value = data.psa_ticket_lookup.queue.id
}

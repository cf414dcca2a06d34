# Sync on the last day of the month, when the month's user count is taken,
# before invoices are generated the next morning.
resource "psa_integration" "this" {
  schedule = "monthly last-day 18:00"
  timezone = "Europe/Rome"

  # Set to false to stop all writes to the PSA, e.g. during an invoicing
  # freeze; mappings can still be changed.
  enabled = true
}

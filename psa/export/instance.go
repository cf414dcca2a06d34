package export

import "strings"

// SameInstance reports whether two psa.instance values name the same PSA
// tenant. An instance is a host ("webservices5.autotask.net") or a tenant
// at a host: "ci:29683541@webservices5.autotask.net", as the Autotask
// backend reports it once zone discovery has told it the tenant's company
// identifier, "company:msp@api-na.myconnectwise.net" (a ConnectWise login
// company) or "tenant:Acme MSP@api.bmsemea.kaseya.com" (a Kaseya BMS
// tenant). When both name a tenant, the tenants must be equal, and so must
// the hosts except for Autotask's (Autotask moves a tenant to another zone
// now and then; a ConnectWise company id or a BMS tenant name is unique on
// its host only); otherwise the hosts must be equal, so an export written
// before tenants were recorded still matches its tenant. Comparison
// ignores case.
func SameInstance(a, b string) bool {
	tenantA, hostA := splitInstance(a)
	tenantB, hostB := splitInstance(b)
	if tenantA != "" && tenantB != "" {
		return strings.EqualFold(tenantA, tenantB) && (strings.HasPrefix(tenantA, "ci:") || strings.EqualFold(hostA, hostB))
	}
	return strings.EqualFold(hostA, hostB)
}

// splitInstance splits "tenant@host" into its parts; a bare host has no
// tenant.
func splitInstance(s string) (tenant, host string) {
	if t, h, ok := strings.Cut(s, "@"); ok {
		return t, h
	}
	return "", s
}

// RecordedInstance returns the psa.instance to record in an export (or
// psa-syncd's state database) that records old, written by a client that
// knows its PSA as instance (SameInstance(old, instance) holds, or old is
// empty): instance, which records a tenant where old had none and a
// tenant's new host, unless it is a bare host where old names a tenant. A
// client with a fixed base URL knows only the host; recording that would
// drop the tenant, and with it the check that keeps another tenant on the
// same host from taking the export.
func RecordedInstance(old, instance string) string {
	if instance == "" {
		return old
	}
	if oldTenant, _ := splitInstance(old); oldTenant != "" {
		if tenant, _ := splitInstance(instance); tenant == "" {
			return old
		}
	}
	return instance
}

package tickets

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
)

// SophosAlerts is an AlertSource over the Sophos Central alerts API: each
// customer is a tenant, whose alerts are read on its apiHost.
type SophosAlerts struct {
	client *sophos.Client

	mu    sync.Mutex
	hosts map[string]string // tenant id (lower case) → apiHost
}

// NewSophosAlerts returns an AlertSource that reads tenants' alerts with c.
func NewSophosAlerts(c *sophos.Client) *SophosAlerts {
	return &SophosAlerts{client: c}
}

// OpenAlerts returns the tenant's complete open alert set. An alert whose
// raisedAt cannot be read is in it, with the zero time and the text in
// RaisedAtUnparsed: leaving it out would close its ticket as resolved.
func (s *SophosAlerts) OpenAlerts(ctx context.Context, c Customer) ([]Alert, error) {
	host, err := s.apiHost(ctx, c.CustomerID)
	if err != nil {
		return nil, err
	}
	list, err := s.client.Alerts.ListAll(ctx, c.CustomerID, host, nil)
	if err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(list))
	for _, a := range list {
		out = append(out, Alert{
			ID: a.ID, Severity: strings.ToLower(a.Severity), Type: a.Type, Category: a.Category, Product: a.Product,
			Description: a.Description, RaisedAt: a.RaisedAt.Time, RaisedAtUnparsed: a.RaisedAt.Unparsed, DeviceURL: a.DeviceURL(),
		})
	}
	return out, nil
}

// apiHost returns the tenant's apiHost, reading the tenant list when the
// tenant is not known yet (new tenants appear between passes) or had no
// apiHost when the list was last read (a tenant still being set up gets
// one later).
func (s *SophosAlerts) apiHost(ctx context.Context, tenantID string) (string, error) {
	key := strings.ToLower(tenantID)
	s.mu.Lock()
	host := s.hosts[key]
	s.mu.Unlock()
	if host != "" {
		return host, nil
	}
	tenants, err := s.client.Tenants.ListAll(ctx)
	if err != nil {
		return "", err
	}
	hosts := make(map[string]string, len(tenants))
	for _, t := range tenants {
		hosts[strings.ToLower(t.ID)] = t.APIHost
	}
	s.mu.Lock()
	s.hosts = hosts
	s.mu.Unlock()
	host, ok := hosts[key]
	if !ok {
		return "", fmt.Errorf("tickets: tenant %s is not one of the partner's tenants", tenantID)
	}
	return host, nil
}

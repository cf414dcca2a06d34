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
	// listed is set once this pass (StartPass) read the tenant list, or
	// tried to: listErr is why that failed, else nil.
	listed  bool
	listErr error
}

// NewSophosAlerts returns an AlertSource that reads tenants' alerts with c.
func NewSophosAlerts(c *sophos.Client) *SophosAlerts {
	return &SophosAlerts{client: c}
}

// StartPass starts a ticket pass, which the engine calls before the
// first customer: a tenant whose apiHost is not known has the tenant list
// read again, once for the pass. The customers of a pass that the list
// does not name (a tenant removed from the partner, a mapping to a wrong
// id) or names without an apiHost fail without reading it again each:
// the list is read in pages of 100 tenants, which every such customer of
// every pass would cost again.
func (s *SophosAlerts) StartPass() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listed, s.listErr = false, nil
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
// one later): at most once a pass (StartPass).
func (s *SophosAlerts) apiHost(ctx context.Context, tenantID string) (string, error) {
	key := strings.ToLower(tenantID)
	s.mu.Lock()
	host, listed, listErr := s.hosts[key], s.listed, s.listErr
	s.mu.Unlock()
	if host != "" {
		return host, nil
	}
	if listed && listErr != nil {
		return "", fmt.Errorf("tickets: tenant %s is not known yet, and the tenant list could not be read this pass: %w", tenantID, listErr)
	}
	if !listed {
		tenants, err := s.client.Tenants.ListAll(ctx)
		s.mu.Lock()
		s.listed, s.listErr = true, err
		if err == nil {
			s.hosts = make(map[string]string, len(tenants))
			for _, t := range tenants {
				s.hosts[strings.ToLower(t.ID)] = t.APIHost
			}
		}
		s.mu.Unlock()
		if err != nil {
			return "", err
		}
	}
	s.mu.Lock()
	host, ok := s.hosts[key]
	s.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("tickets: tenant %s is not one of the partner's tenants", tenantID)
	}
	return host, nil
}

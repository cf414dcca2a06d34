package tickets

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source/sophos"
	"github.com/psa-sync/terraform-provider-psa/psa"
)

// SophosAlerts is an AlertSource over the Sophos Central alerts API: each
// customer is a tenant, whose alerts are read on its apiHost. It is meant
// to be kept across passes (psa-syncd keeps one per Sophos client): the
// tenants' apiHosts are read from the tenant list (pages of 100 tenants)
// when a tenant is not known, when a request to a tenant's apiHost fails
// as if the tenant had moved, and otherwise once tenantListMaxAge has
// passed, not every pass.
type SophosAlerts struct {
	client *sophos.Client
	now    func() time.Time

	mu    sync.Mutex
	hosts map[string]string // tenant id (lower case) → apiHost
	// read is when the tenant list was last read; stale is set once a
	// pass starts tenantListMaxAge after it.
	read  time.Time
	stale bool
	// listed is set once this pass (StartPass) read the tenant list, or
	// tried to: listErr is why that failed, else nil.
	listed  bool
	listErr error
}

// tenantListMaxAge is how long the apiHosts of a tenant list are used
// without reading it again, when nothing suggests a tenant moved.
const tenantListMaxAge = time.Hour

// SophosAlertsOption configures a SophosAlerts.
type SophosAlertsOption func(*SophosAlerts)

// WithAlertsClock sets the clock that ages the tenant list (tests).
func WithAlertsClock(now func() time.Time) SophosAlertsOption {
	return func(s *SophosAlerts) { s.now = now }
}

// NewSophosAlerts returns an AlertSource that reads tenants' alerts with c.
func NewSophosAlerts(c *sophos.Client, opts ...SophosAlertsOption) *SophosAlerts {
	s := &SophosAlerts{client: c, now: time.Now}
	for _, o := range opts {
		o(s)
	}
	return s
}

// StartPass starts a ticket pass, which the engine calls before the
// first customer: a tenant whose apiHost is not known has the tenant list
// read again, once for the pass, and so does every tenant once the list
// is older than tenantListMaxAge. The customers of a pass that the list
// does not name (a tenant removed from the partner, a mapping to a wrong
// id) or names without an apiHost fail without reading it again each:
// the list is read in pages of 100 tenants, which every such customer of
// every pass would cost again.
func (s *SophosAlerts) StartPass() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.listed, s.listErr = false, nil
	if !s.read.IsZero() && s.now().Sub(s.read) >= tenantListMaxAge {
		s.stale = true
	}
}

// OpenAlerts returns the tenant's complete open alert set. An alert whose
// raisedAt cannot be read is in it, with the zero time and the text in
// RaisedAtUnparsed: leaving it out would close its ticket as resolved.
func (s *SophosAlerts) OpenAlerts(ctx context.Context, c Customer) ([]Alert, error) {
	host, err := s.apiHost(ctx, c.CustomerID, false)
	if err != nil {
		return nil, err
	}
	list, err := s.client.Alerts.ListAll(ctx, c.CustomerID, host, nil)
	if err != nil && mayHaveMoved(ctx, err) {
		// The tenant may have moved to another apiHost since the tenant
		// list was read: when the list, read again (once a pass), says
		// so, its alerts are read there.
		if moved, herr := s.apiHost(ctx, c.CustomerID, true); herr == nil && moved != host {
			list, err = s.client.Alerts.ListAll(ctx, c.CustomerID, moved, nil)
		}
	}
	if err != nil {
		return nil, err
	}
	out := make([]Alert, 0, len(list))
	for _, a := range list {
		var unread string
		if a.Err != nil {
			unread = a.Err.Error()
		}
		out = append(out, Alert{
			ID: a.ID, Severity: strings.ToLower(a.Severity), Type: a.Type, Category: a.Category, Product: a.Product,
			Description: a.Description, RaisedAt: a.RaisedAt.Time, RaisedAtUnparsed: a.RaisedAt.Unparsed, Unread: unread, DeviceURL: a.DeviceURL(),
		})
	}
	return out, nil
}

// apiHost returns the tenant's apiHost, reading the tenant list when the
// tenant is not known yet (new tenants appear between passes), had no
// apiHost when the list was last read (a tenant still being set up gets
// one later), with refresh (a request to its apiHost failed), or when the
// list is older than tenantListMaxAge: at most once a pass (StartPass).
// When that read fails, a tenant known before keeps its apiHost.
func (s *SophosAlerts) apiHost(ctx context.Context, tenantID string, refresh bool) (string, error) {
	key := strings.ToLower(tenantID)
	s.mu.Lock()
	host, listed, listErr, stale := s.hosts[key], s.listed, s.listErr, s.stale
	s.mu.Unlock()
	if host != "" && (listed || !stale && !refresh) {
		return host, nil
	}
	if !listed {
		tenants, err := s.client.Tenants.ListAll(ctx)
		s.mu.Lock()
		s.listed, s.listErr = true, err
		if err == nil {
			s.read, s.stale = s.now(), false
			s.hosts = make(map[string]string, len(tenants))
			for _, t := range tenants {
				s.hosts[strings.ToLower(t.ID)] = t.APIHost
			}
		}
		s.mu.Unlock()
		listErr = err
	}
	s.mu.Lock()
	host, ok := s.hosts[key]
	s.mu.Unlock()
	switch {
	case host != "":
		return host, nil
	case listErr != nil && !listed:
		return "", listErr
	case listErr != nil:
		return "", fmt.Errorf("tickets: tenant %s is not known yet, and the tenant list could not be read this pass: %w", tenantID, listErr)
	case !ok:
		return "", fmt.Errorf("tickets: tenant %s is not one of the partner's tenants", tenantID)
	}
	return host, nil
}

// mayHaveMoved reports whether a request to a tenant's apiHost may have
// failed because the tenant moved to another one. A throttled request, or
// a tenant that has not granted the partner access (a 403), says nothing
// about its apiHost.
func mayHaveMoved(ctx context.Context, err error) bool {
	return ctx.Err() == nil && !errors.Is(err, psa.ErrRateLimited) && !sophos.IsAccessDenied(err)
}

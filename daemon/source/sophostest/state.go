package sophostest

import (
	"slices"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
)

// load replaces the state with a fixture's. The caller need not hold s.mu
// (it runs before the server starts).
func (s *Server) load(f *Fixture) {
	if f.ClientID != "" {
		s.clientID = f.ClientID
	}
	if f.ClientSecret != "" {
		s.clientSecret = f.ClientSecret
	}
	if f.PartnerID != "" {
		s.partnerID = f.PartnerID
	}
	if f.PartnerName != "" {
		s.partnerName = f.PartnerName
	}
	if f.IDType != "" {
		s.idType = f.IDType
	}
	s.tenants = slices.Clone(f.Tenants)
	s.alerts = map[string][]Alert{}
	for id, list := range f.Alerts {
		s.alerts[strings.ToLower(id)] = slices.Clone(list)
	}
	s.usage = map[source.Period][]UsageItem{}
	s.relativeUsage = map[int][]UsageItem{}
	for m, items := range f.Usage {
		if off, ok := relativeMonths[m]; ok {
			s.relativeUsage[off] = slices.Clone(items)
			continue
		}
		p, _ := source.ParsePeriod(m) // Validate has checked it
		s.usage[p] = slices.Clone(items)
	}
}

// resolveRelativeUsage files the fixture's relative months under the months
// they stand for by the simulator's clock. It runs once all options are
// applied, so that WithClock counts wherever it is given.
func (s *Server) resolveRelativeUsage() {
	current := source.PeriodOf(s.clock().UTC())
	for off, items := range s.relativeUsage {
		p := current
		for ; off < 0; off++ {
			p = p.Prev()
		}
		if _, ok := s.usage[p]; !ok {
			s.usage[p] = items
		}
	}
	s.relativeUsage = nil
}

// Fixture returns the current state as a fixture (the credentials included:
// it is a simulator).
func (s *Server) Fixture() *Fixture {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := &Fixture{
		ClientID: s.clientID, ClientSecret: s.clientSecret,
		PartnerID: s.partnerID, PartnerName: s.partnerName, IDType: s.idType,
		Tenants: slices.Clone(s.tenants),
		Usage:   map[string][]UsageItem{},
	}
	for id, list := range s.alerts {
		if len(list) > 0 {
			if f.Alerts == nil {
				f.Alerts = map[string][]Alert{}
			}
			f.Alerts[id] = slices.Clone(list)
		}
	}
	for p, items := range s.usage {
		f.Usage[p.String()] = slices.Clone(items)
	}
	return f
}

// PartnerID returns the partner id whoami reports.
func (s *Server) PartnerID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.partnerID
}

// ClientID returns the client id the token endpoint accepts.
func (s *Server) ClientID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientID
}

// ClientSecret returns the client secret the token endpoint accepts.
func (s *Server) ClientSecret() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.clientSecret
}

// SetCredentials changes the accepted client id and secret; tokens already
// issued stay valid.
func (s *Server) SetCredentials(clientID, clientSecret string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clientID, s.clientSecret = clientID, clientSecret
}

// AddTenant adds a tenant, or replaces the one with the same id.
func (s *Server) AddTenant(t Tenant) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i := range s.tenants {
		if strings.EqualFold(s.tenants[i].ID, t.ID) {
			s.tenants[i] = t
			return
		}
	}
	s.tenants = append(s.tenants, t)
}

// RemoveTenant removes a tenant; its usage rows stay.
func (s *Server) RemoveTenant(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tenants = slices.DeleteFunc(s.tenants, func(t Tenant) bool { return strings.EqualFold(t.ID, id) })
}

// Tenants returns a copy of the tenants, as stored (without served defaults).
func (s *Server) Tenants() []Tenant {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.tenants)
}

// SetUsage replaces period p's usage rows. An empty, non-nil slice makes the
// month exist with no rows (200 with no items rather than 404).
func (s *Server) SetUsage(p source.Period, items []UsageItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if items == nil {
		items = []UsageItem{}
	}
	s.usage[p] = slices.Clone(items)
}

// AddUsage appends rows to period p, creating the month if needed.
func (s *Server) AddUsage(p source.Period, items ...UsageItem) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.usage[p] = append(s.usage[p], items...)
	if s.usage[p] == nil {
		s.usage[p] = []UsageItem{}
	}
}

// DeleteUsage removes period p, so the API answers 404 "no data" for it.
func (s *Server) DeleteUsage(p source.Period) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.usage, p)
}

// Usage returns period p's rows as stored, and whether the month exists.
func (s *Server) Usage(p source.Period) ([]UsageItem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	items, ok := s.usage[p]
	return slices.Clone(items), ok
}

// RevokeTokens invalidates every issued access token, so the next API call
// gets 401 (as after expiry).
func (s *Server) RevokeTokens() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.tokens)
}

package sophos

import "context"

// WhoAmIService reads GET /whoami/v1.
type WhoAmIService service

// WhoAmI says who the credentials belong to. IDType is "partner",
// "organization" or "tenant".
type WhoAmI struct {
	ID       string   `json:"id"`
	IDType   string   `json:"idType"`
	APIHosts APIHosts `json:"apiHosts"`
}

// APIHosts are the hosts the caller should use. DataRegion is absent for
// partners, whose APIs are global.
type APIHosts struct {
	Global     string `json:"global"`
	DataRegion string `json:"dataRegion,omitempty"`
}

// Get returns who the credentials belong to.
func (s *WhoAmIService) Get(ctx context.Context) (*WhoAmI, *Response, error) {
	req, err := s.client.newRequest(ctx, s.client.baseURL, "whoami/v1", nil)
	if err != nil {
		return nil, nil, err
	}
	var who WhoAmI
	resp, err := s.client.Do(req, &who)
	if err != nil {
		return nil, resp, err
	}
	return &who, resp, nil
}

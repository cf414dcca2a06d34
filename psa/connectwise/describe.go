package connectwise

import "context"

// Describe says which API root the backend sends requests to and how its
// codebase was chosen: pinned by configuration, or discovered through
// /login/companyinfo at the site. It discovers the codebase if needed.
func (b *Backend) Describe(ctx context.Context) (string, error) {
	c := b.client
	root, err := c.BaseURL(ctx)
	if err != nil {
		return "", err
	}
	c.baseMu.Lock()
	codebase, pinned := c.codebase, c.pinned
	c.baseMu.Unlock()
	switch {
	case pinned && codebase != "":
		return "codebase " + codebase + " (pinned by configuration); API root " + root.String(), nil
	case pinned:
		return "API root " + root.String() + " (pinned by base_url)", nil
	}
	return "codebase " + codebase + " discovered through /login/companyinfo at site " + b.client.Host() + "; API root " + root.String(), nil
}

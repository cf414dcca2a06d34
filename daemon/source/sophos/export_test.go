package sophos

// SetMaxPages lowers the page bounds of c's listings, so that tests need
// not serve thousands of pages.
func SetMaxPages(c *Client, usage, tenants int) {
	c.maxUsagePages, c.maxTenantPages = usage, tenants
}

// SetMaxAlertPages lowers the page bound of c's alert listings.
func SetMaxAlertPages(c *Client, n int) {
	c.maxAlertPages = n
}

// SetMaxBody lowers the bound on the body of an answer c decodes.
func SetMaxBody(c *Client, n int64) {
	c.maxBody = n
}

// SetMaxUsageRows lowers the bound on the rows of c's usage listings.
func SetMaxUsageRows(c *Client, n int) {
	c.maxUsageRows = n
}

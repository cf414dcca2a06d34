package sophostest

// Tenant is a customer tenant as GET /partner/v1/tenants/{id} returns it.
// Fields left empty in a fixture are filled in when served: showAs from name,
// dataGeography "US", dataRegion "us01", billingType "usage", partner the
// simulator's partner, apiHost the simulator's own URL.
type Tenant struct {
	ID            string `json:"id"`
	ShowAs        string `json:"showAs,omitempty"`
	Name          string `json:"name"`
	DataGeography string `json:"dataGeography,omitempty"`
	DataRegion    string `json:"dataRegion,omitempty"`
	BillingType   string `json:"billingType,omitempty"`
	Partner       *IDRef `json:"partner,omitempty"`
	Organization  *IDRef `json:"organization,omitempty"`
	APIHost       string `json:"apiHost,omitempty"`
	Status        string `json:"status,omitempty"`
	ContactEmail  string `json:"contactEmail,omitempty"`
}

// IDRef is a {"id": "..."} reference.
type IDRef struct {
	ID string `json:"id"`
}

// UsageItem is one row of GET /partner/v1/billing/usage/{year}/{month}. The
// first block has the fields of the vendor's example response; the second
// block holds fields that third-party clients report (see the reference notes)
// and is only sent when set. Quantities are JSON numbers, so a fixture can hold
// a fractional or negative quantity to test how a client copes.
type UsageItem struct {
	PartnerAccountID            string  `json:"partnerAccountId"`
	PartnerEdiAccountNumber     string  `json:"partnerEdiAccountNumber"`
	PartnerAccountName          string  `json:"partnerAccountName"`
	BillingStartDate            string  `json:"billingStartDate"`
	BillingEndDate              string  `json:"billingEndDate"`
	OrderNumber                 string  `json:"orderNumber"`
	OrderLineItemNumber         string  `json:"orderLineItemNumber"`
	AccountNumberOrSerialNumber string  `json:"accountNumberOrSerialNumber"`
	ProductDescription          string  `json:"productDescription"`
	ProductGroup                string  `json:"productGroup"`
	SKU                         string  `json:"sku"`
	BillableQuantity            float64 `json:"billableQuantity"`
	ExternalID                  string  `json:"externalId"`
	AccountID                   string  `json:"accountId"`
	AccountStatus               string  `json:"accountStatus"`
	ActualQuantity              float64 `json:"actualQuantity"`
	ProductCode                 string  `json:"productCode"`

	AssignedAccountIdentifier string   `json:"assignedAccountIdentifier,omitempty"`
	AccountType               string   `json:"accountType,omitempty"`
	OrderedQuantity           *float64 `json:"orderedQuantity,omitempty"`
	UnitPrice                 *float64 `json:"unitPrice,omitempty"`
	NetPrice                  *float64 `json:"netPrice,omitempty"`
	ContactEmail              string   `json:"contactEmail,omitempty"`
}

// WhoAmI is the body of GET /whoami/v1.
type WhoAmI struct {
	ID       string   `json:"id"`
	IDType   string   `json:"idType"`
	APIHosts APIHosts `json:"apiHosts"`
}

// APIHosts lists the hosts a caller should use.
type APIHosts struct {
	Global     string `json:"global"`
	DataRegion string `json:"dataRegion,omitempty"`
}

// Pages is the paging block of list responses. Tenants use current; billing
// usage uses fromKey and nextKey. total and items are only present when the
// request asked for pageTotal=true.
type Pages struct {
	Current *int   `json:"current,omitempty"`
	FromKey string `json:"fromKey,omitempty"`
	NextKey string `json:"nextKey,omitempty"`
	Size    int    `json:"size"`
	Total   *int   `json:"total,omitempty"`
	Items   *int   `json:"items,omitempty"`
	MaxSize int    `json:"maxSize"`
}

// ErrorBody is the error envelope of the Central APIs.
type ErrorBody struct {
	Error         string `json:"error"`
	Message       string `json:"message"`
	CorrelationID string `json:"correlationId"`
	Code          string `json:"code"`
	CreatedAt     string `json:"createdAt"`
	RequestID     string `json:"requestId"`
	DocURL        string `json:"docUrl"`
}

// TokenResponse is the body of a successful token request. errorCode,
// message and trackingId are Sophos additions to the OAuth2 fields.
type TokenResponse struct {
	AccessToken  string `json:"access_token"`
	ErrorCode    string `json:"errorCode"`
	ExpiresIn    int    `json:"expires_in"`
	Message      string `json:"message"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	TrackingID   string `json:"trackingId"`
}

// TokenError is the body of a refused token request, for example
// {"errorCode":"oauth.invalid_client_secret","message":"Unauthorized","trackingId":"..."}.
type TokenError struct {
	ErrorCode  string `json:"errorCode"`
	Message    string `json:"message"`
	TrackingID string `json:"trackingId"`
}

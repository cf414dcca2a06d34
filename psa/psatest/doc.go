// Package psatest provides wire-compatible, in-memory PSA simulators for
// tests and demos. A Server listens on a loopback address only and serves a
// vendor's REST API (Autotask, ConnectWise PSA or Kaseya BMS, chosen with
// WithSystem) from state held in memory, with the
// vendor's routes, authentication headers, query rules, paging, error
// envelopes and limits, plus fault injection and a request log.
//
// It is an ordinary package, not a _test.go file, so that client, provider
// and daemon tests share it; nothing in it needs testing.TB, so a command
// can run it by hand from a JSON fixture.
//
// # Usage in tests
//
//	func TestSomething(t *testing.T) {
//		t.Parallel()
//		srv := psatest.Start(t) // 127.0.0.1:random; closed by t.Cleanup
//		at := srv.Autotask()
//		company := at.AddCompany("Acme")
//		contract := at.AddContract(psatest.AutotaskContract{CompanyID: company, Name: "Acme Managed Services"})
//		service := at.AddService("Sophos Intercept X Advanced", 4.5)
//		at.SetUnits(contract, service, 10, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
//
//		// Point the client under test at srv.AutotaskBaseURL() (the zone root,
//		// "http://127.0.0.1:port/ATServicesRest/") or at
//		// srv.AutotaskZoneLookupURL() for zone discovery, with the default
//		// credentials DefaultAutotaskUsername, DefaultAutotaskSecret and
//		// DefaultAutotaskIntegrationCode.
//
//		srv.AddFault(psatest.Fault{Method: "POST", Path: "/ATServicesRest/V1.0/ContractServiceAdjustments", DropAfterHandling: true, Times: 1})
//		// ... run the client ...
//		units, _ := at.Units(contract, service, time.Now())
//		_ = units
//		_ = srv.Requests() // what the client sent, with the status answered
//	}
//
// # Running by hand
//
//	f, err := psatest.LoadFixture("psa/psatest/testdata/autotask.json")
//	if err != nil { ... }
//	srv, err := psatest.NewServerOn("127.0.0.1:8089", psatest.WithFixture(f))
//	if err != nil { ... }
//	defer srv.Close()
//	fmt.Println("Autotask zone root:", srv.AutotaskBaseURL())
//
// Server.Handler returns the whole handler for serving it some other way.
//
// # The simulated Autotask API
//
// All paths are case-insensitive and live under /ATServicesRest/:
//
//   - GET VersionInformation and GET V1.0/zoneInformation?user= (no
//     credentials; an unknown or blank user gets 500). The zone url is the
//     server's own zone root.
//   - Every other request needs the UserName, Secret and ApiIntegrationCode
//     headers: an unknown user or integration code gets 500 {"errors":[...]},
//     a wrong secret 401. ImpersonationResourceId is accepted and becomes
//     the creator of records; a read impersonating a resource given to
//     Autotask.RestrictResource sees nothing (no rows, no error), as a
//     restricted security level does.
//   - Entities: Companies, Contracts, Services (GET {id}, query, query/count,
//     POST, PATCH and PUT at the collection URL); BillingCodes (read-only);
//     ContractServices (read and query; created and updated only through
//     /Contracts/{id}/Services); ContractServiceUnits (read-only; also GET
//     /Contracts/{id}/ServiceUnits); ContractServiceAdjustments (POST only,
//     also /Contracts/{id}/ServiceAdjustments); ThresholdInformation;
//     {Entity}/entityInformation[/fields|/userDefinedFields]. Any other
//     method on these gets 405 {"Message":"The requested resource does not
//     support http method 'X'."}; unknown entities get 404.
//   - Queries (POST {Entity}/query with a JSON body or GET with ?search=)
//     follow Autotask's strict rules: a missing filter is a 500, "filter":[]
//     returns no rows, MaxRecords must be 1..500 (default 500); the 13
//     operators and and/or groups, case-insensitive field names and body
//     keys, IncludeFields (id is always kept, and a query with IncludeFields
//     that returns more than one page must name it, or gets a 500). Pages end with a pageDetails
//     whose absolute nextPageUrl ({zone root}V1.0/{Entity}/query/next?paging=)
//     must be followed with the method and the query of the first request: a
//     POST with the same body, or a GET (which carries &search=) after a GET.
//     A GET after a POST query gets 405.
//     The simulator has no user-defined fields: conditions with "udf":true
//     are accepted and see null. GET /Contracts/{id}/{Child} lists page like
//     a GET query.
//   - Validation failures are 500 {"errors":["..."]}, as Autotask does.
//     Create and PATCH/PUT bodies are case-insensitive; read-only and unknown
//     properties are ignored; PUT sets the writable properties it leaves out
//     to null. A service needs name, unitPrice, periodType and an active
//     billing code of use type "Recurring Contract Service"; a service line
//     can only be added to a Recurring Service contract, once per service
//     through the API (Autotask.AddRepeatContractService and a fixture
//     line's "repeat" add a service again, a repeat service).
//   - Picklists: Services.periodType Monthly=1, Quarterly=2, Semi-Annual=3,
//     Yearly=4; Contracts.contractType includes Recurring Service=7;
//     Contracts.status Active=1, Inactive=0. Clients must read them from
//     entityInformation/fields, as on a real tenant.
//
// # Contract units
//
// Each service line on a contract (a ContractService) has one
// ContractServiceUnits row per monthly period from the contract's start date
// to its end date. Rows hold calendar days: startDate is the first day and
// endDate the last day of the row, both at 00:00:00Z, so a query for the row
// covering an instant should compare against that instant's date at
// midnight UTC. A ContractServiceAdjustment {contractID, serviceID or
// contractServiceID, unitChange, effectiveDate, adjustedUnitPrice?} adds
// unitChange to every row from effectiveDate on, first splitting the row
// that contains effectiveDate (the new row runs from effectiveDate to the
// old row's end). It creates the ContractService when the contract has no
// line for the service, at adjustedUnitPrice or the service's unit price.
// Rows are made when the line is added: changing a contract's dates later
// does not remake them. Autotask.PostPeriods (a fixture contract's
// "postedThrough") approves and posts the rows up to a day: they carry
// approveAndPostDate. An adjustment that changes a posted row is accepted,
// since the references do not say Autotask refuses one, and is flagged
// (AutotaskAdjustment.IntoPostedPeriod). With a service on a contract
// more than once, an adjustment that names the service but no
// contractServiceID changes the first line.
// effectiveDate and the contract dates are calendar dates taken as written:
// "2026-11-01T00:00:00+01:00" means 1 November.
// It is refused (500) when a row would go below zero units, when
// effectiveDate is missing or outside the contract, and when the contract
// or service is unknown or inactive.
//
// # Limits
//
// Every request except the zone lookup and version list counts against a
// rolling hourly budget (WithHourlyLimit, default 10,000), reported by GET
// V1.0/ThresholdInformation; beyond it requests get 429 {"errors":["API
// Request Threshold Exceeded — The Autotask API request threshold of N
// requests per hour exceeded; ..."]}. At most WithThreadLimit (default 3)
// requests run at once per integration code and entity endpoint; the next
// one gets 429 {"errors":["Thread Threshold Exceeded — The Autotask API
// thread threshold of 3 threads has been exceeded ..."]}. Autotask does not
// document either status code; 429 is the simulator's choice. With
// WithUsageLatency, requests slow down from 50% and 75% of the hourly limit,
// as Autotask's do.
//
// # Faults
//
// Fault (WithFault, Server.AddFault) matches requests by method and path
// (exact, or a prefix ending in "*"), and optionally by a string in the
// body (BodyContains, to single out one create among several), and answers with a status and body,
// adds Retry-After or latency, closes the connection without an answer
// (Drop), or runs the real handler and then closes the connection
// (DropAfterHandling: the write happened but the client never learns it).
// A Go http.Client may transparently retry an idempotent request whose
// connection was dropped, which uses up one more of the fault's Times.
//
// # Fixtures
//
// A fixture is a JSON document; LoadFixture reads it strictly (unknown
// fields are errors) and WithFixture or WithFixtureFile seed a server with
// it. Records refer to each other by name. Dates are "YYYY-MM-DD". Labels
// (types, statuses, period types) are picklist labels; omitted ones take the
// defaults shown.
//
//	{
//	  "autotask": {
//	    "username": "api@msp.example",
//	    "secret": "sim-secret",
//	    "integrationCode": "SIMCODE",
//	    "billingCodes": [{"name": "Recurring Services", "useType": "Recurring Contract Service", "active": true}],
//	    "companies": [{"name": "Acme", "number": "C-1", "type": "Customer"}],
//	    "contracts": [{"name": "Acme Managed Services", "company": "Acme", "type": "Recurring Service",
//	                   "status": "Active", "startDate": "2026-01-01", "endDate": "2026-12-31"}],
//	    "services": [{"name": "Sophos Intercept X Advanced", "unitPrice": 4.5, "unitCost": 2.1,
//	                  "periodType": "Monthly", "billingCode": "Recurring Services"}],
//	    "contractServices": [{"contract": "Acme Managed Services", "service": "Sophos Intercept X Advanced",
//	                          "units": 25, "from": "2026-01-01"}]
//	  }
//	}
//
// A contract may give "postedThrough" (a day: its periods up to it are
// approved and posted), and a contract service "repeat": true to add a
// service the contract already holds as a second line.
//
// Every record may also give an "id"; contracts may give "companyID" and
// lines "contractID"/"serviceID" instead of names. Without ids, ids are
// allocated deterministically: companies from 174, contracts from 29684000,
// services from 30000000, billing codes from 29682800, contract services
// from 40000000, unit rows from 50000000 and adjustments from 60000000. A
// tenant without billing codes gets "Recurring Services" (29682800).
// testdata/autotask.json is a small example.
//
// # The simulated ConnectWise PSA API
//
// With WithSystem(psa.SystemConnectWise) the server simulates one
// ConnectWise company (Server.ConnectWise; ids from 250 for companies, 700
// for catalog items, 800 for agreements and 3500 for additions):
//
//   - GET /login/companyinfo/{company} without credentials returns
//     {"Codebase": "v4_6_release/", "CompanyID": ..., "SiteUrl": ...};
//     ConnectWise.ChangeCodebase moves the company, after which the old
//     codebase answers 404 until the client discovers the new one.
//     Server.ConnectWiseSite is the site for discovery,
//     Server.ConnectWiseBaseURL the current API root.
//   - Every request under /{codebase}apis/3.0/ needs Basic
//     "company+publicKey:privateKey" and the clientId header (401
//     {"code":"Unauthorized"} otherwise; defaults
//     DefaultConnectWiseCompany, DefaultConnectWisePublicKey,
//     DefaultConnectWisePrivateKey, DefaultConnectWiseClientID, or
//     WithConnectWiseCredentials). A version in Accept is honoured when the
//     vendor type comes first, and one newer than ConnectWiseAPIVersion (or
//     WithConnectWiseAPIVersion's; or malformed) gets 400 {"code":"ConnectWiseApi"}. Every answer carries
//     api-current-version.
//   - Resources: company/companies and finance/agreements (GET), and
//     procurement/catalog and finance/agreements/{id}/additions (GET, POST,
//     PATCH, DELETE), each with /count and /{id}. Lists are bare arrays with
//     conditions (=, !=, <>, <, <=, >, >=, contains, like, in, not, and, or,
//     parentheses, nested paths, quoted strings with backslash escapes,
//     numbers, true/false, null, [dates]; unknown fields are 400), fields
//     projection, orderBy, pageSize (default 25, at most 1,000) and page,
//     with a Link header (next, prev, first, last). The header
//     pagination-type: forward-only gives keyset paging by id (Link with
//     pageId; orderBy refused), except on additions, which stand for the
//     endpoints without it and answer without a Link.
//   - PATCH takes ConnectWise's dialect [{"op","path","value"}]: op add,
//     replace or remove, a bare writable field name, a value of the right
//     type; anything else is 400 {"code":"InvalidObject"}. POST validates
//     like ConnectWise: a catalog item needs identifier (unique, max 60),
//     description (max 60) and customerDescription; an addition needs an
//     active product ({"id"} or {"identifier"}) and billCustomer, takes the
//     catalog price and cost and the agreement's start date by default, and
//     is refused on a cancelled or expired agreement. An addition's
//     agreementStatus is Cancelled once its cancelledDate has passed;
//     WithConnectWiseAdditionsStayActive (or SetAdditionsStayActive) keeps
//     it Active, the other case the references leave open.
//     HideAdditions(agreement, true) answers that agreement's additions as
//     `[]` (a count of 0), as for an API member whose security role cannot
//     see them, while they stay on the agreement.
//     Server.HideTicketSearches(true), on every PSA, answers ticket
//     searches (Autotask's Tickets query, ConnectWise's ticket list and
//     count, Kaseya BMS's ticket search) as finding nothing, as for an API
//     user who cannot see the tickets' queue or board, while they stay.
//   - WithConnectWiseRateLimit(n, per) answers 429 with Retry-After beyond n
//     requests in per; Fault and WithLatency apply as for Autotask.
//
// The fixture's "connectwise" section (see ConnectWiseFixture and
// testdata/connectwise.json) seeds companies, catalog items, agreements
// (referring to companies by name or identifier) and additions (referring
// to agreements by name and products by identifier).
//
// # The simulated Kaseya BMS API
//
// With WithSystem(psa.SystemKaseyaBMS) the server simulates one Kaseya BMS
// tenant (Server.KaseyaBMS) under /v2/ at Server.KaseyaBMSBaseURL; paths
// are case-insensitive, and ids are allocated from 1001 for accounts, 2001
// for contracts, 3001 for services and 4001 for contract lines:
//
//   - POST v2/security/authenticate takes a form, urlencoded or multipart,
//     with keys in any casing: GrantType=password, UserName, Password and
//     Tenant (compared case-insensitively); defaults
//     DefaultKaseyaBMSUsername, DefaultKaseyaBMSPassword and
//     DefaultKaseyaBMSTenant, or WithKaseyaBMSCredentials. It answers
//     {"success":true,"error":null,"result":{"accessToken", "refreshToken",
//     "accessTokenExpireOn", "refreshTokenExpireOn"}}; wrong credentials get
//     200 with success:false. POST v2/security/refreshtoken (AccessToken,
//     RefreshToken) issues a new pair once. Tokens live
//     DefaultKaseyaBMSTokenTTL and DefaultKaseyaBMSRefreshTTL by the
//     server's clock (KaseyaBMS.SetTokenLifetimes, KaseyaBMS.RevokeTokens).
//   - Every other request needs Authorization: Bearer with a live token,
//     else 401 with a success:false envelope.
//   - Answers use the envelope in camelCase, as observed on the wire
//     (the vendor's document says PascalCase): success, error, result and,
//     on paged listings, totalRecords (KaseyaBMS.SetPascalCase, or the
//     fixture's "pascalCase", switches to the document's PascalCase).
//     Validation failures and unknown ids
//     are 200 with success:false and error {code, message}, as the document
//     models them. GET v2/crm/accounts/summary/{id} answers the bare DTO, as
//     the document declares.
//   - Services: GET lookup (Filter.Id, Filter.Name), POST search (Filter
//     Name, IsActive, IsTaxable), GET/PUT/DELETE {id}, POST services/services
//     (names unique; a service on a contract cannot be deleted), POST
//     {id}/relatedservices/search (the service's contract lines, paged,
//     its Filter not applied; none for an unknown service); fixed
//     categories (1 Managed Services: 11 Security, 12 Backup; 2 Licensing:
//     21 Microsoft) through servicecategory/lookup and
//     servicecategory/{id}/servicesubcategory/lookup; units of measure 1
//     Each, 2 User, 3 Device. Accounts: summary (Filter.AccountName,
//     Filter.IsActive), summary/{id}, lookup (Filter.Ids, Filter.Name,
//     Filter.WithInactiveAccounts). Contracts: summary (Filter.ContractType,
//     ContractName, AccountName, BillingCycle, Status), lookup (Ids,
//     AccountId, Name, ExcludeExpiredContracts), POST recurringservices, PUT
//     {id}/activate and {id}/deactivate. Name filters match substrings.
//   - POST v2/finance/contracts/recurringservices/{id}/services takes an
//     array of lines {ServiceId, ServiceName, ServiceDescription, Units,
//     UnitCost, UnitPrice, EffectiveDate, SortOrder}, on an active
//     recurring-services contract, with Units given and not negative and
//     EffectiveDate within the contract; it answers the first line. Every
//     post adds lines (KaseyaBMS.ServiceLines); KaseyaBMS.Units gives the
//     units of the latest line in effect at a date.
//   - Paging: PageSize (default 50) and PageNumber from 1 (0 reads as 1);
//     a page beyond the end is empty. KaseyaBMS.SetPaging counts pages
//     from 0 instead, or ignores PageNumber, as a real tenant might.
//   - Limits: at most 1,500 calls per endpoint template (numeric segments
//     as {id}) in a rolling hour, or WithHourlyLimit when set; beyond it
//     429 with Retry-After and a success:false envelope. Fault and
//     WithLatency apply as for Autotask.
//
// The fixture's "kaseyabms" section (see KaseyaBMSFixture and
// testdata/kaseyabms.json) seeds accounts, contracts (referring to accounts
// by name), services (category, subcategory and unit of measure by name)
// and lines (contract and service by name).
//
// # Tickets
//
// Each simulator also serves its vendor's tickets, as strictly as the rest:
//
//   - Autotask: Tickets (GET {id}, query, POST, PATCH/PUT at the collection
//     URL; no DELETE) and their notes under /Tickets/{id}/Notes (the root
//     TicketNotes collection is read-only, as in the route list). A ticket
//     needs companyID, title (250), status, priority, and a queueID or a
//     resource with a role; dueDateTime unless the ticketCategory (or,
//     without one, the default category Standard) defaults the due date
//     and time, else 500 "dueDateTime is required.": only the API-only
//     "Sophos Central" category (AutotaskTicketCategorySophosCentral)
//     does, due a day after creation; a
//     subIssueType must belong to its issueType (picklist parentValue).
//     Status 5 (Complete) sets completedDate. Picklist values are the
//     Autotask* constants; externalID (50) is queryable.
//   - ConnectWise: service/tickets ([/count|/{id}], POST, PATCH), their
//     notes (one of detailDescriptionFlag, internalAnalysisFlag or
//     resolutionFlag must be true), service/boards with their statuses and
//     types, service/priorities and service/sources. The status must be one
//     of the ticket's board; a closedStatus sets closedFlag. externalXRef is
//     usable in conditions. Ids are the ConnectWise* constants.
//   - Kaseya BMS: POST v2/servicedesk/tickets, GET and PATCH (JSON Patch)
//     .../{id}, POST .../search (Filter.Title and Filter.Details by
//     substring, Filter.AccountIds comma-separated), POST .../{id}/resolve,
//     GET and POST .../{id}/notes, the system lookups of queues, priorities,
//     statuses, issue and sub-issue types, the generic lookup tables
//     TicketType, TicketSource and NoteType, and an account's locations
//     (one main location each). Bodies are decoded strictly: properties the
//     vendor's document does not declare are refused. Ids are the KaseyaBMS*
//     constants.
//
// Tickets(), TicketNotes() and SetTicketStatus() on each vendor's state
// inspect tickets and change them out of band, as a technician would;
// ConnectWise also has MoveTicket (to another board) and AddBoardStatus.
//
// # Inspection endpoints (NOT Autotask)
//
// Paths under /_sim/ are the simulator's own and exist in no vendor API.
// They are not logged, limited or faulted:
//
//   - GET /_sim/autotask/state: JSON of the tenant (companies, contracts,
//     services, billing codes, lines with their current units and unit
//     rows, adjustments, hourly count); see AutotaskState.
//   - GET /_sim/connectwise/state: JSON of the ConnectWise company (codebase,
//     companies, catalog items, agreements, additions with their status);
//     see ConnectWiseState.
//   - GET /_sim/kaseyabms/state: JSON of the Kaseya BMS tenant (accounts,
//     contracts, services, every posted line, the units in force today,
//     calls per endpoint in the hour); see KaseyaBMSState. It is not BMS.
//   - GET /_sim/requests: the request log, with credential headers redacted.
//
// Server.Requests returns the same log in Go, credentials included, each
// entry with the status answered (or that would have been answered, for
// DropAfterHandling) and whether the connection was dropped.
package psatest

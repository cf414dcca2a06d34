package psatest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Paths of the simulated BMS service desk (case-insensitive), as the
// vendor's document declares them:
//
//	POST   /v2/servicedesk/tickets
//	GET    /v2/servicedesk/tickets/{ticketId}
//	PATCH  /v2/servicedesk/tickets/{ticketId}       (JSON Patch: /StatusId, /PriorityId, /QueueId, /Title)
//	POST   /v2/servicedesk/tickets/search
//	POST   /v2/servicedesk/tickets/{ticketId}/resolve
//	GET    /v2/servicedesk/tickets/{ticketId}/notes
//	POST   /v2/servicedesk/tickets/{ticketId}/notes
//	GET    /v2/system/queues/lookup, priorities/lookup, statuses/lookup, issuetypes/lookup
//	GET    /v2/system/issuetypes/{issueTypeId}/issuesubtypes/lookup
//	GET    /v2/system/lookup/{tableName}            (TicketType, TicketSource, NoteType)
//	GET    /v2/crm/accounts/{accountId}/locations/lookup
//
// Bodies are decoded strictly: a property the document does not declare
// is refused, as are missing required properties.

// Ids of the service desk settings every simulated tenant starts with.
const (
	KaseyaBMSQueueServiceDesk    = 1
	KaseyaBMSQueueSecurity       = 4
	KaseyaBMSStatusNew           = 1
	KaseyaBMSStatusInProgress    = 2
	KaseyaBMSStatusCompleted     = 7
	KaseyaBMSPriorityLow         = 1
	KaseyaBMSPriorityMedium      = 2
	KaseyaBMSPriorityHigh        = 3
	KaseyaBMSIssueTypeSecurity   = 12
	KaseyaBMSSubIssueTypeMalware = 55
	KaseyaBMSTypeIncident        = 1
	KaseyaBMSTypeAlert           = 2
	KaseyaBMSSourceMonitoring    = 9
	KaseyaBMSNoteTypeGeneral     = 1

	bmsFirstTicket   = 6001
	bmsFirstNote     = 7001
	bmsLocationFirst = 9000 // an account's main location is bmsLocationFirst + account id
)

type bmsStatus struct {
	bmsNamed
	TypeID int // 1 new, 2 in progress, 3 completed (BMS does not document these)
}

var (
	bmsQueues     = []bmsNamed{{KaseyaBMSQueueServiceDesk, "Service Desk"}, {KaseyaBMSQueueSecurity, "Security Alerts"}}
	bmsPriorities = []bmsNamed{{KaseyaBMSPriorityLow, "Low"}, {KaseyaBMSPriorityMedium, "Medium"}, {KaseyaBMSPriorityHigh, "High"}, {4, "Critical"}}
	bmsStatuses   = []bmsStatus{{bmsNamed{KaseyaBMSStatusNew, "New"}, 1}, {bmsNamed{KaseyaBMSStatusInProgress, "In Progress"}, 2},
		{bmsNamed{5, "Waiting Customer"}, 2}, {bmsNamed{KaseyaBMSStatusCompleted, "Completed"}, 3}}
	bmsIssueTypes = []bmsNamed{{KaseyaBMSIssueTypeSecurity, "Security"}, {13, "Backup"}}
	bmsSubIssues  = map[int][]bmsNamed{KaseyaBMSIssueTypeSecurity: {{KaseyaBMSSubIssueTypeMalware, "Malware"}, {56, "Policy"}}, 13: {{57, "Failed Job"}}}
	bmsTables     = map[string][]bmsNamed{
		"tickettype":   {{KaseyaBMSTypeIncident, "Incident"}, {KaseyaBMSTypeAlert, "Alert"}, {3, "Service Request"}},
		"ticketsource": {{1, "Phone"}, {2, "Email"}, {KaseyaBMSSourceMonitoring, "Monitoring"}},
		"notetype":     {{KaseyaBMSNoteTypeGeneral, "General"}, {2, "Time Entry"}},
	}
	// bmsTableDefaults are each table's default entry.
	bmsTableDefaults = map[string]int{"tickettype": KaseyaBMSTypeIncident, "ticketsource": 1, "notetype": KaseyaBMSNoteTypeGeneral}
)

// KaseyaBMSTicket is a service desk ticket.
type KaseyaBMSTicket struct {
	ID             int        `json:"id"`
	Number         string     `json:"number"`
	Title          string     `json:"title"`
	Details        string     `json:"details"`
	AccountID      int        `json:"accountId"`
	LocationID     int        `json:"locationId"`
	QueueID        int        `json:"queueId,omitempty"`
	StatusID       int        `json:"statusId"`
	PriorityID     int        `json:"priorityId"`
	TypeID         int        `json:"typeId"`
	SourceID       int        `json:"sourceId"`
	IssueTypeID    int        `json:"issueTypeId,omitempty"`
	SubIssueTypeID int        `json:"subIssueTypeId,omitempty"`
	ContractID     int        `json:"contractId,omitempty"`
	OpenDate       time.Time  `json:"openDate"`
	CreatedOn      time.Time  `json:"createdOn"`
	CompletedDate  *time.Time `json:"completedDate,omitempty"`
	ReOpenedDate   *time.Time `json:"reOpenedDate,omitempty"`
	// ModifiedOn is when the ticket last changed; LastStatusUpdate when
	// its status last did.
	ModifiedOn       time.Time `json:"modifiedOn"`
	LastStatusUpdate time.Time `json:"lastStatusUpdate"`
}

// KaseyaBMSTicketNote is a ticket note.
type KaseyaBMSTicketNote struct {
	ID         int       `json:"id"`
	TicketID   int       `json:"ticketId"`
	Details    string    `json:"details"`
	IsInternal bool      `json:"isInternal"`
	TypeID     int       `json:"typeId"`
	NoteDate   time.Time `json:"noteDate"`
	// Emailed is true when the note asked BMS to send e-mail.
	Emailed bool `json:"emailed,omitempty"`
}

type bmsServiceDesk struct {
	tickets              []*KaseyaBMSTicket
	notes                []*KaseyaBMSTicketNote
	nextTicket, nextNote int
}

func (k *KaseyaBMS) deskLocked() *bmsServiceDesk {
	if k.desk == nil {
		k.desk = &bmsServiceDesk{nextTicket: bmsFirstTicket, nextNote: bmsFirstNote}
	}
	return k.desk
}

// serveTickets serves the service desk paths and reports whether the path
// was one of them (segs are lower case, without "v2").
func (k *KaseyaBMS) serveTickets(w http.ResponseWriter, r *http.Request, segs []string) bool {
	path := strings.Join(segs, "/")
	get, post := r.Method == http.MethodGet, r.Method == http.MethodPost
	// num is the id in the third segment (…/{id}/…), 0 when there is none.
	num := func() int {
		if len(segs) < 3 {
			return 0
		}
		n, err := strconv.Atoi(segs[2])
		if err != nil || n <= 0 {
			return 0
		}
		return n
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	switch {
	case path == "system/queues/lookup" && get:
		bmsOK(w, lookupDTOs(bmsQueues, "isActive"), -1)
	case path == "system/priorities/lookup" && get:
		out := make([]map[string]any, 0, len(bmsPriorities))
		for _, p := range bmsPriorities {
			out = append(out, map[string]any{"id": p.ID, "name": p.Name, "color": "#888888", "isDefault": p.ID == KaseyaBMSPriorityMedium})
		}
		bmsOK(w, out, -1)
	case path == "system/statuses/lookup" && get:
		out := make([]map[string]any, 0, len(bmsStatuses))
		for i, st := range bmsStatuses {
			sys := 0
			if st.TypeID != 2 {
				sys = 1
			}
			out = append(out, map[string]any{"id": st.ID, "name": st.Name, "fontColor": "#000000", "color": "#ffffff",
				"statusOrder": i + 1, "typeId": st.TypeID, "isSystemStatus": sys, "slaEventId": nil, "isActive": true})
		}
		bmsOK(w, out, -1)
	case path == "system/issuetypes/lookup" && get:
		bmsOK(w, lookupDTOs(bmsIssueTypes, "isActive"), -1)
	case len(segs) == 5 && segs[0] == "system" && segs[1] == "issuetypes" && segs[3] == "issuesubtypes" && segs[4] == "lookup" && get:
		subs, ok := bmsSubIssues[num()]
		if !ok {
			bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Issue type %s not found", segs[2]))
			return true
		}
		bmsOK(w, lookupDTOs(subs, ""), -1)
	case len(segs) == 3 && segs[0] == "system" && segs[1] == "lookup" && get:
		list, ok := bmsTables[segs[2]]
		if !ok {
			bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Lookup table %s not found", segs[2]))
			return true
		}
		out := lookupDTOs(list, "isActive")
		for _, m := range out {
			m["isDefault"] = m["id"] == bmsTableDefaults[segs[2]]
		}
		bmsOK(w, out, -1)
	case len(segs) == 5 && segs[0] == "crm" && segs[1] == "accounts" && segs[3] == "locations" && segs[4] == "lookup" && get:
		a := k.accountLocked(num())
		if a == nil {
			bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Account %s not found", segs[2]))
			return true
		}
		bmsOK(w, []map[string]any{{"id": bmsLocationFirst + a.ID, "name": "Main", "accountId": a.ID, "isMain": true}}, -1)
	case path == "servicedesk/tickets" && post:
		k.ticketCreateLocked(w, r)
	case path == "servicedesk/tickets/search" && post:
		k.ticketSearchLocked(w, r)
	case len(segs) == 3 && path == "servicedesk/tickets/"+segs[2] && num() > 0:
		t := k.ticketLocked(num())
		switch {
		case t == nil:
			bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Ticket %s not found", segs[2]))
		case get:
			bmsOK(w, k.ticketDTOLocked(t, false), -1)
		case r.Method == http.MethodPatch:
			k.ticketPatchLocked(w, r, t)
		default:
			bmsMethodNotAllowed(w, r)
		}
	case len(segs) == 4 && segs[0] == "servicedesk" && segs[1] == "tickets" && (segs[3] == "resolve" || segs[3] == "notes"):
		t := k.ticketLocked(num())
		switch {
		case t == nil:
			bmsError(w, http.StatusOK, http.StatusNotFound, fmt.Sprintf("Ticket %s not found", segs[2]))
		case segs[3] == "resolve" && post:
			k.ticketResolveLocked(w, r, t)
		case segs[3] == "notes" && post:
			k.noteCreateLocked(w, r, t)
		case segs[3] == "notes" && get:
			var out []map[string]any
			for _, n := range k.deskLocked().notes {
				if n.TicketID == t.ID {
					out = append(out, noteDTO(n))
				}
			}
			bmsOK(w, out, -1)
		default:
			bmsMethodNotAllowed(w, r)
		}
	default:
		return false
	}
	return true
}

func lookupDTOs(list []bmsNamed, activeKey string) []map[string]any {
	out := make([]map[string]any, 0, len(list))
	for _, n := range list {
		m := map[string]any{"id": n.ID, "name": n.Name}
		if activeKey != "" {
			m[activeKey] = true
		}
		out = append(out, m)
	}
	return out
}

// decodeStrict decodes a body, refusing properties v does not declare
// (names match case-insensitively, as ASP.NET binds them).
func decodeStrict(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("the request body is not valid: %v", err)
	}
	return nil
}

// bmsTicketInput is TicketInputDto.
type bmsTicketInput struct {
	Title, Details     *string
	AccountID          *int `json:"AccountId"`
	LocationID         *int `json:"LocationId"`
	ContactID          *int `json:"ContactId"`
	SoftwareAssetID    *int `json:"SoftwareAssetId"`
	HardwareAssetID    *int `json:"HardwareAssetId"`
	QueueID            *int `json:"QueueId"`
	StatusID           *int `json:"StatusId"`
	PriorityID         *int `json:"PriorityId"`
	TypeID             *int `json:"TypeId"`
	IssueTypeID        *int `json:"IssueTypeId"`
	SubIssueTypeID     *int `json:"SubIssueTypeId"`
	ContractID         *int `json:"ContractId"`
	AssigneeID         *int `json:"AssigneeId"`
	WorkTypeID         *int `json:"WorkTypeId"`
	SourceID           *int `json:"SourceId"`
	SLAID              *int `json:"SLAId"`
	OpenDate, DueDate  *string
	SecondaryAssignees []json.RawMessage
	Ccs                []json.RawMessage
	TempAttachments    []json.RawMessage
	CustomFieldsData   []json.RawMessage
	UseDefaultContract bool
}

func (k *KaseyaBMS) ticketCreateLocked(w http.ResponseWriter, r *http.Request) {
	var in bmsTicketInput
	if err := decodeStrict(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	var missing []string
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"Title", in.Title != nil && strings.TrimSpace(*in.Title) != ""}, {"Details", in.Details != nil && strings.TrimSpace(*in.Details) != ""},
		{"AccountId", in.AccountID != nil}, {"LocationId", in.LocationID != nil}, {"StatusId", in.StatusID != nil},
		{"PriorityId", in.PriorityID != nil}, {"TypeId", in.TypeID != nil}, {"SourceId", in.SourceID != nil}, {"OpenDate", in.OpenDate != nil},
	} {
		if !f.ok {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		bmsError(w, http.StatusOK, http.StatusBadRequest, "The following fields are required: "+strings.Join(missing, ", "))
		return
	}
	open, err := time.Parse(time.RFC3339Nano, *in.OpenDate)
	if err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("OpenDate %q is not a valid date-time", *in.OpenDate))
		return
	}
	deref := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	t := &KaseyaBMSTicket{Title: *in.Title, Details: *in.Details, AccountID: *in.AccountID, LocationID: *in.LocationID,
		QueueID: deref(in.QueueID), StatusID: *in.StatusID, PriorityID: *in.PriorityID, TypeID: *in.TypeID, SourceID: *in.SourceID,
		IssueTypeID: deref(in.IssueTypeID), SubIssueTypeID: deref(in.SubIssueTypeID), ContractID: deref(in.ContractID), OpenDate: open.UTC()}
	if msg := k.checkTicketLocked(t); msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	d := k.deskLocked()
	now := k.clock().UTC()
	t.ID, t.CreatedOn, t.ModifiedOn, t.LastStatusUpdate = d.nextTicket, now, now, now
	t.Number = fmt.Sprintf("T%s.%04d", now.Format("20060102"), d.nextTicket-bmsFirstTicket+1)
	d.nextTicket++
	if bmsStatusType(t.StatusID) == 3 {
		t.CompletedDate = &now
	}
	d.tickets = append(d.tickets, t)
	bmsOK(w, k.ticketDTOLocked(t, false), -1)
}

func bmsStatusType(id int) int {
	for _, st := range bmsStatuses {
		if st.ID == id {
			return st.TypeID
		}
	}
	return 0
}

// checkTicketLocked checks a ticket's references; wording avoids "not
// found" so that clients read these as validation errors.
func (k *KaseyaBMS) checkTicketLocked(t *KaseyaBMSTicket) string {
	a := k.accountLocked(t.AccountID)
	switch {
	case a == nil:
		return fmt.Sprintf("AccountId %d is not a valid account", t.AccountID)
	case t.LocationID != bmsLocationFirst+a.ID:
		return fmt.Sprintf("LocationId %d is not a location of account %d", t.LocationID, t.AccountID)
	case bmsStatusType(t.StatusID) == 0:
		return fmt.Sprintf("StatusId %d is not a valid status", t.StatusID)
	case bmsName(bmsPriorities, t.PriorityID) == "":
		return fmt.Sprintf("PriorityId %d is not a valid priority", t.PriorityID)
	case bmsName(bmsTables["tickettype"], t.TypeID) == "":
		return fmt.Sprintf("TypeId %d is not a valid ticket type", t.TypeID)
	case bmsName(bmsTables["ticketsource"], t.SourceID) == "":
		return fmt.Sprintf("SourceId %d is not a valid source", t.SourceID)
	case t.QueueID != 0 && bmsName(bmsQueues, t.QueueID) == "":
		return fmt.Sprintf("QueueId %d is not a valid queue", t.QueueID)
	case t.IssueTypeID != 0 && bmsName(bmsIssueTypes, t.IssueTypeID) == "":
		return fmt.Sprintf("IssueTypeId %d is not a valid issue type", t.IssueTypeID)
	case t.SubIssueTypeID != 0 && bmsName(bmsSubIssues[t.IssueTypeID], t.SubIssueTypeID) == "":
		return fmt.Sprintf("SubIssueTypeId %d is not a sub-issue type of issue type %d", t.SubIssueTypeID, t.IssueTypeID)
	}
	if t.ContractID != 0 {
		c := k.contractLocked(t.ContractID)
		if c == nil || c.AccountID != t.AccountID {
			return fmt.Sprintf("ContractId %d is not a contract of account %d", t.ContractID, t.AccountID)
		}
	}
	return ""
}

func (k *KaseyaBMS) ticketLocked(id int) *KaseyaBMSTicket {
	for _, t := range k.deskLocked().tickets {
		if t.ID == id {
			return t
		}
	}
	return nil
}

// ticketDTOLocked renders TicketOutputDto, or TicketListDto when list.
func (k *KaseyaBMS) ticketDTOLocked(t *KaseyaBMSTicket, list bool) map[string]any {
	opt := func(id int) any {
		if id == 0 {
			return nil
		}
		return id
	}
	optTime := func(p *time.Time) any {
		if p == nil {
			return nil
		}
		return bmsTime(*p)
	}
	a := k.accountLocked(t.AccountID)
	statusName := ""
	for _, st := range bmsStatuses {
		if st.ID == t.StatusID {
			statusName = st.Name
		}
	}
	m := map[string]any{
		"id": t.ID, "createdBy": 1, "createdOn": bmsTime(t.CreatedOn), "ticketNumber": t.Number, "title": t.Title, "details": t.Details,
		"accountId": t.AccountID, "accountCode": a.Code, "accountName": a.Name, "locationId": t.LocationID, "locationName": "Main",
		"queueId": opt(t.QueueID), "queueName": nil, "statusId": t.StatusID, "statusName": statusName, "statusOrder": 1,
		"priorityId": t.PriorityID, "priorityName": bmsName(bmsPriorities, t.PriorityID),
		"typeId": t.TypeID, "typeName": bmsName(bmsTables["tickettype"], t.TypeID),
		"issueTypeId": opt(t.IssueTypeID), "subIssueTypeId": opt(t.SubIssueTypeID), "contractId": opt(t.ContractID),
		"sourceId": t.SourceID, "openDate": bmsTime(t.OpenDate), "completedDate": optTime(t.CompletedDate),
		"reOpenedDate": optTime(t.ReOpenedDate), "isScheduled": 0, "modifiedBy": 1, "modifiedOn": bmsTime(t.ModifiedOn),
		"lastStatusUpdate": bmsTime(t.LastStatusUpdate),
	}
	if list {
		m["hardwareAssetId"], m["customFields"] = 0, nil
	} else {
		m["sourceName"] = bmsName(bmsTables["ticketsource"], t.SourceID)
		m["tenantId"], m["hasPostedEntries"], m["isReadOnly"], m["openDateLocked"] = 1, false, false, false
	}
	return m
}

// bmsTicketSearch is GetTicketsInputDto with the filters the simulator
// applies (Title and Details: substring, case-insensitive; AccountIds:
// comma-separated; ExcludeCompleted: 1 leaves completed tickets out).
type bmsTicketSearch struct {
	PageSize, PageNumber, StartRowIndex, EndRowIndex int
	Sort, Exclude                                    *string
	Filter                                           *struct {
		Title, Details, AccountIds *string
		ExcludeCompleted           int
		CreatedOnFrom              *string
	}
}

func (k *KaseyaBMS) ticketSearchLocked(w http.ResponseWriter, r *http.Request) {
	var body bmsTicketSearch
	if err := decodeStrict(r, &body); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	size, number := 50, k.pageIndex(body.PageNumber)
	if body.PageSize > 0 {
		size = body.PageSize
	}
	var all []map[string]any
	for _, t := range k.deskLocked().tickets {
		if k.srv.ticketSearchesHidden.Load() {
			break
		}
		if f := body.Filter; f != nil {
			if f.Title != nil && !containsFold(t.Title, *f.Title) || f.Details != nil && !containsFold(t.Details, *f.Details) ||
				f.ExcludeCompleted == 1 && t.CompletedDate != nil {
				continue
			}
			if f.AccountIds != nil && *f.AccountIds != "" && !slices.Contains(strings.Split(*f.AccountIds, ","), strconv.Itoa(t.AccountID)) {
				continue
			}
		}
		all = append(all, k.ticketDTOLocked(t, true))
	}
	bmsOK(w, page(all, size, number), len(all))
}

func (k *KaseyaBMS) setStatusLocked(t *KaseyaBMSTicket, status int) {
	now := k.clock().UTC()
	was := t.CompletedDate != nil
	if t.StatusID != status {
		t.LastStatusUpdate = now
	}
	t.StatusID, t.ModifiedOn = status, now
	switch done := bmsStatusType(status) == 3; {
	case done && !was:
		t.CompletedDate = &now
	case !done && was:
		t.CompletedDate, t.ReOpenedDate = nil, &now
	}
}

func (k *KaseyaBMS) ticketPatchLocked(w http.ResponseWriter, r *http.Request, t *KaseyaBMSTicket) {
	var ops []struct {
		Op, Path, From string
		Value          json.RawMessage
		OperationType  *int
	}
	if err := decodeStrict(r, &ops); err != nil || len(ops) == 0 {
		bmsError(w, http.StatusOK, http.StatusBadRequest, "The body must be a non-empty JSON Patch array")
		return
	}
	upd := *t
	for _, op := range ops {
		if !strings.EqualFold(op.Op, "replace") {
			bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("JSON Patch op %q is not supported", op.Op))
			return
		}
		var n int
		field := strings.ToLower(strings.TrimPrefix(op.Path, "/"))
		if field == "title" {
			if err := json.Unmarshal(op.Value, &upd.Title); err != nil || strings.TrimSpace(upd.Title) == "" {
				bmsError(w, http.StatusOK, http.StatusBadRequest, "Title must be a non-empty string")
				return
			}
			continue
		}
		if err := json.Unmarshal(op.Value, &n); err != nil {
			bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("The value of %s must be an integer", op.Path))
			return
		}
		switch field {
		case "statusid":
			upd.StatusID = n
		case "priorityid":
			upd.PriorityID = n
		case "queueid":
			upd.QueueID = n
		default:
			bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("The path %q cannot be patched", op.Path))
			return
		}
	}
	if msg := k.checkTicketLocked(&upd); msg != "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, msg)
		return
	}
	status := upd.StatusID
	upd.StatusID = t.StatusID
	*t = upd
	k.setStatusLocked(t, status)
	bmsOK(w, k.ticketDTOLocked(t, false), -1)
}

func (k *KaseyaBMS) ticketResolveLocked(w http.ResponseWriter, r *http.Request, t *KaseyaBMSTicket) {
	var in struct {
		ID                       int
		Comment                  *string
		StatusID                 int `json:"StatusId"`
		IsPublishToKnowledgeBase bool
		IsInternal               bool
		KnowledgeBaseCategoryID  *int `json:"KnowledgeBaseCategoryId"`
	}
	if err := decodeStrict(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	if in.Comment == nil || strings.TrimSpace(*in.Comment) == "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, "Comment is required")
		return
	}
	status := in.StatusID
	if status == 0 {
		status = KaseyaBMSStatusCompleted
	}
	if bmsStatusType(status) != 3 {
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("StatusId %d is not a completed status", status))
		return
	}
	k.setStatusLocked(t, status)
	k.addNoteLocked(t.ID, *in.Comment, in.IsInternal, KaseyaBMSNoteTypeGeneral, k.clock().UTC())
	bmsOK(w, k.ticketDTOLocked(t, false), -1)
}

func (k *KaseyaBMS) noteCreateLocked(w http.ResponseWriter, r *http.Request, t *KaseyaBMSTicket) {
	var in struct {
		ID                                          int
		Details                                     *string
		IsInternal                                  *bool
		TypeID                                      *int `json:"TypeId"`
		StatusID                                    *int `json:"StatusId"`
		NoteDate                                    *string
		Attachments, TempAttachments, AttachmentIds []json.RawMessage
		EmailNotification                           json.RawMessage
	}
	if err := decodeStrict(r, &in); err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, err.Error())
		return
	}
	if in.Details == nil || strings.TrimSpace(*in.Details) == "" || in.IsInternal == nil || in.TypeID == nil || in.NoteDate == nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, "Details, IsInternal, TypeId and NoteDate are required")
		return
	}
	at, err := time.Parse(time.RFC3339Nano, *in.NoteDate)
	if err != nil {
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("NoteDate %q is not a valid date-time", *in.NoteDate))
		return
	}
	if bmsName(bmsTables["notetype"], *in.TypeID) == "" {
		bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("TypeId %d is not a valid note type", *in.TypeID))
		return
	}
	if in.StatusID != nil {
		if bmsStatusType(*in.StatusID) == 0 {
			bmsError(w, http.StatusOK, http.StatusBadRequest, fmt.Sprintf("StatusId %d is not a valid status", *in.StatusID))
			return
		}
		k.setStatusLocked(t, *in.StatusID)
	}
	n := k.addNoteLocked(t.ID, *in.Details, *in.IsInternal, *in.TypeID, at.UTC())
	trimmed := bytes.TrimSpace(in.EmailNotification)
	n.Emailed = len(trimmed) > 0 && !bytes.Equal(trimmed, []byte("null"))
	bmsOK(w, noteDTO(n), -1)
}

func (k *KaseyaBMS) addNoteLocked(ticketID int, details string, internal bool, typeID int, at time.Time) *KaseyaBMSTicketNote {
	d := k.deskLocked()
	n := &KaseyaBMSTicketNote{ID: d.nextNote, TicketID: ticketID, Details: details, IsInternal: internal, TypeID: typeID, NoteDate: at}
	d.nextNote++
	d.notes = append(d.notes, n)
	return n
}

func noteDTO(n *KaseyaBMSTicketNote) map[string]any {
	return map[string]any{"id": n.ID, "createdBy": 1, "createdOn": bmsTime(n.NoteDate), "details": n.Details, "isInternal": n.IsInternal,
		"typeId": n.TypeID, "typeName": bmsName(bmsTables["notetype"], n.TypeID)}
}

// Tickets returns every ticket in id order.
func (k *KaseyaBMS) Tickets() []KaseyaBMSTicket {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KaseyaBMSTicket
	for _, t := range k.deskLocked().tickets {
		out = append(out, *t)
	}
	return out
}

// TicketNotes returns the notes of a ticket in id order.
func (k *KaseyaBMS) TicketNotes(ticketID int) []KaseyaBMSTicketNote {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KaseyaBMSTicketNote
	for _, n := range k.deskLocked().notes {
		if n.TicketID == ticketID {
			out = append(out, *n)
		}
	}
	return out
}

// SetTicketStatus changes a ticket's status out of band, as a technician
// would.
func (k *KaseyaBMS) SetTicketStatus(ticketID, statusID int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.ticketLocked(ticketID)
	if t == nil || bmsStatusType(statusID) == 0 {
		panic(fmt.Sprintf("psatest: no ticket %d or status %d", ticketID, statusID))
	}
	k.setStatusLocked(t, statusID)
}

// SetTicketAccount moves a ticket to another account (and its main
// location) out of band, as a technician would (a contract of the old
// account is unlinked).
func (k *KaseyaBMS) SetTicketAccount(ticketID, accountID int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	t := k.ticketLocked(ticketID)
	if t == nil || k.accountLocked(accountID) == nil {
		panic(fmt.Sprintf("psatest: no ticket %d or account %d", ticketID, accountID))
	}
	t.AccountID, t.LocationID, t.ContractID, t.ModifiedOn = accountID, bmsLocationFirst+accountID, 0, k.clock().UTC()
}

package psatest

import (
	"fmt"
	"strings"
	"time"
)

// Autotask ticket picklist values used by the simulator. Real tenants use
// other integers (only status 5, Complete, is a system value everywhere):
// clients must read them from Tickets/entityInformation/fields.
const (
	AutotaskTicketStatusNew        = 1
	AutotaskTicketStatusComplete   = 5
	AutotaskTicketStatusInProgress = 8

	AutotaskTicketPriorityHigh     = 1
	AutotaskTicketPriorityMedium   = 2
	AutotaskTicketPriorityLow      = 3
	AutotaskTicketPriorityCritical = 4

	AutotaskQueueClientPortal    = 29682833
	AutotaskQueuePostSale        = 29683481
	AutotaskQueueMonitoringAlert = 29683482

	AutotaskSourceMonitoringAlert = 8
	AutotaskSourceSophosCentral   = 13

	AutotaskIssueTypeSecurity   = 14
	AutotaskSubIssueTypeMalware = 201
	AutotaskSubIssueTypePolicy  = 202

	AutotaskTicketCategoryStandard = 2
	AutotaskTicketCategoryAlert    = 3
	// AutotaskTicketCategorySophosCentral is an API-only category whose
	// defaults set the due date and time (see autotaskCategoryDue), as
	// tickets.md §2.3 advises an MSP to create. Standard and Alert set
	// none.
	AutotaskTicketCategorySophosCentral = 105

	AutotaskNoteTypeTaskNotes      = 3
	AutotaskPublishAllUsers        = 1
	AutotaskPublishInternalOnly    = 2
	autotaskTicketNumberPrefixDate = "20060102"
)

// Canonical names of the simulated ticket entities.
const (
	entTickets     = "Tickets"
	entTicketNotes = "TicketNotes"
)

var (
	autotaskTicketEntities = []*entityDef{
		{
			Name: entTickets, Singular: "Ticket", UDF: true,
			CanGet: true, CanQuery: true, CanCreate: true, CanUpdate: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "ticketNumber", Type: typeString, Length: 50, ReadOnly: true},
				{Name: "companyID", Type: typeInteger, Required: true, Ref: entCompanies},
				{Name: "contractID", Type: typeInteger, Ref: entContracts},
				{Name: "title", Type: typeString, Length: 250, Required: true},
				{Name: "description", Type: typeString, Length: 8000},
				{Name: "status", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{AutotaskTicketStatusNew, "New", true, true},
					{AutotaskTicketStatusComplete, "Complete", false, true},
					{7, "Waiting Customer", false, true},
					{AutotaskTicketStatusInProgress, "In Progress", false, true},
				}},
				{Name: "priority", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{AutotaskTicketPriorityHigh, "High", false, true},
					{AutotaskTicketPriorityMedium, "Medium", true, true},
					{AutotaskTicketPriorityLow, "Low", false, true},
					{AutotaskTicketPriorityCritical, "Critical", false, true},
				}},
				{Name: "queueID", Type: typeInteger, Picklist: []picklistValue{
					{AutotaskQueueClientPortal, "Client Portal", false, true},
					{AutotaskQueuePostSale, "Post Sale", false, true},
					{AutotaskQueueMonitoringAlert, "Monitoring Alert", false, true},
				}},
				{Name: "assignedResourceID", Type: typeInteger, Ref: "Resource"},
				{Name: "assignedResourceRoleID", Type: typeInteger, Ref: "Role"},
				{Name: "source", Type: typeInteger, Picklist: []picklistValue{
					{-1, "Insourced", false, true}, {2, "Phone", false, true}, {4, "Email", false, true},
					{AutotaskSourceMonitoringAlert, "Monitoring Alert", false, true},
					{AutotaskSourceSophosCentral, "Sophos Central", false, true},
				}},
				{Name: "issueType", Type: typeInteger, Picklist: []picklistValue{
					{AutotaskIssueTypeSecurity, "Security", false, true}, {15, "Backup", false, true},
				}},
				{Name: "subIssueType", Type: typeInteger, ParentField: "issueType", Picklist: []picklistValue{
					{AutotaskSubIssueTypeMalware, "Malware", false, true},
					{AutotaskSubIssueTypePolicy, "Policy", false, true},
					{203, "Failed Job", false, true},
				}, Parents: map[int64]int64{AutotaskSubIssueTypeMalware: AutotaskIssueTypeSecurity, AutotaskSubIssueTypePolicy: AutotaskIssueTypeSecurity, 203: 15}},
				{Name: "ticketType", Type: typeInteger, Picklist: []picklistValue{
					{1, "Service Request", true, true}, {2, "Incident", false, true}, {3, "Problem", false, true},
					{4, "Change Request", false, true}, {5, "Alert", false, true},
				}},
				{Name: "ticketCategory", Type: typeInteger, Picklist: []picklistValue{
					{AutotaskTicketCategoryStandard, "Standard", true, true},
					{AutotaskTicketCategoryAlert, "Alert", false, true},
					{AutotaskTicketCategorySophosCentral, "Sophos Central", false, true},
				}},
				{Name: "dueDateTime", Type: typeDateTime},
				{Name: "externalID", Type: typeString, Length: 50},
				{Name: "purchaseOrderNumber", Type: typeString, Length: 50},
				{Name: "rmmAlertID", Type: typeString, Length: 50},
				{Name: "resolution", Type: typeString, Length: 32000},
				{Name: "configurationItemID", Type: typeInteger},
				{Name: "createDate", Type: typeDateTime, ReadOnly: true},
				{Name: "createdByContactID", Type: typeInteger, ReadOnly: true},
				{Name: "creatorResourceID", Type: typeInteger, ReadOnly: true},
				{Name: "completedDate", Type: typeDateTime, ReadOnly: true},
				{Name: "lastActivityDate", Type: typeDateTime, ReadOnly: true},
			},
		},
		{
			Name: entTicketNotes, Singular: "TicketNote", Parent: "ticketID",
			CanGet: true, CanQuery: true,
			Fields: []fieldDef{
				{Name: "id", Type: typeLong, ReadOnly: true},
				{Name: "ticketID", Type: typeInteger, Required: true, CreateOnly: true, Ref: entTickets},
				{Name: "title", Type: typeString, Length: 250},
				{Name: "description", Type: typeString, Length: 32000, Required: true},
				{Name: "noteType", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{1, "Task Summary", false, true}, {2, "Task Detail", false, true},
					{AutotaskNoteTypeTaskNotes, "Task Notes", true, true},
				}},
				{Name: "publish", Type: typeInteger, Required: true, Picklist: []picklistValue{
					{AutotaskPublishAllUsers, "All Autotask Users", true, true},
					{AutotaskPublishInternalOnly, "Internal Only", false, true},
				}},
				{Name: "createDateTime", Type: typeDateTime, ReadOnly: true},
				{Name: "creatorResourceID", Type: typeInteger, ReadOnly: true},
				{Name: "lastActivityDate", Type: typeDateTime, ReadOnly: true},
			},
		},
	}

	// ticketChildren are the child collections under /Tickets/{id}/. The
	// root TicketNotes collection is read-only, as in the route list.
	ticketChildren = map[string]childDef{
		"notes": {Entity: entTicketNotes, CanList: true, CanGet: true, CanCreate: true, CanUpdate: true, ParentField: "ticketID"},
	}

	// autotaskChildren are the child collections of each parent entity.
	autotaskChildren = map[string]map[string]childDef{
		entContracts: contractChildren,
		entTickets:   ticketChildren,
	}
)

// autotaskCategoryDue maps the ticket categories whose defaults set both the
// due date and the due time to how long after creation a ticket is due.
// A ticket without dueDateTime needs such a category, its own or (without
// one) the API user's default category, Standard, which sets none:
// otherwise Autotask answers 500 "dueDateTime is required." (tickets.md
// §2.2).
var autotaskCategoryDue = map[int64]time.Duration{
	AutotaskTicketCategorySophosCentral: 24 * time.Hour,
}

// categoryDue returns how long after creation a ticket of rec's category
// (or the default category) is due by the category's defaults; false when
// the category sets no due date and time.
func categoryDue(rec record) (time.Duration, bool) {
	cat, ok := rec["ticketCategory"].(int64)
	if !ok {
		cat = AutotaskTicketCategoryStandard
	}
	d, ok := autotaskCategoryDue[cat]
	return d, ok
}

// validateTicketLocked checks a ticket or note about to be stored with the
// rules Autotask applies to tickets; old is nil on create.
func (a *Autotask) validateTicketLocked(d *entityDef, rec, old record) error {
	if d.Name == entTicketNotes {
		ticket := a.tables[entTickets].get(rec.int("ticketID"))
		if old == nil && ticket == nil {
			return apiErr("The ticket %d does not exist.", rec.int("ticketID"))
		}
		if ticket != nil && strings.TrimSpace(rec.str("title")) == "" {
			cat, ok := ticket["ticketCategory"].(int64)
			if !ok {
				cat = AutotaskTicketCategoryStandard
			}
			if a.noteTitleCategories[cat] {
				return apiErr("The title is required: ticket category %d requires titles on ticket notes.", cat)
			}
		}
		return nil
	}
	company := rec.int("companyID")
	if a.tables[entCompanies].get(company) == nil {
		return apiErr("The company %d does not exist.", company)
	}
	if c, ok := rec["contractID"].(int64); ok {
		contract := a.tables[entContracts].get(c)
		if contract == nil || contract.int("companyID") != company {
			return apiErr("The contract %d does not exist or does not belong to company %d.", c, company)
		}
	}
	_, queue := rec["queueID"].(int64)
	_, res := rec["assignedResourceID"].(int64)
	_, role := rec["assignedResourceRoleID"].(int64)
	if !queue && (!res || !role) {
		return apiErr("AssignedResourceID, AssignedResourceRoleID, and QueueID cannot all be empty; a resource needs a role.")
	}
	if _, ok := rec["dueDateTime"].(time.Time); !ok {
		if _, defaults := categoryDue(rec); !defaults {
			return apiErr("dueDateTime is required.")
		}
	}
	if sub, ok := rec["subIssueType"].(int64); ok {
		parent := entity(entTickets).field("subIssueType").Parents[sub]
		if issue, _ := rec["issueType"].(int64); issue != parent {
			return apiErr("The subIssueType %d does not belong to the issueType of the ticket.", sub)
		}
	}
	return nil
}

// stampTicketLocked sets the read-only fields of a ticket or note: number,
// creation, completion and activity dates.
func (a *Autotask) stampTicketLocked(d *entityDef, rec, old record, now time.Time, resourceID int64) {
	if resourceID == 0 {
		resourceID = autotaskAPIResourceID
	}
	rec["lastActivityDate"] = now
	if d.Name == entTicketNotes {
		if old == nil {
			rec["createDateTime"] = now
			rec["creatorResourceID"] = resourceID
		}
		return
	}
	if old == nil {
		rec["createDate"] = now
		rec["creatorResourceID"] = resourceID
		rec["ticketNumber"] = fmt.Sprintf("T%s.%04d", now.Format(autotaskTicketNumberPrefixDate), a.nextID[entTickets]-autotaskFirstID[entTickets]+1)
	}
	if _, ok := rec["dueDateTime"].(time.Time); !ok {
		if due, defaults := categoryDue(rec); defaults {
			rec["dueDateTime"] = now.Add(due)
		}
	}
	switch {
	case rec.int("status") == AutotaskTicketStatusComplete && (old == nil || old.int("status") != AutotaskTicketStatusComplete):
		rec["completedDate"] = now
	case rec.int("status") != AutotaskTicketStatusComplete:
		delete(rec, "completedDate")
	}
}

// AutotaskTicket is a Ticket as the accessors see it.
type AutotaskTicket struct {
	ID          int64  `json:"id"`
	Number      string `json:"number"`
	CompanyID   int64  `json:"companyID"`
	ContractID  int64  `json:"contractID,omitempty"`
	Title       string `json:"title"`
	Description string `json:"description"`
	// Status and Priority are picklist labels.
	Status     string `json:"status"`
	Priority   string `json:"priority"`
	QueueID    int64  `json:"queueID,omitempty"`
	Source     int64  `json:"source,omitempty"`
	IssueType  int64  `json:"issueType,omitempty"`
	ExternalID string `json:"externalID"`
	Resolution string `json:"resolution,omitempty"`
	// Category is the ticketCategory (0: none given); DueDateTime is
	// when the ticket is due, as sent or set by the category's defaults.
	Category    int64     `json:"ticketCategory,omitempty"`
	DueDateTime time.Time `json:"dueDateTime"`
	Created     time.Time `json:"created"`
}

// AutotaskTicketNote is a TicketNote as the accessors see it.
type AutotaskTicketNote struct {
	ID          int64  `json:"id"`
	TicketID    int64  `json:"ticketID"`
	Title       string `json:"title,omitempty"`
	Description string `json:"description"`
	// NoteType is the noteType picklist value.
	NoteType int64 `json:"noteType"`
	// Publish is the publish picklist label, such as "Internal Only".
	Publish string `json:"publish"`
}

// Tickets returns every ticket in id order.
func (a *Autotask) Tickets() []AutotaskTicket {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskTicket
	for _, r := range a.tables[entTickets].all() {
		out = append(out, AutotaskTicket{
			ID: r.id(), Number: r.str("ticketNumber"), CompanyID: r.int("companyID"), ContractID: r.int("contractID"),
			Title: r.str("title"), Description: r.str("description"),
			Status:   picklistLabel(entTickets, "status", r.int("status")),
			Priority: picklistLabel(entTickets, "priority", r.int("priority")),
			QueueID:  r.int("queueID"), Source: r.int("source"), IssueType: r.int("issueType"),
			ExternalID: r.str("externalID"), Resolution: r.str("resolution"), Created: r.time("createDate"),
			Category: r.int("ticketCategory"), DueDateTime: r.time("dueDateTime"),
		})
	}
	return out
}

// TicketNotes returns the notes of a ticket in id order.
func (a *Autotask) TicketNotes(ticketID int64) []AutotaskTicketNote {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []AutotaskTicketNote
	for _, r := range a.tables[entTicketNotes].all() {
		if r.int("ticketID") != ticketID {
			continue
		}
		out = append(out, AutotaskTicketNote{
			ID: r.id(), TicketID: ticketID, Title: r.str("title"), Description: r.str("description"),
			NoteType: r.int("noteType"), Publish: picklistLabel(entTicketNotes, "publish", r.int("publish")),
		})
	}
	return out
}

// RequireNoteTitles turns on the ticket category's "Require titles on
// ticket notes" (tickets.md §2.5): from then on a note without a title on
// a ticket of that category (AutotaskTicketCategoryStandard for a ticket
// without one) is refused.
func (a *Autotask) RequireNoteTitles(category int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.noteTitleCategories == nil {
		a.noteTitleCategories = map[int64]bool{}
	}
	a.noteTitleCategories[category] = true
}

// SetTicketStatus changes a ticket's status by label out of band, as a
// technician working the ticket would.
func (a *Autotask) SetTicketStatus(id int64, status string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entTickets, id).clone()
	rec["status"] = mustPicklist(entTickets, "status", status, "New")
	a.stampTicketLocked(entity(entTickets), rec, a.tables[entTickets].get(id), a.clock().UTC(), 0)
	a.tables[entTickets].put(rec)
}

// SetTicketResolution writes a ticket's resolution out of band, as a
// technician would.
func (a *Autotask) SetTicketResolution(id int64, resolution string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rec := a.mustGetLocked(entTickets, id).clone()
	rec["resolution"] = resolution
	a.stampTicketLocked(entity(entTickets), rec, a.tables[entTickets].get(id), a.clock().UTC(), 0)
	a.tables[entTickets].put(rec)
}

// SetTicketCompany moves a ticket to another company out of band, as a
// technician would (a contract of the old company is unlinked).
func (a *Autotask) SetTicketCompany(id, companyID int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.mustGetLocked(entCompanies, companyID)
	rec := a.mustGetLocked(entTickets, id).clone()
	rec["companyID"] = companyID
	delete(rec, "contractID")
	a.stampTicketLocked(entity(entTickets), rec, a.tables[entTickets].get(id), a.clock().UTC(), 0)
	a.tables[entTickets].put(rec)
}

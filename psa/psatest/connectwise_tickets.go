package psatest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// Paths of the simulated ConnectWise service desk (case-insensitive):
//
//	/{codebase}apis/3.0/service/boards
//	/{codebase}apis/3.0/service/boards/{id}/statuses
//	/{codebase}apis/3.0/service/boards/{id}/types
//	/{codebase}apis/3.0/service/priorities
//	/{codebase}apis/3.0/service/sources
//	/{codebase}apis/3.0/service/tickets[/count|/{id}]
//	/{codebase}apis/3.0/service/tickets/{id}/notes

// Ids of the service desk settings every simulated company starts with.
const (
	ConnectWiseBoardHelpDesk  = 1
	ConnectWiseBoardAlerts    = 35
	ConnectWiseStatusNew      = 784 // Alerts board, default
	ConnectWiseStatusWorking  = 785 // Alerts board
	ConnectWiseStatusResolved = 791 // Alerts board, closed
	ConnectWiseStatusClosed   = 792 // Alerts board, closed
	ConnectWiseStatusHDNew    = 16  // Help Desk board, default
	ConnectWiseStatusHDClosed = 17  // Help Desk board, closed
	ConnectWisePriorityHigh   = 2
	ConnectWisePriorityMedium = 3
	ConnectWisePriorityLow    = 4
	ConnectWiseSourceAlert    = 7
	ConnectWiseTypeSecurity   = 41 // Alerts board
	ConnectWiseTypeHDRequest  = 50 // Help Desk board

	cwFirstTicket = 48200
	cwFirstNote   = 90000
)

func init() {
	// The service desk's field types, for conditions, orderBy and fields.
	cwSchema["ticket"] = map[string]byte{"id": 'n', "summary": 's', "recordType": 's', "board": 'r', "status": 'r', "company": 'r',
		"priority": 'r', "source": 'r', "type": 'r', "subType": 'r', "agreement": 'r', "externalXRef": 's', "closedFlag": 'b',
		"closedDate": 'd', "automaticEmailContactFlag": 'b', "_info": 'i'}
	cwSchema["serviceNote"] = map[string]byte{"id": 'n', "ticketId": 'n', "text": 's', "detailDescriptionFlag": 'b',
		"internalAnalysisFlag": 'b', "resolutionFlag": 'b', "processNotifications": 'b', "_info": 'i'}
	for _, k := range []string{"board", "boardStatus", "boardType", "priority", "source"} {
		cwSchema[k] = map[string]byte{"id": 'n', "name": 's', "board": 'r', "sortOrder": 'n', "inactive": 'b', "inactiveFlag": 'b',
			"closedStatus": 'b', "defaultFlag": 'b', "_info": 'i'}
	}
}

// cwServiceDesk is the simulated company's service desk.
type cwServiceDesk struct {
	boards, statuses, types, priorities, sources map[int64]map[string]any
	tickets, notes                               map[int64]map[string]any
	nextTicket, nextNote                         int64
}

func newCWServiceDesk() *cwServiceDesk {
	sd := &cwServiceDesk{
		boards: map[int64]map[string]any{}, statuses: map[int64]map[string]any{}, types: map[int64]map[string]any{},
		priorities: map[int64]map[string]any{}, sources: map[int64]map[string]any{},
		tickets: map[int64]map[string]any{}, notes: map[int64]map[string]any{},
		nextTicket: cwFirstTicket, nextNote: cwFirstNote,
	}
	for _, b := range []struct {
		id   int64
		name string
	}{{ConnectWiseBoardHelpDesk, "Help Desk"}, {ConnectWiseBoardAlerts, "Alerts"}} {
		sd.boards[b.id] = map[string]any{"id": float64(b.id), "name": b.name, "inactiveFlag": false}
	}
	for i, st := range []struct {
		id, board              int64
		name                   string
		closed, defaultFlag, x bool
	}{
		{ConnectWiseStatusHDNew, ConnectWiseBoardHelpDesk, "New", false, true, false},
		{ConnectWiseStatusHDClosed, ConnectWiseBoardHelpDesk, "Closed", true, false, false},
		{ConnectWiseStatusNew, ConnectWiseBoardAlerts, "New", false, true, false},
		{ConnectWiseStatusWorking, ConnectWiseBoardAlerts, "In Progress", false, false, false},
		{ConnectWiseStatusResolved, ConnectWiseBoardAlerts, ">Resolved", true, false, false},
		{ConnectWiseStatusClosed, ConnectWiseBoardAlerts, "Closed", true, false, false},
	} {
		sd.statuses[st.id] = map[string]any{"id": float64(st.id), "name": st.name, "board": map[string]any{"id": float64(st.board)},
			"sortOrder": float64(i), "inactive": false, "closedStatus": st.closed, "defaultFlag": st.defaultFlag}
	}
	sd.types[ConnectWiseTypeSecurity] = map[string]any{"id": float64(ConnectWiseTypeSecurity), "name": "Security", "board": map[string]any{"id": float64(ConnectWiseBoardAlerts)}, "inactiveFlag": false, "defaultFlag": false}
	sd.types[ConnectWiseTypeHDRequest] = map[string]any{"id": float64(ConnectWiseTypeHDRequest), "name": "Request", "board": map[string]any{"id": float64(ConnectWiseBoardHelpDesk)}, "inactiveFlag": false, "defaultFlag": true}
	for i, p := range []struct {
		id   int64
		name string
	}{{1, "Priority 1 - Critical"}, {ConnectWisePriorityHigh, "Priority 2 - High"}, {ConnectWisePriorityMedium, "Priority 3 - Medium"}, {ConnectWisePriorityLow, "Priority 4 - Low"}} {
		sd.priorities[p.id] = map[string]any{"id": float64(p.id), "name": p.name, "sortOrder": float64(i), "defaultFlag": p.id == ConnectWisePriorityMedium}
	}
	for _, src := range []struct {
		id   int64
		name string
	}{{2, "Phone"}, {3, "Email"}, {ConnectWiseSourceAlert, "Alert"}} {
		sd.sources[src.id] = map[string]any{"id": float64(src.id), "name": src.name, "defaultFlag": src.id == 2}
	}
	return sd
}

// desk returns the service desk, creating it on first use.
func (cw *ConnectWise) deskLocked() *cwServiceDesk {
	if cw.service == nil {
		cw.service = newCWServiceDesk()
	}
	return cw.service
}

// routeService serves service/... (segs starts at "service").
func (cw *ConnectWise) routeService(w http.ResponseWriter, r *http.Request, segs, lower []string) {
	notFound := func() {
		cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("No resource matches '%s'.", r.URL.Path))
	}
	methodNotAllowed := func() {
		cwError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The requested resource does not support http method '"+r.Method+"'.")
	}
	cw.mu.Lock()
	defer cw.mu.Unlock()
	sd := cw.deskLocked()
	get := r.Method == http.MethodGet
	path := strings.Join(lower, "/")
	idAt := func(i int) (int64, bool) {
		if i >= len(segs) {
			return 0, false
		}
		n, err := strconv.ParseInt(segs[i], 10, 64)
		return n, err == nil
	}
	switch {
	case path == "service/boards" || path == "service/priorities" || path == "service/sources":
		if !get {
			methodNotAllowed()
			return
		}
		table, kind := sd.boards, "board"
		switch lower[1] {
		case "priorities":
			table, kind = sd.priorities, "priority"
		case "sources":
			table, kind = sd.sources, "source"
		}
		writeCWList(w, r, kind, rows(table, nil))
	case len(segs) == 4 && lower[1] == "boards" && (lower[3] == "statuses" || lower[3] == "types"):
		board, ok := idAt(2)
		if !ok || sd.boards[board] == nil {
			cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Board recId %s not found.", segs[2]))
			return
		}
		if !get {
			methodNotAllowed()
			return
		}
		table, kind := sd.statuses, "boardStatus"
		if lower[3] == "types" {
			table, kind = sd.types, "boardType"
		}
		writeCWList(w, r, kind, rows(table, func(rec map[string]any) bool { return num(lookupPath(rec, []string{"board", "id"})) == board }))
	case path == "service/tickets":
		switch r.Method {
		case http.MethodGet:
			writeCWList(w, r, "ticket", cw.searchedTickets(sd))
		case http.MethodPost:
			cw.createTicketLocked(w, r, sd)
		default:
			methodNotAllowed()
		}
	case path == "service/tickets/count":
		if !get {
			methodNotAllowed()
			return
		}
		if recs, ok := filterRecords(w, r, "ticket", cw.searchedTickets(sd)); ok {
			writeJSON(w, http.StatusOK, map[string]int{"count": len(recs)})
		}
	case len(segs) == 3 && lower[1] == "tickets":
		id, ok := idAt(2)
		if !ok {
			notFound()
			return
		}
		rec := sd.tickets[id]
		if rec == nil {
			cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Ticket recId %d not found.", id))
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeJSON(w, http.StatusOK, project(rec, cwQuery(r, "fields")))
		case http.MethodPatch:
			cw.patchTicketLocked(w, r, sd, rec)
		default:
			methodNotAllowed()
		}
	case len(segs) == 4 && lower[1] == "tickets" && lower[3] == "notes":
		id, ok := idAt(2)
		if !ok || sd.tickets[id] == nil {
			cwError(w, http.StatusNotFound, "NotFound", fmt.Sprintf("Ticket recId %s not found.", segs[2]))
			return
		}
		switch r.Method {
		case http.MethodGet:
			writeCWList(w, r, "serviceNote", rows(sd.notes, func(rec map[string]any) bool { return num(rec["ticketId"]) == id }))
		case http.MethodPost:
			cw.createNoteLocked(w, r, sd, id)
		default:
			methodNotAllowed()
		}
	default:
		notFound()
	}
}

// rows returns the records of a table that keep (all when nil) in id order.
func rows(table map[int64]map[string]any, keep func(map[string]any) bool) []map[string]any {
	var out []map[string]any
	for _, id := range sortedIDs(table) {
		if keep == nil || keep(table[id]) {
			out = append(out, table[id])
		}
	}
	return out
}

// ticketRefs are the reference fields of a ticket and the tables they
// point into; "" means the company's own tables.
var ticketRefs = []string{"board", "status", "company", "priority", "source", "type", "agreement"}

// resolveRefLocked checks a reference object and returns it as stored, or
// an error entry.
func (cw *ConnectWise) resolveRefLocked(sd *cwServiceDesk, field string, v any) (map[string]any, map[string]any) {
	if v == nil {
		return nil, nil
	}
	m, ok := v.(map[string]any)
	if !ok || m["id"] == nil {
		return nil, cwFieldError("InvalidField", field, fmt.Sprintf("%s must be a reference with an id.", field), "ticket")
	}
	id := num(m["id"])
	var table map[int64]map[string]any
	switch field {
	case "board":
		table = sd.boards
	case "status":
		table = sd.statuses
	case "company":
		table = cw.companies
	case "priority":
		table = sd.priorities
	case "source":
		table = sd.sources
	case "type":
		table = sd.types
	case "agreement":
		table = cw.agreements
	}
	rec := table[id]
	if rec == nil {
		return nil, cwFieldError("InvalidField", field, fmt.Sprintf("%s with id %d was not found.", field, id), "ticket")
	}
	ref := map[string]any{"id": float64(id)}
	if n := str(rec["name"]); n != "" {
		ref["name"] = n
	}
	if n := str(rec["identifier"]); n != "" {
		ref["identifier"] = n
	}
	return ref, nil
}

// checkTicketLocked validates a ticket about to be stored and fills in
// what ConnectWise computes: the board's default status, closedFlag and
// closedDate.
func (cw *ConnectWise) checkTicketLocked(sd *cwServiceDesk, rec map[string]any, wasClosed bool) []map[string]any {
	var errs []map[string]any
	summary := strings.TrimSpace(str(rec["summary"]))
	switch {
	case summary == "":
		errs = append(errs, cwFieldError("Required", "summary", "The summary field is required.", "ticket"))
	case utf16Length(summary) > 100:
		errs = append(errs, cwFieldError("InvalidField", "summary", "The field summary must be a string with a maximum length of 100.", "ticket"))
	}
	if utf16Length(str(rec["externalXRef"])) > 100 {
		errs = append(errs, cwFieldError("InvalidField", "externalXRef", "The field externalXRef must be a string with a maximum length of 100.", "ticket"))
	}
	if rec["company"] == nil {
		errs = append(errs, cwFieldError("Required", "company", "The company field is required.", "ticket"))
	}
	for _, f := range ticketRefs {
		ref, e := cw.resolveRefLocked(sd, f, rec[f])
		if e != nil {
			errs = append(errs, e)
			continue
		}
		if ref != nil {
			rec[f] = ref
		}
	}
	if len(errs) > 0 {
		return errs
	}
	if rec["board"] == nil {
		rec["board"] = map[string]any{"id": float64(ConnectWiseBoardHelpDesk), "name": "Help Desk"}
	}
	board := num(lookupPath(rec, []string{"board", "id"}))
	if rec["status"] == nil {
		for _, st := range rows(sd.statuses, nil) {
			if num(lookupPath(st, []string{"board", "id"})) == board && st["defaultFlag"] == true {
				rec["status"] = map[string]any{"id": st["id"], "name": st["name"]}
			}
		}
	}
	st := sd.statuses[num(lookupPath(rec, []string{"status", "id"}))]
	if num(lookupPath(st, []string{"board", "id"})) != board {
		errs = append(errs, cwFieldError("InvalidField", "status", "The status is not valid for the ticket's board.", "ticket"))
	}
	if t := rec["type"]; t != nil && num(lookupPath(sd.types[num(lookupPath(rec, []string{"type", "id"}))], []string{"board", "id"})) != board {
		errs = append(errs, cwFieldError("InvalidField", "type", "The type is not valid for the ticket's board.", "ticket"))
	}
	if a := rec["agreement"]; a != nil {
		ag := cw.agreements[num(lookupPath(rec, []string{"agreement", "id"}))]
		if num(lookupPath(ag, []string{"company", "id"})) != num(lookupPath(rec, []string{"company", "id"})) {
			errs = append(errs, cwFieldError("InvalidField", "agreement", "The agreement does not belong to the ticket's company.", "ticket"))
		}
	}
	if len(errs) > 0 {
		return errs
	}
	closed := st["closedStatus"] == true
	rec["closedFlag"] = closed
	switch {
	case closed && !wasClosed:
		rec["closedDate"] = formatCWTime(cw.clock())
	case !closed:
		rec["closedDate"] = nil
	}
	return nil
}

func (cw *ConnectWise) createTicketLocked(w http.ResponseWriter, r *http.Request, sd *cwServiceDesk) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body must be a JSON object.")
		return
	}
	rec := map[string]any{"recordType": "ServiceTicket", "automaticEmailContactFlag": true}
	for k := range cwSchema["ticket"] {
		if v, ok := body[k]; ok && k != "id" && k != "closedFlag" && k != "closedDate" && k != "_info" {
			if msg := checkValue("ticket", k, v); msg != "" {
				cwError(w, http.StatusBadRequest, "InvalidObject", "ticket object is invalid", cwFieldError("InvalidValue", k, msg, "ticket"))
				return
			}
			rec[k] = v
		}
	}
	if errs := cw.checkTicketLocked(sd, rec, false); len(errs) > 0 {
		cwError(w, http.StatusBadRequest, "InvalidObject", "ticket object is invalid", errs...)
		return
	}
	id := sd.nextTicket
	sd.nextTicket++
	rec["id"], rec["_info"] = float64(id), cw.info()
	sd.tickets[id] = rec
	if d := str(body["initialDescription"]); d != "" {
		cw.addNoteLocked(sd, id, map[string]any{"text": d, "detailDescriptionFlag": true, "internalAnalysisFlag": false, "resolutionFlag": false})
	}
	writeJSON(w, http.StatusCreated, rec)
}

// ticketWritable lists the ticket fields PATCH may change.
var ticketWritable = []string{"summary", "board", "status", "priority", "source", "type", "agreement", "externalXRef", "severity", "impact"}

func (cw *ConnectWise) patchTicketLocked(w http.ResponseWriter, r *http.Request, sd *cwServiceDesk, rec map[string]any) {
	var ops []map[string]any
	if err := json.NewDecoder(r.Body).Decode(&ops); err != nil || len(ops) == 0 {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body must be a non-empty array of patch operations.")
		return
	}
	upd := make(map[string]any, len(rec))
	for k, v := range rec {
		upd[k] = v
	}
	for i, op := range ops {
		name, _ := op["op"].(string)
		path, _ := op["path"].(string)
		if name != "replace" && name != "add" {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: op %q must be add or replace.", i, name))
			return
		}
		field := ""
		for _, k := range ticketWritable {
			if strings.EqualFold(k, path) {
				field = k
			}
		}
		if field == "" {
			cwError(w, http.StatusBadRequest, "InvalidObject", fmt.Sprintf("Operation %d: %q cannot be changed.", i, path),
				cwFieldError("InvalidField", path, "The field does not exist or is read-only.", "ticket"))
			return
		}
		upd[field] = op["value"]
	}
	if errs := cw.checkTicketLocked(sd, upd, rec["closedFlag"] == true); len(errs) > 0 {
		cwError(w, http.StatusBadRequest, "InvalidObject", "ticket object is invalid", errs...)
		return
	}
	upd["_info"] = cw.info()
	for k, v := range upd {
		rec[k] = v
	}
	writeJSON(w, http.StatusOK, rec)
}

func (cw *ConnectWise) createNoteLocked(w http.ResponseWriter, r *http.Request, sd *cwServiceDesk, ticketID int64) {
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body == nil {
		cwError(w, http.StatusBadRequest, "InvalidObject", "The request body must be a JSON object.")
		return
	}
	if strings.TrimSpace(str(body["text"])) == "" {
		cwError(w, http.StatusBadRequest, "InvalidObject", "serviceNote object is invalid", cwFieldError("Required", "text", "The text field is required.", "serviceNote"))
		return
	}
	if body["detailDescriptionFlag"] != true && body["internalAnalysisFlag"] != true && body["resolutionFlag"] != true {
		cwError(w, http.StatusBadRequest, "InvalidObject", "serviceNote object is invalid",
			cwFieldError("InvalidObject", "detailDescriptionFlag", "Please choose where to display the notes in order to save this record.", "serviceNote"))
		return
	}
	writeJSON(w, http.StatusOK, cw.addNoteLocked(sd, ticketID, body))
}

func (cw *ConnectWise) addNoteLocked(sd *cwServiceDesk, ticketID int64, body map[string]any) map[string]any {
	rec := map[string]any{"ticketId": float64(ticketID), "text": str(body["text"])}
	for _, f := range []string{"detailDescriptionFlag", "internalAnalysisFlag", "resolutionFlag", "processNotifications"} {
		b, _ := body[f].(bool)
		rec[f] = b
	}
	id := sd.nextNote
	sd.nextNote++
	rec["id"], rec["_info"] = float64(id), cw.info()
	sd.notes[id] = rec
	return rec
}

// ConnectWiseTicket is a service ticket as the accessors see it.
type ConnectWiseTicket struct {
	ID           int64  `json:"id"`
	Summary      string `json:"summary"`
	CompanyID    int64  `json:"companyId"`
	BoardID      int64  `json:"boardId"`
	StatusID     int64  `json:"statusId"`
	PriorityID   int64  `json:"priorityId,omitempty"`
	SourceID     int64  `json:"sourceId,omitempty"`
	TypeID       int64  `json:"typeId,omitempty"`
	AgreementID  int64  `json:"agreementId,omitempty"`
	ExternalXRef string `json:"externalXRef"`
	Closed       bool   `json:"closed"`
	EmailContact bool   `json:"automaticEmailContactFlag"`
}

// ConnectWiseNote is a ticket note as the accessors see it.
type ConnectWiseNote struct {
	ID       int64  `json:"id"`
	TicketID int64  `json:"ticketId"`
	Text     string `json:"text"`
	Internal bool   `json:"internalAnalysisFlag"`
	Detail   bool   `json:"detailDescriptionFlag"`
}

// Tickets returns every service ticket in id order.
func (cw *ConnectWise) Tickets() []ConnectWiseTicket {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var out []ConnectWiseTicket
	ref := func(rec map[string]any, f string) int64 { return num(lookupPath(rec, []string{f, "id"})) }
	for _, rec := range rows(cw.deskLocked().tickets, nil) {
		out = append(out, ConnectWiseTicket{
			ID: num(rec["id"]), Summary: str(rec["summary"]), CompanyID: ref(rec, "company"), BoardID: ref(rec, "board"),
			StatusID: ref(rec, "status"), PriorityID: ref(rec, "priority"), SourceID: ref(rec, "source"), TypeID: ref(rec, "type"),
			AgreementID: ref(rec, "agreement"), ExternalXRef: str(rec["externalXRef"]), Closed: rec["closedFlag"] == true,
			EmailContact: rec["automaticEmailContactFlag"] == true,
		})
	}
	return out
}

// TicketNotes returns the notes of a ticket in id order.
func (cw *ConnectWise) TicketNotes(ticketID int64) []ConnectWiseNote {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	var out []ConnectWiseNote
	for _, rec := range rows(cw.deskLocked().notes, func(r map[string]any) bool { return num(r["ticketId"]) == ticketID }) {
		out = append(out, ConnectWiseNote{ID: num(rec["id"]), TicketID: ticketID, Text: str(rec["text"]),
			Internal: rec["internalAnalysisFlag"] == true, Detail: rec["detailDescriptionFlag"] == true})
	}
	return out
}

// SetTicketStatus moves a ticket to a status out of band, as a technician
// would.
func (cw *ConnectWise) SetTicketStatus(ticketID, statusID int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	sd := cw.deskLocked()
	rec := cw.mustLocked(sd.tickets, "ticket", ticketID)
	was := rec["closedFlag"] == true
	rec["status"] = map[string]any{"id": float64(statusID)}
	if errs := cw.checkTicketLocked(sd, rec, was); len(errs) > 0 {
		panic(fmt.Sprintf("psatest: status %d: %v", statusID, errs))
	}
	rec["_info"] = cw.info()
}

// MoveTicket moves a ticket to another board and one of that board's
// statuses out of band, as a technician would.
func (cw *ConnectWise) MoveTicket(ticketID, boardID, statusID int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	sd := cw.deskLocked()
	rec := cw.mustLocked(sd.tickets, "ticket", ticketID)
	was := rec["closedFlag"] == true
	upd := make(map[string]any, len(rec))
	for k, v := range rec {
		upd[k] = v
	}
	upd["board"] = map[string]any{"id": float64(boardID)}
	upd["status"] = map[string]any{"id": float64(statusID)}
	delete(upd, "type") // a type belongs to a board too
	if errs := cw.checkTicketLocked(sd, upd, was); len(errs) > 0 {
		panic(fmt.Sprintf("psatest: board %d, status %d: %v", boardID, statusID, errs))
	}
	for k := range rec {
		delete(rec, k)
	}
	for k, v := range upd {
		rec[k] = v
	}
	rec["_info"] = cw.info()
}

// SetTicketCompany moves a ticket to another company out of band, as a
// technician would (an agreement of the old company is unlinked).
func (cw *ConnectWise) SetTicketCompany(ticketID, companyID int64) {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	sd := cw.deskLocked()
	rec := cw.mustLocked(sd.tickets, "ticket", ticketID)
	rec["company"] = map[string]any{"id": float64(companyID)}
	delete(rec, "agreement")
	rec["_info"] = cw.info()
}

// ConnectWiseBoardStatus is a ticket status of a service board.
type ConnectWiseBoardStatus struct {
	BoardID  int64
	Name     string
	Closed   bool
	Inactive bool
}

// AddBoardStatus adds a status to a board and returns its id.
func (cw *ConnectWise) AddBoardStatus(st ConnectWiseBoardStatus) int64 {
	cw.mu.Lock()
	defer cw.mu.Unlock()
	sd := cw.deskLocked()
	cw.mustLocked(sd.boards, "board", st.BoardID)
	var id int64 = 1
	for x := range sd.statuses {
		id = max(id, x+1)
	}
	sd.statuses[id] = map[string]any{"id": float64(id), "name": st.Name, "board": map[string]any{"id": float64(st.BoardID)},
		"sortOrder": float64(len(sd.statuses)), "inactive": st.Inactive, "closedStatus": st.Closed, "defaultFlag": false}
	return id
}

// searchedTickets are the tickets a list or count of tickets searches:
// none while the server hides ticket searches (Server.HideTicketSearches).
func (cw *ConnectWise) searchedTickets(sd *cwServiceDesk) []map[string]any {
	if cw.srv.ticketSearchesHidden.Load() {
		return nil
	}
	return rows(sd.tickets, nil)
}

package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/psa-sync/terraform-provider-psa/daemon/usage"
)

// ClearOrphans clears the orphaned lines the last pass listed
// (usage.Engine.ClearOrphans): the line of contract and service, or every
// one with both empty; who, when the request named a user
// (basic_auth_users), is recorded before note; zeroed says the lines were
// set to 0 in the PSA. A running pass is waited for as long as ctx lives
// (its list replaces the stored one). A standby refuses it (a
// *StandbyError), and so does an instance that lost the leadership lock
// before it noticed (a *NoLongerActiveError): the clear is recorded only
// through the lock's session.
func (d *Daemon) ClearOrphans(ctx context.Context, contract, service, note, who string, zeroed bool) ([]usage.OrphanedLine, error) {
	if err := d.lockPass(ctx); err != nil {
		return nil, fmt.Errorf("daemon: nothing cleared: a pass is running, and waiting for it to end was given up: %w", err)
	}
	defer d.passMu.Unlock()
	if !d.leading.Load() {
		return nil, &StandbyError{Active: d.activeInstance()}
	}
	if who = strings.TrimSpace(who); who != "" {
		note = strings.TrimSpace("user " + who + ": " + strings.TrimSpace(note))
	}
	e, _, err := d.engine()
	if err != nil {
		e = d.exportlessEngine()
	}
	lines, err := e.ClearOrphans(contract, service, note, zeroed)
	return lines, d.noLongerActive(err)
}

// handleClearOrphans clears orphaned lines (Daemon.ClearOrphans): the body
// names {"contract_id", "service_id"} of one line, or {"all": true};
// "zeroed": true says the lines were set to 0 in the PSA.
func (d *Daemon) handleClearOrphans(w http.ResponseWriter, r *http.Request) {
	var body struct {
		ContractID string `json:"contract_id"`
		ServiceID  string `json:"service_id"`
		All        bool   `json:"all"`
		Zeroed     bool   `json:"zeroed"`
		Note       string `json:"note"`
	}
	const want = `{"contract_id": "<id>", "service_id": "<id>", "zeroed": <optional: true when set to 0 in the PSA>, "note": "<optional: who, why>"} or {"all": true, "note": "..."}`
	if err := decodeBody(r, &body); err != nil {
		writeBodyError(w, want, err)
		return
	}
	named := strings.TrimSpace(body.ContractID) != "" || strings.TrimSpace(body.ServiceID) != ""
	if body.All == named {
		writeError(w, http.StatusBadRequest, "name one orphaned line, contract_id and service_id, or all: true; want "+want)
		return
	}
	if named && (strings.TrimSpace(body.ContractID) == "" || strings.TrimSpace(body.ServiceID) == "") {
		writeError(w, http.StatusBadRequest, "name both contract_id and service_id of the orphaned line to clear; want "+want)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), resolvePassWait)
	defer cancel()
	lines, err := d.ClearOrphans(ctx, body.ContractID, body.ServiceID, body.Note, recordingUser(r), body.Zeroed)
	switch {
	case errors.Is(err, usage.ErrAlreadyCleared):
		// A request sent again (its answer lost): done already.
		writeJSON(w, http.StatusOK, map[string]any{"cleared": []usage.OrphanedLine{}, "already_cleared": strings.TrimPrefix(err.Error(), "daemon: ")})
		return
	case errors.Is(err, usage.ErrNoOrphan):
		writeError(w, http.StatusNotFound, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case errors.Is(err, usage.ErrBadOrphanClear):
		writeError(w, http.StatusBadRequest, strings.TrimPrefix(err.Error(), "daemon: "))
		return
	case writeHeldAnswer(w, err, fmt.Sprintf("a pass is running, and it did not end within %s: nothing was cleared; send the request again once the pass ends",
		resolvePassWait)):
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"cleared": lines})
}

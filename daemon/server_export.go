package daemon

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// maxExportBody bounds the body of PUT /api/v1/export: what the export
// stores read (a thousand mappings are about 250 KiB).
const maxExportBody = export.MaxSize

// ExportVersionView is one version in GET /api/v1/export/history and the
// answer of PUT /api/v1/export.
type ExportVersionView struct {
	Revision int64     `json:"revision"`
	ETag     string    `json:"etag"`
	Digest   string    `json:"digest"`
	Size     int64     `json:"size"`
	At       time.Time `json:"at"`
	Source   string    `json:"source,omitempty"`
	// ExportRevision, Products and Customers describe the document; they
	// are set in the answer of a PUT.
	ExportRevision int64 `json:"export_revision,omitempty"`
	Products       *int  `json:"product_mappings,omitempty"`
	Customers      *int  `json:"customer_mappings,omitempty"`
}

// exportReaderFields is the value of export.ReaderFieldsHeader.
var exportReaderFields = strings.Join(export.ReaderFields(), ",")

func newExportVersionView(v state.ExportVersion) ExportVersionView {
	return ExportVersionView{Revision: v.Revision, ETag: revisionETag(v.Revision), Digest: v.Digest, Size: v.Size, At: v.At, Source: v.Source}
}

// handleGetExport serves the export psa-syncd uses: with export_url: self
// the newest stored version, otherwise the last good export it loaded. Its
// ETag is what PUT's If-Match expects; If-None-Match gives 304.
func (d *Daemon) handleGetExport(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r) {
		return
	}
	// Every answer says which export fields this psa-syncd reads, the 404
	// before the first export too, so that a newer provider fails the plan
	// that would write one it refuses, instead of the apply after its PSA
	// changes (see export.ReaderFieldsHeader).
	w.Header().Set(export.ReaderFieldsHeader, exportReaderFields)
	var data io.WriterTo
	var size int
	var etag string
	if d.cfg.Load().ExportStore() == StoreSelf {
		v, body, err := d.db.CurrentExport()
		switch {
		case errors.Is(err, state.ErrNoExport):
			writeError(w, http.StatusNotFound, "no mapping export has been written yet: PUT one with If-None-Match: *")
			return
		case err != nil:
			d.stateFailed(w, "reading the export", err)
			return
		}
		data, size, etag = bytes.NewReader(body), len(body), revisionETag(v.Revision)
	} else {
		s := d.exp.Load()
		if s == nil {
			// Not naming the store: its path or host are no business of a
			// request without credentials; the log says which and why.
			writeError(w, http.StatusNotFound, "no valid mapping export loaded yet; psa-syncd's log says why")
			return
		}
		data, size, etag = s.data, s.data.size, s.version
		if !strings.HasPrefix(etag, `"`) {
			etag = strconv.Quote(etag)
		}
	}
	w.Header().Set("ETag", etag)
	if ifNoneMatchNames(r.Header.Values("If-None-Match"), etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(size))
	_, _ = data.WriteTo(w)
}

// stateFailed answers a request that needs no credentials, whose read of
// the state database failed: the database's error names its host, user
// and database (or its file's path), which are no one's business outside,
// so the answer says what failed and how, and the log has the error.
func (d *Daemon) stateFailed(w http.ResponseWriter, what string, err error) {
	writeError(w, http.StatusInternalServerError, d.stateFailure(what, err))
}

// stateFailure logs a failed read of the state database and returns the
// words that an answer or a page shows without credentials in its place
// (see stateFailed).
func (d *Daemon) stateFailure(what string, err error) string {
	d.logger.Error("Could not answer a request: the state database failed", "request", what, "err", err)
	return what + ": the state database " + state.FailureKind(err) + "; psa-syncd's log has the error"
}

// ifNoneMatchNames reports whether an If-None-Match header (its values)
// names etag, so that a GET answers 304: "*", or a list of entity tags one
// of which is etag by the weak comparison (RFC 9110 13.1.2), W/ prefixes
// aside. A reverse proxy that compresses the answer (nginx with gzip)
// hands clients the weak W/"7" for psa-syncd's "7", and they send that
// back.
func ifNoneMatchNames(header []string, etag string) bool {
	etag = strings.TrimPrefix(etag, "W/")
	for _, h := range header {
		for tag := range strings.SplitSeq(h, ",") {
			tag = strings.TrimSpace(tag)
			if tag == "*" || strings.TrimPrefix(tag, "W/") == etag {
				return true
			}
		}
	}
	return false
}

// handlePutExport stores a new export when psa-syncd is the export store
// (export_url: self). The request must say which version it replaces:
// If-Match with that version's ETag, or If-None-Match: * for the first
// export; otherwise 428. A lost race is 412, an invalid export 422 with
// the reason, a state database failure 500, and the export in use stays. An accepted export takes effect
// at once and is kept in the history.
func (d *Daemon) handlePutExport(w http.ResponseWriter, r *http.Request) {
	cfg := d.cfg.Load()
	if cfg.ExportStore() != StoreSelf {
		writeError(w, http.StatusConflict, fmt.Sprintf("psa-syncd reads its mapping export from %s; set export_url: self in its configuration to make psa-syncd the export store", cfg.ExportName()))
		return
	}
	ifMatch, ifNoneMatch := r.Header.Get("If-Match"), r.Header.Get("If-None-Match")
	create := ifNoneMatch == "*"
	if ifMatch == "" && !create {
		writeError(w, http.StatusPreconditionRequired, "send If-Match with the ETag of the export the change is based on (GET "+export.ExportAPIPath+"), or If-None-Match: * to create the first export")
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxExportBody))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "reading the export: "+err.Error())
		return
	}
	v, doc, err := d.putExport(data, ifMatch, create, d.clientAddr(r))
	var invalid *invalidExportError
	switch {
	case errors.Is(err, errPrecondition):
		writeError(w, http.StatusPreconditionFailed, err.Error())
		return
	case errors.As(err, &invalid):
		writeError(w, http.StatusUnprocessableEntity, err.Error())
		return
	case err != nil:
		writeError(w, http.StatusInternalServerError, "storing the export: "+err.Error())
		return
	}
	view := newExportVersionView(v)
	products, customers := len(doc.ProductMappings), len(doc.CustomerMappings)
	view.ExportRevision, view.Products, view.Customers = doc.Revision, &products, &customers
	w.Header().Set("ETag", view.ETag)
	status := http.StatusOK
	if v.Revision == 1 {
		status = http.StatusCreated
	}
	writeJSON(w, status, view)
}

// handleExportHistory lists the stored export versions, newest first:
// the audit trail of mapping changes when psa-syncd is the export store.
func (d *Daemon) handleExportHistory(w http.ResponseWriter, r *http.Request) {
	if !knownQuery(w, r, "limit") {
		return
	}
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid limit %q: want a number from 1 to 10000", v))
			return
		}
		limit = n
	}
	versions, err := d.db.ExportHistory(limit)
	if err != nil {
		d.stateFailed(w, "reading the export history", err)
		return
	}
	out := make([]ExportVersionView, len(versions))
	for i, v := range versions {
		out[i] = newExportVersionView(v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"versions": out})
}

package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"time"

	"github.com/psa-sync/terraform-provider-psa/daemon/source"
	"github.com/psa-sync/terraform-provider-psa/daemon/state"
	"github.com/psa-sync/terraform-provider-psa/psa"
	"github.com/psa-sync/terraform-provider-psa/psa/export"
)

// MaxTerraformPlanSize bounds the Terraform plan of a billing impact
// report (`psa-syncd plan -terraform-plan`, POST /api/v1/impact), which is
// read whole: a plan of ten thousand mappings is some tens of MiB, and a
// path naming another file (a binary plan is small, a log or /dev/zero is
// not) fails with an error instead of taking all memory.
const MaxTerraformPlanSize = 256 << 20

// ErrImpactRequest marks an error of Options.Impact that is the request's
// (a plan that is not the JSON of `terraform show -json`, an unknown
// format): POST /api/v1/impact answers it with 400.
var ErrImpactRequest = errors.New("invalid billing impact request")

// ImpactRequest is what the report that Options.Impact read is computed
// with: the daemon's running config, mapping export, PSA backend and usage
// source (whose Kaseya BMS calls count in the state database, as the
// passes' do) and state database (the ledger of Kaseya BMS quantities).
type ImpactRequest struct {
	Config  *Config
	Export  *export.Document
	Backend psa.Backend
	Source  source.Source
	State   *state.DB
	// NoExport, when set, names the export store that holds no mapping
	// export yet (before the first apply): Export is empty, and the plan
	// creates every mapping, as the report run beside the daemon takes it.
	NoExport string
}

// ImpactFunc computes a billing impact report that Options.Impact read,
// writing it to w.
type ImpactFunc func(ctx context.Context, req ImpactRequest, w io.Writer) error

// ImpactReport is the answer of POST /api/v1/impact: the billing impact
// report, rendered in the format asked for.
type ImpactReport struct {
	Report string `json:"report"`
}

// impactBody is the body of POST /api/v1/impact.
type impactBody struct {
	TerraformPlan json.RawMessage `json:"terraform_plan"`
	Format        string          `json:"format"`
}

// impactBodyWant is the body of POST /api/v1/impact, for its 400.
const impactBodyWant = `{"terraform_plan": <the JSON of terraform show -json>, "format": "table|markdown|json"}`

// maxImpactBody bounds the body of POST /api/v1/impact: the plan and the
// few bytes around it.
const maxImpactBody = MaxTerraformPlanSize + maxRequestBody

// handleImpact computes the billing impact of a Terraform plan in the
// daemon (psa-syncd plan -terraform-plan -web.url), with its own PSA
// backend: on Kaseya BMS the report's calls count against the hourly limit
// per endpoint that the passes keep (api_calls), where a report run beside
// the daemon only says how many it sent. One report at a time, at most one
// every freshPlanInterval: each reads every mapped contract. A request
// refused (a body or plan that cannot be read, no export) is answered
// before it takes that turn. A standby serves it too: its backend counts
// in the shared state database as the active instance's does.
func (d *Daemon) handleImpact(w http.ResponseWriter, r *http.Request) {
	if d.impact == nil {
		writeError(w, http.StatusNotImplemented, "this psa-syncd computes no billing impact reports")
		return
	}
	var body impactBody
	if err := decodeBody(r, &body); err != nil {
		writeBodyError(w, impactBodyWant, err)
		return
	}
	if len(body.TerraformPlan) == 0 {
		writeError(w, http.StatusBadRequest, "invalid request body: want "+impactBodyWant+": no terraform_plan")
		return
	}
	compute, err := d.impact(body.TerraformPlan, body.Format)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	cfg, cl := d.cfg.Load(), d.clients.Load()
	doc, noExport := d.impactExport(cfg)
	if doc == nil || cl == nil {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet: the billing impact compares the plan with the mappings in use "+
			"(the status page says why; run psa-syncd plan -terraform-plan without -web.url to compute it from the config file)")
		return
	}
	if !d.impacts.admit(w, d.now(), "a billing impact report is computed", "") {
		return
	}
	defer d.impacts.done()
	// Reading every contract can take longer than an ordinary answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(freshPlanWriteTimeout))
	var buf bytes.Buffer
	err = compute(r.Context(), ImpactRequest{
		Config: cfg, Export: doc, Backend: cl.backend, Source: cl.source, State: d.db, NoExport: noExport,
	}, &buf)
	if err != nil {
		writeError(w, http.StatusBadGateway, "computing the billing impact: "+err.Error())
		return
	}
	writeJSON(w, http.StatusOK, ImpactReport{Report: buf.String()})
}

// impactExport is the mapping export a billing impact report compares its
// plan with: the one in use; or, while the export store holds none (before
// the first apply), an empty one, and the store's name, as the report run
// beside the daemon takes it; or nil while none is loaded for another
// reason (an export refused, a store not reached, none read yet).
func (d *Daemon) impactExport(cfg *Config) (*export.Document, string) {
	if doc := d.Export(); doc != nil {
		return doc, ""
	}
	if f := d.exportErr.Load(); f != nil && errors.Is(f.err, fs.ErrNotExist) {
		return export.New(cfg.PSA.System, ""), cfg.ExportName()
	}
	return nil, ""
}

package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
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

// ErrImpactRequest marks an error of Config.Impact that is the request's
// (a plan that is not the JSON of `terraform show -json`, an unknown
// format): POST /api/v1/impact answers it with 400.
var ErrImpactRequest = errors.New("invalid billing impact request")

// ImpactRequest is what Config.Impact computes a billing impact report
// with: the daemon's running config, mapping export, PSA backend and usage
// source (whose Kaseya BMS calls count in the state database, as the
// passes' do) and state database (the ledger of Kaseya BMS quantities).
type ImpactRequest struct {
	Config  *Config
	Export  *export.Document
	Backend psa.Backend
	Source  source.Source
	State   *state.DB
	// Plan is the JSON that `terraform show -json tfplan` prints.
	Plan []byte
	// Format is the report's: "table", "markdown" or "json".
	Format string
}

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
// every freshPlanInterval: each reads every mapped contract.
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
	cfg, doc, cl := d.cfg.Load(), d.Export(), d.clients.Load()
	if doc == nil || !d.Ready() || cl == nil {
		writeError(w, http.StatusServiceUnavailable, "no valid mapping export loaded yet: the billing impact compares the plan with the mappings in use "+
			"(before the first apply, run psa-syncd plan -terraform-plan without -web.url)")
		return
	}
	if !d.impacts.admit(w, d.now(), "a billing impact report is computed", "") {
		return
	}
	defer d.impacts.done()
	// Reading every contract can take longer than an ordinary answer.
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(freshPlanWriteTimeout))
	var buf bytes.Buffer
	err := d.impact(r.Context(), ImpactRequest{
		Config: cfg, Export: doc, Backend: cl.backend, Source: cl.source, State: d.db,
		Plan: body.TerraformPlan, Format: body.Format,
	}, &buf)
	switch {
	case errors.Is(err, ErrImpactRequest):
		writeError(w, http.StatusBadRequest, err.Error())
	case err != nil:
		writeError(w, http.StatusBadGateway, "computing the billing impact: "+err.Error())
	default:
		writeJSON(w, http.StatusOK, ImpactReport{Report: buf.String()})
	}
}

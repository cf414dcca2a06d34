#!/usr/bin/env bash
# The psa-sync demo (make demo, make demo PSA=connectwise, make demo
# PSA=kaseya_bms, make demo TERRAFORM=tofu). It needs Go and Terraform or
# OpenTofu (the GNUmakefile builds either when it is not on PATH) and nothing
# on the network:
#
#  1. builds the provider and psa-syncd from this checkout;
#  2. starts `psa-syncd simulate`: a PSA (Autotask by default; PSA=connectwise
#     or PSA=kaseya_bms for the others) and a Sophos partner from the
#     fixtures in examples/demo/ (autotask.json, connectwise.json or
#     kaseyabms.json, and sophos.json), on loopback ports;
#  3. applies examples/demo/main.tf with psa/<system>.tf (the provider block
#     and a new service) with the freshly built provider (a generated
#     CLI config with dev_overrides for both registry addresses, Terraform's
#     and OpenTofu's, so no registry and no `init`), which creates a service
#     and writes the mapping export;
#  4. runs `psa-syncd plan`, then `psa-syncd sync`, and prints the
#     per-customer report, the contract quantities before and after (read
#     back from the simulator's /_sim/<system>/state endpoint) and the key
#     metrics;
#  5. syncs again to show that nothing changes;
#  6. runs `psa-syncd tickets`: Acme's open Sophos Central alerts become
#     tickets (never twice), then an alert is resolved in the simulator and
#     the next pass closes its ticket;
#  7. runs the daemon briefly and triggers a pass through its HTTP API;
#  8. stops everything it started and removes its temporary directory.
set -euo pipefail

system="${PSA:-autotask}"
case "$system" in
autotask) fixture=autotask.json title="Autotask" ;;
connectwise) fixture=connectwise.json title="ConnectWise PSA" ;;
kaseya_bms) fixture=kaseyabms.json title="Kaseya BMS" ;;
*)
	echo "demo: PSA=$system: want autotask, connectwise or kaseya_bms" >&2
	exit 2
	;;
esac

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
terraform="${TERRAFORM:-terraform}"
work="$(mktemp -d "${TMPDIR:-/tmp}/psa-sync-demo.XXXXXX")"
pids=()

cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT

if [[ -t 1 ]]; then bold=$'\033[1m' reset=$'\033[0m'; else bold="" reset=""; fi
section() { printf '\n%s== %s%s\n\n' "$bold" "$*" "$reset"; }

# wait_for FILE PATTERN PID: wait until a line of FILE matches PATTERN, as
# long as process PID lives.
wait_for() {
	local i
	for i in $(seq 1 600); do
		grep -qE "$2" "$1" 2>/dev/null && return 0
		kill -0 "$3" 2>/dev/null || break
		sleep 0.1
	done
	echo "demo: timed out waiting for /$2/ in $1" >&2
	return 1
}

section "Building the provider and psa-syncd"
(
	cd "$root"
	go build -o "$work/plugins/terraform-provider-psa" .
	go build -ldflags "-X main.revision=$(git rev-parse HEAD 2>/dev/null)" -o "$work/bin/psa-syncd" ./daemon/cmd/psa-syncd
	go build -o "$work/bin/simstate" ./examples/demo/simstate
)
syncd="$work/bin/psa-syncd"
"$syncd" version

section "Starting the $title and Sophos simulators"
# The Sophos usage fixture is for CURRENT-MONTH, which the simulator
# resolves to whatever month this is.
"$syncd" simulate -psa.system "$system" -psa.fixture "$here/$fixture" -sophos.fixture "$here/sophos.json" \
	>"$work/simulate.env" 2>"$work/simulate.log" &
pids+=("$!")
wait_for "$work/simulate.env" '^READY=1$' "${pids[0]}" || { cat "$work/simulate.log" >&2; exit 1; }
# simulate prints shell assignments: the credentials exported under the
# names the provider and psa-syncd read (PSA_AUTOTASK_USERNAME, ...,
# PSA_SOPHOS_CLIENT_ID), and the simulators' URLs for the configuration.
# shellcheck source=/dev/null
. "$work/simulate.env"

case "$system" in
autotask) echo "Autotask REST API: $PSA_AUTOTASK_BASE_URL (API user $PSA_AUTOTASK_USERNAME)" ;;
connectwise)
	# Only the site is given: the codebase is discovered through
	# /login/companyinfo, as against a hosted ConnectWise.
	echo "ConnectWise site:  $PSA_CONNECTWISE_SITE (company $PSA_CONNECTWISE_COMPANY_ID)"
	;;
kaseya_bms)
	# A real tenant takes PSA_KASEYA_BMS_HOSTNAME (e.g. bmsemea.kaseya.com);
	# the simulator's API root is given as the base URL instead.
	echo "Kaseya BMS API:    $PSA_KASEYA_BMS_BASE_URL (user $PSA_KASEYA_BMS_USERNAME, tenant $PSA_KASEYA_BMS_TENANT)"
	;;
esac
echo "Sophos Central:    $SOPHOS_API_URL (token endpoint $SOPHOS_AUTH_URL)"
echo "Simulator state:   $PSA_STATE_URL (the simulator's own, not $title's)"

section "Contract quantities before"
"$work/bin/simstate" "$PSA_STATE_URL"
if [[ "$system" == kaseya_bms ]]; then
	echo
	echo "(Kaseya BMS v2 cannot read these units back, so psa-syncd does not see them: it"
	echo " keeps its own record of what it sets in its ledger. The hand-made lines above"
	echo " stay, and a line psa-syncd sets gets a new line of its own; psa-syncd check"
	echo " below says what that means.)"
fi

section "$(basename "$terraform") apply examples/demo/main.tf and psa/$system.tf"
cat >"$work/terraformrc" <<EOF
provider_installation {
  dev_overrides {
    "registry.terraform.io/psa-sync/psa" = "$work/plugins"
    "registry.opentofu.org/psa-sync/psa" = "$work/plugins"
  }
  direct {}
}
EOF
mkdir "$work/tf"
cp "$here/main.tf" "$here/psa/$system.tf" "$work/tf/"
export TF_CLI_CONFIG_FILE="$work/terraformrc" TF_IN_AUTOMATION=1 CHECKPOINT_DISABLE=1
export TF_VAR_export_path="$work/psa-mappings.json"
if ! "$terraform" -chdir="$work/tf" apply -auto-approve -input=false -no-color >"$work/apply.log" 2>&1; then
	cat "$work/apply.log" >&2
	echo "demo: $(basename "$terraform") apply failed" >&2
	exit 1
fi
# Skip the notice that dev_overrides are in effect; show the rest.
awk '/^(data\.|psa_|Terraform used|OpenTofu used|Plan:|No changes)/ { shown = 1 } shown' "$work/apply.log"
echo
echo "The mapping export psa-syncd reads:"
cat "$work/psa-mappings.json"

section "psa-syncd validate and check"
sed -e "s|@PSA_SYSTEM@|$system|" -e "s|@SOPHOS_AUTH_URL@|$SOPHOS_AUTH_URL|" -e "s|@SOPHOS_API_URL@|$SOPHOS_API_URL|" \
	"$here/psa-syncd.yml" >"$work/psa-syncd.yml"
od -An -N16 -tx1 /dev/urandom | tr -d ' \n' >"$work/api-token"
cfg=(-config.file "$work/psa-syncd.yml" -log.level warn)
"$syncd" validate "${cfg[@]}"
"$syncd" check "${cfg[@]}"

section "psa-syncd plan (nothing is written)"
"$syncd" plan "${cfg[@]}"

section "psa-syncd sync"
rc=0
# The demo's state database is new: -state.allow-empty confirms that this is
# a first start (Kaseya BMS refuses to write on a database without a ledger).
"$syncd" sync "${cfg[@]}" -state.allow-empty -metrics.file "$work/metrics.prom" || rc=$?
echo
echo "exit code: $rc (non-zero when the pass failed or was partial)"

section "Contract quantities after"
"$work/bin/simstate" "$PSA_STATE_URL"

section "Key metrics (psa-syncd sync -metrics.file)"
grep -E '^psa_sync_(runs_total|lines_total|customers|unmapped|last_success_timestamp_seconds|api_requests_total|export_last_reload_successful)[{ ]' \
	"$work/metrics.prom" | grep -v ' 0$' || true

section "psa-syncd sync again: nothing changes"
"$syncd" sync "${cfg[@]}" | sed -n "1,2p"
"$work/bin/simstate" "$PSA_STATE_URL"

section "psa-syncd tickets: Sophos Central alerts become $title tickets"
# Acme has ticket_sync on and two open alerts; Globex has one alert but
# ticket sync off, so it gets no ticket.
echo "\$ psa-syncd tickets -dry-run"
"$syncd" tickets "${cfg[@]}" -dry-run
echo
echo "\$ psa-syncd tickets"
"$syncd" tickets "${cfg[@]}"
echo
echo "\$ psa-syncd tickets   (again: each alert has its ticket, nothing is created twice)"
"$syncd" tickets "${cfg[@]}"

if command -v curl >/dev/null; then
	section "An alert is resolved in Sophos Central: its ticket is closed"
	# The simulator's own endpoint resolves the malware alert, as a
	# technician cleaning up ACME-PC-014 would in Sophos Central.
	code="$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE \
		"${SOPHOS_API_URL%/}/_sim/sophos/alerts/718b6047-2fbc-b4f4-1a43-45ee42bf5d3b/3b0f6a52-8d1e-4c7a-9f21-6e5d4c3b2a10")"
	[[ "$code" == 204 ]] || { echo "demo: resolving the alert in the Sophos simulator: HTTP $code" >&2; exit 1; }
	echo "Resolved alert 3b0f6a52-8d1e-4c7a-9f21-6e5d4c3b2a10 (Acme, high: manual cleanup required)."
	echo
	echo "\$ psa-syncd tickets"
	"$syncd" tickets "${cfg[@]}"
	if [[ "$system" == autotask ]]; then
		echo
		echo "The tickets in the Autotask simulator:"
		"$work/bin/simstate" -tickets "$PSA_STATE_URL"
	fi
fi

if command -v curl >/dev/null; then
	section "psa-syncd run: the daemon, its HTTP API and /metrics"
	"$syncd" run "${cfg[@]}" -log.level info -web.listen-address 127.0.0.1:0 2>"$work/run.log" &
	pids+=("$!")
	wait_for "$work/run.log" 'msg=Listening' "$!" || { cat "$work/run.log" >&2; exit 1; }
	addr="$(sed -n 's/.*msg=Listening address=\([^ ]*\).*/\1/p' "$work/run.log" | head -n 1)"
	echo "GET  /-/ready         -> $(curl -fsS "http://$addr/-/ready")"
	echo "POST /api/v1/sync     -> $(curl -fsS -X POST -H "Authorization: Bearer $(cat "$work/api-token")" \
		-d '{"customer": "2c9f1e7a-3b4d-4c5e-8f6a-7b8c9d0e1f2a"}' "http://$addr/api/v1/sync" | tr -d '\n ')"
	wait_for "$work/run.log" 'msg="Finished pass"' "${pids[-1]}"
	echo "POST without a token  -> HTTP $(curl -s -o /dev/null -w '%{http_code}' -X POST "http://$addr/api/v1/sync")"
	echo "GET  /api/v1/customers?status=failed -> $(curl -fsS "http://$addr/api/v1/customers?status=failed" | tr -d '\n ')"
	echo
	curl -fsS "http://$addr/metrics" | grep -E '^psa_sync_(runs_total|customers|unmapped|tickets_total|open_tickets)\{' | grep -v ' 0$' || true
	echo
	echo "The status page is at http://$addr/ while the daemon runs; the operator commands ask the daemon:"
	echo "\$ psa-syncd status -web.url http://$addr"
	"$syncd" status -web.url "http://$addr"
	echo "\$ psa-syncd ledger -web.url http://$addr -limit 5"
	"$syncd" ledger -web.url "http://$addr" -limit 5
	kill -TERM "${pids[-1]}"
	wait "${pids[-1]}" || true
	grep -o 'msg="Received SIGTERM, exiting gracefully"' "$work/run.log" || true
fi

section "Done"
echo "Everything the demo started is stopped; its temporary directory is removed."

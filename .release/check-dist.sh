#!/usr/bin/env bash
# check-dist.sh DIST: checks what a goreleaser (snapshot) release wrote to
# DIST the way the Terraform Registry reads it: every provider zip is named
# terraform-provider-psa_VERSION_OS_ARCH.zip and holds only the binary
# terraform-provider-psa_vVERSION, the SHA256SUMS file lists every zip and the
# manifest with the right sums, the manifest declares protocol 6.0, and the
# binaries report the version goreleaser set. Run by `make release-check`.
set -euo pipefail
dist="${1:?usage: check-dist.sh DIST}"
fail() { echo "check-dist: $*" >&2; exit 1; }

version="$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$dist/metadata.json")"
[[ -n "$version" ]] || fail "$dist/metadata.json has no version"
sums="$dist/terraform-provider-psa_${version}_SHA256SUMS"
[[ -f "$sums" ]] || fail "no $sums"
# The release uploads .release/terraform-registry-manifest.json under this
# name (release.extra_files); a snapshot does not write it to DIST.
manifest="$dist/terraform-provider-psa_${version}_manifest.json"
cp "$(dirname "${BASH_SOURCE[0]}")/terraform-registry-manifest.json" "$manifest"
grep -q '"protocol_versions": *\["6.0"\]' "$manifest" || fail "$manifest does not declare protocol 6.0"
(cd "$dist" && sha256sum --check --strict --quiet "$(basename "$sums")") || fail "$sums does not match the files"

zips=("$dist"/terraform-provider-psa_"${version}"_*_*.zip)
[[ -f "${zips[0]}" ]] || fail "no provider zip in $dist"
for zip in "${zips[@]}"; do
	name="$(basename "$zip")"
	grep -q "  $name\$" "$sums" || fail "$name is not in $(basename "$sums")"
	entries="$(unzip -Z1 "$zip")"
	[[ "$entries" == "terraform-provider-psa_v${version}" || "$entries" == "terraform-provider-psa_v${version}.exe" ]] ||
		fail "$name holds $(echo "$entries" | tr '\n' ' '), want only terraform-provider-psa_v${version}"
done
grep -q "  $(basename "$manifest")\$" "$sums" || fail "the manifest is not in $(basename "$sums")"

archives=("$dist"/psa-syncd_"${version}"_*_*.tar.gz)
[[ -f "${archives[0]}" ]] || fail "no psa-syncd archive in $dist"
for a in "${archives[@]}"; do
	grep -q "  $(basename "$a")\$" "$sums" || fail "$(basename "$a") is not in $(basename "$sums")"
	# Listed once: grep -q ends early, and under pipefail tar's SIGPIPE would
	# fail the pipe.
	entries="$(tar -tzf "$a")"
	grep -qx psa-syncd <<<"$entries" || fail "$(basename "$a") has no psa-syncd binary"
	# README says the archive holds the example configurations, the alert
	# rules and the deployment examples.
	for f in examples/daemon/psa-syncd.yml examples/prometheus/alerts.yml \
		examples/deploy/systemd/psa-syncd.service examples/deploy/kubernetes/deployment.yaml \
		examples/deploy/kubernetes-ha/kustomization.yaml examples/ci/billing-impact/github-actions.yml \
		examples/grafana/psa-syncd.json; do
		grep -qx "$f" <<<"$entries" || fail "$(basename "$a") lacks $f"
	done
done

# The binaries of this machine's platform report the version from ldflags.
platform="$(go env GOOS)_$(go env GOARCH)"
if [[ -f "$dist/terraform-provider-psa_${version}_${platform}.zip" ]]; then
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	tar -xzf "$dist/psa-syncd_${version}_${platform}.tar.gz" -C "$tmp" psa-syncd
	got="$("$tmp/psa-syncd" version)"
	[[ "$got" == *"$version"* ]] || fail "psa-syncd version prints \"$got\", want $version"
	unzip -q "$dist/terraform-provider-psa_${version}_${platform}.zip" -d "$tmp"
	grep -qaF "$version" "$tmp/terraform-provider-psa_v${version}" || fail "the provider binary does not contain $version"
fi
echo "check-dist: $dist: ${#zips[@]} provider zip(s), ${#archives[@]} psa-syncd archive(s), SHA256SUMS and manifest for $version are as the Registry expects"

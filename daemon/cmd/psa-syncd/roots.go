package main

// The container image (examples/deploy/container) has no CA bundle: it holds
// only this static binary. The fallback roots (Mozilla's, as Go's
// x509roots/fallback ships them) are used only when the system has none, so
// that HTTPS to the PSA and Sophos works there too; on a host with
// certificates, those are used as always.
import _ "golang.org/x/crypto/x509roots/fallback"

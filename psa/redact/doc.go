// Package redact removes secrets from text that came from a vendor's answer
// before it is logged, stored or printed, and bounds its length.
//
// A vendor's error message may quote the request it refuses, headers
// included: a server that echoes its request would hand back the Autotask
// secret, the ConnectWise "Basic" credential or a bearer token, and the
// message goes on into logs, `psa-syncd status` and the state database.
// Every client builds one Redactor from its credentials (and adds the
// tokens it obtains later) and passes every vendor text through it.
//
//	r := redact.New(secret, integrationCode)
//	r.Set("token", accessToken) // learnt, and renewed, at run time
//	msg = r.String(msgFromVendor)
package redact

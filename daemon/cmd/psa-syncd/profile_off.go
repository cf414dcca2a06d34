//go:build !profile

package main

// startProfiles does nothing in the psa-syncd that ships: profiles are built
// in only with -tags profile (see profile.go).
func startProfiles() (stop func()) { return func() {} }

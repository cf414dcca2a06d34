// Package durable makes a change to a directory (a file created, renamed or
// linked into it) survive a crash: the mapping export's file store
// (psa/export), the state database (daemon/state) and psa-syncd backup
// share it.
package durable

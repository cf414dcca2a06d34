//go:build !unix

package pgtest

import "syscall"

// unprivileged returns nil: where there is no Unix root, the cluster's
// programs run as the tests' user.
func unprivileged(dir string) (*syscall.SysProcAttr, error) { return nil, nil }

//go:build e2e && !linux

package e2e

import "syscall"

// sysProcAttr has nothing to add outside Linux: cleanup stops the nodes,
// but a test process that dies without cleanup leaves them running.
func sysProcAttr() *syscall.SysProcAttr { return nil }

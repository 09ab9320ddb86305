//go:build e2e && linux

package e2e

import "syscall"

// sysProcAttr makes the kernel SIGKILL a node when the test process dies
// (a go test timeout, a crash), so no node outlives its test even when
// cleanup never runs. Pdeathsig follows the thread that started the
// child; Go ends threads only when a goroutine locked to one exits, which
// these tests never do.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

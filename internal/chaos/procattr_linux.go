//go:build linux

package chaos

import "syscall"

// sysProcAttr makes the kernel SIGKILL a node when this process dies (a
// crash, a test timeout), so no node outlives the run even when cleanup
// never runs; and puts it in a process group of its own, so a terminal's
// Ctrl-C reaches only this process, which then stops the nodes in order.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

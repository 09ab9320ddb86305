//go:build linux

package main

import "syscall"

// sysProcAttr makes the kernel SIGKILL etcd when this process dies, so it
// never outlives the run even when cleanup never runs; and puts it in a
// process group of its own, so a terminal's Ctrl-C reaches only this
// process, which then stops etcd in order (as internal/chaos does for the
// Strata nodes).
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}

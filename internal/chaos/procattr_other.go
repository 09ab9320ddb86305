//go:build !linux

package chaos

import "syscall"

// sysProcAttr puts the node in a process group of its own.
func sysProcAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }

//go:build !linux

package main

import "syscall"

// sysProcAttr is nothing special off Linux.
func sysProcAttr() *syscall.SysProcAttr { return nil }

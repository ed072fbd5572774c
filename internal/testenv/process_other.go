//go:build !unix

package testenv

import (
	"os"
	"os/exec"
	"syscall"
)

// setGroup does nothing: without process groups, signals reach the process
// alone.
func setGroup(*exec.Cmd) {}

// signalGroup sends sig to p.
func signalGroup(p *os.Process, sig syscall.Signal) error { return p.Signal(sig) }

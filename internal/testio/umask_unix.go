//go:build unix

package testio

import (
	"syscall"
	"testing"
)

// Umask sets the process's umask until the test ends. The umask is the
// process's: the test must not run in parallel with others that create files.
func Umask(t testing.TB, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

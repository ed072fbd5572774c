//go:build unix

package main

import (
	"syscall"
	"time"
)

// cpuTimes returns the CPU time (user + system) used so far by this process and
// by its children that have been waited for.
func cpuTimes() (self, children time.Duration, ok bool) {
	var s, c syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &s) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c) != nil {
		return 0, 0, false
	}
	return tv(s.Utime) + tv(s.Stime), tv(c.Utime) + tv(c.Stime), true
}

func tv(t syscall.Timeval) time.Duration {
	return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
}

//go:build unix

package sqlite

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
)

// fileLock is an exclusive flock(2) on dbPath+".lock". flock locks belong to
// the open file description, so a second Open in the same process conflicts
// too, and the kernel drops the lock when the process dies (no stale locks
// after kill -9). The file is never removed: removing it would let two
// processes lock two different files of the same name.
type fileLock struct{ f *os.File }

func lockFile(dbPath string) (*fileLock, error) {
	path := dbPath + ".lock"
	// Owner only, like the database beside it (SPEC §5.4); it holds a pid.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite: open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid := string(bytes.TrimSpace(b)); pid != "" {
				holder = " (pid " + pid + ")"
			}
		}
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is open in another daodian process%s or another Store of this one; stop it first (lock %s)",
				ErrLocked, dbPath, holder, path)
		}
		return nil, fmt.Errorf("sqlite: lock %s: %w", path, err)
	}
	// The holder's pid, for the error message above; best effort.
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &fileLock{f: f}, nil
}

func (l *fileLock) release() error {
	// Empty the pid first: once unlocked, another process may write its own.
	_ = l.f.Truncate(0)
	err := syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
	return errors.Join(err, l.f.Close())
}

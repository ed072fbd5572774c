//go:build !unix

package sqlite

// fileLock is a no-op where flock(2) does not exist. SQLite's own locking
// still keeps the file consistent, but two Stores on one file would hand out
// the same identifiers: do not run two processes on one database there.
type fileLock struct{}

func lockFile(string) (*fileLock, error) { return &fileLock{}, nil }

func (*fileLock) release() error { return nil }

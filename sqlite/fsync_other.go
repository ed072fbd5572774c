//go:build !linux

package sqlite

import "os"

// fdatasync flushes the file to stable storage. os.File.Sync uses
// F_FULLFSYNC on Darwin, which also flushes the drive's cache.
func fdatasync(f *os.File) error { return f.Sync() }

// syncDir makes the directory's entries durable where the system allows
// syncing a directory; elsewhere it is a no-op.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return nil
	}
	_ = d.Sync()
	return d.Close()
}

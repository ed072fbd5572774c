package sqlite

import (
	"os"
	"syscall"
)

// fdatasync flushes the file's data and the metadata needed to read it back
// (its size), which is what SQLite itself uses for the WAL.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

// syncDir makes the directory's entries (a newly created WAL) durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

//go:build !unix

package walvfs

// Name is empty where the VFS is not built: connections use SQLite's default.
const Name = ""

// Register does nothing where the VFS is not built.
func Register() error { return nil }

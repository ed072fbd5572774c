//go:build unix

package sqlite

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/daodian/daodian"
)

// withUmask sets the process umask for the test.
func withUmask(t *testing.T, mask int) {
	old := syscall.Umask(mask)
	t.Cleanup(func() { syscall.Umask(old) })
}

// modes returns the permission bits of the files that exist among paths.
func modes(t *testing.T, paths ...string) map[string]fs.FileMode {
	t.Helper()
	out := map[string]fs.FileMode{}
	for _, p := range paths {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = fi.Mode().Perm()
	}
	return out
}

func wantPrivate(t *testing.T, what string, got map[string]fs.FileMode, names ...string) {
	t.Helper()
	for _, n := range names {
		m, ok := got[n]
		if !ok {
			t.Errorf("%s: %s does not exist", what, n)
		} else if m != 0o600 {
			t.Errorf("%s: %s has mode %04o, want 0600", what, n, m)
		}
	}
}

// TestFilesPrivate: under the usual umask 022, the database, its -wal and
// -shm files, its lock and its key file are all created 0600 (SPEC §5.4), and
// an existing database left readable by others is restricted when opened.
func TestFilesPrivate(t *testing.T) {
	withUmask(t, 0o022)
	path := tempPath(t)
	files := []string{path, path + "-wal", path + "-shm", path + ".lock", path + ".key"}
	s := openAt(t, path, Options{})
	l := daodian.NewLedger(s, daodian.Config{})
	if _, err := l.CreateApp(context.Background(), daodian.AppSpec{Name: "pos", MerchantID: "m"}); err != nil {
		t.Fatal(err)
	}
	wantPrivate(t, "new database", modes(t, files...), "daodian.db", "daodian.db-wal", "daodian.db-shm", "daodian.db.lock", "daodian.db.key")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// As an older daodian (or a copy made by hand) left them.
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil && p != path {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s = openAt(t, path, Options{})
	wantPrivate(t, "reopened database", modes(t, files...), "daodian.db", "daodian.db-wal", "daodian.db-shm")
	// A Shared Store (an admin command next to the server) restricts them too.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, Options{Shared: true})
	wantPrivate(t, "database opened shared", modes(t, path), "daodian.db")
	_ = s
}

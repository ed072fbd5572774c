//go:build unix

package sqlite

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/testio"
)

// TestFilesPrivate: under the usual umask 022, the database, its -wal and
// -shm files, its lock and its key file are all created 0600 (SPEC §5.4), and
// an existing database left readable by others is restricted when opened.
func TestFilesPrivate(t *testing.T) {
	testio.Umask(t, 0o022)
	path := tempPath(t)
	s := openAt(t, path, Options{})
	l := daodian.NewLedger(s, daodian.Config{})
	if _, err := l.CreateApp(context.Background(), daodian.AppSpec{Name: "pos", MerchantID: "m"}); err != nil {
		t.Fatal(err)
	}
	testio.WantPrivate(t, path, path+"-wal", path+"-shm", path+".lock", path+".key")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// As an older daodian (or a copy made by hand) left them: an empty WAL and
	// shared-memory file are what a clean close leaves when they are kept.
	for _, p := range []string{path + "-wal", path + "-shm"} {
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	openAt(t, path, Options{})
	testio.WantPrivate(t, path, path+"-wal", path+"-shm")
	// A Shared Store (an admin command next to the server) restricts them too.
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	shared := openAt(t, path, Options{Shared: true})
	testio.WantPrivate(t, path)
	// The data is intact.
	err := shared.View(context.Background(), func(tx daodian.ReadTx) error {
		c, err := tx.Counts(context.Background())
		if err == nil && c.Apps != 1 {
			err = fmt.Errorf("%d apps after reopening, want 1", c.Apps)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

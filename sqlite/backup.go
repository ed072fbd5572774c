package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Backup copies the database at path into the new file to with SQLite's VACUUM
// INTO, which reads one consistent snapshot (a read transaction): it runs while a
// Store serves and writes the database, in this process or another, and the copy
// holds exactly the transactions committed when it began, none half. The copy is
// compacted, carries no WAL, is readable by its owner only whatever the umask, and
// is synced to disk, directory entry included, before Backup returns. to must not
// exist; a failed copy is removed.
//
// The app secrets in the copy stay sealed, and the key is not in it: a restore
// needs the key file too.
func Backup(ctx context.Context, path, to string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sqlite: database %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("sqlite: database %s is not a file", path)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// Not read-only: reading a WAL database may have to recover its index after
	// a crash, which writes the -shm file. Nothing else is written.
	db, err := sql.Open("sqlite", dsn(abs, Options{}.withDefaults()))
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	// VACUUM INTO would create the file with the umask's mode (0644 under the
	// usual 022); it fills an empty file as it finds it.
	f, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("sqlite: %s exists; a backup is written to a new file only", to)
	}
	if err != nil {
		return err
	}
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		_ = os.Remove(to)
		return err
	}
	if err := vacuumInto(ctx, db, to); err != nil {
		_ = os.Remove(to) // a partial copy must not pass for a backup
		return err
	}
	return nil
}

func vacuumInto(ctx context.Context, db *sql.DB, to string) error {
	if _, err := db.ExecContext(ctx, "VACUUM INTO ?", to); err != nil {
		return fmt.Errorf("sqlite: VACUUM INTO %s: %w", to, err)
	}
	f, err := os.OpenFile(to, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := errors.Join(f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("sqlite: sync %s: %w", to, err)
	}
	if err := syncDir(filepath.Dir(to)); err != nil {
		return fmt.Errorf("sqlite: sync the directory of %s: %w", to, err)
	}
	return nil
}

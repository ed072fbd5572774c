package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver, as the embedded store uses
)

// runBackup copies the embedded database into a new file with SQLite's VACUUM
// INTO, which reads one consistent snapshot of the database (a read
// transaction): it runs while `serve` keeps serving and writing, and the copy
// holds exactly the transactions committed when it began, none half. The copy
// is compacted, carries no WAL, and is synced to disk before the command
// reports success. It is readable by its owner only, whatever the umask, and
// holds the app secrets sealed: the key file is not in it, and a restore needs
// both. docs/operations.md describes the restore.
func runBackup(ctx context.Context, e *env, args []string) error {
	fs := newFlags(e, "backup")
	db := fs.String("db", defaultDB, "embedded database file to back up")
	to := fs.String("to", "", "the backup file to create; it must not exist (required)")
	if _, err := parse(e, fs, args); err != nil {
		return err
	}
	if *to == "" {
		return &exitError{2, "--to FILE is required"}
	}
	if strings.Contains(*db, "://") {
		return &exitError{2, "backup copies the embedded database file; back up PostgreSQL with its own tools (pg_dump, or base backups with WAL archiving)"}
	}
	if fi, err := os.Stat(*db); err != nil {
		return fmt.Errorf("database %s: %w", *db, err)
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("database %s is not a file", *db)
	}
	abs, err := filepath.Abs(*db)
	if err != nil {
		return err
	}
	began := time.Now()
	// Not read-only: reading a WAL database may have to recover its index
	// after a crash, which writes the -shm file. Nothing else is written.
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	// A URI filename, so that every character of the path is taken literally.
	name := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(filepath.ToSlash(abs))
	conn, err := sql.Open("sqlite", "file:"+name+"?"+q.Encode())
	if err != nil {
		return err
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	// VACUUM INTO would create the file with the umask's mode (0644 under
	// the usual 022); it fills an empty file as it finds it.
	if err := createPrivate(*to); err != nil {
		return err
	}
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", *to); err != nil {
		_ = os.Remove(*to) // a partial copy must not pass for a backup
		return fmt.Errorf("VACUUM INTO %s: %w", *to, err)
	}
	if err := syncFileAndDir(*to); err != nil {
		return fmt.Errorf("sync %s: %w", *to, err)
	}
	fi, err := os.Stat(*to)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s (%d bytes) in %.1fs\n", *db, *to, fi.Size(), time.Since(began).Seconds())
	fmt.Fprintf(e.stdout, "the app secrets in it are sealed, and the key is not in it: keep the secret key file (by default %s.key) with the backups, a restore needs both\n", *db)
	return nil
}

// createPrivate creates the empty file path, mode 0600 whatever the umask; it
// must not exist.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return fmt.Errorf("%s exists; backup writes only a new file", path)
	}
	if err != nil {
		return err
	}
	if err := errors.Join(f.Chmod(0o600), f.Close()); err != nil {
		_ = os.Remove(path)
		return err
	}
	return nil
}

// syncFileAndDir makes a new file and its directory entry durable.
func syncFileAndDir(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

package main

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/daodian/daodian/sqlite"
)

// runBackup copies the embedded database into a new file (sqlite.Backup: one
// consistent snapshot, taken while `serve` keeps serving, private and synced).
// The app secrets in it stay sealed and the key file is not in it: a restore
// needs both. docs/operations.md describes the restore.
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
	began := time.Now()
	if err := sqlite.Backup(ctx, *db, *to); err != nil {
		return err
	}
	fi, err := os.Stat(*to)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "backed up %s to %s (%d bytes) in %.1fs\n", *db, *to, fi.Size(), time.Since(began).Seconds())
	fmt.Fprintf(e.stdout, "the app secrets in it are sealed, and the key is not in it: keep the secret key file (by default %s.key) with the backups, a restore needs both\n", *db)
	return nil
}

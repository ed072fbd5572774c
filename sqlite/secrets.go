package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strconv"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// Secrets at rest (SPEC §5.4): the database and its -wal and -shm files are
// readable by their owner only, and the app secrets in them are sealed under a
// key kept in a file of its own (package seal).

// ownerOnly are the mode bits the files of a database must not have.
const ownerOnly fs.FileMode = 0o077

// restrictFiles makes the database and its WAL and shared-memory files
// accessible to their owner only, whatever the umask. A missing database file
// is created empty with mode 0600: SQLite gives the -wal and -shm files it
// creates exactly the mode of the database file. Files that exist, from an
// older daodian or made by hand, lose their group and other bits.
//
// An existing database file is never opened here: closing a descriptor of it
// would drop the POSIX locks that SQLite connections of this process (another
// Store on the file) hold on it.
func restrictFiles(path string) error {
	if runtime.GOOS == "windows" {
		return nil // mode bits mean nothing there
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	switch {
	case err == nil:
		// A new, empty inode: no one else has it open.
		err = errors.Join(f.Chmod(0o600), f.Close())
		if err != nil {
			return fmt.Errorf("sqlite: create %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("sqlite: create %s: %w", path, err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		fi, err := os.Stat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err == nil && fi.Mode().Perm()&ownerOnly != 0 {
			err = os.Chmod(p, fi.Mode().Perm()&^ownerOnly)
		}
		if err != nil {
			return fmt.Errorf("sqlite: restrict %s to its owner: %w", p, err)
		}
	}
	return nil
}

// prepareSecrets finds the key the app secrets are sealed with (seal.Setup),
// recording its check in a new database, and seals in place the secrets of a
// database written before sealing existed. It runs on the writer connection
// right after the migrations, before any statement is prepared.
//
// Sealing in place must leave no plain copy in the files: the rewritten pages
// are zeroed where the old values were (secure_delete), the database is then
// rebuilt (VACUUM: an older daodian's updates of the apps rows left old
// versions in free space), and the WAL, which held the plain pages too, is
// truncated.
func (s *Store) prepareSecrets(ctx context.Context, c *sql.Conn) (*seal.Key, error) {
	var secureDelete int
	if err := c.QueryRowContext(ctx, "PRAGMA secure_delete").Scan(&secureDelete); err != nil {
		return nil, fmt.Errorf("sqlite: read secure_delete: %w", err)
	}
	if _, err := c.ExecContext(ctx, "PRAGMA secure_delete = 1"); err != nil {
		return nil, fmt.Errorf("sqlite: set secure_delete: %w", err)
	}
	key, sealed, err := s.sealInPlace(ctx, c)
	if _, rerr := c.ExecContext(context.Background(), "PRAGMA secure_delete = "+strconv.Itoa(secureDelete)); rerr != nil && err == nil {
		err = fmt.Errorf("sqlite: restore secure_delete: %w", rerr)
	}
	if err != nil {
		return nil, err
	}
	if sealed == 0 {
		return key, nil
	}
	s.opts.Logger.Info("sqlite: sealed the app secrets of a database written before sealing existed; rebuilding it so that no plain copy remains",
		"db", s.path, "apps", sealed)
	if _, err := c.ExecContext(ctx, "VACUUM"); err != nil {
		return nil, fmt.Errorf("sqlite: rebuild after sealing the app secrets: %w", err)
	}
	var busy, frames, done int
	if err := c.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &frames, &done); err != nil {
		return nil, fmt.Errorf("sqlite: checkpoint after sealing the app secrets: %w", err)
	}
	if busy != 0 {
		// Another process reads an older snapshot: the WAL is truncated by a
		// later checkpoint, and overwritten by new commits meanwhile.
		s.opts.Logger.Warn("sqlite: could not truncate the WAL after sealing the app secrets (another process reads the database); it is overwritten by later commits",
			"db", s.path)
	}
	return key, nil
}

// sealInPlace is prepareSecrets' transaction; it returns the key and the number
// of apps whose secrets it sealed.
func (s *Store) sealInPlace(ctx context.Context, c *sql.Conn) (_ *seal.Key, sealed int, err error) {
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, 0, fmt.Errorf("sqlite: begin sealing: %w", err)
	}
	defer func() {
		if err != nil {
			_, _ = c.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	var check string
	err = c.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, metaSecretKeyCheck).Scan(&check)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("sqlite: read the secret key check: %w", err)
	}
	key, newCheck, err := seal.Setup(s.keyPath, check)
	if err != nil {
		return nil, 0, err
	}
	if newCheck != "" {
		if _, err := c.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES (?, ?)`, metaSecretKeyCheck, newCheck); err != nil {
			return nil, 0, fmt.Errorf("sqlite: write the secret key check: %w", err)
		}
	}
	plain, err := plainApps(ctx, c)
	if err != nil {
		return nil, 0, err
	}
	for i := range plain {
		secret, previous := key.SealPlain(&plain[i])
		if _, err := c.ExecContext(ctx, `UPDATE apps SET secret = ?, previous_secret = ? WHERE key = ?`,
			secret, previous, plain[i].Key); err != nil {
			return nil, 0, fmt.Errorf("sqlite: seal the secret of app %q: %w", plain[i].Key, err)
		}
	}
	if _, err := c.ExecContext(ctx, "COMMIT"); err != nil {
		return nil, 0, fmt.Errorf("sqlite: commit sealing: %w", err)
	}
	return key, len(plain), nil
}

// plainApps returns the key and stored secrets of the apps with a secret not
// sealed.
func plainApps(ctx context.Context, c *sql.Conn) ([]daodian.App, error) {
	n := len(seal.Prefix)
	rows, err := c.QueryContext(ctx, `SELECT key, secret, previous_secret FROM apps
		WHERE (secret <> '' AND substr(secret, 1, ?) <> ?) OR (previous_secret <> '' AND substr(previous_secret, 1, ?) <> ?)`,
		n, seal.Prefix, n, seal.Prefix)
	if err != nil {
		return nil, fmt.Errorf("sqlite: find plain app secrets: %w", err)
	}
	defer rows.Close()
	var out []daodian.App
	for rows.Next() {
		var a daodian.App
		if err := rows.Scan(&a.Key, &a.Secret, &a.PreviousSecret); err != nil {
			return nil, fmt.Errorf("sqlite: find plain app secrets: %w", err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: find plain app secrets: %w", err)
	}
	return out, nil
}

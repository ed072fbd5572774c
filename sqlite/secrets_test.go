package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/seal"
)

// storedSecrets reads an app's secret columns past the store.
func storedSecrets(t *testing.T, path, appKey string) (secret, previous string) {
	t.Helper()
	db := rawDB(t, path)
	if err := db.QueryRow(`SELECT secret, previous_secret FROM apps WHERE key = ?`, appKey).Scan(&secret, &previous); err != nil {
		t.Fatal(err)
	}
	return secret, previous
}

// rawDB is a plain connection to the file, closed at the test's end.
func rawDB(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// secretsOf returns the secrets of every app in the store.
func secretsOf(t *testing.T, s *Store, keys []string) []string {
	t.Helper()
	var out []string
	err := s.View(context.Background(), func(tx daodian.ReadTx) error {
		for _, k := range keys {
			a, err := tx.App(context.Background(), k)
			if err != nil {
				return err
			}
			out = append(out, a.Secret)
			if a.PreviousSecret != "" {
				out = append(out, a.PreviousSecret)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSecretsNotInFiles: a copy of the files of the database — the database,
// its WAL — or a SELECT reveals no app secret, current or previous.
func TestSecretsNotInFiles(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	ctx := context.Background()
	l := daodian.NewLedger(s, daodian.Config{})
	var keys []string
	for i := range 20 {
		a, err := l.CreateApp(ctx, daodian.AppSpec{Name: fmt.Sprint("pos-", i), MerchantID: "m"})
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, a.Key)
		if i%2 == 0 {
			if _, err := l.RotateAppSecret(ctx, a.Key, time.Hour); err != nil {
				t.Fatal(err)
			}
		}
	}
	secrets := secretsOf(t, s, keys)
	if len(secrets) != 30 {
		t.Fatalf("%d secrets, want 30", len(secrets))
	}
	testio.WantNotInFiles(t, secrets, path, path+"-wal", path+"-shm")
	for _, k := range keys {
		secret, previous := storedSecrets(t, path, k)
		for _, p := range secrets {
			if strings.Contains(secret+previous, p) {
				t.Fatalf("SELECT shows the secret %s", p)
			}
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	testio.WantNotInFiles(t, secrets, path, path+"-wal", path+"-shm")
}

// legacyDB writes, with the statements an older daodian ran, a database from
// before sealing (schema version 2) holding apps with plain secrets, as that
// daodian would leave it if it crashed: part of it checkpointed into the
// database file (old versions of the rows included, in free space), the rest
// only in the WAL. It returns the apps' secrets.
func legacyDB(t *testing.T, path string, apps int) map[string]string {
	t.Helper()
	dir := t.TempDir()
	live := filepath.Join(dir, "live.db")
	db := rawDB(t, live)
	ctx := context.Background()
	for _, p := range []string{"PRAGMA journal_mode = WAL", "PRAGMA wal_autocheckpoint = 0"} {
		if _, err := db.ExecContext(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	for _, m := range migrations[:2] {
		for _, stmt := range m {
			if _, err := db.ExecContext(ctx, stmt); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO meta (key, value) VALUES ('schema_version', '2')`); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{}
	insert := func(i int) {
		a, err := daodian.NewApp(fmt.Sprint("pos-", i), "m", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO apps (key, secret, created_at, doc) VALUES (?, ?, ?, ?)`,
			a.Key, a.Secret, micros(a.CreatedAt), appDoc(nil, a)); err != nil {
			t.Fatal(err)
		}
		// The old UpdateApp: the row is rewritten, its old version freed.
		a.Name = strings.Repeat("renamed ", 8)
		if _, err := db.ExecContext(ctx, `UPDATE apps SET doc = ? WHERE key = ?`, appDoc(nil, a), a.Key); err != nil {
			t.Fatal(err)
		}
		secrets[a.Key] = a.Secret
	}
	for i := range apps / 2 {
		insert(i)
	}
	if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		t.Fatal(err)
	}
	for i := apps / 2; i < apps; i++ {
		insert(i)
	}
	// The crash: the files as they are now, WAL included.
	for _, suffix := range []string{"", "-wal"} {
		b, err := os.ReadFile(live + suffix)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+suffix, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return secrets
}

// TestLegacyDatabaseSealedInPlace: a database written before sealing existed
// is sealed on its first open: the apps keep their secrets (their terminals
// keep signing), and no plain copy is left in the files.
func TestLegacyDatabaseSealedInPlace(t *testing.T) {
	path := tempPath(t)
	secrets := legacyDB(t, path, 60)
	var plain []string
	for _, s := range secrets {
		plain = append(plain, s)
	}
	// The test is only worth something if both files do hold some.
	for _, f := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, p := range plain {
			if bytes.Contains(b, []byte(p)) {
				n++
			}
		}
		if n == 0 {
			t.Fatalf("the legacy %s holds no secret", filepath.Base(f))
		}
	}

	s := openAt(t, path, Options{})
	ctx := context.Background()
	err := s.View(ctx, func(tx daodian.ReadTx) error {
		for k, want := range secrets {
			a, err := tx.App(ctx, k)
			if err != nil {
				return err
			}
			if a.Secret != want || a.Name == "" {
				return fmt.Errorf("app %s after sealing: %+v", k, a)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for k := range secrets {
		secret, previous := storedSecrets(t, path, k)
		if !seal.IsSealed(secret) || previous != "" {
			t.Fatalf("app %s stored as %q, %q", k, secret, previous)
		}
	}
	testio.WantNotInFiles(t, plain, path, path+"-wal", path+"-shm")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	testio.WantNotInFiles(t, plain, path, path+"-wal", path+"-shm")

	// The key file beside it is now the database's key: another is refused, and
	// a lost one is not silently replaced.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := seal.CreateFile(other); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{SecretKeyFile: other}); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("open with another key: %v", err)
	}
	if err := os.Rename(path+".key", path+".key.saved"); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, path, Options{}); !errors.Is(err, seal.ErrNoKeyFile) {
		t.Fatalf("open without its key file: %v", err)
	}
	if _, err := os.Stat(path + ".key"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a new key file was created for a sealed database")
	}
	if err := os.Rename(path+".key.saved", path+".key"); err != nil {
		t.Fatal(err)
	}
	s = openAt(t, path, Options{})
	if k := firstKey(secrets); secretsOf(t, s, []string{k})[0] != secrets[k] {
		t.Fatal("reopened with its key, the app's secret changed")
	}
}

func firstKey(m map[string]string) string {
	for k := range m {
		return k
	}
	return ""
}

// TestMigrationWithColumnPresent: a database where the columns of version 3
// were added by hand still migrates (ADD COLUMN has no IF NOT EXISTS).
func TestMigrationWithColumnPresent(t *testing.T) {
	path := tempPath(t)
	legacyDB(t, path, 2)
	db := rawDB(t, path)
	if _, err := db.Exec(`ALTER TABLE apps ADD COLUMN previous_secret TEXT NOT NULL DEFAULT ''`); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	openAt(t, path, Options{})
}

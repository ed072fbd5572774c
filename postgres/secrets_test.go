package postgres

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// storedSecrets reads an app's secret columns past the store.
func storedSecrets(t *testing.T, url, appKey string) (secret, previous string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.QueryRow(ctx, "SELECT secret, previous_secret FROM apps WHERE key = $1", appKey).Scan(&secret, &previous); err != nil {
		t.Fatal(err)
	}
	return secret, previous
}

func TestOpenNeedsSecretKeyFile(t *testing.T) {
	// Refused before connecting: no server is needed to see it.
	_, err := Open(context.Background(), "postgres://u:hunter2secret@127.0.0.1:1/x", Options{})
	if err == nil || !strings.Contains(err.Error(), "secret key file is required") || strings.Contains(err.Error(), "hunter2secret") {
		t.Fatalf("Open without a key file: %v", err)
	}
}

// TestOpenConcurrentCreatesOneKey: processes starting at once on a new
// database with one new key path agree on one key.
func TestOpenConcurrentCreatesOneKey(t *testing.T) {
	u := freshSchema(t)
	key := filepath.Join(t.TempDir(), "secret.key")
	stores := make([]*Store, 4)
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = Open(context.Background(), u, Options{MaxConns: 2, SecretKeyFile: key}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	ctx := context.Background()
	l := daodian.NewLedger(stores[0], daodian.Config{})
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos", MerchantID: "m"})
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range stores {
		err := s.View(ctx, func(tx daodian.ReadTx) error {
			a, err := tx.App(ctx, app.Key)
			if err == nil && a.Secret != app.Secret {
				err = fmt.Errorf("secret %q, want %q", a.Secret, app.Secret)
			}
			return err
		})
		if err != nil {
			t.Fatalf("store %d: %v", i, err)
		}
	}
}

// TestLegacySecretsSealedInPlace: a database written before sealing existed
// (schema version 2, plain secrets) is sealed on its first open with a key;
// the apps keep their secrets, and SELECT shows none of them.
func TestLegacySecretsSealedInPlace(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	c := connect(t, u)
	// What an older daodian ran: its migrations, then its InsertApp.
	migrateTo(t, c, 2)
	secrets := map[string]string{}
	for i := range 5 {
		a, err := daodian.NewApp(fmt.Sprint("pos-", i), "m", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, `INSERT INTO apps (key, secret, name, merchants, enabled, methods, rate_limit_per_s, created_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, a.Key, a.Secret, a.Name, a.Merchants, true, []string{}, 0, a.CreatedAt); err != nil {
			t.Fatal(err)
		}
		secrets[a.Key] = a.Secret
	}

	key := filepath.Join(t.TempDir(), "secret.key")
	s, err := Open(ctx, u, Options{SecretKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	err = s.View(ctx, func(tx daodian.ReadTx) error {
		for k, want := range secrets {
			a, err := tx.App(ctx, k)
			if err != nil {
				return err
			}
			if a.Secret != want || !a.Enabled {
				return fmt.Errorf("app %s after sealing: %+v", k, a)
			}
		}
		return nil
	})
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := c.Query(ctx, "SELECT secret || previous_secret FROM apps")
	if err != nil {
		t.Fatal(err)
	}
	stored, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil || len(stored) != len(secrets) {
		t.Fatalf("SELECT: %v %v", stored, err)
	}
	for _, v := range stored {
		if !seal.IsSealed(v) {
			t.Errorf("stored %q: not sealed", v)
		}
		for _, p := range secrets {
			if strings.Contains(v, p) {
				t.Errorf("SELECT shows the secret %s", p)
			}
		}
	}

	// The key is now the database's: another is refused, a lost one is not
	// silently replaced.
	other := filepath.Join(t.TempDir(), "other.key")
	if _, err := seal.CreateFile(other); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(ctx, u, Options{SecretKeyFile: other}); !errors.Is(err, seal.ErrWrongKey) {
		t.Fatalf("open with another key: %v", err)
	}
	lost := filepath.Join(t.TempDir(), "lost.key")
	if _, err := Open(ctx, u, Options{SecretKeyFile: lost}); !errors.Is(err, seal.ErrNoKeyFile) {
		t.Fatalf("open without the key file: %v", err)
	}
	if _, err := os.Stat(lost); !errors.Is(err, fs.ErrNotExist) {
		t.Fatal("a new key file was created for a sealed database")
	}
	s, err = Open(ctx, u, Options{SecretKeyFile: key})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

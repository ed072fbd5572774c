// Package testenv is the one test environment of daodian's suites: the instant
// tests start at and a clock they move by hand, a database of either store of
// a test's own (with the secret key file its stores need), a test run on both
// stores, one seed (merchant, shop, an app with a known secret, tickets), a
// gateway served in-process, and real `daodian serve` processes.
//
// Layers: storetest (the contract every store passes, and its Clock) and
// internal/pgtest (fresh PostgreSQL databases) import no store, so that the
// stores' own tests can use them; testenv builds on both and on the stores, so
// that the suites above the stores (gateway, client, e2e, cmd/daodian) can.
package testenv

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/pgtest"
	"github.com/daodian/daodian/postgres"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// T0 is the instant tests start at: 2024-05-01 12:00:00 in GMT+8, the zone
// TOP timestamps are read in (SPEC §3.2).
var T0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("GMT+8", 8*3600))

// T0Text is T0 as a TOP timestamp.
const T0Text = "2024-05-01 12:00:00"

// NewClock returns a clock at T0 that the test moves by hand.
func NewClock() *storetest.Clock { return storetest.NewClock(T0) }

// Kind is a kind of store.
type Kind string

// The kinds of store.
const (
	Embedded Kind = "embedded"
	Postgres Kind = "postgres"
)

// Kinds are the kinds of store, in the order Run runs them.
var Kinds = []Kind{Embedded, Postgres}

// Run runs fn as a subtest of t for each kind of store, named after the kind,
// as net/http's tests run each test in each HTTP mode. The PostgreSQL subtest
// is skipped, with pgtest.SkipMessage, when DAODIAN_TEST_POSTGRES is not set.
func Run(t *testing.T, fn func(t *testing.T, kind Kind)) {
	t.Helper()
	for _, kind := range Kinds {
		t.Run(string(kind), func(t *testing.T) {
			if kind == Postgres {
				pgtest.Need(t)
			}
			fn(t, kind)
		})
	}
}

// DB is a database as the daodian commands name it: --db and --secret-key-file.
// Every store and process on one database must use its key file (SPEC §5.4).
type DB struct {
	// URL is the --db value: an embedded database's path or a postgres:// URL.
	URL string
	// KeyFile is the --secret-key-file value.
	KeyFile string
}

// NewDB returns a new, empty database of kind for the test. An embedded one is
// a path in t.TempDir() with its key beside it, where the commands look for it
// by default; a PostgreSQL one is a fresh database (pgtest.FreshDatabase,
// which skips the test without DAODIAN_TEST_POSTGRES) with a key file in
// t.TempDir().
func NewDB(t testing.TB, kind Kind) DB {
	t.Helper()
	switch kind {
	case Embedded:
		return FileDB(filepath.Join(t.TempDir(), "daodian.db"))
	case Postgres:
		return DB{URL: pgtest.FreshDatabase(t), KeyFile: filepath.Join(t.TempDir(), "secret.key")}
	}
	t.Fatalf("testenv: unknown kind of store %q", kind)
	return DB{}
}

// FileDB is the embedded database at path, with its key file where the
// commands look for it by default.
func FileDB(path string) DB { return DB{URL: path, KeyFile: path + ".key"} }

// Kind returns the kind of store of the database.
func (d DB) Kind() Kind {
	if strings.HasPrefix(d.URL, "postgres://") || strings.HasPrefix(d.URL, "postgresql://") {
		return Postgres
	}
	return Embedded
}

// Args returns the flags that name the database to a daodian command.
func (d DB) Args() []string { return []string{"--db", d.URL, "--secret-key-file", d.KeyFile} }

// Open opens a store on the database in this process; it is closed when the
// test ends, if not before (a store's Close may be called twice).
func (d DB) Open(t testing.TB) daodian.Store {
	t.Helper()
	ctx := context.Background()
	var s daodian.Store
	var err error
	if d.Kind() == Postgres {
		s, err = postgres.Open(ctx, d.URL, postgres.Options{SecretKeyFile: d.KeyFile})
	} else {
		s, err = sqlite.Open(ctx, d.URL, sqlite.Options{SecretKeyFile: d.KeyFile})
	}
	if err != nil {
		// Not the URL: DAODIAN_TEST_POSTGRES may hold a password.
		t.Fatalf("open the %s database: %v", d.Kind(), err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

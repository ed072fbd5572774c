// Package pgtest gives tests a PostgreSQL database of their own, on the server
// named by DAODIAN_TEST_POSTGRES, and clusters of their own for the tests that
// stop or promote a server.
//
// It imports no daodian package, so that the postgres package's own tests can
// use it; internal/testenv builds the rest of the test environment on it.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the URL of a server where tests may create
// databases.
const Env = "DAODIAN_TEST_POSTGRES"

// SkipMessage is why a PostgreSQL test is skipped when Env is not set.
const SkipMessage = Env + " is not set; skipping PostgreSQL tests (set it to a postgres:// URL of a server where a fresh database may be created)"

// Need returns the URL of Env, and skips the test with SkipMessage when it is
// not set.
func Need(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(Env)
	if base == "" {
		tb.Skip(SkipMessage)
	}
	return base
}

// WithDatabase returns the postgres:// URL base with its database replaced.
func WithDatabase(base, db string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("%s must be a postgres:// URL", Env)
	}
	u.Path = "/" + db
	return u.String(), nil
}

// CreateDatabase creates a database with a new random name on the server of
// base and returns its URL, and drop, which drops it (closing its sessions)
// and must be called once it is no longer used.
func CreateDatabase(ctx context.Context, base string) (dbURL string, drop func() error, err error) {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "daodian_t_" + hex.EncodeToString(b)
	if dbURL, err = WithDatabase(base, name); err != nil {
		return "", nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("connect to %s: %w", Env, err)
	}
	if _, err := conn.Exec(cctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		return "", nil, fmt.Errorf("create database %s: %w", name, err)
	}
	drop = func() error {
		defer conn.Close(context.Background())
		dctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := conn.Exec(dctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			return fmt.Errorf("drop database %s: %w", name, err)
		}
		return nil
	}
	return dbURL, drop, nil
}

// FreshDatabase creates a new database for the test and returns its URL; the
// database is dropped when the test ends. Without Env the test is skipped, with
// SkipMessage.
func FreshDatabase(tb testing.TB) string {
	tb.Helper()
	dbURL, drop, err := CreateDatabase(context.Background(), Need(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := drop(); err != nil {
			tb.Error(err)
		}
	})
	return dbURL
}

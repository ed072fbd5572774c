// Package pgtest gives tests that run the daodian processes a PostgreSQL
// database of their own, on the server named by DAODIAN_TEST_POSTGRES.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// Env names the variable holding the URL of a server where tests may create
// databases.
const Env = "DAODIAN_TEST_POSTGRES"

// FreshDatabase creates a new database for the test and returns its URL; the
// database is dropped when the test ends. Without the variable the test is
// skipped, with a message saying how to run it.
func FreshDatabase(tb testing.TB) string {
	tb.Helper()
	base := os.Getenv(Env)
	if base == "" {
		tb.Skip(Env + " is not set; skipping PostgreSQL tests (set it to a postgres:// URL of a server where a fresh database may be created)")
	}
	u, err := url.Parse(base)
	if err != nil {
		tb.Fatalf("%s: %v", Env, err)
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		tb.Fatalf("connect to %s: %v", Env, err)
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	name := "daodian_t_" + hex.EncodeToString(b)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		conn.Close(ctx)
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		conn.Close(ctx)
	})
	u.Path = "/" + name
	return u.String()
}

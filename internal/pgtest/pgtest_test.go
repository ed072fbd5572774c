package pgtest

import (
	"context"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

func TestWithDatabase(t *testing.T) {
	got, err := WithDatabase("postgres://u:p@127.0.0.1:5432/test?sslmode=disable", "x")
	if err != nil || got != "postgres://u:p@127.0.0.1:5432/x?sslmode=disable" {
		t.Fatalf("got %q, %v", got, err)
	}
	if _, err := WithDatabase("host=127.0.0.1 dbname=test", "x"); err == nil || !strings.Contains(err.Error(), Env) {
		t.Fatalf("a key=value string: got %v", err)
	}
}

// TestCreateDatabase: the database exists, empty and writable, until drop,
// which leaves no trace of it on the server.
func TestCreateDatabase(t *testing.T) {
	base := Need(t)
	ctx := context.Background()
	dbURL, drop, err := CreateDatabase(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	var name string
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil || !strings.HasPrefix(name, "daodian_t_") {
		t.Fatalf("current_database() = %q, %v", name, err)
	}
	if _, err := conn.Exec(ctx, "CREATE TABLE t (x int)"); err != nil {
		t.Fatal(err)
	}
	// drop closes the sessions still open on the database.
	if err := drop(); err != nil {
		t.Fatal(err)
	}
	admin, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var n int
	if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d databases named %s after drop, %v", n, name, err)
	}
}

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daodian/daodian/internal/pgtest"
)

// testDBURL is the URL of the database created for this run ("" when the tests are
// skipped); testDBErr says why it could not be created.
var (
	testDBURL string
	testDBErr error
)

// testKeyFile is the secret key file of the run's stores, created by the first
// of them; each schema records the key's check of its own.
var testKeyFile string

// TestMain creates one fresh database for the run and drops it at the end, so that
// runs never share state. Inside it, every test store gets a schema of its own.
func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "daodian-pg-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	testKeyFile = filepath.Join(dir, "secret.key")
	base := os.Getenv(pgtest.Env)
	if base == "" {
		return m.Run()
	}
	dbURL, drop, err := pgtest.CreateDatabase(context.Background(), base)
	if err != nil {
		testDBErr = err
		return m.Run()
	}
	testDBURL = dbURL
	code := m.Run()
	if err := drop(); err != nil {
		fmt.Fprintf(os.Stderr, "postgres tests: %v\n", err)
	}
	return code
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// withParam returns raw with a query parameter set.
func withParam(raw, key, value string) string {
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	q := u.Query()
	q.Set(key, value)
	u.RawQuery = q.Encode()
	return u.String()
}

// needDB skips the test without a server and fails it if the run's database could
// not be made.
func needDB(tb testing.TB) {
	tb.Helper()
	pgtest.Need(tb)
	if testDBErr != nil {
		tb.Fatal(testDBErr)
	}
}

// adminPool is a pool on the run's database, outside any test schema, for test
// plumbing: creating schemas, terminating backends.
func adminPool(tb testing.TB) *pgxpool.Pool {
	tb.Helper()
	needDB(tb)
	p, err := pgxpool.New(context.Background(), testDBURL)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(p.Close)
	return p
}

// freshSchema creates an empty schema and returns a URL whose sessions use it.
func freshSchema(tb testing.TB) string {
	tb.Helper()
	admin := adminPool(tb)
	schema := "s_" + randomHex(6)
	if _, err := admin.Exec(context.Background(), "CREATE SCHEMA "+schema); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		// The store is closed by then (cleanups run last-registered first).
		_, _ = admin.Exec(context.Background(), "DROP SCHEMA "+schema+" CASCADE")
	})
	return withParam(testDBURL, "search_path", schema)
}

// openTest is Open with the run's key file, unless opts names another.
func openTest(ctx context.Context, url string, opts Options) (*Store, error) {
	if opts.SecretKeyFile == "" {
		opts.SecretKeyFile = testKeyFile
	}
	return Open(ctx, url, opts)
}

// newStore opens a store on a fresh schema.
func newStore(tb testing.TB, opts Options) *Store {
	tb.Helper()
	s, _ := newStoreURL(tb, opts)
	return s
}

// newStoreURL opens a store on a fresh schema and returns the schema's URL too, for
// opening more stores (processes) on it.
func newStoreURL(tb testing.TB, opts Options) (*Store, string) {
	tb.Helper()
	u := freshSchema(tb)
	s, err := openTest(context.Background(), u, opts)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s, u
}

// terminate ends the backend with the given pid and waits until it is gone, so
// that the next statement on its connection fails for certain.
func terminate(tb testing.TB, admin *pgxpool.Pool, pid uint32) {
	tb.Helper()
	ctx := context.Background()
	if _, err := admin.Exec(ctx, "SELECT pg_terminate_backend($1)", int32(pid)); err != nil {
		tb.Fatal(err)
	}
	for range 500 {
		var n int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", int32(pid)).Scan(&n); err != nil {
			tb.Fatal(err)
		}
		if n == 0 {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
	tb.Fatalf("backend %d still running", pid)
}

// migrateTo brings the schema of c to version n, as a daodian that knew only the
// first n migrations left it.
func migrateTo(tb testing.TB, c *pgx.Conn, n int) {
	tb.Helper()
	ctx := context.Background()
	if _, err := c.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		tb.Fatal(err)
	}
	for v, m := range migrations[:n] {
		if _, err := c.Exec(ctx, m); err != nil {
			tb.Fatal(err)
		}
		if _, err := c.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v+1); err != nil {
			tb.Fatal(err)
		}
	}
}

// connect opens a connection of the test's own to url, closed when the test
// ends.
func connect(tb testing.TB, url string) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close(ctx) })
	return conn
}

// genericPlan returns the plan PostgreSQL settles on for sql prepared on the
// schema at url, after ANALYZE, as EXPLAIN prints it for EXECUTE with args.
func genericPlan(t *testing.T, url, sql, args string) string {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	for _, q := range []string{`ANALYZE`, `SET plan_cache_mode = force_generic_plan`} {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Prepare(ctx, "planned", sql); err != nil {
		t.Fatal(err)
	}
	rows, err := conn.Query(ctx, `EXPLAIN (COSTS OFF) EXECUTE planned`+args)
	if err != nil {
		t.Fatal(err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return strings.Join(lines, "\n")
}

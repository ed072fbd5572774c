package postgres

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/internal/pgtest"
)

// haPair is a primary with a synchronous streaming standby, both of the test's own
// (the shared server of DAODIAN_TEST_POSTGRES is never reconfigured).
type haPair struct {
	primary, standby *pgtest.Cluster
	url              string // the daodian database on the primary
}

func newHAPair(t *testing.T) *haPair {
	t.Helper()
	primary := pgtest.NewCluster(t, "synchronous_standby_names=*")
	standby := primary.NewStandby(t)
	primary.Exec(t, "CREATE DATABASE daodian")
	return &haPair{primary: primary, standby: standby, url: primary.URL("daodian")}
}

// requireStandby makes the primary's commits wait for a standby named name ("" for
// none), and waits until new sessions see it. Setting "" releases the commits
// waiting at once; a standby that becomes synchronous releases them only when it
// next reports its position, which an idle one does every 10s.
func (p *haPair) requireStandby(t *testing.T, name string) {
	t.Helper()
	p.primary.Exec(t, "ALTER SYSTEM SET synchronous_standby_names = '"+name+"'", "SELECT pg_reload_conf()")
	for deadline := time.Now().Add(10 * time.Second); ; {
		var got string
		p.scan(t, "SHOW synchronous_standby_names", nil, &got)
		if got == name {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("synchronous_standby_names is %q 10s after the reload, want %q", got, name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// withoutStandby makes the primary's commits wait for a standby that is not
// connected until the (sub)test ends, when the connected standby is required again.
func (p *haPair) withoutStandby(t *testing.T) {
	t.Helper()
	p.requireStandby(t, "absent")
	t.Cleanup(func() { p.requireStandby(t, "*") })
}

// waitingCommit returns the pid of the one backend whose commit waits for the
// synchronous standby, waiting until there is one.
func (p *haPair) waitingCommit(t *testing.T) int32 {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; {
		var n int
		var pid *int32
		p.scan(t, "SELECT count(*), min(pid) FROM pg_stat_activity WHERE wait_event = 'SyncRep' AND datname = 'daodian'", nil, &n, &pid)
		if n == 1 {
			return *pid
		}
		if n > 1 || time.Now().After(deadline) {
			t.Fatalf("%d commits wait for the standby, want 1", n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stillWaiting reports whether the backend pid still waits for the standby.
func (p *haPair) stillWaiting(t *testing.T, pid int32) bool {
	t.Helper()
	var n int
	p.scan(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event = 'SyncRep'", []any{pid}, &n)
	return n == 1
}

// scan runs a one-row query on the primary in a session of its own, which sees
// the configuration as of its start.
func (p *haPair) scan(t *testing.T, sql string, args []any, dest ...any) {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, p.url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func (p *haPair) open(t *testing.T, opts Options) *Store {
	t.Helper()
	if opts.SecretKeyFile == "" {
		opts.SecretKeyFile = testKeyFile
	}
	s, err := Open(context.Background(), p.url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func merchantExists(t *testing.T, s *Store, id string) bool {
	t.Helper()
	ctx := context.Background()
	err := s.View(ctx, func(tx daodian.ReadTx) error { _, err := tx.Merchant(ctx, id); return err })
	if err != nil && !errors.Is(err, daodian.ErrNotFound) {
		t.Fatal(err)
	}
	return err == nil
}

// TestSynchronousReplication checks the store's commits against a synchronous
// standby (SPEC §5.3 "High availability"): a commit whose wait for the standby is
// cut short is never a success, the caller's context does not cut it short, its
// own bound does, and the store tells a standby from a primary and reports the
// replication settings.
func TestSynchronousReplication(t *testing.T) {
	p := newHAPair(t)
	ctx := context.Background()
	s := p.open(t, Options{CommitTimeout: 2 * time.Second})
	putMerchant := func(ctx context.Context, id string) func() error {
		return func() error {
			return s.Update(ctx, func(tx daodian.Tx) error {
				return tx.PutMerchant(ctx, &daodian.Merchant{ID: id, Name: id})
			})
		}
	}
	async := func(f func() error) <-chan error {
		done := make(chan error, 1)
		go func() { done <- f() }()
		return done
	}

	t.Run("a commit whose replication wait is cancelled is not a success", func(t *testing.T) {
		p.withoutStandby(t)
		done := async(putMerchant(ctx, "m-cancelled"))
		pid := p.waitingCommit(t)
		p.primary.Exec(t, "SELECT pg_cancel_backend("+itoa(pid)+")")
		err := <-done
		if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, errUnreplicated) {
			t.Fatalf("got %v, want a transient error: the commit might not be on the standby", err)
		}
		// What made the case: the server committed locally and said so.
		if !merchantExists(t, s, "m-cancelled") {
			t.Fatal("the cancelled wait left no local commit: the case was not provoked")
		}
	})

	t.Run("the caller's context does not cut a commit short", func(t *testing.T) {
		p.withoutStandby(t)
		cctx, cancel := context.WithCancel(ctx)
		done := async(putMerchant(cctx, "m-hangup"))
		pid := p.waitingCommit(t)
		cancel()
		time.Sleep(300 * time.Millisecond)
		if !p.stillWaiting(t, pid) {
			t.Fatal("the commit stopped waiting for the standby when the caller's context ended")
		}
		p.requireStandby(t, "") // releases the wait: the commit completes normally
		if err := <-done; err != nil {
			t.Fatalf("got %v, want success: the commit completed", err)
		}
		if !merchantExists(t, s, "m-hangup") {
			t.Fatal("the commit answered success is not there")
		}
	})

	t.Run("a commit waits at most CommitTimeout, then its outcome is unknown", func(t *testing.T) {
		p.withoutStandby(t)
		// The caller's deadline is far; the commit's own bound (2s) ends it.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		err := putMerchant(cctx, "m-bounded")()
		took := time.Since(start)
		if !errors.Is(err, daodian.ErrTransient) || !strings.Contains(err.Error(), "outcome unknown") {
			t.Fatalf("got %v, want a transient error of unknown outcome", err)
		}
		if took < 2*time.Second || took > 10*time.Second {
			t.Fatalf("the commit took %v, want about its bound of 2s", took)
		}
		// Whether the server went on to commit locally is unknown to the
		// caller (pgx sends a cancel request as it closes the connection): it
		// was not answered success, and the next subtest shows that a retry
		// cannot answer success from it while the standby is missing.
	})

	t.Run("a reversal whose replication wait is cancelled answers SYSTEM_ERROR until the standby has it", func(t *testing.T) {
		l := daodian.NewLedger(s, daodian.Config{})
		if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "s1"}); err != nil {
			t.Fatal(err)
		}
		app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos", MerchantID: "m1"})
		if err != nil {
			t.Fatal(err)
		}
		o, err := l.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Quantity: 1})
		if err != nil {
			t.Fatal(err)
		}
		tk := o.Tickets[0]
		used, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: tk.Code, ShopID: "s1", RequestID: "u1"})
		if err != nil {
			t.Fatal(err)
		}
		req := daodian.ReverseRequest{RequestID: "r1", TicketID: tk.ID, TransID: used.TransID}

		p.withoutStandby(t)
		done := make(chan daodian.ReverseResult, 1)
		go func() {
			res, err := l.Reverse(ctx, app, req)
			if err != nil {
				t.Error(err)
			}
			done <- res
		}()
		p.primary.Exec(t, "SELECT pg_cancel_backend("+itoa(p.waitingCommit(t))+")")
		if res := <-done; res != daodian.SystemError() {
			t.Fatalf("reversal whose replication wait was cancelled: %+v, want SYSTEM_ERROR retry=true", res)
		}
		// The record is committed on the primary only. A retry finds it, but
		// its own commit waits for the standby, which is still missing: it may
		// not answer success either.
		if res, err := l.Reverse(ctx, app, req); err != nil || res != daodian.SystemError() {
			t.Fatalf("retry while the standby is missing: %+v, %v; want SYSTEM_ERROR retry=true", res, err)
		}
		p.requireStandby(t, "")
		if res, err := l.Reverse(ctx, app, req); err != nil || !res.Success {
			t.Fatalf("retry once the standby is back: %+v, %v; want success", res, err)
		}
	})

	t.Run("Ping fails on a standby", func(t *testing.T) {
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("primary: %v", err)
		}
		// The schema is on the standby too, so only Ping can tell: a pool that
		// reached the standby (a URL listing it without
		// target_session_attrs=read-write) must not count as ready.
		pool, err := pgxpool.New(ctx, p.standby.URL("daodian"))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		onStandby := &Store{pool: pool, opts: Options{}.withDefaults()}
		err = onStandby.Ping(ctx)
		if !errors.Is(err, daodian.ErrTransient) || !strings.Contains(err.Error(), "standby") {
			t.Fatalf("standby: got %v, want a transient error naming the standby", err)
		}
	})

	t.Run("no webhook lease on a standby", func(t *testing.T) {
		if l, err := s.WebhookLeases(ctx); err != nil {
			t.Fatalf("primary: %v", err)
		} else if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		// A standby grants advisory locks but does not replicate them: a
		// lease there would not exclude the same lease on the primary.
		pool, err := pgxpool.New(ctx, p.standby.URL("daodian"))
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		onStandby := &Store{pool: pool, opts: Options{}.withDefaults()}
		l, err := onStandby.WebhookLeases(ctx)
		if err == nil {
			_ = l.Close()
		}
		if !errors.Is(err, daodian.ErrTransient) || !strings.Contains(err.Error(), "standby") {
			t.Fatalf("standby: got %v, want a transient error naming the standby", err)
		}
	})

	t.Run("Replication reports the settings", func(t *testing.T) {
		r, err := s.Replication(ctx)
		if err != nil || !r.Synchronous() || r.SynchronousStandbyNames != "*" || r.SynchronousCommit != "on" {
			t.Fatalf("got %+v (synchronous %v), %v; want on and '*'", r, r.Synchronous(), err)
		}
		p.requireStandby(t, "")
		defer p.requireStandby(t, "*")
		if r, err := s.Replication(ctx); err != nil || r.Synchronous() {
			t.Fatalf("got %+v, %v; want not synchronous", r, err)
		}
	})
}

func itoa(n int32) string { return strconv.Itoa(int(n)) }

// connectCounter is a tracer that counts the store's attempts to open a
// connection.
type connectCounter struct{ n atomic.Int32 }

func (c *connectCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	return ctx
}
func (c *connectCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *connectCounter) TraceConnectStart(ctx context.Context, _ pgx.TraceConnectStartData) context.Context {
	c.n.Add(1)
	return ctx
}
func (c *connectCounter) TraceConnectEnd(context.Context, pgx.TraceConnectEndData) {}

// TestUnreachableAnsweredAtOnce: with no server to connect to (the primary
// down, no standby promoted yet), an Update, a Decide and a View each fail as
// transient after one attempt to connect, not after the store's retries,
// without repeating the password of the database's URL in the error: an
// outage is ridden out by the caller's retry under the same request id, and
// retrying inside the store only held the request (six attempts took 3.5 s on
// a loaded 2-core machine, longer than TestFailover's outage). A connection lost
// inside a transaction is still retried (TestTransientFailures).
func TestUnreachableAnsweredAtOnce(t *testing.T) {
	pgtest.NeedClusters(t)
	c := pgtest.NewCluster(t)
	c.Exec(t, "CREATE DATABASE daodian")
	ctx := context.Background()
	counter := &connectCounter{}
	// A password in the URL (trust authentication ignores it) that the
	// failures, which the gateway logs, must not repeat.
	const password = "pw-never-in-an-error"
	url := strings.Replace(c.URL("daodian"), "postgres://postgres@", "postgres://postgres:"+password+"@", 1)
	s, err := Open(ctx, url, Options{SecretKeyFile: testKeyFile, tracer: counter})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	if err := s.Update(ctx, func(tx daodian.Tx) error {
		return tx.PutMerchant(ctx, &daodian.Merchant{ID: "m1", Name: "m1"})
	}); err != nil {
		t.Fatal(err)
	}

	c.StopImmediately(t)
	// The pooled sessions died with the server; drop them, so that each call
	// below starts by connecting.
	s.pool.Reset()

	calls := []struct {
		name string
		call func() error
	}{
		{"Update", func() error {
			return s.Update(ctx, func(tx daodian.Tx) error {
				t.Error("Update ran its function without a connection")
				return nil
			})
		}},
		{"Decide", func() error {
			_, err := s.Decide(ctx, &daodian.Decision{
				Key:          daodian.IdemKey{AppKey: "a", Op: daodian.OpReverse, RequestID: "r1"},
				Fingerprint:  "f",
				Now:          time.Now(),
				AppMerchants: []string{"m1"},
				Reverse:      &daodian.ReverseRequest{RequestID: "r1", TicketID: "t1"},
			})
			return err
		}},
		{"View", func() error {
			return s.View(ctx, func(tx daodian.ReadTx) error { _, err := tx.Merchant(ctx, "m1"); return err })
		}},
	}
	for _, tc := range calls {
		before := counter.n.Load()
		err := tc.call()
		if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, errUnreachable) {
			t.Errorf("%s with the server down: %v, want a transient error saying no server could be reached", tc.name, err)
		}
		if err != nil && strings.Contains(err.Error(), password) {
			t.Errorf("%s's error repeats the URL's password: %v", tc.name, err)
		}
		if n := counter.n.Load() - before; n != 1 {
			t.Errorf("%s with the server down tried to connect %d times, want once", tc.name, n)
		}
	}
}

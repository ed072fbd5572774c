package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestDecideDifferential holds the server-side functions to the Go rules: one
// long randomized sequence of operations through both, on two fresh
// databases, every answer and the resulting rows, recorded answers (byte for
// byte) and records equal.
func TestDecideDifferential(t *testing.T) {
	needDB(t)
	for _, seed := range []uint64{1, 2, 3} {
		goRules := newStore(t, Options{RulesInGo: true})
		functions := newStore(t, Options{})
		storetest.Differential(t, goRules, functions, seed, 1500)
	}
}

// statementCounter is a pgx tracer that counts what a store sends: statements
// sent on their own, pipelines (batches) and the statements in them, and
// preparations.
type statementCounter struct {
	queries, batches, batched, prepares atomic.Int64
}

func (c *statementCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryStartData) context.Context {
	c.queries.Add(1)
	return ctx
}
func (c *statementCounter) TraceQueryEnd(context.Context, *pgx.Conn, pgx.TraceQueryEndData) {}
func (c *statementCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	c.batches.Add(1)
	return ctx
}
func (c *statementCounter) TraceBatchQuery(context.Context, *pgx.Conn, pgx.TraceBatchQueryData) {
	c.batched.Add(1)
}
func (c *statementCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (c *statementCounter) TracePrepareStart(ctx context.Context, _ *pgx.Conn, _ pgx.TracePrepareStartData) context.Context {
	c.prepares.Add(1)
	return ctx
}
func (c *statementCounter) TracePrepareEnd(context.Context, *pgx.Conn, pgx.TracePrepareEndData) {}

// counts returns the counts and resets them.
func (c *statementCounter) take() [4]int64 {
	return [4]int64{c.queries.Swap(0), c.batches.Swap(0), c.batched.Swap(0), c.prepares.Swap(0)}
}

// TestDecideOneRoundTrip: once a connection has prepared the functions' calls,
// every use, reversal and refund — decided, refused, replayed from the store
// or a conflict — is one statement sent on its own: no pipeline, no
// preparation, no BEGIN or COMMIT. The Go path's counts are logged beside.
func TestDecideOneRoundTrip(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	for _, goRules := range []bool{false, true} {
		c := &statementCounter{}
		s := newStore(t, Options{MaxConns: 1, RulesInGo: goRules, tracer: c})
		w := storetest.NewWorld(t, s)
		tks := w.Issue(2, 20).Tickets
		group := w.Issue(3, 1).Tickets
		// A fresh ledger per call: its answer cache is empty, so replays reach
		// the store.
		fresh := func() *daodian.Ledger { return daodian.NewLedger(s, daodian.Config{Clock: w.Clock.Now}) }
		// Uses to refund, by another app than the reversals below.
		var refundable []string
		for i := range 6 {
			u, err := fresh().Use(ctx, w.A2, daodian.UseRequest{TicketCode: tks[1].Code, ShopID: storetest.S1, RequestID: fmt.Sprint("v", i)})
			if err != nil {
				t.Fatal(err)
			}
			refundable = append(refundable, u.TransID)
		}
		ops := []struct {
			name string
			fn   func(i int) error
		}{
			{"use", func(i int) error {
				_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[0].Code, ShopID: storetest.S1, RequestID: fmt.Sprint("u", i)})
				return err
			}},
			{"use replayed", func(i int) error {
				_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[0].Code, ShopID: storetest.S1, RequestID: fmt.Sprint("u", i)})
				return err
			}},
			{"use conflict", func(i int) error {
				_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[1].Code, ShopID: storetest.S1, RequestID: fmt.Sprint("u", i)})
				return ignoreRefusal(err)
			}},
			{"use refused", func(i int) error {
				_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[1].Code, ShopID: "no-such-shop", RequestID: fmt.Sprint("x", i)})
				return ignoreRefusal(err)
			}},
			{"group-buy use", func(i int) error {
				if i > 0 {
					return nil // one group of three units
				}
				_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: group[0].Code, ShopID: storetest.S1, Quantity: 3, RequestID: "g"})
				return err
			}},
			{"reversal of the latest use", func(i int) error {
				r, err := fresh().Reverse(ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprint("r", i), TicketID: tks[0].ID})
				return reverseErr(r, err)
			}},
			{"empty reversal", func(i int) error {
				r, err := fresh().Reverse(ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprint("e", i), TicketID: tks[1].ID})
				return reverseErr(r, err)
			}},
			{"refund", func(i int) error {
				_, err := fresh().Refund(ctx, w.A2, daodian.RefundRequest{TicketCode: tks[1].Code, TransID: refundable[i], RequestID: fmt.Sprint("f", i)})
				return err
			}},
		}
		for _, op := range ops {
			// The first call prepares the statement on the connection.
			if err := op.fn(0); err != nil {
				t.Fatalf("%s: %v", op.name, err)
			}
			c.take()
			const n = 5
			for i := 1; i <= n; i++ {
				if err := op.fn(i); err != nil {
					t.Fatalf("%s: %v", op.name, err)
				}
			}
			got := c.take()
			if op.name == "group-buy use" {
				continue
			}
			if goRules {
				t.Logf("Go rules, %s: per operation %.1f round trips (%.1f statements on their own, %.1f pipelines of %.1f statements)",
					op.name, float64(got[0]+got[1])/n, float64(got[0])/n, float64(got[1])/n, float64(got[2])/n)
				continue
			}
			if want := [4]int64{n, 0, 0, 0}; got != want {
				t.Errorf("functions, %s: %d operations sent %d statements, %d pipelines (%d statements), %d preparations; want one statement each",
					op.name, n, got[0], got[1], got[2], got[3])
			}
		}
	}
}

func ignoreRefusal(err error) error {
	var r *daodian.Refusal
	if errors.As(err, &r) {
		return nil
	}
	return err
}

func reverseErr(r daodian.ReverseResult, err error) error {
	if err == nil && r.ErrorCode == daodian.CodeSystemError {
		return errors.New("SYSTEM_ERROR")
	}
	return err
}

// TestGroupBuyUsesNoDeadlock: 32 concurrent group-buy uses of one sub-order,
// each queried by a different ticket and taking units of others, on both
// paths, in rounds: none fails (retries are off, so a deadlock would be an
// error), and PostgreSQL reports no deadlock in the test database. The
// latencies of the rounds after the first (which opens the connections) are
// logged, not asserted.
func TestGroupBuyUsesNoDeadlock(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	admin := adminPool(t)
	for _, goRules := range []bool{false, true} {
		name := map[bool]string{false: "functions", true: "go"}[goRules]
		t.Run(name, func(t *testing.T) {
			deadlocks := func() int64 {
				var n int64
				// Stats reach the view when a backend flushes them; the store's
				// backends have exited (Close) when this runs after the uses.
				if _, err := admin.Exec(ctx, "SELECT pg_stat_clear_snapshot()"); err != nil {
					t.Fatal(err)
				}
				if err := admin.QueryRow(ctx, "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()").Scan(&n); err != nil {
					t.Fatal(err)
				}
				return n
			}
			s := newStore(t, Options{RulesInGo: goRules, Retries: -1, MaxConns: 40})
			w := storetest.NewWorld(t, s)
			before := deadlocks()
			const n, rounds = 32, 11
			var lat []time.Duration
			var mu sync.Mutex
			for round := range rounds {
				if round == 1 {
					// The first round opened the connections and prepared
					// the statements (and compiled the functions) on each:
					// checked, not timed.
					lat = lat[:0]
				}
				// 2n tickets of one unit; each use asks for two units by its own
				// ticket (from the highest id down), which leaves it short: it
				// takes the others from siblings, every use from the lowest ids.
				tks := w.Issue(2*n, 1).Tickets
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := range n {
					wg.Go(func() {
						start := time.Now()
						res, err := w.Ledger.Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[2*(n-1-i)+1].Code, ShopID: storetest.S1, Quantity: 2, RequestID: fmt.Sprint("g", round, "-", i)})
						d := time.Since(start)
						mu.Lock()
						lat = append(lat, d)
						mu.Unlock()
						units := 0
						for _, d := range res.Details {
							units += d.Units
						}
						if err == nil && units != 2 {
							err = fmt.Errorf("use %d: %d units", i, units)
						}
						errs <- err
					})
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatalf("round %d: %v", round, err)
					}
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if after := deadlocks(); after != before {
				t.Errorf("PostgreSQL reported %d deadlocks", after-before)
			}
			slices.Sort(lat)
			q := func(p float64) time.Duration { return lat[min(len(lat)-1, int(p*float64(len(lat))))] }
			t.Logf("%s: %d uses, latency p50 %v p99 %v p999 %v max %v", name, len(lat), q(0.5), q(0.99), q(0.999), lat[len(lat)-1])
		})
	}
}

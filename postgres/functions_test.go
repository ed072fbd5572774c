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
	"github.com/jackc/pgx/v5/pgxpool"

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
// error), and PostgreSQL reports no deadlock in the test database. On 40
// connections all 32 run in the database at once (the stress); on the default
// pool, as serve runs them. The latencies of the rounds after the first (which
// opens the connections) are logged, not asserted (BENCHMARKS.md).
func TestGroupBuyUsesNoDeadlock(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	admin := adminPool(t)
	for _, c := range []struct {
		name    string
		goRules bool
		conns   int
	}{{"functions", false, 40}, {"go", true, 40}, {"functions-default-pool", false, 0}, {"go-default-pool", true, 0}} {
		name, goRules := c.name, c.goRules
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
			s := newStore(t, Options{RulesInGo: goRules, Retries: -1, MaxConns: c.conns})
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

// TestUseSkipsHeldTickets: a group-buy use takes units from the tickets of its
// sub-order that no other transaction holds, without waiting; one that finds
// too few units among them while others are held is called again locking the
// whole sub-order, waits for the holder, and answers on what the holder left.
// Both paths: the function, and the Go rules through Update.
func TestUseSkipsHeldTickets(t *testing.T) {
	for _, goRules := range []bool{false, true} {
		t.Run(map[bool]string{false: "functions", true: "go"}[goRules], func(t *testing.T) {
			testUseSkipsHeldTickets(t, goRules)
		})
	}
}

func testUseSkipsHeldTickets(t *testing.T, goRules bool) {
	needDB(t)
	ctx := context.Background()
	s, u := newStoreURL(t, Options{RulesInGo: goRules})
	w := storetest.NewWorld(t, s)
	holder := connect(t, u)
	admin := adminPool(t)
	// hold locks ticket id in a transaction of its own, as a concurrent use of
	// it would.
	hold := func(id string) pgx.Tx {
		tx, err := holder.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", esc(id)); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	type outcome struct {
		res daodian.UseResult
		err error
	}
	use := func(code string, quantity int, rid string) <-chan outcome {
		done := make(chan outcome, 1)
		go func() {
			res, err := w.Ledger.Use(ctx, w.A, daodian.UseRequest{TicketCode: code, ShopID: storetest.S1, Quantity: quantity, RequestID: rid})
			done <- outcome{res, err}
		}()
		return done
	}
	// waitsForLock returns once a session waits for the holder's lock.
	waitsForLock := func(done <-chan outcome) {
		t.Helper()
		for range 500 {
			select {
			case o := <-done:
				t.Fatalf("the use did not wait for the held ticket: %+v %v", o.res, o.err)
			default:
			}
			var n int
			if err := admin.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
				WHERE $1 = ANY (pg_blocking_pids(pid))`, int32(holder.PgConn().PID())).Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n > 0 {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Fatal("the use never waited for the held ticket")
	}
	details := func(r daodian.UseResult) []string {
		var ids []string
		for _, d := range r.Details {
			ids = append(ids, d.TicketID)
		}
		return ids
	}

	// Enough units without the held ticket: taken at once, around it.
	o := w.Issue(3, 1).Tickets
	tx := hold(o[1].ID)
	select {
	case got := <-use(o[0].Code, 2, "around"):
		if got.err != nil || !slices.Equal(details(got.res), []string{o[0].ID, o[2].ID}) {
			t.Fatalf("use around a held ticket: %v %v, want %s and %s", details(got.res), got.err, o[0].ID, o[2].ID)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a use with enough free units waited for a held ticket")
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}

	// Too few without it: the use waits for it, then takes it.
	o = w.Issue(3, 1).Tickets
	tx = hold(o[1].ID)
	done := use(o[0].Code, 3, "wait")
	waitsForLock(done)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := <-done; got.err != nil || !slices.Equal(details(got.res), []string{o[0].ID, o[1].ID, o[2].ID}) {
		t.Fatalf("use after the holder let go: %v %v", details(got.res), got.err)
	}

	// The holder's change decides: the ticket it refunded meanwhile is not
	// usable, so the use is refused whole once it has waited.
	o = w.Issue(3, 1).Tickets
	tx = hold(o[1].ID)
	done = use(o[0].Code, 3, "refused")
	waitsForLock(done)
	if _, err := tx.Exec(ctx, "UPDATE tickets SET status = 'REFUNDED' WHERE id = $1", esc(o[1].ID)); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	var r *daodian.Refusal
	if !errors.As(got.err, &r) || r.SubCode != daodian.SubNotEnoughQuantity {
		t.Fatalf("use after the holder refunded a ticket: %v %v, want %s", details(got.res), got.err, daodian.SubNotEnoughQuantity)
	}
	for _, tk := range o {
		if w.Available(tk.ID) != 1 {
			t.Fatalf("a refused use consumed units of %s", tk.ID)
		}
	}
}

// TestDecideSameKeyTwoTickets: one request id sent at once for two tickets
// (a client bug, or two clients sharing ids). Each call locks its own ticket,
// finds no record and decides; the second insert of the key waits for the
// first and fails with a unique violation, and Decide's next call finds the
// winner's record: one use, and a conflict for the other, never an error.
func TestDecideSameKeyTwoTickets(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	s := newStore(t, Options{})
	w := storetest.NewWorld(t, s)
	tks := w.Issue(2, 50).Tickets
	for round := range 20 {
		var wg sync.WaitGroup
		var used, conflicts atomic.Int32
		errs := make(chan error, 2)
		for i := range 2 {
			wg.Go(func() {
				_, err := w.Ledger.Use(ctx, w.A, daodian.UseRequest{TicketCode: tks[i].Code, ShopID: storetest.S1, RequestID: fmt.Sprint("same-", round)})
				var r *daodian.Refusal
				switch {
				case err == nil:
					used.Add(1)
				case errors.As(err, &r) && r.SubCode == daodian.SubRequestIDConflict:
					conflicts.Add(1)
				default:
					errs <- err
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("round %d: %v", round, err)
		}
		if used.Load() != 1 || conflicts.Load() != 1 {
			t.Fatalf("round %d: %d uses and %d conflicts, want one of each", round, used.Load(), conflicts.Load())
		}
	}
	if got := w.Available(tks[0].ID) + w.Available(tks[1].ID); got != 100-20 {
		t.Fatalf("%d units left, want %d", got, 100-20)
	}
	w.Audit()
}

// TestDecideConnectionLost: a call whose backend is terminated while it waits
// for the ticket's lock has an unknown outcome: the ledger answers it as a
// transient failure (SYSTEM_ERROR for a reversal), and nothing of it was
// committed; the retry under the same request id decides.
func TestDecideConnectionLost(t *testing.T) {
	needDB(t)
	ctx := context.Background()
	s, url := newStoreURL(t, Options{})
	admin := adminPool(t)
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 2).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	// Hold the ticket's lock in a transaction of the test's own.
	other, err := pgxpool.New(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	hold, err := other.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = hold.Rollback(ctx) }()
	if _, err := hold.Exec(ctx, "SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE", tk.ID); err != nil {
		t.Fatal(err)
	}
	done := make(chan daodian.ReverseResult, 1)
	go func() {
		r, err := w.Ledger.Reverse(ctx, w.A, daodian.ReverseRequest{RequestID: "r1", TicketID: tk.ID, TransID: u.TransID})
		if err != nil {
			r = daodian.ReverseResult{ErrorCode: err.Error()}
		}
		done <- r
	}()
	// Wait for the call to block on the lock, then end its backend.
	var pid int32
	for range 500 {
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%daodian_reverse%'`).Scan(&pid)
		if err == nil {
			break
		}
		time.Sleep(2 * time.Millisecond)
	}
	if pid == 0 {
		t.Fatal("the call never waited for the lock")
	}
	terminate(t, admin, uint32(pid))
	if r := <-done; r.ErrorCode != daodian.CodeSystemError || !r.Retry {
		t.Fatalf("got %+v, want SYSTEM_ERROR with retry", r)
	}
	if err := hold.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if n := w.Snap().Counts.Idem; n != 1 {
		t.Fatalf("%d idempotency records, want 1 (the use's): the lost call recorded its answer", n)
	}
	// The retry decides.
	if r := w.Reverse(w.A, "r1", tk.ID, u.TransID); !r.Success {
		t.Fatalf("retry: %+v", r)
	}
	if got := w.Available(tk.ID); got != 2 {
		t.Fatalf("available %d, want 2", got)
	}
}

// TestDecideLeavesUnknownOperations: an operation without a function of its
// own is left to the Go rules (ErrUndecided), having touched nothing, so that
// a new idempotent method works on PostgreSQL before it has one.
func TestDecideLeavesUnknownOperations(t *testing.T) {
	needDB(t)
	s := newStore(t, Options{})
	w := storetest.NewWorld(t, s)
	before := w.Snap()
	_, err := s.Decide(context.Background(), &daodian.Decision{
		Key: daodian.IdemKey{AppKey: w.A.Key, Op: "a-new-operation", RequestID: "n1"}, Now: time.Now()})
	if !errors.Is(err, daodian.ErrUndecided) {
		t.Fatalf("Decide of an operation without a function: %v, want ErrUndecided", err)
	}
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("Decide changed the ledger:\n%s", d)
	}
}

// v7Store makes its uses through version 7's call of daodian_use, as a
// gateway started before migration 8 does.
type v7Store struct {
	*Store
	v7 bool
}

func (v *v7Store) Decide(ctx context.Context, d *daodian.Decision) (daodian.Decided, error) {
	if !v.v7 || d.Use == nil {
		return v.Store.Decide(ctx, d)
	}
	st, err := decideCall(d)
	if err != nil {
		return daodian.Decided{}, err
	}
	st.sql = `SELECT o_answer, o_replayed, o_conflict FROM daodian_use($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
	$11, $12, $13)`
	st.args = st.args[:useLockAll]
	out, _, err := v.decideOnce(ctx, st)
	return out, err
}

// TestUseVersion7Signature: a gateway started before migration 8 calls
// daodian_use with version 7's arguments; the call still decides, locking the
// whole sub-order as it did, and what it records is what the current call
// replays.
func TestUseVersion7Signature(t *testing.T) {
	needDB(t)
	v := &v7Store{Store: newStore(t, Options{})}
	w := storetest.NewWorld(t, v)
	tks := w.Issue(3, 1).Tickets
	v.v7 = true
	old := w.MustUse(w.A, tks[0].Code, 2, "v7")
	if len(old.Details) != 2 || old.Details[0].TicketID != tks[0].ID || old.Details[1].TicketID != tks[1].ID {
		t.Fatalf("version 7 call took %+v", old.Details)
	}
	// A ledger of its own, whose answer cache is empty: the replay comes
	// from the store, through the current call.
	v.v7 = false
	fresh := daodian.NewLedger(v, daodian.Config{Clock: w.Clock.Now})
	r, err := fresh.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: tks[0].Code, ShopID: storetest.S1, Quantity: 2, RequestID: "v7"})
	if err != nil {
		t.Fatal(err)
	}
	if r.BizCode != daodian.BizTicketAlreadyUsed || r.TransID != old.TransID {
		t.Fatalf("replay of the version 7 call: %+v, want %s replayed", r, old.TransID)
	}
	if w.Available(tks[2].ID) != 1 {
		t.Fatal("the replay consumed units")
	}
	w.Audit()
}

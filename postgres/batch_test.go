package postgres

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// holdLanes takes every lane of s's batcher, so that decisions queue up until
// the returned function lets them go: they then run as one batch.
func holdLanes(s *Store) (release func()) {
	for range cap(s.batch.lanes) {
		s.batch.lanes <- struct{}{}
	}
	return func() {
		for range cap(s.batch.lanes) {
			<-s.batch.lanes
		}
	}
}

// waitQueued waits until n calls wait in s's batcher.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(time.Millisecond) {
		s.batch.mu.Lock()
		got := len(s.batch.waiting)
		s.batch.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued, want %d", got, n)
		}
	}
}

// queue starts fn in a goroutine once the calls before it are queued, so that
// the batch holds the calls in the order they were started.
type queue struct {
	t    *testing.T
	s    *Store
	n    int
	wg   sync.WaitGroup
	errs []error
}

func (q *queue) add(fn func() error) {
	q.t.Helper()
	i := len(q.errs)
	q.errs = append(q.errs, nil)
	q.wg.Add(1)
	go func() {
		defer q.wg.Done()
		q.errs[i] = fn()
	}()
	q.n++
	waitQueued(q.t, q.s, q.n)
}

// batchWorld is a store whose statements are counted, with count tickets of
// quantity each issued.
type batchWorld struct {
	s   *Store
	url string
	c   *statementCounter
	w   *storetest.World
	tks []daodian.Ticket
}

func newBatchWorld(t *testing.T, count, quantity int) *batchWorld {
	t.Helper()
	needDB(t)
	b := &batchWorld{c: &statementCounter{}}
	b.s, b.url = newStoreURL(t, Options{tracer: b.c})
	b.w = storetest.NewWorld(t, b.s)
	b.tks = b.w.Issue(count, quantity).Tickets
	return b
}

// fresh is a ledger whose answer cache is empty, so that replays reach the
// store.
func (b *batchWorld) fresh() *daodian.Ledger {
	return daodian.NewLedger(b.s, daodian.Config{Clock: b.w.Clock.Now})
}

// holdTicket locks ticket id in a transaction of a session of its own (not
// one of the store's), rolled back at the test's end unless committed before.
func (b *batchWorld) holdTicket(t *testing.T, id string) (*pgx.Conn, pgx.Tx) {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, b.url)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(ctx) }) // after Commit, a no-op
	if _, err := tx.Exec(ctx, `SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE`, id); err != nil {
		t.Fatal(err)
	}
	return conn, tx
}

// TestDecideBatch: concurrent uses and reversals on several tickets, queued
// together, are one pipeline — the lock of their tickets, then one call each
// — and each gets the answer it would have got alone.
func TestDecideBatch(t *testing.T) {
	ctx := context.Background()
	b := newBatchWorld(t, 6, 3)
	s, c, w, tks, fresh := b.s, b.c, b.w, b.tks, b.fresh
	// A use of each of the last two tickets, to reverse in the batch.
	for _, tk := range tks[4:] {
		if _, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "before-" + tk.ID}); err != nil {
			t.Fatal(err)
		}
	}
	c.take()

	release := holdLanes(s)
	q := &queue{t: t, s: s}
	uses := make([]daodian.UseResult, 4)
	for i, tk := range tks[:4] {
		q.add(func() error {
			var err error
			uses[i], err = fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, Quantity: 2, RequestID: "use-" + tk.ID})
			return err
		})
	}
	revs := make([]daodian.ReverseResult, 2)
	for i, tk := range tks[4:] {
		q.add(func() error {
			var err error
			revs[i], err = fresh().Reverse(ctx, w.A, daodian.ReverseRequest{TicketID: tk.ID, RequestID: "rev-" + tk.ID})
			return err
		})
	}
	release()
	q.wg.Wait()
	for i, err := range q.errs {
		if err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	got := c.take()
	if got[0] != 0 || got[1] != 1 || got[2] != 7 {
		t.Errorf("6 queued calls sent %d statements on their own and %d pipelines of %d statements in all; want one pipeline of 7 (the lock, then the calls)",
			got[0], got[1], got[2])
	}
	for i, u := range uses {
		if u.TicketID != tks[i].ID || u.TransID == "" {
			t.Errorf("use of %s answered %+v", tks[i].ID, u)
		}
	}
	for i, r := range revs {
		if !r.Success {
			t.Errorf("reversal on %s answered %+v", tks[i+4].ID, r)
		}
	}
	for i, tk := range tks {
		want := 1 // 3 - 2 used
		if i >= 4 {
			want = 3 // used once, reversed
		}
		if got := w.Ticket(tk.ID).Available; got != want {
			t.Errorf("ticket %d: available %d, want %d", i, got, want)
		}
	}
	// Replays from the store (a fresh ledger's cache is empty) answer the same.
	for i, tk := range tks[:4] {
		u, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, Quantity: 2, RequestID: "use-" + tk.ID})
		if err != nil || u.TransID != uses[i].TransID {
			t.Errorf("replay of the use of %s: %+v, %v; want trans %s", tk.ID, u, err, uses[i].TransID)
		}
	}
	w.Audit()
}

// TestDecideBatchFallback: a call that fails on the server rolls its whole
// batch back; every call of it is then made again on its own, so the others
// are answered as if alone and the failing one fails as it would alone.
func TestDecideBatchFallback(t *testing.T) {
	ctx := context.Background()
	b := newBatchWorld(t, 3, 2)
	s, c, w, tks, fresh := b.s, b.c, b.w, b.tks, b.fresh
	bad := tks[1]
	// The file disagrees with itself: the invariant check of a use of this
	// ticket raises (DD001).
	if _, err := s.pool.Exec(ctx, `UPDATE tickets SET available = available - 1 WHERE id = $1`, bad.ID); err != nil {
		t.Fatal(err)
	}
	c.take()

	release := holdLanes(s)
	q := &queue{t: t, s: s}
	for _, tk := range tks {
		q.add(func() error {
			_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "use-" + tk.ID})
			return err
		})
	}
	release()
	q.wg.Wait()
	got := c.take()
	if got[1] != 1 || got[0] != 3 {
		t.Errorf("sent %d pipelines and %d statements on their own; want the batch, then each of its 3 calls alone", got[1], got[0])
	}
	var inv *daodian.InvariantError
	if err := q.errs[1]; !errors.As(err, &inv) || inv.TicketID != bad.ID {
		t.Errorf("use of the broken ticket: %v; want its invariant error", err)
	}
	for _, i := range []int{0, 2} {
		if err := q.errs[i]; err != nil {
			t.Errorf("use of ticket %d: %v", i, err)
		}
		if got := w.Ticket(tks[i].ID).Available; got != 1 {
			t.Errorf("ticket %d: available %d after its use, want 1", i, got)
		}
	}
}

// TestDecideBatchLockOrder: a batch locks its tickets in id order before any of
// its calls runs, whatever the order of the calls. Here another transaction
// holds the lower ticket and then takes the higher one, in id order as every
// transaction of the store does; a batch whose first call is on the higher
// ticket must not have taken it while it waits for the lower: that would be a
// deadlock, which PostgreSQL breaks after deadlock_timeout by failing one side.
func TestDecideBatchLockOrder(t *testing.T) {
	ctx := context.Background()
	b := newBatchWorld(t, 2, 2)
	s, c, w, fresh := b.s, b.c, b.w, b.fresh
	lo, hi := b.tks[0], b.tks[1]
	if lo.ID > hi.ID {
		lo, hi = hi, lo
	}
	c.take()

	// The other transaction's connection is not the store's, so the counter
	// sees only the batch.
	_, other := b.holdTicket(t, lo.ID)

	release := holdLanes(s)
	q := &queue{t: t, s: s}
	for _, tk := range []daodian.Ticket{hi, lo} {
		q.add(func() error {
			_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "use-" + tk.ID})
			return err
		})
	}
	release()
	// Let the batch reach its wait for the lower ticket.
	time.Sleep(300 * time.Millisecond)
	if _, err := other.Exec(ctx, `SELECT 1 FROM tickets WHERE id = $1 FOR UPDATE`, hi.ID); err != nil {
		t.Fatalf("the other transaction, taking the higher ticket after the lower: %v", err)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	q.wg.Wait()
	for i, err := range q.errs {
		if err != nil {
			t.Errorf("use %d: %v", i, err)
		}
	}
	if got := c.take(); got[0] != 0 || got[1] != 1 {
		t.Errorf("sent %d statements on their own and %d pipelines; want the one batch, undisturbed", got[0], got[1])
	}
}

// TestLockTicketsPlan: the batch's lock statement finds its tickets through
// the indexes in the generic plan that a prepared statement settles on, never
// by scanning the ledger's tickets (which it did, joined by hash, when its
// sub-orders were an IN (subquery)).
func TestLockTicketsPlan(t *testing.T) {
	b := newBatchWorld(t, 100, 1)
	for range 29 {
		b.w.Issue(100, 1) // 3 000 tickets in all
	}
	plan := genericPlan(t, b.url, sqlLockTickets, `('{a,b}', '{c,d}')`)
	if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "Hash Join") {
		t.Errorf("the lock statement's generic plan scans the tickets:\n%s", plan)
	}
	if !strings.Contains(plan, "tickets_sub_order_no") {
		t.Errorf("the lock statement's generic plan does not use the sub-order index:\n%s", plan)
	}
}

// TestDecideBatchConnectionLost: a batch whose connection dies before it is
// answered has an unknown outcome: every call of it fails as transient, none
// is made again behind the caller's back, and the callers' retries under the
// same request ids decide each operation once.
func TestDecideBatchConnectionLost(t *testing.T) {
	ctx := context.Background()
	b := newBatchWorld(t, 3, 2)
	s, w, tks, fresh := b.s, b.w, b.tks, b.fresh
	admin := adminPool(t)

	// Another session holds the first ticket, so the batch waits in its lock
	// statement, where it is ended.
	conn, other := b.holdTicket(t, tks[0].ID)
	use := func(tk daodian.Ticket) error {
		_, err := fresh().Use(ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: storetest.S1, RequestID: "use-" + tk.ID})
		return err
	}
	release := holdLanes(s)
	q := &queue{t: t, s: s}
	for _, tk := range tks {
		q.add(func() error { return use(tk) })
	}
	release()
	var pid uint32
	for deadline := time.Now().Add(10 * time.Second); pid == 0; time.Sleep(5 * time.Millisecond) {
		// The session that waits for this one: the batch, and no other test's.
		err := admin.QueryRow(ctx, `SELECT pid FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))`,
			int32(conn.PgConn().PID())).Scan(&pid)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch never waited for the held ticket")
		}
	}
	terminate(t, admin, pid)
	if err := other.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	q.wg.Wait()
	for i, err := range q.errs {
		if !errors.Is(err, daodian.ErrTransient) {
			t.Errorf("use %d in the lost batch: %v; want a transient failure", i, err)
		}
	}
	for i, tk := range tks {
		if got := w.Ticket(tk.ID).Available; got != 2 {
			t.Errorf("ticket %d: available %d after a lost batch, want 2", i, got)
		}
	}
	for i, tk := range tks {
		if err := use(tk); err != nil {
			t.Errorf("retry of use %d: %v", i, err)
		}
		if got := w.Ticket(tk.ID).Available; got != 1 {
			t.Errorf("ticket %d: available %d after the retry, want 1", i, got)
		}
	}
	w.Audit()
}

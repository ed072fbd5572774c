// The ledger tests' world: a clock, a ledger on a store with apps of two
// merchants, its snapshots and audit, helpers shared with other packages' tests.

package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// Clock is a settable clock, safe for concurrent use: the one clock of the
// tests (the ledger suite's, and internal/testenv's).
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock at t.
func NewClock(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// Set sets the clock to t, forward or back.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// World is a small ledger with two merchants, their shops and apps, shared by the
// business-rule tests of every store.
type World struct {
	T      testing.TB
	Ctx    context.Context
	Store  daodian.Store
	Ledger *daodian.Ledger
	Clock  *Clock
	// A and A2 are apps of merchant M1 (shop S1); B is an app of merchant M2
	// (shop S2).
	A, A2, B *daodian.App
}

// Merchants and shops of a World.
const (
	M1 = "m1"
	M2 = "m2"
	S1 = "shop-1"
	S2 = "shop-2"
)

// NewWorld builds a World on store.
func NewWorld(t testing.TB, store daodian.Store) *World {
	t.Helper()
	ctx := context.Background()
	clock := NewClock(time.Date(2026, 11, 1, 10, 0, 0, 0, time.UTC))
	l := daodian.NewLedger(store, daodian.Config{Clock: clock.Now})
	w := &World{T: t, Ctx: ctx, Store: store, Ledger: l, Clock: clock}
	must(t, l.AddShop(ctx, daodian.Shop{MerchantID: M1, ID: S1, Name: "一号店"}))
	must(t, l.AddShop(ctx, daodian.Shop{MerchantID: M2, ID: S2, Name: "二号店"}))
	var err error
	w.A, err = l.CreateApp(ctx, daodian.AppSpec{Name: "pos-a", MerchantID: M1})
	must(t, err)
	w.A2, err = l.CreateApp(ctx, daodian.AppSpec{Name: "pos-a2", MerchantID: M1})
	must(t, err)
	w.B, err = l.CreateApp(ctx, daodian.AppSpec{Name: "pos-b", MerchantID: M2})
	must(t, err)
	return w
}

// InsertApp stores app as it is — key and secret included, as tests that sign
// with a known secret need — creating its merchants if new.
func InsertApp(t testing.TB, store daodian.Store, app daodian.App) {
	t.Helper()
	ctx := context.Background()
	err := store.Update(ctx, func(tx daodian.Tx) error {
		for _, m := range app.Merchants {
			if _, err := tx.Merchant(ctx, m); err == nil {
				continue
			}
			if err := tx.PutMerchant(ctx, &daodian.Merchant{ID: m, Name: m}); err != nil {
				return err
			}
		}
		a := app
		return tx.InsertApp(ctx, &a)
	})
	if err != nil {
		t.Fatalf("InsertApp %q: %v", app.Key, err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// Issue issues one order of count tickets of quantity units for merchant M1.
func (w *World) Issue(count, quantity int) *daodian.Issued {
	w.T.Helper()
	o, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{
		MerchantID: M1, Count: count, Quantity: quantity, ItemName: "洗剪吹",
		TotalAmountCents: 9900, RealAmountCents: 8800, OriginalPriceCents: 12800,
		ValidFrom: w.Clock.Now().Add(-time.Hour), ValidTo: w.Clock.Now().Add(30 * 24 * time.Hour),
		UserPhone: "13800004139",
	})
	must(w.T, err)
	return o
}

// Ticket reads a ticket.
func (w *World) Ticket(id string) *daodian.Ticket {
	w.T.Helper()
	var t *daodian.Ticket
	must(w.T, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		var err error
		t, err = tx.Ticket(w.Ctx, id)
		return err
	}))
	return t
}

// Available returns a ticket's available units.
func (w *World) Available(id string) int { w.T.Helper(); return w.Ticket(id).Available }

// Use redeems units of a ticket by code at shop S1 as app A.
func (w *World) Use(app *daodian.App, code string, quantity int, requestID string) (daodian.UseResult, error) {
	return w.Ledger.Use(w.Ctx, app, daodian.UseRequest{TicketCode: code, ShopID: S1, Quantity: quantity, RequestID: requestID})
}

// MustUse is Use that fails the test on error.
func (w *World) MustUse(app *daodian.App, code string, quantity int, requestID string) daodian.UseResult {
	w.T.Helper()
	r, err := w.Use(app, code, quantity, requestID)
	must(w.T, err)
	return r
}

// Reverse reverses as app.
func (w *World) Reverse(app *daodian.App, requestID, ticketID, transID string) daodian.ReverseResult {
	w.T.Helper()
	r, err := w.Ledger.Reverse(w.Ctx, app, daodian.ReverseRequest{RequestID: requestID, TicketID: ticketID, TransID: transID})
	must(w.T, err)
	return r
}

// Snapshot is the whole ledger state that business refusals must leave unchanged.
type Snapshot struct {
	Tickets map[string]daodian.Ticket
	Uses    map[string]daodian.Use
	Counts  daodian.Counts
}

// Snap reads a Snapshot.
func (w *World) Snap() Snapshot {
	w.T.Helper()
	s := Snapshot{Tickets: map[string]daodian.Ticket{}, Uses: map[string]daodian.Use{}}
	must(w.T, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		if err := tx.EachTicket(w.Ctx, func(t *daodian.Ticket) error { s.Tickets[t.ID] = *t; return nil }); err != nil {
			return err
		}
		if err := tx.EachUse(w.Ctx, func(u *daodian.Use) error { s.Uses[u.TransID] = *u; return nil }); err != nil {
			return err
		}
		var err error
		s.Counts, err = tx.Counts(w.Ctx)
		return err
	}))
	return s
}

// Diff describes how b differs from a in tickets, uses and fences ("" if equal).
// Idempotency records are compared by count only when withIdem is set.
func (a Snapshot) Diff(b Snapshot, withIdem bool) string {
	ca, cb := a.Counts, b.Counts
	if !withIdem {
		ca.Idem, cb.Idem = 0, 0
	}
	if ca != cb {
		return fmt.Sprintf("counts %+v -> %+v", ca, cb)
	}
	for id, t := range a.Tickets {
		if bt, ok := b.Tickets[id]; !ok || !t.CreatedAt.Equal(bt.CreatedAt) || t.Available != bt.Available || t.Status != bt.Status {
			return "ticket " + id + " changed"
		}
	}
	for id, u := range a.Uses {
		bu, ok := b.Uses[id]
		if !ok || u.Reversed != bu.Reversed || u.Refunded != bu.Refunded || u.Units != bu.Units {
			return "use " + id + " changed"
		}
	}
	return ""
}

// Audit fails the test if the ledger breaks an invariant.
func (w *World) Audit() {
	w.T.Helper()
	rep, err := w.Ledger.Audit(w.Ctx)
	must(w.T, err)
	for _, v := range rep.Violations {
		w.T.Errorf("audit: %s", v)
	}
}

// Parallel runs fn(0..n-1) concurrently, released together, and waits for all.
func Parallel(n int, fn func(i int)) {
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			fn(i)
		}()
	}
	close(start)
	wg.Wait()
}

// FailingStore wraps a store and makes chosen Updates fail with a transient error
// after their work ran, as a commit that failed would: the store must keep none of
// it.
type FailingStore struct {
	daodian.Store
	fail atomic.Int32
}

// FailNext makes the next n Updates fail.
func (s *FailingStore) FailNext(n int) { s.fail.Store(int32(n)) }

// Update implements daodian.Store.
func (s *FailingStore) Update(ctx context.Context, fn func(daodian.Tx) error) error {
	if s.fail.Add(-1) < 0 {
		s.fail.Store(0)
		return s.Store.Update(ctx, fn)
	}
	return s.Store.Update(ctx, func(tx daodian.Tx) error {
		if err := fn(tx); err != nil {
			return err
		}
		return daodian.Transient(errors.New("injected: commit failed"))
	})
}

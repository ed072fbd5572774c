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

// RunLedger runs the business rules of SPEC §4 against the stores of f: the one
// suite every store passes, beside Run's storage contract.
func RunLedger(t *testing.T, f Factory) {
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"UseAndReplay", testUseAndReplay},
		{"UseRefusalsAreRecorded", testUseRefusalsAreRecorded},
		{"RefusedUseStaysRefused", testRefusedUseStaysRefused},
		{"RefundRefusalStaysRefused", testRefundRefusalStaysRefused},
		{"InvalidParameters", testInvalidParameters},
		{"ReverseByTransID", testReverseByTransID},
		{"ReverseErrorTable", testReverseErrorTable},
		{"ReverseLatestUse", testReverseLatestUse},
		{"EmptyReversalFencesLateUse", testEmptyReversalFencesLateUse},
		{"FenceIsPerApp", testFenceIsPerApp},
		{"FenceMovesOnlyForward", testFenceMovesOnlyForward},
		{"ReverseWindowEdge", testReverseWindowEdge},
		{"GroupBuy", testGroupBuy},
		{"Consult", testConsult},
		{"NotYetValid", testNotYetValid},
		{"Refund", testRefund},
		{"ConcurrentIdenticalReversals", testConcurrentIdenticalReversals},
		{"ConcurrentReversalsOfOneUse", testConcurrentReversalsOfOneUse},
		{"ConcurrentUsesOfFiveUnits", testConcurrentUsesOfFiveUnits},
		{"ReversalRacesLateUse", testReversalRacesLateUse},
		{"RefundRacesReversal", testRefundRacesReversal},
		{"ConcurrentLatestReversals", testConcurrentLatestReversals},
		{"TransientFailureRecordsNothing", testTransientFailureRecordsNothing},
		{"IssueManyInBulk", testIssueManyInBulk},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// ledgerWorld is a World on a new store of f, audited when the test ends.
func ledgerWorld(t *testing.T, f Factory) *World {
	t.Helper()
	w := NewWorld(t, f.Open(t))
	t.Cleanup(w.Audit)
	return w
}

// wantRefusal fails the test unless err is the business refusal sub.
func wantRefusal(t *testing.T, err error, sub string) {
	t.Helper()
	var r *daodian.Refusal
	if !errors.As(err, &r) || r.SubCode != sub {
		t.Fatalf("got %v, want refusal %s", err, sub)
	}
}

// wantFailed fails the test unless r is the failed reversal code, with the
// message and retry flag of SPEC §4.4.
func wantFailed(t *testing.T, r daodian.ReverseResult, code string) {
	t.Helper()
	if r.Success || r.ErrorCode != code || r.Retry != (code == daodian.CodeSystemError) || r.ErrorMsg != daodian.Message(code) {
		t.Fatalf("got %+v, want %s", r, code)
	}
}

// wantSuccess fails the test unless r is a successful reversal.
func wantSuccess(t *testing.T, r daodian.ReverseResult) {
	t.Helper()
	if !r.Success || r.ErrorCode != "" || r.Retry {
		t.Fatalf("got %+v, want success", r)
	}
}

// SPEC §4.3: a use's replay gets the first answer (already used, same
// transaction id) from this ledger and from the store, and changes nothing; the
// same key with other content conflicts; each app has its own keys.
func testUseAndReplay(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	o := w.Issue(1, 3)
	tk := o.Tickets[0]
	r1 := w.MustUse(w.A, tk.Code, 2, "u1")
	if r1.BizCode != daodian.BizSuccess || len(r1.Details) != 1 || r1.Details[0].Units != 2 || r1.TransID != r1.Details[0].TransID {
		t.Fatalf("first use: %+v", r1)
	}
	if got := w.Available(tk.ID); got != 1 {
		t.Fatalf("available %d, want 1", got)
	}
	before := w.Snap()
	r2 := w.MustUse(w.A, tk.Code, 2, "u1")
	if r2.BizCode != daodian.BizTicketAlreadyUsed || r2.TransID != r1.TransID || !r2.UseDate.Equal(r1.UseDate) {
		t.Fatalf("replay: %+v, first %+v", r2, r1)
	}
	// A second ledger on the same store (another process, or this one after a
	// restart) has no cached answers: it replays from the store.
	fresh := daodian.NewLedger(w.Store, daodian.Config{Clock: w.Clock.Now})
	r3, err := fresh.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, Quantity: 2, RequestID: "u1"})
	must(t, err)
	if r3.BizCode != daodian.BizTicketAlreadyUsed || r3.TransID != r1.TransID || !r3.UseDate.Equal(r1.UseDate) {
		t.Fatalf("replay from the store: %+v, first %+v", r3, r1)
	}
	if _, err := fresh.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, Quantity: 1, RequestID: "u1"}); err == nil {
		t.Fatal("conflict not detected from the store")
	}
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("replay changed the ledger: %s", d)
	}
	_, err = w.Use(w.A, tk.Code, 1, "u1")
	wantRefusal(t, err, daodian.SubRequestIDConflict)
	// Another app's key space is its own.
	w.MustUse(w.A2, tk.Code, 1, "u1")
	_, err = w.Use(w.A, tk.Code, 1, "u2")
	wantRefusal(t, err, daodian.SubNotEnoughQuantity)
}

// SPEC §4.3: every refusal is a final answer, recorded under its key in the
// same transaction: the ledger is unchanged but for that record, and a replay
// gets the same refusal — from this ledger's memory and from the store.
func testUseRefusalsAreRecorded(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	o := w.Issue(1, 1)
	tk := o.Tickets[0]
	cancelled, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M1, Status: daodian.TicketCancelled})
	must(t, err)
	cancelledCode := cancelled.Tickets[0].Code
	future, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M1,
		ValidFrom: w.Clock.Now().Add(time.Hour), ValidTo: w.Clock.Now().Add(48 * time.Hour)})
	must(t, err)
	fenced := w.Issue(1, 1).Tickets[0]
	wantSuccess(t, w.Reverse(w.A, "r1", fenced.ID, ""))
	before := w.Snap()
	cases := []struct {
		name string
		app  *daodian.App
		req  daodian.UseRequest
		sub  string
	}{
		{"unknown code", w.A, daodian.UseRequest{TicketCode: "100000000000", ShopID: S1, RequestID: "x1"}, daodian.SubTicketNotFound},
		{"other merchant's app", w.B, daodian.UseRequest{TicketCode: tk.Code, ShopID: S2, RequestID: "x2"}, daodian.SubTicketNotFound},
		{"shop of another merchant", w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S2, RequestID: "x3"}, daodian.SubShopNotMatch},
		{"unknown shop", w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: "nope", RequestID: "x4"}, daodian.SubShopNotMatch},
		{"cancelled", w.A, daodian.UseRequest{TicketCode: cancelledCode, ShopID: S1, RequestID: "x5"}, daodian.SubTicketStatusInvalid},
		{"too many units", w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, Quantity: 2, RequestID: "x6"}, daodian.SubNotEnoughQuantity},
		{"id and code disagree", w.A, daodian.UseRequest{TicketCode: tk.Code, TicketID: cancelled.Tickets[0].ID, ShopID: S1, RequestID: "x7"}, daodian.SubTicketNotFound},
		{"not yet valid", w.A, daodian.UseRequest{TicketCode: future.Tickets[0].Code, ShopID: S1, RequestID: "x9"}, daodian.SubTicketNotYetValid},
		{"fenced", w.A, daodian.UseRequest{TicketCode: fenced.Code, ShopID: S1, RequestID: "x10", GmtBiz: w.Clock.Now().Add(-time.Minute).Truncate(time.Second)}, daodian.SubUseFencedByReversal},
	}
	fresh := daodian.NewLedger(w.Store, daodian.Config{Clock: w.Clock.Now})
	for _, c := range cases {
		_, err := w.Ledger.Use(w.Ctx, c.app, c.req)
		var r *daodian.Refusal
		if !errors.As(err, &r) || r.SubCode != c.sub || r.SubMsg == "" {
			t.Fatalf("%s: got %v, want %s", c.name, err, c.sub)
		}
		for _, l := range []*daodian.Ledger{w.Ledger, fresh} {
			_, err := l.Use(w.Ctx, c.app, c.req)
			var r2 *daodian.Refusal
			if !errors.As(err, &r2) || *r2 != *r {
				t.Fatalf("%s: replay got %v, want %v", c.name, err, r)
			}
		}
	}
	w.Clock.Advance(31 * 24 * time.Hour)
	_, err = w.Use(w.A, tk.Code, 1, "x8")
	wantRefusal(t, err, daodian.SubTicketExpired)
	after := w.Snap()
	if d := before.Diff(after, false); d != "" {
		t.Fatalf("a refusal changed the ledger: %s", d)
	}
	if got, want := after.Counts.Idem, before.Counts.Idem+len(cases)+1; got != want {
		t.Fatalf("%d idempotency records, want %d: one per refusal", got, want)
	}
}

// The probe of SPEC §4.3: a use refused for want of units must not take
// effect when its very request arrives again after a reversal freed them.
func testRefusedUseStaysRefused(t *testing.T, f Factory) {
	fs := &FailingStore{Store: f.Open(t)}
	w := NewWorld(t, fs)
	t.Cleanup(w.Audit)
	tk := w.Issue(1, 2).Tickets[0]
	a := w.MustUse(w.A, tk.Code, 2, "a")
	b := daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, Quantity: 1, RequestID: "b"}
	_, err := w.Ledger.Use(w.Ctx, w.A, b)
	wantRefusal(t, err, daodian.SubNotEnoughQuantity)
	var first *daodian.Refusal
	errors.As(err, &first)
	wantSuccess(t, w.Reverse(w.A, "r", tk.ID, a.TransID))
	before := w.Snap()
	fresh := daodian.NewLedger(w.Store, daodian.Config{Clock: w.Clock.Now})
	for _, l := range []*daodian.Ledger{w.Ledger, fresh, w.Ledger} {
		_, err := l.Use(w.Ctx, w.A, b)
		var r *daodian.Refusal
		if !errors.As(err, &r) || *r != *first {
			t.Fatalf("replay of the refused use: got %v, want %v", err, first)
		}
	}
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("a replayed refusal changed the ledger: %s", d)
	}
	// The ledger that recorded it answers from memory, without a transaction
	// (which would fail here).
	fs.FailNext(1)
	_, err = w.Ledger.Use(w.Ctx, w.A, b)
	fs.FailNext(0)
	var r *daodian.Refusal
	if !errors.As(err, &r) || *r != *first {
		t.Fatalf("replay from memory: got %v, want %v", err, first)
	}
	// The same key with other content is a conflict, not recorded; a new key
	// is a new attempt.
	_, err = w.Use(w.A, tk.Code, 2, "b")
	wantRefusal(t, err, daodian.SubRequestIDConflict)
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("a conflict changed the ledger: %s", d)
	}
	w.MustUse(w.A, tk.Code, 1, "c")
	if w.Available(tk.ID) != 1 {
		t.Fatalf("available %d, want 1", w.Available(tk.ID))
	}
}

// SPEC §4.5: a refund refusal is final too. App C cannot see merchant M1's
// ticket, so its refund is refused; once C is bound to M1 the refusal's cause
// is gone, and still the same request gets the same refusal.
func testRefundRefusalStaysRefused(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	c, err := w.Ledger.CreateApp(w.Ctx, daodian.AppSpec{Name: "pos-c", MerchantID: M2})
	must(t, err)
	req := daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f1"}
	_, err = w.Ledger.Refund(w.Ctx, c, req)
	wantRefusal(t, err, daodian.SubTicketNotFound)
	var first *daodian.Refusal
	errors.As(err, &first)
	bound := *c
	bound.Merchants = []string{M2, M1}
	must(t, w.Store.Update(w.Ctx, func(tx daodian.Tx) error { return tx.UpdateApp(w.Ctx, &bound) }))
	before := w.Snap()
	fresh := daodian.NewLedger(w.Store, daodian.Config{Clock: w.Clock.Now})
	for _, l := range []*daodian.Ledger{w.Ledger, fresh} {
		_, err := l.Refund(w.Ctx, &bound, req)
		var r *daodian.Refusal
		if !errors.As(err, &r) || *r != *first {
			t.Fatalf("replay of the refused refund: got %v, want %v", err, first)
		}
	}
	if d := before.Diff(w.Snap(), true); d != "" || before.Uses[u.TransID].Refunded {
		t.Fatalf("a replayed refund refusal changed the ledger: %s", d)
	}
	_, err = w.Ledger.Refund(w.Ctx, &bound, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f2"})
	must(t, err)
	if !w.Snap().Uses[u.TransID].Refunded {
		t.Fatal("a new refund request did not refund")
	}
}

// Requests with invalid parameters are refused as such and change nothing,
// not even an idempotency record.
func testInvalidParameters(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	before := w.Snap()
	bad := []daodian.UseRequest{
		{ShopID: S1, RequestID: "r"},
		{TicketCode: "12ab", ShopID: S1, RequestID: "r"},
		{TicketCode: tk.Code, RequestID: "r"},
		{TicketCode: tk.Code, ShopID: S1},
		{TicketCode: tk.Code, ShopID: S1, RequestID: "has space"},
		{TicketCode: tk.Code, ShopID: S1, RequestID: "r", Quantity: -1},
		{TicketCode: tk.Code, ShopID: S1, RequestID: "r", Quantity: daodian.MaxUseQuantity + 1},
		{TicketCode: tk.Code, ShopID: S1, RequestID: "r", ShopType: "OTHER"},
		{TicketCode: tk.Code, ShopID: S1, RequestID: "r", GmtBiz: w.Clock.Now().Add(time.Hour)},
	}
	for i, req := range bad {
		_, err := w.Ledger.Use(w.Ctx, w.A, req)
		var ip *daodian.InvalidParameter
		if !errors.As(err, &ip) {
			t.Fatalf("case %d: got %v, want invalid parameter", i, err)
		}
	}
	badRev := []daodian.ReverseRequest{
		{TicketID: tk.ID},
		{RequestID: "r"},
		{RequestID: "r", TicketID: "22081911597032164a7"},
		{RequestID: "r", TicketID: tk.ID, TransID: "x"},
		{RequestID: "r", TicketID: tk.ID, BizDate: w.Clock.Now().Add(time.Hour)},
	}
	for i, req := range badRev {
		_, err := w.Ledger.Reverse(w.Ctx, w.A, req)
		var ip *daodian.InvalidParameter
		if !errors.As(err, &ip) {
			t.Fatalf("reverse case %d: got %v, want invalid parameter", i, err)
		}
	}
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("an invalid request changed the ledger: %s", d)
	}
}

// SPEC §4.4: a reversal naming its use restores the unit once; replays,
// reversals under new keys and by other apps of the merchant change nothing
// more; a conflicting key is refused and not recorded.
func testReverseByTransID(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	if w.Available(tk.ID) != 0 {
		t.Fatal("use did not consume")
	}
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u.TransID))
	if w.Available(tk.ID) != 1 {
		t.Fatal("reversal did not restore the unit")
	}
	before := w.Snap()
	// Replay: same answer, nothing touched — from this ledger's memory and
	// from the store.
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u.TransID))
	fresh := daodian.NewLedger(w.Store, daodian.Config{Clock: w.Clock.Now})
	fr, err := fresh.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: "r1", TicketID: tk.ID, TransID: u.TransID})
	must(t, err)
	wantSuccess(t, fr)
	fr, err = fresh.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: "r1", TicketID: tk.ID})
	must(t, err)
	wantFailed(t, fr, daodian.CodeRequestIDConflict)
	// Already reversed, under a new request id: success, no second effect.
	wantSuccess(t, w.Reverse(w.A, "r2", tk.ID, u.TransID))
	// Any app of the merchant may reverse it.
	wantSuccess(t, w.Reverse(w.A2, "r3", tk.ID, u.TransID))
	if d := before.Diff(w.Snap(), false); d != "" {
		t.Fatalf("second reversal changed the ledger: %s", d)
	}
	// Conflict: same key, other content; nothing changes, answer not recorded.
	wantFailed(t, w.Reverse(w.A, "r1", tk.ID, ""), daodian.CodeRequestIDConflict)
	wantFailed(t, w.Reverse(w.A, "r1", tk.ID, u.TransID+"1"), daodian.CodeRequestIDConflict)
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u.TransID))
	if d := before.Diff(w.Snap(), false); d != "" {
		t.Fatalf("conflict changed the ledger: %s", d)
	}
	// The ticket is usable again.
	w.MustUse(w.A, tk.Code, 1, "u2")
}

// SPEC §4.4's error table: each failed reversal answers its code, is replayed
// as recorded, and changes nothing.
func testReverseErrorTable(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	o := w.Issue(1, 2)
	tk := o.Tickets[0]
	other := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	uo := w.MustUse(w.A, other.Code, 1, "u2")
	refunded := w.MustUse(w.A, tk.Code, 1, "u3")
	if _, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: refunded.TransID, TicketCode: tk.Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}
	// A ticket of merchant M2, used by its app B.
	m2, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M2, Quantity: 2})
	must(t, err)
	tkB := m2.Tickets[0]
	uB, err := w.Ledger.Use(w.Ctx, w.B, daodian.UseRequest{TicketCode: tkB.Code, ShopID: S2, RequestID: "u4"})
	must(t, err)
	before := w.Snap()
	rows := []struct {
		name string
		app  *daodian.App
		req  daodian.ReverseRequest
		code string
	}{
		{"no such ticket", w.A, daodian.ReverseRequest{RequestID: "e1", TicketID: "2100000000000999999"}, daodian.CodeTicketNotFound},
		{"another merchant's ticket", w.B, daodian.ReverseRequest{RequestID: "e2", TicketID: tk.ID, TransID: u.TransID}, daodian.CodeTicketNotFound},
		{"no such use", w.A, daodian.ReverseRequest{RequestID: "e3", TicketID: tk.ID, TransID: "2100000000000999999"}, daodian.CodeUseTransNotFound},
		{"use of another ticket", w.A, daodian.ReverseRequest{RequestID: "e4", TicketID: tk.ID, TransID: uo.TransID}, daodian.CodeUseTransMismatch},
		// SPEC §4.4 step 3: a use of a ticket the app cannot see answers
		// exactly like a use that does not exist, or any app could count
		// every merchant's redemptions by probing the sequential ids.
		{"another merchant's use, on a visible ticket", w.B, daodian.ReverseRequest{RequestID: "e8", TicketID: tkB.ID, TransID: u.TransID}, daodian.CodeUseTransNotFound},
		{"no such use, on the same ticket", w.B, daodian.ReverseRequest{RequestID: "e9", TicketID: tkB.ID, TransID: "2100000000000999999"}, daodian.CodeUseTransNotFound},
		{"another merchant's use, the other way", w.A, daodian.ReverseRequest{RequestID: "e10", TicketID: tk.ID, TransID: uB.TransID}, daodian.CodeUseTransNotFound},
		{"another merchant's group id", w.B, daodian.ReverseRequest{RequestID: "e11", TicketID: tkB.ID, TransID: uo.TransID}, daodian.CodeUseTransNotFound},
		{"refunded use", w.A, daodian.ReverseRequest{RequestID: "e5", TicketID: tk.ID, TransID: refunded.TransID}, daodian.CodeTicketStatusInvalid},
		{"latest use is refunded", w.A, daodian.ReverseRequest{RequestID: "e6", TicketID: tk.ID}, daodian.CodeTicketStatusInvalid},
	}
	for _, row := range rows {
		r, err := w.Ledger.Reverse(w.Ctx, row.app, row.req)
		must(t, err)
		wantFailed(t, r, row.code)
		// A recorded final answer is replayed as is.
		r2, err := w.Ledger.Reverse(w.Ctx, row.app, row.req)
		must(t, err)
		if r2 != r {
			t.Fatalf("%s: replay %+v != %+v", row.name, r2, r)
		}
	}
	// Nor does the refund tell another merchant's use from a missing one.
	for i, trans := range []string{u.TransID, "2100000000000999999"} {
		_, err := w.Ledger.Refund(w.Ctx, w.B, daodian.RefundRequest{TransID: trans, TicketCode: tkB.Code, RequestID: fmt.Sprintf("p%d", i)})
		wantRefusal(t, err, daodian.SubUseTransNotFound)
	}
	w.Clock.Advance(24*time.Hour + time.Second)
	wantFailed(t, w.Reverse(w.A, "e7", tk.ID, u.TransID), daodian.CodeReverseTimeExpired)
	if d := before.Diff(w.Snap(), false); d != "" {
		t.Fatalf("a refused reversal changed the ledger: %s", d)
	}
}

// SPEC §4.4: a reversal without a use reverses this app's latest active use,
// then the one before.
func testReverseLatestUse(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 5).Tickets[0]
	first := w.MustUse(w.A, tk.Code, 1, "u1")
	second := w.MustUse(w.A, tk.Code, 2, "u2")
	w.MustUse(w.A2, tk.Code, 1, "u3") // another app's use is not "this app's latest"
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, ""))
	s := w.Snap()
	if !s.Uses[second.TransID].Reversed || s.Uses[first.TransID].Reversed {
		t.Fatalf("latest-use reversal reversed the wrong use")
	}
	if w.Available(tk.ID) != 3 {
		t.Fatalf("available %d, want 3", w.Available(tk.ID))
	}
	wantSuccess(t, w.Reverse(w.A, "r2", tk.ID, ""))
	if !w.Snap().Uses[first.TransID].Reversed || w.Available(tk.ID) != 4 {
		t.Fatal("second latest-use reversal did not reverse the first use")
	}
}

// SPEC §4.4: a reversal that finds no use leaves a fence, which refuses the
// app's late use from before it and accepts a later one.
func testEmptyReversalFencesLateUse(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	useTime := w.Clock.Now().Add(-time.Minute)
	// The POS timed out on a use at useTime and reversed it; the use never
	// arrived, so the reversal is empty and leaves a fence.
	before := w.Snap()
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, ""))
	if got := w.Snap().Counts.Fences; got != before.Counts.Fences+1 {
		t.Fatalf("fences %d, want %d", got, before.Counts.Fences+1)
	}
	// The original use arrives late: refused, nothing consumed.
	_, err := w.Ledger.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, RequestID: "late", GmtBiz: useTime.Truncate(time.Second)})
	wantRefusal(t, err, daodian.SubUseFencedByReversal)
	if w.Available(tk.ID) != 1 {
		t.Fatal("fenced use consumed a unit")
	}
	// The fence is per app: another app's use at the same time is not fenced.
	// A fresh use by the same app after the fence is accepted.
	w.Clock.Advance(2 * time.Second)
	w.MustUse(w.A, tk.Code, 1, "fresh")
	if w.Available(tk.ID) != 0 {
		t.Fatal("fresh use did not consume")
	}
}

// An empty reversal moves its app's fence forward only: one with the fence's
// business time or an earlier one changes nothing and records nothing; one a
// microsecond later (the precision stores keep) moves it and records the move.
func testFenceMovesOnlyForward(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	w.Clock.Advance(time.Second + 789*time.Microsecond)
	at := w.Clock.Now().Add(-time.Minute)
	fence := func() daodian.Fence {
		t.Helper()
		var fc daodian.Fence
		must(t, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
			got, err := tx.Fence(w.Ctx, tk.ID, w.A.Key)
			if err == nil {
				fc = *got
			}
			return err
		}))
		return fc
	}
	records := func() int {
		t.Helper()
		var n int
		must(t, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
			rs, err := tx.TicketRecords(w.Ctx, tk.ID)
			n = len(rs)
			return err
		}))
		return n
	}
	reverse := func(id string, biz time.Time) {
		t.Helper()
		r, err := w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: id, TicketID: tk.ID, BizDate: biz})
		must(t, err)
		wantSuccess(t, r)
	}
	reverse("r1", at)
	first, n := fence(), records()
	for i, biz := range []time.Time{at, at.Add(-time.Second)} {
		w.Clock.Advance(time.Second)
		reverse(fmt.Sprint("same-or-earlier-", i), biz)
		if got := fence(); got != first {
			t.Fatalf("an empty reversal at %v moved the fence from %+v to %+v", biz, first, got)
		}
		if got := records(); got != n {
			t.Fatalf("an empty reversal at %v that moved nothing left a record (%d records, want %d)", biz, got, n)
		}
	}
	w.Clock.Advance(time.Second)
	reverse("later", at.Add(time.Microsecond))
	if got := fence(); got.RequestID != "later" {
		t.Fatalf("an empty reversal a microsecond later did not move the fence: %+v", got)
	}
	if got := records(); got != n+1 {
		t.Fatalf("the fence's move left %d records, want %d", got, n+1)
	}
}

// SPEC §4.4: a use may be reversed until exactly ReverseWindow after it, not a
// microsecond (the precision stores keep) later.
func testReverseWindowEdge(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 2).Tickets[0]
	w.Clock.Advance(456 * time.Microsecond)
	u1 := w.MustUse(w.A, tk.Code, 1, "u1")
	u2 := w.MustUse(w.A, tk.Code, 1, "u2")
	w.Clock.Advance(24 * time.Hour) // the default window
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u1.TransID))
	w.Clock.Advance(time.Microsecond)
	wantFailed(t, w.Reverse(w.A, "r2", tk.ID, u2.TransID), daodian.CodeReverseTimeExpired)
}

// A fence refuses only the uses of the app that left it.
func testFenceIsPerApp(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	at := w.Clock.Now().Add(-time.Minute).Truncate(time.Second)
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, ""))
	if _, err := w.Ledger.Use(w.Ctx, w.A2, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, RequestID: "u", GmtBiz: at}); err != nil {
		t.Fatalf("another app's use was fenced: %v", err)
	}
}

// A use of more units than one ticket holds spans the tickets of its
// sub-order; each ticket's part is reversed on its own.
func testGroupBuy(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	o := w.Issue(3, 1)
	a, b, c := o.Tickets[0], o.Tickets[1], o.Tickets[2]
	r := w.MustUse(w.A, a.Code, 2, "g1")
	if len(r.Details) != 2 || r.Details[0].TicketID != a.ID || r.Details[1].TicketID != b.ID {
		t.Fatalf("group use details: %+v", r.Details)
	}
	if r.BuyerPayCents != 2*9900 || r.ReceiptCents != 2*8800 {
		t.Fatalf("group use amounts: %+v", r)
	}
	if w.Available(a.ID) != 0 || w.Available(b.ID) != 0 || w.Available(c.ID) != 1 {
		t.Fatal("group use consumed the wrong tickets")
	}
	// Reverse one ticket of the two by its own detail id.
	wantSuccess(t, w.Reverse(w.A, "r1", b.ID, r.Details[1].TransID))
	if w.Available(a.ID) != 0 || w.Available(b.ID) != 1 {
		t.Fatal("reversal of one ticket of a group use restored the wrong ticket")
	}
	// The top-level id with the other ticket reverses that ticket's part.
	wantSuccess(t, w.Reverse(w.A, "r2", a.ID, r.TransID))
	if w.Available(a.ID) != 1 {
		t.Fatal("reversal by top-level id did not restore its ticket")
	}
	// Over-use of the sub-order is refused whole.
	_, err := w.Use(w.A, a.Code, 4, "g2")
	wantRefusal(t, err, daodian.SubNotEnoughQuantity)
	if w.Available(a.ID) != 1 || w.Available(b.ID) != 1 || w.Available(c.ID) != 1 {
		t.Fatal("a refused group use consumed units")
	}
}

// SPEC §4.2: a consult shows a code's usable tickets, and answers the codes of
// the table for the rest.
func testConsult(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	o := w.Issue(2, 1)
	a := o.Tickets[0]
	w.MustUse(w.A, o.Tickets[1].Code, 1, "u1")
	r, err := w.Ledger.Consult(w.Ctx, w.A, daodian.ConsultRequest{RequestID: "c1", ShopID: S1, TicketCode: a.Code})
	must(t, err)
	if !r.Success || r.Value.AvailableQuantity != 1 || len(r.Value.Tickets) != 1 || r.Value.Tickets[0].TicketCode != a.Code ||
		r.Value.UserPhone != "*******4139" || r.Value.OrderNo != o.Order.OrderNo || r.Value.SubOrderNo != o.Order.SubOrderNo {
		t.Fatalf("consult: %+v %+v", r, r.Value)
	}
	for _, c := range []struct {
		app  *daodian.App
		shop string
		code string
		want string
	}{
		{w.A, S1, "100000000000", daodian.CodeTicketCodeInvalid},
		{w.B, S2, a.Code, daodian.CodeTicketCodeInvalid},
		{w.A, S2, a.Code, daodian.CodeShopNotMatch},
	} {
		r, err := w.Ledger.Consult(w.Ctx, c.app, daodian.ConsultRequest{RequestID: "c", ShopID: c.shop, TicketCode: c.code})
		must(t, err)
		if r.Success || r.ErrorCode != c.want {
			t.Fatalf("consult %+v: got %+v, want %s", c, r, c.want)
		}
	}
	w.Clock.Advance(31 * 24 * time.Hour)
	r, err = w.Ledger.Consult(w.Ctx, w.A, daodian.ConsultRequest{RequestID: "c", ShopID: S1, TicketCode: a.Code})
	must(t, err)
	if r.ErrorCode != daodian.CodeTicketExpired {
		t.Fatalf("expired consult: %+v", r)
	}
}

// A ticket before its validity window has its own refusal, distinct from an
// expired one, in the order of SPEC §4.3: after the shop and the status,
// before the quantity. A reversal does not look at the window.
func testNotYetValid(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	now := w.Clock.Now()
	issue := func(status daodian.TicketStatus) daodian.Ticket {
		o, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M1, Status: status,
			ValidFrom: now.Add(time.Hour), ValidTo: now.Add(48 * time.Hour)})
		must(t, err)
		return o.Tickets[0]
	}
	tk, cancelled := issue(daodian.TicketValid), issue(daodian.TicketCancelled)
	before := w.Snap()
	for _, c := range []struct {
		name string
		req  daodian.UseRequest
		sub  string
	}{
		{"not yet valid", daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, RequestID: "n1"}, daodian.SubTicketNotYetValid},
		{"shop first", daodian.UseRequest{TicketCode: tk.Code, ShopID: S2, RequestID: "n2"}, daodian.SubShopNotMatch},
		{"status first", daodian.UseRequest{TicketCode: cancelled.Code, ShopID: S1, RequestID: "n3"}, daodian.SubTicketStatusInvalid},
		{"before quantity", daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, Quantity: 2, RequestID: "n4"}, daodian.SubTicketNotYetValid},
	} {
		_, err := w.Ledger.Use(w.Ctx, w.A, c.req)
		var r *daodian.Refusal
		if !errors.As(err, &r) || r.SubCode != c.sub {
			t.Fatalf("%s: got %v, want %s", c.name, err, c.sub)
		}
		if c.sub == daodian.SubTicketNotYetValid && r.SubMsg == "" {
			t.Fatalf("%s: no sub_msg", c.name)
		}
	}
	if d := before.Diff(w.Snap(), false); d != "" {
		t.Fatalf("a refused use changed the ledger: %s", d)
	}
	r, err := w.Ledger.Consult(w.Ctx, w.A, daodian.ConsultRequest{RequestID: "c", ShopID: S1, TicketCode: tk.Code})
	must(t, err)
	if r.Success || r.ErrorCode != daodian.CodeTicketNotYetValid || r.ErrorMsg != daodian.Message(daodian.CodeTicketNotYetValid) ||
		r.ErrorMsg == "" || r.ErrorMsg == daodian.Message(daodian.CodeTicketExpired) || r.Retry {
		t.Fatalf("consult of a ticket not yet valid: %+v", r)
	}
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, ""))
	w.Clock.Advance(time.Hour)
	w.MustUse(w.A, tk.Code, 1, "n5")
}

// SPEC §4.5: a refund marks a use refunded and gives no units back; it is
// replayed, conflicts like a use, and is refused for reversed, unknown and
// invisible uses.
func testRefund(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 2).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	availBefore := w.Available(tk.ID)
	r, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f1"})
	must(t, err)
	if r.BizCode != daodian.BizSuccess || r.RequestID != "f1" {
		t.Fatalf("refund: %+v", r)
	}
	if w.Available(tk.ID) != availBefore {
		t.Fatal("refund changed availability")
	}
	s := w.Snap()
	ru := s.Uses[u.TransID]
	if !ru.Refunded || ru.RefundAppKey != w.A.Key || ru.RefundRequestID != "f1" || ru.RefundedAt.IsZero() {
		t.Fatalf("refund not recorded: %+v", ru)
	}
	r2, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f1"})
	must(t, err)
	if r2 != r {
		t.Fatalf("refund replay %+v != %+v", r2, r)
	}
	_, err = w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u.TransID, TicketCode: "100000000000", RequestID: "f1"})
	wantRefusal(t, err, daodian.SubRequestIDConflict)
	wantFailed(t, w.Reverse(w.A, "r1", tk.ID, u.TransID), daodian.CodeTicketStatusInvalid)
	if d := s.Diff(w.Snap(), false); d != "" {
		t.Fatalf("reversal of a refunded use changed the ledger: %s", d)
	}
	u2 := w.MustUse(w.A, tk.Code, 1, "u2")
	wantSuccess(t, w.Reverse(w.A, "r2", tk.ID, u2.TransID))
	_, err = w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u2.TransID, TicketCode: tk.Code, RequestID: "f2"})
	wantRefusal(t, err, daodian.SubUseAlreadyReversed)
	_, err = w.Ledger.Refund(w.Ctx, w.B, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f3"})
	wantRefusal(t, err, daodian.SubTicketNotFound)
	_, err = w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: "2100000000000999999", TicketCode: tk.Code, RequestID: "f4"})
	wantRefusal(t, err, daodian.SubUseTransNotFound)
}

// SPEC §7: 32 identical reversals at once all succeed, with one effect.
func testConcurrentIdenticalReversals(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	results := make([]daodian.ReverseResult, 32)
	Parallel(32, func(i int) {
		r, err := w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: "same", TicketID: tk.ID, TransID: u.TransID})
		if err != nil {
			t.Error(err)
		}
		results[i] = r
	})
	for _, r := range results {
		wantSuccess(t, r)
	}
	if w.Available(tk.ID) != 1 {
		t.Fatalf("available %d after 32 identical reversals, want 1", w.Available(tk.ID))
	}
}

// SPEC §7: 32 reversals of one use under different keys restore its unit once.
func testConcurrentReversalsOfOneUse(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 3).Tickets[0]
	w.MustUse(w.A, tk.Code, 1, "u0")
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	Parallel(32, func(i int) {
		r, err := w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("r%d", i), TicketID: tk.ID, TransID: u.TransID})
		if err != nil || !r.Success {
			t.Errorf("reversal %d: %+v %v", i, r, err)
		}
	})
	if w.Available(tk.ID) != 2 {
		t.Fatalf("available %d after 32 reversals of one use, want 2 (one restore)", w.Available(tk.ID))
	}
}

// SPEC §7: of 32 one-unit uses of a five-unit ticket at once, exactly 5 succeed.
func testConcurrentUsesOfFiveUnits(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 5).Tickets[0]
	var okN, refused atomic.Int32
	Parallel(32, func(i int) {
		_, err := w.Use(w.A, tk.Code, 1, fmt.Sprintf("u%d", i))
		var r *daodian.Refusal
		switch {
		case err == nil:
			okN.Add(1)
		case errors.As(err, &r) && r.SubCode == daodian.SubNotEnoughQuantity:
			refused.Add(1)
		default:
			t.Errorf("use %d: %v", i, err)
		}
	})
	if okN.Load() != 5 || refused.Load() != 27 || w.Available(tk.ID) != 0 {
		t.Fatalf("%d uses succeeded, %d refused, available %d; want 5, 27, 0", okN.Load(), refused.Load(), w.Available(tk.ID))
	}
}

// SPEC §7: a reversal racing a late use. A POS timed out on a use and sent a
// latest-use reversal; the original use arrives at the same moment. Whatever
// the order the store picks, the ticket must end with its unit back: either
// the reversal ran first (empty, fence) and the late use is fenced, or the
// use ran first and the reversal reversed it. A use left active is the
// hanging the fence exists to prevent.
func testReversalRacesLateUse(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	late := w.Clock.Now().Add(-time.Second).Truncate(time.Second)
	fenced, reversed := 0, 0
	for i := range 20 {
		tk := w.Issue(1, 1).Tickets[0]
		var useErr error
		var rev daodian.ReverseResult
		var revErr error
		Parallel(2, func(j int) {
			if j == 0 {
				_, useErr = w.Ledger.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, RequestID: fmt.Sprintf("late%d", i), GmtBiz: late})
			} else {
				rev, revErr = w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("rev%d", i), TicketID: tk.ID})
			}
		})
		must(t, revErr)
		wantSuccess(t, rev)
		if useErr != nil {
			wantRefusal(t, useErr, daodian.SubUseFencedByReversal)
			fenced++
		} else {
			reversed++
		}
		s := w.Snap()
		for _, u := range s.Uses {
			if u.TicketID == tk.ID && !u.Reversed {
				t.Fatalf("round %d: the late use %s is left active after its reversal answered success", i, u.TransID)
			}
		}
		if got := w.Available(tk.ID); got != 1 {
			t.Fatalf("round %d: available %d, want 1", i, got)
		}
	}
	t.Logf("late use fenced %d times, used then reversed %d times", fenced, reversed)
}

// SPEC §7: a refund racing a reversal of the same use. Exactly one of them
// takes effect: the refund wins (the reversal answers TICKET_STATUS_INVALID,
// the units stay consumed) or the reversal wins (the refund is refused with
// isv.use-already-reversed, the units come back).
func testRefundRacesReversal(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	for i := range 20 {
		tk := w.Issue(1, 1).Tickets[0]
		u := w.MustUse(w.A, tk.Code, 1, fmt.Sprintf("u%d", i))
		var refErr, revErr error
		var rev daodian.ReverseResult
		Parallel(2, func(j int) {
			if j == 0 {
				_, refErr = w.Ledger.Refund(w.Ctx, w.A2, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: fmt.Sprintf("f%d", i)})
			} else {
				rev, revErr = w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("r%d", i), TicketID: tk.ID, TransID: u.TransID})
			}
		})
		must(t, revErr)
		row := w.Snap().Uses[u.TransID]
		switch {
		case refErr == nil:
			wantFailed(t, rev, daodian.CodeTicketStatusInvalid)
			if !row.Refunded || row.Reversed || w.Available(tk.ID) != 0 {
				t.Fatalf("round %d: refund won but use %+v, available %d", i, row, w.Available(tk.ID))
			}
		default:
			wantRefusal(t, refErr, daodian.SubUseAlreadyReversed)
			wantSuccess(t, rev)
			if row.Refunded || !row.Reversed || w.Available(tk.ID) != 1 {
				t.Fatalf("round %d: reversal won but use %+v, available %d", i, row, w.Available(tk.ID))
			}
		}
	}
}

// Concurrent latest-use reversals under different request ids reverse each
// use once, newest first, and the ones left over are empty reversals.
func testConcurrentLatestReversals(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	tk := w.Issue(1, 5).Tickets[0]
	for i := range 3 {
		w.MustUse(w.A, tk.Code, 1, fmt.Sprintf("u%d", i))
	}
	before := w.Snap().Counts.Fences
	Parallel(8, func(i int) {
		r, err := w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("r%d", i), TicketID: tk.ID})
		if err != nil || !r.Success {
			t.Errorf("reversal %d: %+v %v", i, r, err)
		}
	})
	s := w.Snap()
	by := map[string]int{}
	for _, u := range s.Uses {
		if u.TicketID == tk.ID {
			if !u.Reversed {
				t.Fatalf("use %s left active after 8 latest-use reversals", u.TransID)
			}
			by[u.ReversalRequestID]++
		}
	}
	for rid, n := range by {
		if n != 1 {
			t.Fatalf("reversal %s reversed %d uses", rid, n)
		}
	}
	if len(by) != 3 || w.Available(tk.ID) != 5 || s.Counts.Fences != before+1 {
		t.Fatalf("%d reversals took effect, available %d, fences %d; want 3, 5, %d", len(by), w.Available(tk.ID), s.Counts.Fences, before+1)
	}
}

// A commit that fails transiently keeps nothing: the reversal answers
// SYSTEM_ERROR with retry, and its retry executes afresh.
func testTransientFailureRecordsNothing(t *testing.T, f Factory) {
	base := f.Open(t)
	fs := &FailingStore{Store: base}
	w := NewWorld(t, fs)
	t.Cleanup(w.Audit)
	tk := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	before := w.Snap()
	fs.FailNext(1)
	r := w.Reverse(w.A, "r1", tk.ID, u.TransID)
	wantFailed(t, r, daodian.CodeSystemError)
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("a transient failure changed the ledger: %s", d)
	}
	// Nothing was recorded: the retry executes afresh and succeeds.
	wantSuccess(t, w.Reverse(w.A, "r1", tk.ID, u.TransID))
	if w.Available(tk.ID) != 1 {
		t.Fatal("retry did not reverse")
	}
	fs.FailNext(1)
	_, err := w.Use(w.A, tk.Code, 1, "u2")
	if !errors.Is(err, daodian.ErrTransient) {
		t.Fatalf("use under a transient failure: %v", err)
	}
	w.MustUse(w.A, tk.Code, 1, "u2")
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

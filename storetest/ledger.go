// RunLedger: the rules of SPEC §4 through daodian.Ledger — uses, refusals and
// their records, invalid parameters, group-buys, consults, refunds.

package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

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
	// A group-buy order: another merchant's app asking for more units than
	// the queried ticket holds must not reach its siblings either.
	group := w.Issue(3, 1).Tickets
	before := w.Snap()
	cases := []struct {
		name string
		app  *daodian.App
		req  daodian.UseRequest
		sub  string
	}{
		{"unknown code", w.A, daodian.UseRequest{TicketCode: "100000000000", ShopID: S1, RequestID: "x1"}, daodian.SubTicketNotFound},
		{"other merchant's app", w.B, daodian.UseRequest{TicketCode: tk.Code, ShopID: S2, RequestID: "x2"}, daodian.SubTicketNotFound},
		{"other merchant's app, units of a sub-order", w.B, daodian.UseRequest{TicketCode: group[0].Code, ShopID: S2, Quantity: 3, RequestID: "x11"}, daodian.SubTicketNotFound},
		{"other merchant's app, by id, units of a sub-order", w.B, daodian.UseRequest{TicketID: group[1].ID, ShopID: S1, Quantity: 2, RequestID: "x12"}, daodian.SubTicketNotFound},
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

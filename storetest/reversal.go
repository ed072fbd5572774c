// The reversal of SPEC §4.4: by use id, the latest use, the error table, fences
// and the window.

package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

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

// Concurrent requests on one ticket or one use, and transient failures: each
// answered once, none lost, nothing half done.

package storetest

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

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

package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// RunHistory runs the history contract of SPEC §8 against the stores of f: every
// change has its record in the same transaction, records are ordered and
// complete, and the queries built on them (pages, timelines, statements,
// reconciliation) answer from them correctly.
func RunHistory(t *testing.T, f Factory) {
	for _, c := range []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"RecordsOfEveryChange", testRecordsOfEveryChange},
		{"NoRecordWithoutChange", testNoRecordWithoutChange},
		{"RecordsAtomicWithTheirUpdate", testRecordsAtomic},
		{"GroupUseRecordsEachTicket", testGroupUseRecords},
		{"RecordsPageInOrder", testRecordsPaging},
		{"RecordsPageWhileWriting", testRecordsPagingWhileWriting},
		{"RecordsFilters", testRecordsFilters},
		{"RecordsCursorBoundToQuery", testRecordsCursor},
		{"TicketHistory", testTicketHistory},
		{"Statement", testStatement},
		{"Reconcile", testReconcile},
	} {
		t.Run(c.name, func(t *testing.T) { c.fn(t, f) })
	}
}

func historyWorld(t *testing.T, f Factory) *World {
	w := NewWorld(t, f.Open(t))
	t.Cleanup(w.Audit) // the audit holds every change against its record
	return w
}

func (w *World) records(q daodian.RecordQuery) []daodian.Record {
	w.T.Helper()
	var all []daodian.Record
	cursor := ""
	for {
		page, err := w.Ledger.Records(w.Ctx, q, cursor)
		must(w.T, err)
		all = append(all, page.Records...)
		if page.NextCursor == "" {
			return all
		}
		cursor = page.NextCursor
	}
}

func (w *World) timeline(ticketID string) []daodian.Record {
	w.T.Helper()
	h, err := w.Ledger.TicketHistory(w.Ctx, ticketID, "", "")
	must(w.T, err)
	return h.Timeline
}

func kindsOf(recs []daodian.Record) string {
	ks := make([]string, len(recs))
	for i, r := range recs {
		ks[i] = string(r.Kind)
	}
	return strings.Join(ks, ",")
}

func (w *World) recordCount() int {
	w.T.Helper()
	var n daodian.Counts
	must(w.T, w.Store.View(w.Ctx, func(tx daodian.ReadTx) error {
		var err error
		n, err = tx.Counts(w.Ctx)
		return err
	}))
	return n.Records
}

// wantRecord compares the fields of a record that a test fixes (ID and At are
// checked by the callers that care).
func wantRecord(t *testing.T, what string, got, want daodian.Record) {
	t.Helper()
	got.ID, got.At = "", time.Time{}
	if !got.BizTime.IsZero() && !want.BizTime.IsZero() && got.BizTime.Equal(want.BizTime) {
		got.BizTime = want.BizTime
	}
	if got != want {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testRecordsOfEveryChange(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	tk := w.Issue(1, 3).Tickets[0] // 9900 paid, 8800 received, over 3 units
	now := w.Clock.Now()
	u1 := w.MustUse(w.A, tk.Code, 1, "u1")
	u2 := w.MustUse(w.A, tk.Code, 2, "u2") // the last units carry the remainder
	ok := func(r daodian.ReverseResult) {
		t.Helper()
		if !r.Success {
			t.Fatalf("reversal: %+v", r)
		}
	}
	ok(w.Reverse(w.A, "r1", tk.ID, "")) // the latest: u2
	ok(w.Reverse(w.A, "r2", tk.ID, "")) // then u1
	ok(w.Reverse(w.A, "r3", tk.ID, "")) // nothing left: a fence at now
	w.Clock.Advance(time.Second)
	u3, err := w.Ledger.Use(w.Ctx, w.A2, daodian.UseRequest{TicketCode: tk.Code, ShopID: S1, RequestID: "u3"})
	must(t, err)
	if _, err := w.Ledger.Refund(w.Ctx, w.A2, daodian.RefundRequest{TransID: u3.TransID, TicketCode: tk.Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}

	got := w.timeline(tk.ID)
	if k := kindsOf(got); k != "issue,use,use,reversal,reversal,fence,use,refund" {
		t.Fatalf("timeline %s", k)
	}
	base := daodian.Record{MerchantID: M1, TicketID: tk.ID}
	rec := func(kind daodian.RecordKind, shop, trans, req, app string, units int, pay, receipt int64, biz time.Time) daodian.Record {
		r := base
		r.Kind, r.ShopID, r.TransID, r.RequestID, r.AppKey, r.Units, r.BuyerPayCents, r.ReceiptCents, r.BizTime =
			kind, shop, trans, req, app, units, pay, receipt, biz
		return r
	}
	// 9900 / 3 = 3300 a unit; 8800 / 3 = 2933, and the last unit gets the 1 cent left.
	want := []daodian.Record{
		rec(daodian.RecordIssue, "", "", "", "", 3, 9900, 8800, time.Time{}),
		rec(daodian.RecordUse, S1, u1.TransID, "u1", w.A.Key, 1, 3300, 2933, now),
		rec(daodian.RecordUse, S1, u2.TransID, "u2", w.A.Key, 2, 6600, 5867, now),
		rec(daodian.RecordReversal, S1, u2.TransID, "r1", w.A.Key, 2, 6600, 5867, now),
		rec(daodian.RecordReversal, S1, u1.TransID, "r2", w.A.Key, 1, 3300, 2933, now),
		rec(daodian.RecordFence, "", "", "r3", w.A.Key, 0, 0, 0, now),
		rec(daodian.RecordUse, S1, u3.TransID, "u3", w.A2.Key, 1, 3300, 2933, now.Add(time.Second)),
		rec(daodian.RecordRefund, S1, u3.TransID, "f1", w.A2.Key, 1, 3300, 2933, time.Time{}),
	}
	for i := range want {
		wantRecord(t, fmt.Sprintf("record %d (%s)", i, want[i].Kind), got[i], want[i])
	}
	for i, r := range got {
		if i > 0 && !idAfter(r.ID, got[i-1].ID) {
			t.Errorf("record ids do not increase: %s after %s", r.ID, got[i-1].ID)
		}
		wantAt := now
		if i >= 6 {
			wantAt = now.Add(time.Second)
		}
		if !r.At.Equal(wantAt) {
			t.Errorf("record %d at %v, want the ledger's time %v", i, r.At, wantAt)
		}
	}
	// The merchant's records are the same, in the same order; another merchant's
	// are not among them.
	w.Issue(1, 1) // M1
	mine := w.records(daodian.RecordQuery{MerchantID: M1})
	if len(mine) != len(got)+1 || !slices.EqualFunc(mine[:len(got)], got, func(a, b daodian.Record) bool { return a == b }) {
		t.Fatalf("merchant records %s, want the timeline then one issue", kindsOf(mine))
	}
	if n := w.recordCount(); n != len(mine) {
		t.Fatalf("Counts.Records %d, want %d", n, len(mine))
	}
}

// idAfter reports whether decimal id a is after b.
func idAfter(a, b string) bool {
	if len(a) != len(b) {
		return len(a) > len(b)
	}
	return a > b
}

func testNoRecordWithoutChange(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	u := w.MustUse(w.A, tk.Code, 1, "u1")
	w.Reverse(w.A, "r1", tk.ID, u.TransID)
	w.Reverse(w.A, "r-empty", tk.ID, "") // a fence at now
	n := w.recordCount()
	steps := []struct {
		name string
		do   func() error
	}{
		{"a use replayed", func() error { _, err := w.Use(w.A, tk.Code, 1, "u1"); return err }},
		{"a reversal replayed", func() error { w.Reverse(w.A, "r1", tk.ID, u.TransID); return nil }},
		{"a reversal of a reversed use", func() error { w.Reverse(w.A2, "r2", tk.ID, u.TransID); return nil }},
		{"an empty reversal behind the fence", func() error {
			_, err := w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: "r-early", TicketID: tk.ID, BizDate: w.Clock.Now().Add(-time.Hour)})
			return err
		}},
		{"a refused use", func() error {
			_, err := w.Use(w.A, tk.Code, 2, "u-too-many")
			var rf *daodian.Refusal
			if !errors.As(err, &rf) {
				return fmt.Errorf("want a refusal, got %v", err)
			}
			return nil
		}},
		{"a refund of a reversed use", func() error {
			_, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u.TransID, TicketCode: tk.Code, RequestID: "f1"})
			if err == nil {
				return errors.New("refunded a reversed use")
			}
			return nil
		}},
		{"a reversal of another merchant's ticket", func() error { w.Reverse(w.B, "rb", tk.ID, ""); return nil }},
		{"a consult", func() error {
			_, err := w.Ledger.Consult(w.Ctx, w.A, daodian.ConsultRequest{RequestID: "c1", ShopID: S1, TicketCode: tk.Code})
			return err
		}},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := w.recordCount(); got != n {
			t.Fatalf("%s changed nothing but wrote %d records", s.name, got-n)
		}
	}
	// A refund of a refunded use under a new key changes nothing, and records nothing.
	tk2 := w.Issue(1, 1).Tickets[0]
	u2 := w.MustUse(w.A, tk2.Code, 1, "u2")
	for _, key := range []string{"f2", "f3"} {
		if _, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u2.TransID, TicketCode: tk2.Code, RequestID: key}); err != nil {
			t.Fatal(err)
		}
	}
	if k := kindsOf(w.timeline(tk2.ID)); k != "issue,use,refund" {
		t.Fatalf("timeline %s after two refunds of one use", k)
	}
}

// testRecordsAtomic: a record is part of its Update. One that fails keeps none
// of the records it appended; ids a failed Update took are not reused out of
// order. A store that numbers records after their commit
// (daodian.RecordSequencer) sets no ID in AppendRecord; one that numbers them
// in the Update sets increasing ids, those the timeline shows.
func testRecordsAtomic(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	_, numbersLater := w.Store.(daodian.RecordSequencer)
	tk := w.Issue(1, 1).Tickets[0]
	before := w.recordCount()
	boom := errors.New("boom")
	err := w.Store.Update(w.Ctx, func(tx daodian.Tx) error {
		r := daodian.Record{At: w.Clock.Now(), Kind: daodian.RecordFence, MerchantID: M1, TicketID: tk.ID, AppKey: w.A.Key, RequestID: "x"}
		if err := tx.AppendRecord(w.Ctx, &r); err != nil {
			return err
		}
		if (r.ID == "") != numbersLater {
			return fmt.Errorf("AppendRecord set ID %q", r.ID)
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v, want boom", err)
	}
	if n := w.recordCount(); n != before {
		t.Fatalf("a failed Update kept %d records", n-before)
	}
	// Two records in one Update: both or none, in order.
	var ids []string
	must(t, w.Store.Update(w.Ctx, func(tx daodian.Tx) error {
		ids = ids[:0]
		for i := range 2 {
			r := daodian.Record{At: w.Clock.Now(), Kind: daodian.RecordFence, MerchantID: M1, TicketID: tk.ID, AppKey: w.A.Key, RequestID: fmt.Sprint("y", i)}
			if err := tx.AppendRecord(w.Ctx, &r); err != nil {
				return err
			}
			ids = append(ids, r.ID)
		}
		return nil
	}))
	if !numbersLater && !idAfter(ids[1], ids[0]) {
		t.Fatalf("ids in one Update %v do not increase", ids)
	}
	tl := w.timeline(tk.ID)
	if len(tl) != 3 || tl[1].RequestID != "y0" || tl[2].RequestID != "y1" || !idAfter(tl[2].ID, tl[1].ID) ||
		(!numbersLater && (tl[1].ID != ids[0] || tl[2].ID != ids[1])) {
		t.Fatalf("timeline %+v, want issue then the two records %v in order", tl, ids)
	}
}

func testGroupUseRecords(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	o := w.Issue(3, 1)
	u := w.MustUse(w.A, o.Tickets[1].Code, 2, "g1") // the queried ticket, then the first other
	mine := w.records(daodian.RecordQuery{MerchantID: M1, Kinds: []daodian.RecordKind{daodian.RecordUse}})
	if len(mine) != 2 {
		t.Fatalf("%d use records for a use of two tickets, want 2", len(mine))
	}
	for i, d := range u.Details {
		r := mine[i]
		if r.TicketID != d.TicketID || r.TransID != d.TransID || r.Units != d.Units || r.RequestID != "g1" ||
			r.BuyerPayCents != d.BuyerPayCents || r.ReceiptCents != d.ReceiptCents {
			t.Errorf("record %d %+v does not match part %+v", i, r, d)
		}
	}
	// Reversing the group's top-level id through another ticket reverses that part.
	if r := w.Reverse(w.A, "gr", o.Tickets[0].ID, u.TransID); !r.Success {
		t.Fatalf("%+v", r)
	}
	tl := w.timeline(o.Tickets[0].ID)
	if k := kindsOf(tl); k != "issue,use,reversal" || tl[2].TransID != u.Details[1].TransID {
		t.Fatalf("timeline of the second ticket %s %+v", k, tl)
	}
}

func testRecordsPaging(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	for range 5 {
		tk := w.Issue(1, 2).Tickets[0]
		w.MustUse(w.A, tk.Code, 1, "u-"+tk.ID)
		w.Reverse(w.A, "r-"+tk.ID, tk.ID, "")
	}
	all := w.records(daodian.RecordQuery{MerchantID: M1, Limit: daodian.MaxRecordsPage})
	if len(all) != 15 {
		t.Fatalf("%d records, want 15", len(all))
	}
	for _, limit := range []int{1, 2, 7, 14, 15, 16} {
		var got []daodian.Record
		cursor, pages := "", 0
		for {
			p, err := w.Ledger.Records(w.Ctx, daodian.RecordQuery{MerchantID: M1, Limit: limit}, cursor)
			must(t, err)
			pages++
			if len(p.Records) > limit {
				t.Fatalf("limit %d: a page of %d", limit, len(p.Records))
			}
			got = append(got, p.Records...)
			if p.NextCursor == "" {
				break
			}
			if len(p.Records) != limit {
				t.Fatalf("limit %d: a short page (%d) with a next cursor", limit, len(p.Records))
			}
			cursor = p.NextCursor
		}
		if !slices.Equal(got, all) {
			t.Fatalf("limit %d: pages list %s, want %s", limit, kindsOf(got), kindsOf(all))
		}
		if want := (15 + limit - 1) / limit; pages != want {
			t.Fatalf("limit %d: %d pages, want %d (the last page ends the listing)", limit, pages, want)
		}
	}
	for _, bad := range []int{-1, daodian.MaxRecordsPage + 1} {
		_, err := w.Ledger.Records(w.Ctx, daodian.RecordQuery{MerchantID: M1, Limit: bad}, "")
		var ip *daodian.InvalidParameter
		if !errors.As(err, &ip) || ip.Field != "limit" {
			t.Fatalf("limit %d: %v, want an invalid limit", bad, err)
		}
	}
	if _, err := w.Ledger.Records(w.Ctx, daodian.RecordQuery{MerchantID: "nobody"}, ""); !errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("records of an unknown merchant: %v, want ErrNotFound", err)
	}
}

// testRecordsPagingWhileWriting: paging from the first page to the last, while
// writers commit, lists every record committed before the first page exactly
// once, and never a record twice or out of order.
func testRecordsPagingWhileWriting(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	o := w.Issue(daodian.MaxTicketsPerOrder, 1)
	for i := range 40 {
		w.MustUse(w.A, o.Tickets[i].Code, 1, fmt.Sprintf("pre-%d", i))
	}
	before := w.records(daodian.RecordQuery{MerchantID: M1, Limit: daodian.MaxRecordsPage})
	ctx, cancel := context.WithCancel(w.Ctx)
	var wg sync.WaitGroup
	var writes atomic.Int32
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 40 + g; i < len(o.Tickets) && ctx.Err() == nil; i += 4 {
				tk := o.Tickets[i]
				if _, err := w.Use(w.A, tk.Code, 1, fmt.Sprintf("w-%d", i)); err == nil {
					writes.Add(1)
				}
				w.Ledger.Reverse(w.Ctx, w.A, daodian.ReverseRequest{RequestID: fmt.Sprintf("wr-%d", i), TicketID: tk.ID})
			}
		}()
	}
	var got []daodian.Record
	cursor := ""
	for {
		p, err := w.Ledger.Records(w.Ctx, daodian.RecordQuery{MerchantID: M1, Limit: 3}, cursor)
		if err != nil {
			cancel()
			wg.Wait()
			t.Fatal(err)
		}
		got = append(got, p.Records...)
		if p.NextCursor == "" {
			break
		}
		cursor = p.NextCursor
	}
	cancel()
	wg.Wait()
	seen := map[string]int{}
	for i, r := range got {
		seen[r.ID]++
		if seen[r.ID] > 1 {
			t.Fatalf("record %s listed twice", r.ID)
		}
		if i > 0 && !idAfter(r.ID, got[i-1].ID) {
			t.Fatalf("record %s listed after %s", r.ID, got[i-1].ID)
		}
	}
	for _, r := range before {
		if seen[r.ID] != 1 {
			t.Fatalf("record %s, committed before the first page, listed %d times", r.ID, seen[r.ID])
		}
	}
	t.Logf("%d records before, %d listed, %d uses written meanwhile", len(before), len(got), writes.Load())
}

func testRecordsFilters(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	must(t, w.Ledger.AddShop(w.Ctx, daodian.Shop{MerchantID: M1, ID: "shop-1b"}))
	day1 := w.Clock.Now()
	a := w.Issue(1, 2).Tickets[0]
	w.MustUse(w.A, a.Code, 1, "a1")
	w.Clock.Advance(24 * time.Hour)
	day2 := w.Clock.Now()
	b := w.Issue(1, 2).Tickets[0]
	if _, err := w.Ledger.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: b.Code, ShopID: "shop-1b", RequestID: "b1"}); err != nil {
		t.Fatal(err)
	}
	w.Reverse(w.A, "ra", a.ID, "")
	bTick := w.Issue(1, 1) // merchant M1 again: another issue
	_ = bTick
	cases := []struct {
		name string
		q    daodian.RecordQuery
		want string
	}{
		{"all", daodian.RecordQuery{}, "issue,use,issue,use,reversal,issue"},
		{"shop", daodian.RecordQuery{ShopID: S1}, "use,reversal"},
		{"other shop", daodian.RecordQuery{ShopID: "shop-1b"}, "use"},
		{"kinds", daodian.RecordQuery{Kinds: []daodian.RecordKind{daodian.RecordReversal, daodian.RecordUse}}, "use,use,reversal"},
		{"from", daodian.RecordQuery{From: day2}, "issue,use,reversal,issue"},
		{"to", daodian.RecordQuery{To: day2}, "issue,use"},
		{"from to", daodian.RecordQuery{From: day1, To: day1.Add(time.Second)}, "issue,use"},
		{"empty range", daodian.RecordQuery{From: day2.Add(time.Hour), To: day2.Add(2 * time.Hour)}, ""},
		{"long before", daodian.RecordQuery{To: day1.Add(-48 * time.Hour)}, ""},
		{"long after", daodian.RecordQuery{From: day2.Add(72 * time.Hour)}, ""},
	}
	for _, c := range cases {
		c.q.MerchantID = M1
		for _, limit := range []int{1, 100} {
			c.q.Limit = limit
			if got := kindsOf(w.records(c.q)); got != c.want {
				t.Errorf("%s (limit %d): %s, want %s", c.name, limit, got, c.want)
			}
		}
	}
	if got := w.records(daodian.RecordQuery{MerchantID: M2}); len(got) != 0 {
		t.Errorf("merchant M2 sees %s", kindsOf(got))
	}
	for _, bad := range []daodian.RecordQuery{
		{MerchantID: M1, Kinds: []daodian.RecordKind{"nope"}},
		{MerchantID: M1, From: day2, To: day1},
		{MerchantID: ""},
	} {
		var ip *daodian.InvalidParameter
		if _, err := w.Ledger.Records(w.Ctx, bad, ""); !errors.As(err, &ip) {
			t.Errorf("%+v: %v, want an invalid parameter", bad, err)
		}
	}
}

func testRecordsCursor(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	for range 3 {
		w.Issue(1, 1)
	}
	q := daodian.RecordQuery{MerchantID: M1, Limit: 1}
	p, err := w.Ledger.Records(w.Ctx, q, "")
	must(t, err)
	if p.NextCursor == "" {
		t.Fatal("no next cursor")
	}
	other := q
	other.Kinds = []daodian.RecordKind{daodian.RecordIssue}
	tampered := []byte(p.NextCursor)
	tampered[len(tampered)-1] ^= 1
	for name, c := range map[string]struct {
		q      daodian.RecordQuery
		cursor string
	}{
		"another query's":    {other, p.NextCursor},
		"another merchant's": {daodian.RecordQuery{MerchantID: M2, Limit: 1}, p.NextCursor},
		"altered":            {q, string(tampered)},
		"not a cursor":       {q, "hello"},
		"empty-ish":          {q, "===="},
		"too long":           {q, strings.Repeat("A", 4096)},
	} {
		if _, err := w.Ledger.Records(w.Ctx, c.q, c.cursor); !errors.Is(err, daodian.ErrBadCursor) {
			t.Errorf("%s cursor: %v, want ErrBadCursor", name, err)
		}
	}
	// A different page size is the same query.
	q.Limit = 2
	if p2, err := w.Ledger.Records(w.Ctx, q, p.NextCursor); err != nil || len(p2.Records) != 2 {
		t.Fatalf("same query, larger page: %+v %v", p2, err)
	}
}

func testTicketHistory(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	tk := w.Issue(1, 1).Tickets[0]
	w.MustUse(w.A, tk.Code, 1, "u1")
	byCode, err := w.Ledger.TicketHistory(w.Ctx, "", tk.Code, "")
	must(t, err)
	byID, err := w.Ledger.TicketHistory(w.Ctx, tk.ID, "", M1)
	must(t, err)
	if byCode.Ticket.ID != tk.ID || byCode.Ticket.Available != 0 || kindsOf(byCode.Timeline) != "issue,use" ||
		kindsOf(byID.Timeline) != "issue,use" {
		t.Fatalf("by code %+v, by id %+v", byCode, byID)
	}
	if _, err := w.Ledger.TicketHistory(w.Ctx, tk.ID, "", M2); !errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("another merchant's ticket: %v, want ErrNotFound (like a missing one)", err)
	}
	if _, err := w.Ledger.TicketHistory(w.Ctx, "2100000000000999999", "", ""); !errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("missing ticket: %v", err)
	}
	for _, bad := range [][2]string{{"", ""}, {"12x", ""}, {"", "code!"}} {
		var ip *daodian.InvalidParameter
		if _, err := w.Ledger.TicketHistory(w.Ctx, bad[0], bad[1], ""); !errors.As(err, &ip) {
			t.Errorf("%q: %v, want an invalid parameter", bad, err)
		}
	}
}

func testStatement(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	must(t, w.Ledger.AddShop(w.Ctx, daodian.Shop{MerchantID: M1, ID: "shop-1b"}))
	// 2026-11-01 18:00 GMT+8 is day 1; a day later, day 2.
	day1 := daodian.DayString(daodian.Day(w.Clock.Now()))
	card := w.Issue(1, 3).Tickets[0] // 3300 paid, 2933 received a unit (the unit that empties it 2934)
	single := w.Issue(1, 1).Tickets[0]
	u1 := w.MustUse(w.A, card.Code, 2, "u1")
	if _, err := w.Ledger.Use(w.Ctx, w.A, daodian.UseRequest{TicketCode: single.Code, ShopID: "shop-1b", RequestID: "u2"}); err != nil {
		t.Fatal(err)
	}
	w.Clock.Advance(24 * time.Hour)
	day2 := daodian.DayString(daodian.Day(w.Clock.Now()))
	w.Reverse(w.A, "r1", card.ID, u1.TransID) // day 2 reverses a use of day 1
	if _, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: mustUseTrans(t, w, single.ID), TicketCode: single.Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}
	w.MustUse(w.A, card.Code, 1, "u3")

	s1, err := w.Ledger.Statement(w.Ctx, M1, day1, "")
	must(t, err)
	line := func(shop string, uses, uu, ur, revs, ru, rr, refs, fu, fr int64) daodian.StatementLine {
		return daodian.StatementLine{ShopID: shop, Uses: uses, UsedUnits: uu, UsedReceiptCents: ur,
			Reversals: revs, ReversedUnits: ru, ReversedReceiptCents: rr, Refunds: refs, RefundedUnits: fu, RefundedReceiptCents: fr,
			NetUnits: uu - ru, NetReceiptCents: ur - rr - fr}
	}
	want1 := &daodian.Statement{MerchantID: M1, Date: day1, Shops: []daodian.StatementLine{
		line(S1, 1, 2, 5866, 0, 0, 0, 0, 0, 0),
		line("shop-1b", 1, 1, 8800, 0, 0, 0, 0, 0, 0),
	}, Total: line("", 2, 3, 14666, 0, 0, 0, 0, 0, 0)}
	sameStatement(t, "day 1", s1, want1)
	s2, err := w.Ledger.Statement(w.Ctx, M1, day2, "")
	must(t, err)
	want2 := &daodian.Statement{MerchantID: M1, Date: day2, Shops: []daodian.StatementLine{
		line(S1, 1, 1, 2933, 1, 2, 5866, 0, 0, 0),
		line("shop-1b", 0, 0, 0, 0, 0, 0, 1, 1, 8800),
	}, Total: line("", 1, 1, 2933, 1, 2, 5866, 1, 1, 8800)}
	sameStatement(t, "day 2", s2, want2)
	one, err := w.Ledger.Statement(w.Ctx, M1, day2, "shop-1b")
	must(t, err)
	sameStatement(t, "day 2, one shop", one, &daodian.Statement{MerchantID: M1, Date: day2,
		Shops: want2.Shops[1:], Total: line("", 0, 0, 0, 0, 0, 0, 1, 1, 8800)})
	empty, err := w.Ledger.Statement(w.Ctx, M1, "2020-01-01", "")
	must(t, err)
	sameStatement(t, "a day without records", empty, &daodian.Statement{MerchantID: M1, Date: "2020-01-01"})
	if _, err := w.Ledger.Statement(w.Ctx, "nobody", day1, ""); !errors.Is(err, daodian.ErrNotFound) {
		t.Errorf("unknown merchant: %v", err)
	}
	for _, bad := range []string{"", "2026-13-01", "2026-02-30", "20261101", "2026-11-1", "2026-11-01T00:00:00"} {
		var ip *daodian.InvalidParameter
		if _, err := w.Ledger.Statement(w.Ctx, M1, bad, ""); !errors.As(err, &ip) {
			t.Errorf("date %q: %v, want an invalid parameter", bad, err)
		}
	}
}

func mustUseTrans(t *testing.T, w *World, ticketID string) string {
	t.Helper()
	for _, r := range w.timeline(ticketID) {
		if r.Kind == daodian.RecordUse {
			return r.TransID
		}
	}
	t.Fatalf("ticket %s has no use", ticketID)
	return ""
}

func sameStatement(t *testing.T, what string, got, want *daodian.Statement) {
	t.Helper()
	if got.MerchantID != want.MerchantID || got.Date != want.Date || got.Total != want.Total || !slices.Equal(got.Shops, want.Shops) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testReconcile(t *testing.T, f Factory) {
	w := historyWorld(t, f)
	day := daodian.DayString(daodian.Day(w.Clock.Now()))
	o := w.Issue(6, 2)
	tk := o.Tickets
	used := w.MustUse(w.A, tk[0].Code, 1, "used")
	rev := w.MustUse(w.A, tk[1].Code, 2, "reversed")
	refunded := w.MustUse(w.A, tk[2].Code, 1, "refunded")
	w.MustUse(w.A, tk[3].Code, 1, "not-at-pos")
	wrongUnits := w.MustUse(w.A, tk[4].Code, 2, "units")
	twice := w.MustUse(w.A2, tk[5].Code, 1, "same-key") // two apps, one key
	twice2 := w.MustUse(w.A, tk[5].Code, 1, "same-key")
	if _, err := w.Use(w.A, tk[0].Code, 5, "refused"); err == nil {
		t.Fatal("a use of 5 units of a 2-unit ticket succeeded")
	}
	w.Clock.Advance(24 * time.Hour) // what becomes of a use later still counts
	w.Reverse(w.A, "r1", tk[1].ID, rev.TransID)
	if _, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: refunded.TransID, TicketCode: tk[2].Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}
	w.MustUse(w.A, tk[3].Code, 1, "next-day") // another day: not in this reconciliation
	pos := []daodian.POSLine{
		{Line: 2, RequestID: "used", Status: daodian.StatusUsed, Units: 1},
		{Line: 3, RequestID: "reversed", Status: daodian.StatusUsed},
		{Line: 4, RequestID: "refunded", Status: daodian.StatusRefunded},
		{Line: 5, RequestID: "refused", Status: daodian.StatusUsed},
		{Line: 6, RequestID: "units", Status: daodian.StatusUsed, Units: 1},
		{Line: 7, RequestID: "same-key", TransID: twice2.TransID, Status: daodian.StatusUsed},
		{Line: 8, RequestID: "same-key", TransID: twice.TransID, Status: daodian.StatusUsed},
		{Line: 9, RequestID: "ghost", TransID: used.TransID, Status: daodian.StatusUsed},
	}
	before := w.Snap()
	rec, err := w.Ledger.Reconcile(w.Ctx, M1, day, pos)
	must(t, err)
	if d := before.Diff(w.Snap(), true); d != "" {
		t.Fatalf("reconciling wrote to the ledger: %s", d)
	}
	want := []daodian.Difference{
		{Kind: daodian.DiffStatusMismatch, RequestID: "reversed", TransID: rev.TransID, POSStatus: "used", LedgerStatus: "reversed", LedgerUnits: 2, POSLine: 3},
		{Kind: daodian.DiffMissingInLedger, RequestID: "refused", POSStatus: "used", POSLine: 5},
		{Kind: daodian.DiffUnitsMismatch, RequestID: "units", TransID: wrongUnits.TransID, POSStatus: "used", LedgerStatus: "used", POSUnits: 1, LedgerUnits: 2, POSLine: 6},
		{Kind: daodian.DiffMissingInLedger, RequestID: "ghost", TransID: used.TransID, POSStatus: "used", POSLine: 9},
		{Kind: daodian.DiffMissingInPOS, RequestID: "not-at-pos", TransID: mustUseTrans(t, w, tk[3].ID), LedgerStatus: "used", LedgerUnits: 1},
	}
	if rec.Matched != 4 || !slices.Equal(rec.Differences, want) {
		t.Fatalf("matched %d, differences:\n%+v\nwant 4 and\n%+v", rec.Matched, rec.Differences, want)
	}
	empty, err := w.Ledger.Reconcile(w.Ctx, M1, "2020-01-01", nil)
	if err != nil || empty.Matched != 0 || len(empty.Differences) != 0 {
		t.Fatalf("a day without uses: %+v %v", empty, err)
	}
	if _, err := w.Ledger.Reconcile(w.Ctx, "nobody", day, pos); !errors.Is(err, daodian.ErrNotFound) {
		t.Fatalf("unknown merchant: %v", err)
	}
}

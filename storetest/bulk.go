package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/daodian/daodian"
)

// The bulk writes of issuing (daodian.Tx: NewIDs, InsertOrders, InsertTickets,
// AppendRecords). A store may write them quite differently from the single-row
// writes (PostgreSQL: COPY, and tickets through a staging table), so the
// contract holds them to the same outcomes.

// testNewIDs: n ids in one call are fresh, increasing, after the ids taken
// before and before those taken after; n out of range is refused.
func testNewIDs(t *testing.T, f Factory) {
	s := f.Open(t)
	var before, got, after string
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		var err error
		if before, err = tx.NewID(ctx); err != nil {
			return err
		}
		ids, err := tx.NewIDs(ctx, 300)
		if err != nil {
			return err
		}
		if len(ids) != 300 {
			return fmt.Errorf("NewIDs(300) returned %d ids", len(ids))
		}
		prev := before
		for _, id := range ids {
			checkID(t, id)
			if !idAfter(id, prev) {
				return fmt.Errorf("NewIDs: %s after %s, want increasing", id, prev)
			}
			prev = id
		}
		got = prev
		if after, err = tx.NewID(ctx); err != nil {
			return err
		}
		return nil
	})
	if !idAfter(after, got) {
		t.Errorf("NewID after NewIDs: %s, not after %s", after, got)
	}
	for _, n := range []int{0, -1, daodian.MaxBulkRows + 1} {
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
			_, err := tx.NewIDs(ctx, n)
			return err
		})
		if err == nil {
			t.Errorf("NewIDs(%d) succeeded", n)
		}
	}
}

// testInsertOrders: orders in one call are stored as InsertOrder stores them; a
// sub-order number stored already, or repeated in the call, is ErrDuplicate,
// and the Update keeps nothing.
func testInsertOrders(t *testing.T, f Factory) {
	s := f.Open(t)
	os := []daodian.Order{*order(1), *order(2), *order(3)}
	os[1].BuyerID, os[1].CreatedAt = "", at(0).AddDate(-30, 0, 0) // empty and far times come back as they went
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrders(ctx, os) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for i := range os {
			got, err := tx.Order(ctx, os[i].SubOrderNo)
			if err != nil {
				return err
			}
			same(t, "Order after InsertOrders", &os[i], got)
		}
		return nil
	})
	for name, batch := range map[string][]daodian.Order{
		"stored already":   {*order(4), *order(2)},
		"repeated in call": {*order(5), *order(6), *order(5)},
	} {
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrders(ctx, batch) })
		wantErr(t, "InsertOrders("+name+")", err, daodian.ErrDuplicate)
	}
	if c := counts(t, s); c.Orders != 3 {
		t.Errorf("Counts.Orders = %d, want 3: a refused InsertOrders kept rows", c.Orders)
	}
}

// testInsertTickets: tickets in one call are stored as InsertTicket stores
// them, except those whose code is taken — by a stored ticket or by another
// ticket of the call — which are reported by index and not written, while
// the transaction goes on and can insert them under other codes; a repeated
// id is ErrDuplicate and the Update keeps nothing.
func testInsertTickets(t *testing.T, f Factory) {
	s := f.Open(t)
	stored := ticket(1, "S000001")
	insertTickets(t, s, stored)

	batch := make([]daodian.Ticket, 6)
	for i := range batch {
		batch[i] = *ticket(10+i, "S000002")
	}
	batch[1].Code = stored.Code   // taken by a stored ticket
	batch[4].Code = batch[2].Code // taken within the call: one of the two is written
	var taken []int
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		var err error
		if taken, err = tx.InsertTickets(ctx, batch); err != nil {
			return err
		}
		if len(taken) != 2 || taken[0] != 1 || (taken[1] != 2 && taken[1] != 4) {
			return fmt.Errorf("InsertTickets reported %v taken, want [1 2] or [1 4]", taken)
		}
		// Read your writes, then redraw the taken ones as issuing does.
		for i := range batch {
			if slices.Contains(taken, i) {
				continue
			}
			got, err := tx.TicketByCode(ctx, batch[i].Code)
			if err != nil {
				return fmt.Errorf("ticket %d of the call, inside the Update: %w", i, err)
			}
			same(t, "TicketByCode inside the Update", &batch[i], got)
		}
		for _, i := range taken {
			batch[i].Code = fmt.Sprintf("9%011d", i)
			if err := tx.InsertTicket(ctx, &batch[i]); err != nil {
				return fmt.Errorf("ticket %d under a new code: %w", i, err)
			}
		}
		return nil
	})
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range append([]daodian.Ticket{*stored}, batch...) {
			got, err := tx.Ticket(ctx, want.ID)
			if err != nil {
				return fmt.Errorf("ticket %s: %w", want.ID, err)
			}
			same(t, "Ticket after InsertTickets", &want, got)
		}
		return nil
	})

	dupID := []daodian.Ticket{*ticket(20, "S000003"), *ticket(21, "S000003")}
	dupID[1].ID = batch[0].ID
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		_, err := tx.InsertTickets(ctx, dupID)
		return err
	})
	wantErr(t, "InsertTickets(stored id)", err, daodian.ErrDuplicate)
	if c := counts(t, s); c.Tickets != 7 {
		t.Errorf("Counts.Tickets = %d, want 7: a refused InsertTickets kept rows", c.Tickets)
	}
	// Two calls in one Update: the second is not confused by the first.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range 2 {
			tk := *ticket(30+i, "S000004")
			tk.Code = batch[3].Code // taken by the first Update
			taken, err := tx.InsertTickets(ctx, []daodian.Ticket{tk})
			if err != nil {
				return err
			}
			if len(taken) != 1 {
				return fmt.Errorf("call %d: %v taken, want [0]", i, taken)
			}
		}
		return nil
	})
	if c := counts(t, s); c.Tickets != 7 {
		t.Errorf("Counts.Tickets = %d, want 7", c.Tickets)
	}
}

// testBulkKeepsNothing: an Update that fails after bulk writes — orders,
// tickets, records all written — keeps none of them; limits are enforced.
func testBulkKeepsNothing(t *testing.T, f Factory) {
	s := f.Open(t)
	boom := errors.New("boom")
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertOrders(ctx, []daodian.Order{*order(1)}); err != nil {
			return err
		}
		tks := []daodian.Ticket{*ticket(1, "S000001"), *ticket(2, "S000001")}
		if _, err := tx.InsertTickets(ctx, tks); err != nil {
			return err
		}
		rs := []daodian.Record{
			{At: at(1), Kind: daodian.RecordIssue, MerchantID: "M001", TicketID: tid(1), Units: 10},
			{At: at(1), Kind: daodian.RecordIssue, MerchantID: "M001", TicketID: tid(2), Units: 10},
		}
		if err := tx.AppendRecords(ctx, rs); err != nil {
			return err
		}
		return boom
	})
	wantErr(t, "Update after bulk writes", err, boom)
	if c := counts(t, s); c != (daodian.Counts{}) {
		t.Errorf("a failed Update kept %+v", c)
	}

	tooMany := make([]daodian.Ticket, daodian.MaxBulkRows+1)
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		_, err := tx.InsertTickets(ctx, tooMany)
		return err
	})
	if err == nil {
		t.Error("InsertTickets of more than MaxBulkRows succeeded")
	}
}

// testAppendRecords: records in one call are appended as AppendRecord appends
// them one by one, in order; a store that numbers records in the Update gives
// them increasing ids, one that numbers them later none.
func testAppendRecords(t *testing.T, f Factory) {
	s := f.Open(t)
	_, numbersLater := s.(daodian.RecordSequencer)
	rs := []daodian.Record{
		{At: at(1), Kind: daodian.RecordIssue, MerchantID: "M001", TicketID: tid(1), Units: 10, BuyerPayCents: 100, ReceiptCents: 90},
		{At: at(2), Kind: daodian.RecordUse, MerchantID: "M001", ShopID: "shop-1", TicketID: tid(1), TransID: tid(9),
			RequestID: "r1", AppKey: "app", Units: 2, BizTime: at(2), BuyerPayCents: 20, ReceiptCents: 18},
		{At: at(3), Kind: daodian.RecordFence, MerchantID: "M001", TicketID: tid(1), RequestID: "r2", AppKey: "app", BizTime: at(3)},
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.AppendRecords(ctx, rs); err != nil {
			return err
		}
		for i := range rs {
			if (rs[i].ID == "") != numbersLater || (i > 0 && !numbersLater && !idAfter(rs[i].ID, rs[i-1].ID)) {
				return fmt.Errorf("AppendRecords set IDs %q, %q, %q", rs[0].ID, rs[1].ID, rs[2].ID)
			}
		}
		return nil
	})
	var got []daodian.Record
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		got, err = tx.TicketRecords(ctx, tid(1))
		return err
	})
	if len(got) != len(rs) {
		t.Fatalf("%d records, want %d", len(got), len(rs))
	}
	for i := range rs {
		want := rs[i]
		if numbersLater {
			got[i].ID = ""
		}
		if !got[i].At.Equal(want.At) || !got[i].BizTime.Equal(want.BizTime) {
			t.Errorf("record %d: times %v, %v; want %v, %v", i, got[i].At, got[i].BizTime, want.At, want.BizTime)
		}
		got[i].At, got[i].BizTime = want.At, want.BizTime
		if got[i] != want {
			t.Errorf("record %d:\n got %+v\nwant %+v", i, got[i], want)
		}
	}
}

// testIssueManyInBulk: a batch of more tickets than one bulk write takes is
// issued whole, with the ids of each order taken in order (order number,
// sub-order number, item id, then its tickets), a distinct code per ticket and
// one issue record per ticket in ticket order; a batch whose commit fails
// keeps nothing of what its bulk writes wrote.
func testIssueManyInBulk(t *testing.T, f Factory) {
	w := ledgerWorld(t, f)
	const perOrder = 5
	orders := daodian.MaxBulkRows/perOrder + 7 // the tickets span three bulk writes
	reqs := make([]daodian.IssueRequest, orders)
	for i := range reqs {
		reqs[i] = daodian.IssueRequest{MerchantID: M1, Count: perOrder, Quantity: 1 + i%3, TotalAmountCents: 100}
		if i%2 == 1 {
			reqs[i].MerchantID, reqs[i].ItemID = "m-new", fmt.Sprint("item-", i)
		}
	}
	before := counts(t, w.Store)
	failing := &FailingStore{Store: w.Store}
	failing.FailNext(1)
	_, err := daodian.NewLedger(failing, daodian.Config{Clock: w.Clock.Now}).IssueMany(w.Ctx, slices.Clone(reqs))
	if err == nil {
		t.Fatal("IssueMany succeeded although its commit failed")
	}
	if c := counts(t, w.Store); c != before {
		t.Fatalf("a failed IssueMany kept rows: %+v, before %+v", c, before)
	}

	issued, err := w.Ledger.IssueMany(w.Ctx, reqs)
	must(t, err)
	if len(issued) != orders {
		t.Fatalf("%d orders issued, want %d", len(issued), orders)
	}
	codes := make(map[string]bool)
	last := ""
	var ticketIDs []string
	for i, o := range issued {
		ids := []string{o.Order.OrderNo, o.Order.SubOrderNo}
		if reqs[i].ItemID == "" {
			ids = append(ids, o.Order.ItemID)
		} else if o.Order.ItemID != reqs[i].ItemID {
			t.Fatalf("order %d: item id %q, want %q", i, o.Order.ItemID, reqs[i].ItemID)
		}
		if len(o.Tickets) != perOrder {
			t.Fatalf("order %d: %d tickets, want %d", i, len(o.Tickets), perOrder)
		}
		for _, tk := range o.Tickets {
			ids = append(ids, tk.ID)
			ticketIDs = append(ticketIDs, tk.ID)
			if codes[tk.Code] || len(tk.Code) != 12 {
				t.Fatalf("code %q repeated or malformed", tk.Code)
			}
			codes[tk.Code] = true
			if tk.SubOrderNo != o.Order.SubOrderNo || tk.MerchantID != reqs[i].MerchantID || tk.Quantity != reqs[i].Quantity {
				t.Fatalf("order %d: ticket %+v does not match its order %+v", i, tk, o.Order)
			}
		}
		for _, id := range ids {
			if !idAfter(id, last) {
				t.Fatalf("order %d: id %s after %s: ids are not taken in order", i, id, last)
			}
			last = id
		}
	}
	after := counts(t, w.Store)
	if after.Orders-before.Orders != orders || after.Tickets-before.Tickets != orders*perOrder ||
		after.Records-before.Records != orders*perOrder || after.Merchants != before.Merchants+1 {
		t.Fatalf("counts %+v after %+v", after, before)
	}
	// Spot checks across the bulk writes' boundaries: each ticket as issued,
	// readable by its code, with its one issue record.
	for _, i := range []int{0, daodian.MaxBulkRows - 1, daodian.MaxBulkRows, len(ticketIDs) - 1} {
		o := issued[i/perOrder]
		want := o.Tickets[i%perOrder]
		var got *daodian.Ticket
		var recs []daodian.Record
		view(t, w.Store, func(ctx context.Context, tx daodian.ReadTx) error {
			var err error
			if got, err = tx.TicketByCode(ctx, want.Code); err != nil {
				return err
			}
			recs, err = tx.TicketRecords(ctx, want.ID)
			return err
		})
		same(t, "issued ticket", &want, got)
		if len(recs) != 1 || recs[0].Kind != daodian.RecordIssue || recs[0].Units != want.Quantity ||
			recs[0].MerchantID != want.MerchantID || recs[0].BuyerPayCents != 100 {
			t.Fatalf("ticket %d: records %+v, want its issue", i, recs)
		}
	}
	// Records follow the tickets' order.
	var recTickets []string
	view(t, w.Store, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachRecord(ctx, func(r *daodian.Record) error {
			if r.Kind == daodian.RecordIssue {
				recTickets = append(recTickets, r.TicketID)
			}
			return nil
		})
	})
	if !slices.Equal(recTickets[len(recTickets)-len(ticketIDs):], ticketIDs) {
		t.Fatal("the issue records do not follow the tickets' order")
	}
	w.Audit()
}

// The row-level contract: each kind of row written and read back, its not-found
// and duplicate errors.

package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

func testMerchant(t *testing.T, f Factory) {
	s := f.Open(t)
	m := merchant(1)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutMerchant(ctx, m) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Merchant(ctx, m.ID)
		if err != nil {
			return err
		}
		same(t, "Merchant", m, got)
		_, err = tx.Merchant(ctx, "M999")
		wantErr(t, "Merchant(missing)", err, daodian.ErrNotFound)
		return nil
	})
	// PutMerchant on an existing id updates its name.
	renamed := &daodian.Merchant{ID: m.ID, Name: "renamed"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutMerchant(ctx, renamed) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Merchant(ctx, m.ID)
		if err != nil {
			return err
		}
		same(t, "renamed Merchant", renamed, got)
		return nil
	})
	if c := counts(t, s); c.Merchants != 1 {
		t.Errorf("Counts.Merchants = %d, want 1", c.Merchants)
	}
}

func testShop(t *testing.T, f Factory) {
	s := f.Open(t)
	sh := &daodian.Shop{MerchantID: "M001", ID: "shop-1", Name: "西湖店"}
	other := &daodian.Shop{MerchantID: "M002", ID: "shop-1", Name: "same id, other merchant"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertShop(ctx, sh); err != nil {
			return err
		}
		return tx.InsertShop(ctx, other)
	})
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: "shop-1", Name: "dup"})
	})
	wantErr(t, "InsertShop(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Shop(ctx, "M001", "shop-1")
		if err != nil {
			return err
		}
		same(t, "Shop", sh, got)
		got, err = tx.Shop(ctx, "M002", "shop-1")
		if err != nil {
			return err
		}
		same(t, "Shop(other merchant)", other, got)
		_, err = tx.Shop(ctx, "M001", "shop-2")
		wantErr(t, "Shop(missing)", err, daodian.ErrNotFound)
		_, err = tx.Shop(ctx, "M003", "shop-1")
		wantErr(t, "Shop(other merchant missing)", err, daodian.ErrNotFound)
		return nil
	})
}

func testApp(t *testing.T, f Factory) {
	s := f.Open(t)
	a := &daodian.App{
		Key:           "app-1",
		Secret:        "s3cr3t-0123456789abcdef",
		Name:          "POS 收银",
		Merchants:     []string{"M001", "M002"},
		Enabled:       true,
		Methods:       []string{"alibaba.alsc.daodian.ticket.reserve", "taobao.time.get"},
		RateLimitPerS: 250,
		CreatedAt:     at(2),
	}
	bare := &daodian.App{Key: "app-2", Secret: "x", Name: "bare"} // empty lists, disabled, zero time
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertApp(ctx, a); err != nil {
			return err
		}
		return tx.InsertApp(ctx, bare)
	})
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.InsertApp(ctx, &daodian.App{Key: "app-1", Secret: "other"})
	})
	wantErr(t, "InsertApp(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.App(ctx, "app-1")
		if err != nil {
			return err
		}
		same(t, "App", a, got)
		got, err = tx.App(ctx, "app-2")
		if err != nil {
			return err
		}
		same(t, "App(bare)", bare, got)
		if !got.CreatedAt.IsZero() {
			t.Errorf("zero CreatedAt read back as %v", got.CreatedAt)
		}
		_, err = tx.App(ctx, "app-9")
		wantErr(t, "App(missing)", err, daodian.ErrNotFound)
		return nil
	})

	// UpdateApp replaces the mutable fields and nothing else.
	changed := &daodian.App{
		Key:           "app-1",
		Secret:        "ignored",
		Name:          "renamed",
		Merchants:     []string{"M003"},
		Enabled:       false,
		Methods:       nil,
		RateLimitPerS: 0,
		CreatedAt:     at(99),
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.UpdateApp(ctx, changed) })
	want := *changed
	want.Secret, want.CreatedAt = a.Secret, a.CreatedAt
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.App(ctx, "app-1")
		if err != nil {
			return err
		}
		same(t, "updated App", &want, got)
		return nil
	})
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.UpdateApp(ctx, &daodian.App{Key: "app-9", Name: "nobody"})
	})
	wantErr(t, "UpdateApp(missing)", err, daodian.ErrNotFound)
}

func testOrder(t *testing.T, f Factory) {
	s := f.Open(t)
	o := order(1)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrder(ctx, o) })
	dup := order(2)
	dup.SubOrderNo = o.SubOrderNo
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrder(ctx, dup) })
	wantErr(t, "InsertOrder(duplicate sub-order)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Order(ctx, o.SubOrderNo)
		if err != nil {
			return err
		}
		same(t, "Order", o, got)
		_, err = tx.Order(ctx, "S999999")
		wantErr(t, "Order(missing)", err, daodian.ErrNotFound)
		return nil
	})
}

func testTicket(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	zero := ticket(2, "S000001")
	zero.ValidFrom, zero.ValidTo, zero.CreatedAt = time.Time{}, time.Time{}, time.Time{}
	zero.Status = daodian.TicketRefunded
	zero.Quantity, zero.Available = 1, 0
	insertTickets(t, s, tk, zero)

	dupID := ticket(3, "S000001")
	dupID.ID = tk.ID
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertTicket(ctx, dupID) })
	wantErr(t, "InsertTicket(duplicate id)", err, daodian.ErrDuplicate)
	dupCode := ticket(4, "S000001")
	dupCode.Code = tk.Code
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertTicket(ctx, dupCode) })
	wantErr(t, "InsertTicket(duplicate code)", err, daodian.ErrDuplicate)
	// Issuing relies on this: a taken code is reported, nothing is written, and
	// the transaction goes on to insert the ticket under another code.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, dupCode); !errors.Is(err, daodian.ErrDuplicate) {
			return fmt.Errorf("InsertTicket(duplicate code) in a transaction: %v, want ErrDuplicate", err)
		}
		dupCode.Code = "S000004-second-try"
		return tx.InsertTicket(ctx, dupCode)
	})
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.TicketByCode(ctx, dupCode.Code)
		if err != nil {
			return err
		}
		same(t, "Ticket inserted after a taken code", dupCode, got)
		return nil
	})

	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.Ticket{tk, zero} {
			got, err := tx.Ticket(ctx, want.ID)
			if err != nil {
				return err
			}
			same(t, "Ticket", want, got)
			got, err = tx.TicketByCode(ctx, want.Code)
			if err != nil {
				return err
			}
			same(t, "TicketByCode", want, got)
		}
		_, err := tx.Ticket(ctx, tid(99))
		wantErr(t, "Ticket(missing)", err, daodian.ErrNotFound)
		_, err = tx.TicketByCode(ctx, code(99))
		wantErr(t, "TicketByCode(missing)", err, daodian.ErrNotFound)
		return nil
	})
	got := readTicket(t, s, zero.ID)
	if !got.ValidFrom.IsZero() || !got.ValidTo.IsZero() || !got.CreatedAt.IsZero() {
		t.Errorf("zero times read back as %v, %v, %v", got.ValidFrom, got.ValidTo, got.CreatedAt)
	}
	if c := counts(t, s); c.Tickets != 3 {
		t.Errorf("Counts.Tickets = %d, want 3 (two, and the one inserted after a taken code)", c.Tickets)
	}
}

// testTicketMerchant: a ticket's merchant, read in a View and inside an Update
// that holds another ticket, including a ticket that Update itself inserted.
func testTicketMerchant(t *testing.T, f Factory) {
	s := f.Open(t)
	a, b := ticket(1, "S000001"), ticket(2, "S000002")
	b.MerchantID = "m\x00 商户"
	insertTickets(t, s, a, b)
	check := func(ctx context.Context, tx daodian.ReadTx, tk *daodian.Ticket) error {
		got, err := tx.TicketMerchant(ctx, tk.ID)
		if err != nil {
			return fmt.Errorf("TicketMerchant(%s): %w", tk.ID, err)
		}
		if got != tk.MerchantID {
			t.Errorf("TicketMerchant(%s) = %q, want %q", tk.ID, got, tk.MerchantID)
		}
		return nil
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		if err := check(ctx, tx, a); err != nil {
			return err
		}
		_, err := tx.TicketMerchant(ctx, tid(99))
		wantErr(t, "TicketMerchant(missing)", err, daodian.ErrNotFound)
		return check(ctx, tx, b)
	})
	c := ticket(3, "S000003")
	c.MerchantID = "M003"
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if _, err := tx.Ticket(ctx, a.ID); err != nil {
			return err
		}
		if err := check(ctx, tx, b); err != nil {
			return err
		}
		if _, err := tx.TicketMerchant(ctx, tid(99)); !errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("TicketMerchant(missing) in Update: %v, want ErrNotFound", err)
		}
		if err := tx.InsertTicket(ctx, c); err != nil {
			return err
		}
		return check(ctx, tx, c)
	})
}

// testTicketLimits round-trips the extremes of every field.
func testTicketLimits(t *testing.T, f Factory) {
	s := f.Open(t)
	long := strings.Repeat("长", daodian.MaxNameLen)
	tk := &daodian.Ticket{
		ID:                 "9223372036854775807",
		Code:               "000000000000",
		MerchantID:         strings.Repeat("m", daodian.MaxShopIDLen),
		OrderNo:            "O'; DROP TABLE tickets; --",
		SubOrderNo:         "S\twith\x1fcontrol\u2028chars", // no NUL: PostgreSQL text cannot hold it
		ItemID:             "",
		OutItemID:          "🎟️",
		ItemName:           long,
		Quantity:           daodian.MaxQuantity,
		Available:          daodian.MaxQuantity,
		OriginalPriceCents: 1<<63 - 1,
		TotalAmountCents:   -1 << 63,
		RealAmountCents:    0,
		ValidFrom:          time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		ValidTo:            time.Date(2199, 1, 1, 0, 0, 0, 1000, cst),
		Status:             daodian.TicketCancelled,
		CreatedAt:          time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC), // before the epoch
	}
	insertTickets(t, s, tk)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		same(t, "Ticket", tk, got)
		list, err := tx.SubOrderTickets(ctx, tk.SubOrderNo)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			t.Fatalf("SubOrderTickets = %d tickets, want 1", len(list))
		}
		same(t, "SubOrderTickets[0]", tk, &list[0])
		return nil
	})
}

func testSetAvailable(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, 3) })
	if got := readTicket(t, s, tk.ID); got.Available != 3 {
		t.Errorf("Available = %d, want 3", got.Available)
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, tk.Quantity) })
	if got := readTicket(t, s, tk.ID); got.Available != tk.Quantity {
		t.Errorf("Available = %d, want %d", got.Available, tk.Quantity)
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, 0) })
	if got := readTicket(t, s, tk.ID); got.Available != 0 {
		t.Errorf("Available = %d, want 0", got.Available)
	}
	// The store refuses what would break 0 ≤ available ≤ quantity.
	for _, bad := range []int{-1, tk.Quantity + 1} {
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, bad) })
		if err == nil {
			t.Errorf("SetAvailable(%d) with quantity %d succeeded", bad, tk.Quantity)
		}
	}
	if got := readTicket(t, s, tk.ID); got.Available != 0 {
		t.Errorf("after refused SetAvailable: Available = %d, want 0", got.Available)
	}
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tid(99), 1) })
	wantErr(t, "SetAvailable(missing)", err, daodian.ErrNotFound)
}

func testSubOrderTickets(t *testing.T, f Factory) {
	s := f.Open(t)
	// Inserted out of id order, with another sub-order's tickets in between.
	var tks []*daodian.Ticket
	for _, n := range []int{30, 10, 50, 20, 40} {
		tks = append(tks, ticket(n, "S000001"))
		tks = append(tks, ticket(n+1, "S000002"))
	}
	insertTickets(t, s, tks...)
	var want []daodian.Ticket
	for _, n := range []int{10, 20, 30, 40, 50} {
		want = append(want, *ticket(n, "S000001"))
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.SubOrderTickets(ctx, "S000001")
		if err != nil {
			return err
		}
		same(t, "SubOrderTickets", want, got)
		got, err = tx.SubOrderTickets(ctx, "S999999")
		if err != nil {
			t.Errorf("SubOrderTickets(unknown) error: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("SubOrderTickets(unknown) = %d tickets, want 0", len(got))
		}
		return nil
	})
	// A full sub-order.
	var full []*daodian.Ticket
	for i := range daodian.MaxTicketsPerOrder {
		full = append(full, ticket(1000+i, "S000003"))
	}
	insertTickets(t, s, full...)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.SubOrderTickets(ctx, "S000003")
		if err != nil {
			return err
		}
		if len(got) != daodian.MaxTicketsPerOrder {
			t.Errorf("SubOrderTickets(full) = %d tickets, want %d", len(got), daodian.MaxTicketsPerOrder)
		}
		return nil
	})
}

// With no other transaction holding them, UseSiblings returns at least every
// sibling with units left and VALID, in id order; complete when asked for as
// many as there are, and whatever it says, never an unusable one alone.
func testUseSiblings(t *testing.T, f Factory) {
	s := f.Open(t)
	var tks []*daodian.Ticket
	for _, n := range []int{30, 10, 50, 20, 40, 60} {
		tks = append(tks, ticket(n, "S000001"))
	}
	tks[3].Available = 0                   // 20: used up
	tks[4].Status = daodian.TicketRefunded // 40: refunded
	insertTickets(t, s, tks...)
	queried := ticket(10, "S000001")
	usable := []string{tid(30), tid(50), tid(60)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		got, complete, err := tx.UseSiblings(ctx, queried, 10)
		if err != nil {
			return err
		}
		var ids []string
		for _, tk := range got {
			if tk.ID != queried.ID && tk.Available > 0 && tk.Status == daodian.TicketValid {
				ids = append(ids, tk.ID)
			}
		}
		if !slices.Equal(ids, usable) || !complete {
			t.Errorf("UseSiblings(need 10) usable = %v complete %v, want %v complete", ids, complete, usable)
		}
		for i := 1; i < len(got); i++ {
			if got[i-1].ID >= got[i].ID {
				t.Errorf("UseSiblings not in id order: %s before %s", got[i-1].ID, got[i].ID)
			}
		}
		// Asked for one: the first usable one comes first among the usable.
		got, _, err = tx.UseSiblings(ctx, queried, 1)
		if err != nil {
			return err
		}
		for _, tk := range got {
			if tk.ID != queried.ID && tk.Available > 0 && tk.Status == daodian.TicketValid {
				if tk.ID != usable[0] {
					t.Errorf("UseSiblings(need 1) first usable %s, want %s", tk.ID, usable[0])
				}
				break
			}
		}
		return nil
	})
}

func testUse(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	u := use(1, tk.ID, "app-1", 2)
	// A use may be recorded with its reversal and refund fields already set (an
	// import): they round-trip too.
	full := use(2, tk.ID, "app-1", 1)
	full.Reversed, full.ReversedAt, full.ReversalAppKey, full.ReversalRequestID, full.ReversalBizDate =
		true, at(5), "app-2", "req-rev-2", at(6)
	full.Refunded, full.RefundedAt, full.RefundAppKey, full.RefundRequestID = true, at(7), "app-3", "req-ref-2"
	insertUses(t, s, u, full)

	dup := use(3, tk.ID, "app-1", 1)
	dup.TransID = u.TransID
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertUse(ctx, dup) })
	wantErr(t, "InsertUse(duplicate trans id)", err, daodian.ErrDuplicate)

	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.Use{u, full} {
			got, err := tx.Use(ctx, want.TransID)
			if err != nil {
				return err
			}
			same(t, "Use", want, got)
			got, err = tx.GroupUse(ctx, want.GroupTransID, want.TicketID)
			if err != nil {
				return err
			}
			same(t, "GroupUse", want, got)
		}
		_, err := tx.Use(ctx, tid(999))
		wantErr(t, "Use(missing)", err, daodian.ErrNotFound)
		_, err = tx.GroupUse(ctx, u.GroupTransID, tid(999))
		wantErr(t, "GroupUse(other ticket)", err, daodian.ErrNotFound)
		_, err = tx.GroupUse(ctx, tid(999), u.TicketID)
		wantErr(t, "GroupUse(missing group)", err, daodian.ErrNotFound)
		return nil
	})

	// A group use: one row per ticket, sharing the group id.
	t2 := ticket(2, "S000001")
	insertTickets(t, s, t2)
	g1 := use(10, tk.ID, "app-1", 1)
	g2 := use(11, t2.ID, "app-1", 1)
	g2.GroupTransID = g1.GroupTransID
	insertUses(t, s, g1, g2)
	wantGroup(t, s, "GroupUse(group)", g1.GroupTransID, g1, g2)

	// A group use as the ledger makes it: the first ticket's use id is the
	// group's id, and the later tickets' uses name it.
	h1 := use(20, tk.ID, "app-1", 1)
	h1.GroupTransID = h1.TransID
	h2 := use(21, t2.ID, "app-1", 1)
	h2.GroupTransID = h1.TransID
	insertUses(t, s, h1, h2)
	wantGroup(t, s, "GroupUse(group led by its first use)", h1.TransID, h1, h2)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		// h2's own id names no group.
		_, err := tx.GroupUse(ctx, h2.TransID, t2.ID)
		wantErr(t, "GroupUse(a later use's id)", err, daodian.ErrNotFound)
		return nil
	})
}

// wantGroup fails unless GroupUse finds each of uses, a ticket's use made by
// the group-buy use groupTransID.
func wantGroup(t *testing.T, s daodian.Store, label, groupTransID string, uses ...*daodian.Use) {
	t.Helper()
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range uses {
			got, err := tx.GroupUse(ctx, groupTransID, want.TicketID)
			if err != nil {
				return err
			}
			same(t, label, want, got)
		}
		return nil
	})
}

func testMarkReversedRefunded(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	u := use(1, tk.ID, "app-1", 2)
	insertUses(t, s, u)

	rev := *u
	rev.Reversed, rev.ReversedAt, rev.ReversalAppKey, rev.ReversalRequestID, rev.ReversalBizDate =
		true, at(10), "app-2", "req-rev-1", at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, &rev) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Use(ctx, u.TransID)
		if err != nil {
			return err
		}
		same(t, "reversed Use", &rev, got)
		return nil
	})

	// MarkRefunded stores the refund fields and keeps the reversal ones.
	ref := rev
	ref.Refunded, ref.RefundedAt, ref.RefundAppKey, ref.RefundRequestID = true, at(11), "app-3", "req-ref-1"
	onlyRefund := *u // the refund fields on an otherwise stale copy
	onlyRefund.Refunded, onlyRefund.RefundedAt, onlyRefund.RefundAppKey, onlyRefund.RefundRequestID =
		ref.Refunded, ref.RefundedAt, ref.RefundAppKey, ref.RefundRequestID
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, &onlyRefund) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Use(ctx, u.TransID)
		if err != nil {
			return err
		}
		same(t, "refunded Use", &ref, got)
		return nil
	})

	missing := use(99, tk.ID, "app-1", 1)
	missing.Reversed, missing.Refunded = true, true
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, missing) })
	wantErr(t, "MarkReversed(missing)", err, daodian.ErrNotFound)
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, missing) })
	wantErr(t, "MarkRefunded(missing)", err, daodian.ErrNotFound)
}

func testLatestActiveUse(t *testing.T, f Factory) {
	s := f.Open(t)
	t1, t2 := ticket(1, "S000001"), ticket(2, "S000001")
	insertTickets(t, s, t1, t2)
	// Inserted out of id order: "latest" is the highest transaction id.
	u5 := use(5, t1.ID, "app-a", 1)
	u3 := use(3, t1.ID, "app-a", 1)
	u7 := use(7, t1.ID, "app-a", 1)
	u9 := use(9, t1.ID, "app-b", 1) // highest, other app
	u8 := use(8, t2.ID, "app-a", 1) // other ticket
	insertUses(t, s, u5, u9, u3, u7, u8)

	latest := func(ticketID, app string) (*daodian.Use, error) {
		var u *daodian.Use
		err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
			var err error
			u, err = tx.LatestActiveUse(context.Background(), ticketID, app)
			return err
		})
		return u, err
	}
	check := func(what, ticketID, app string, want *daodian.Use) {
		t.Helper()
		got, err := latest(ticketID, app)
		if want == nil {
			wantErr(t, what, err, daodian.ErrNotFound)
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		same(t, what, want, got)
	}
	check("latest(t1, a)", t1.ID, "app-a", u7)
	check("latest(t1, b)", t1.ID, "app-b", u9)
	check("latest(t2, a)", t2.ID, "app-a", u8)
	check("latest(t2, b)", t2.ID, "app-b", nil)
	check("latest(missing ticket)", tid(99), "app-a", nil)

	reverse := func(u *daodian.Use) {
		t.Helper()
		u.Reversed, u.ReversedAt, u.ReversalAppKey, u.ReversalRequestID = true, at(20), u.AppKey, "rev-"+u.TransID
		update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, u) })
	}
	reverse(u7)
	check("after reversing u7", t1.ID, "app-a", u5)
	// A refunded use is still active.
	u5.Refunded, u5.RefundedAt, u5.RefundAppKey, u5.RefundRequestID = true, at(21), "app-a", "ref-5"
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, u5) })
	check("after refunding u5", t1.ID, "app-a", u5)
	reverse(u3)
	check("after reversing u3", t1.ID, "app-a", u5)
	reverse(u5)
	check("after reversing all of app-a", t1.ID, "app-a", nil)
	check("app-b untouched", t1.ID, "app-b", u9)
}

func testActiveUnits(t *testing.T, f Factory) {
	s := f.Open(t)
	t1, t2 := ticket(1, "S000001"), ticket(2, "S000001")
	insertTickets(t, s, t1, t2)
	active := func(id string) int {
		t.Helper()
		var n int
		view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
			var err error
			n, err = tx.ActiveUnits(ctx, id)
			return err
		})
		return n
	}
	if n := active(t1.ID); n != 0 {
		t.Errorf("ActiveUnits(no uses) = %d, want 0", n)
	}
	if n := active(tid(99)); n != 0 {
		t.Errorf("ActiveUnits(missing ticket) = %d, want 0", n)
	}
	a, b, c := use(1, t1.ID, "app-a", 2), use(2, t1.ID, "app-b", 3), use(3, t1.ID, "app-a", 5)
	other := use(4, t2.ID, "app-a", 4)
	insertUses(t, s, a, b, c, other)
	if n := active(t1.ID); n != 10 {
		t.Errorf("ActiveUnits = %d, want 10", n)
	}
	b.Reversed, b.ReversedAt = true, at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, b) })
	if n := active(t1.ID); n != 7 {
		t.Errorf("ActiveUnits after a reversal = %d, want 7", n)
	}
	a.Refunded, a.RefundedAt = true, at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, a) })
	if n := active(t1.ID); n != 7 {
		t.Errorf("ActiveUnits after a refund = %d, want 7 (refunded units stay consumed)", n)
	}
	if n := active(t2.ID); n != 4 {
		t.Errorf("ActiveUnits(other ticket) = %d, want 4", n)
	}
}

func testFence(t *testing.T, f Factory) {
	s := f.Open(t)
	fe := &daodian.Fence{TicketID: tid(1), AppKey: "app-a", At: at(4), RequestID: "rev-1", CreatedAt: at(5)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutFence(ctx, fe) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Fence(ctx, fe.TicketID, fe.AppKey)
		if err != nil {
			return err
		}
		same(t, "Fence", fe, got)
		_, err = tx.Fence(ctx, fe.TicketID, "app-b")
		wantErr(t, "Fence(other app)", err, daodian.ErrNotFound)
		_, err = tx.Fence(ctx, tid(2), fe.AppKey)
		wantErr(t, "Fence(other ticket)", err, daodian.ErrNotFound)
		return nil
	})
	// PutFence replaces.
	moved := &daodian.Fence{TicketID: tid(1), AppKey: "app-a", At: at(8), RequestID: "rev-2", CreatedAt: at(9)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutFence(ctx, moved) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Fence(ctx, fe.TicketID, fe.AppKey)
		if err != nil {
			return err
		}
		same(t, "replaced Fence", moved, got)
		return nil
	})
	if c := counts(t, s); c.Fences != 1 {
		t.Errorf("Counts.Fences = %d, want 1", c.Fences)
	}
}

func testIdem(t *testing.T, f Factory) {
	s := f.Open(t)
	rec := idem("app-a", daodian.OpReverse, "req-1")
	empty := idem("app-a", daodian.OpUse, "req-1") // same request id, other operation
	empty.Answer, empty.TicketID, empty.Fingerprint = nil, "", ""
	otherApp := idem("app-b", daodian.OpReverse, "req-1")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, r := range []*daodian.IdemRecord{rec, empty, otherApp} {
			if err := tx.PutIdem(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	dup := idem("app-a", daodian.OpReverse, "req-1")
	dup.Answer, dup.Fingerprint = []byte("other"), "other"
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutIdem(ctx, dup) })
	wantErr(t, "PutIdem(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.IdemRecord{rec, empty, otherApp} {
			got, err := tx.Idem(ctx, want.IdemKey)
			if err != nil {
				return err
			}
			same(t, "Idem", want, got)
		}
		_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "app-a", Op: daodian.OpRefund, RequestID: "req-1"})
		wantErr(t, "Idem(missing)", err, daodian.ErrNotFound)
		return nil
	})
}

// ---- walks and counts ----

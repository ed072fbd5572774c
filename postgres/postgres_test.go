package postgres

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

var cst = time.FixedZone("CST", 8*3600)

// at is a time with nanoseconds in a non-UTC zone: the store keeps the instant to
// the microsecond.
func at(sec int) time.Time {
	return time.Date(2025, 3, 1, 10, 0, sec, 123456789, cst)
}

func micro(t time.Time) time.Time { return t.Truncate(time.Microsecond).UTC() }

func sampleTicket(id, code, subOrder string, qty int) *daodian.Ticket {
	return &daodian.Ticket{
		ID: id, Code: code, MerchantID: "m1", OrderNo: "o-" + subOrder, SubOrderNo: subOrder,
		ItemID: "item1", OutItemID: "out1", ItemName: "双人套餐", Quantity: qty, Available: qty,
		OriginalPriceCents: 10000, TotalAmountCents: 8800, RealAmountCents: 8000,
		ValidFrom: at(0), ValidTo: at(0).Add(30 * 24 * time.Hour), Status: daodian.TicketValid, CreatedAt: at(1),
	}
}

func sampleUse(transID, ticketID string, units int) *daodian.Use {
	return &daodian.Use{
		TransID: transID, GroupTransID: transID, TicketID: ticketID, AppKey: "app1", RequestID: "req-" + transID,
		ShopID: "shop1", Units: units, GmtBiz: at(2), CreatedAt: at(3),
	}
}

// normTicket, normUse… put the times of a value as the store returns them.
func normTicket(t daodian.Ticket) daodian.Ticket {
	t.ValidFrom, t.ValidTo, t.CreatedAt = micro(t.ValidFrom), micro(t.ValidTo), micro(t.CreatedAt)
	return t
}

func normUse(u daodian.Use) daodian.Use {
	for _, p := range []*time.Time{&u.GmtBiz, &u.CreatedAt, &u.ReversedAt, &u.ReversalBizDate, &u.RefundedAt} {
		if !p.IsZero() {
			*p = micro(*p)
		}
	}
	return u
}

func mustUpdate(t *testing.T, s *Store, fn func(tx daodian.Tx) error) {
	t.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func mustView(t *testing.T, s *Store, fn func(tx daodian.ReadTx) error) {
	t.Helper()
	if err := s.View(context.Background(), fn); err != nil {
		t.Fatal(err)
	}
}

func check(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func TestMigrationsIdempotentAndConcurrent(t *testing.T) {
	u := freshSchema(t)
	ctx := context.Background()
	// Two "processes": two pools opening the same empty schema at once.
	var wg sync.WaitGroup
	errs := make([]error, 4)
	stores := make([]*Store, 4)
	for i := range stores {
		wg.Go(func() { stores[i], errs[i] = openTest(ctx, u, Options{MaxConns: 2}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("open %d: %v", i, err)
		}
		defer stores[i].Close()
	}
	// And once more, on a migrated schema.
	s, err := openTest(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var versions []int
	rows, err := s.pool.Query(ctx, "SELECT version FROM schema_migrations ORDER BY version")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			t.Fatal(err)
		}
		versions = append(versions, v)
	}
	if rows.Err() != nil {
		t.Fatal(rows.Err())
	}
	want := make([]int, len(migrations))
	for i := range want {
		want[i] = i + 1
	}
	check(t, "versions", versions, want)

	// A schema migrated by a newer daodian is refused.
	if _, err := s.pool.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", len(migrations)+1); err != nil {
		t.Fatal(err)
	}
	if _, err := openTest(ctx, u, Options{}); err == nil || !strings.Contains(err.Error(), "upgrade daodian") {
		t.Fatalf("open of a newer schema: %v", err)
	}
}

func TestRoundTrip(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	m := &daodian.Merchant{ID: "m1", Name: "老王烧烤"}
	shop := &daodian.Shop{MerchantID: "m1", ID: "shop1", Name: "望京店"}
	app := &daodian.App{Key: "app1", Secret: "s3cr3t", Name: "POS", Merchants: []string{"m1", "m2"}, Enabled: true,
		Methods: []string{"a", "b"}, RateLimitPerS: 50, CreatedAt: at(4)}
	bare := &daodian.App{Key: "app2", Secret: "x", Name: "bare"} // nil lists, zero time
	order := &daodian.Order{OrderNo: "o1", SubOrderNo: "so1", MerchantID: "m1", BuyerID: "2088", UserPhone: "*******4139",
		ItemID: "item1", OutItemID: "out1", ItemName: "双人套餐", OriginalPriceCents: 1, TotalAmountCents: 2,
		RealAmountCents: 3, CreatedAt: at(5)}
	// Inserted out of id order: SubOrderTickets and EachTicket sort.
	t3 := sampleTicket("2100000000000000003", "100000000003", "so1", 3)
	t1 := sampleTicket("2100000000000000001", "100000000001", "so1", 1)
	t2 := sampleTicket("2100000000000000002", "100000000002", "so1", 5)
	t2.Status = daodian.TicketRefunded
	t2.ValidFrom = time.Time{}
	other := sampleTicket("2100000000000000009", "100000000009", "so2", 1)
	u1 := sampleUse("2200000000000000001", t2.ID, 2)
	u2 := sampleUse("2200000000000000002", t2.ID, 1)
	u3 := sampleUse("2200000000000000003", t3.ID, 1)
	u3.GroupTransID = u2.TransID
	u2.AppKey = "app2"
	fence := &daodian.Fence{TicketID: t1.ID, AppKey: "app1", At: at(6), RequestID: "rev1", CreatedAt: at(7)}
	rec := &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "app1", Op: daodian.OpReverse, RequestID: "rev1"},
		Fingerprint: t1.ID + "\x00", TicketID: t1.ID, Answer: []byte(`{"success":true}`), CreatedAt: at(8)} // the ledger's fingerprints hold NULs

	mustUpdate(t, s, func(tx daodian.Tx) error {
		for _, err := range []error{
			tx.PutMerchant(ctx, &daodian.Merchant{ID: "m1", Name: "old"}),
			tx.PutMerchant(ctx, m), // updates the name
			tx.InsertShop(ctx, shop), tx.InsertApp(ctx, app), tx.InsertApp(ctx, bare), tx.InsertOrder(ctx, order),
			tx.InsertTicket(ctx, t3), tx.InsertTicket(ctx, t1), tx.InsertTicket(ctx, t2), tx.InsertTicket(ctx, other),
			tx.InsertUse(ctx, u1), tx.InsertUse(ctx, u2), tx.InsertUse(ctx, u3),
			tx.PutFence(ctx, &daodian.Fence{TicketID: t1.ID, AppKey: "app1", At: at(0), RequestID: "old"}),
			tx.PutFence(ctx, fence), // replaces
			tx.PutIdem(ctx, rec),
			tx.SetAvailable(ctx, t2.ID, 2),
		} {
			if err != nil {
				return err
			}
		}
		return nil
	})
	t2.Available = 2

	reversed := *u1
	reversed.Reversed, reversed.ReversedAt, reversed.ReversalAppKey = true, at(9), "app1"
	reversed.ReversalRequestID, reversed.ReversalBizDate = "rev2", at(10)
	refunded := *u3
	refunded.Refunded, refunded.RefundedAt, refunded.RefundAppKey, refunded.RefundRequestID = true, at(11), "app1", "ref1"
	app.Name, app.Merchants, app.Enabled, app.Methods, app.RateLimitPerS = "POS2", []string{"m3"}, false, nil, 0
	mustUpdate(t, s, func(tx daodian.Tx) error {
		if err := tx.MarkReversed(ctx, &reversed); err != nil {
			return err
		}
		if err := tx.MarkRefunded(ctx, &refunded); err != nil {
			return err
		}
		return tx.UpdateApp(ctx, app)
	})

	// Every read, once in a View and once in an Update (where tickets lock).
	reads := func(tx daodian.ReadTx) error {
		gotM, err := tx.Merchant(ctx, "m1")
		if err != nil {
			return err
		}
		check(t, "merchant", *gotM, *m)
		gotShop, err := tx.Shop(ctx, "m1", "shop1")
		if err != nil {
			return err
		}
		check(t, "shop", *gotShop, *shop)
		gotApp, err := tx.App(ctx, "app1")
		if err != nil {
			return err
		}
		wantApp := *app
		wantApp.CreatedAt = micro(app.CreatedAt)
		check(t, "app", *gotApp, wantApp)
		gotBare, err := tx.App(ctx, "app2")
		if err != nil {
			return err
		}
		check(t, "bare app", *gotBare, *bare)
		gotOrder, err := tx.Order(ctx, "so1")
		if err != nil {
			return err
		}
		wantOrder := *order
		wantOrder.CreatedAt = micro(order.CreatedAt)
		check(t, "order", *gotOrder, wantOrder)
		gotT, err := tx.Ticket(ctx, t2.ID)
		if err != nil {
			return err
		}
		check(t, "ticket", *gotT, normTicket(*t2))
		if !gotT.ValidFrom.IsZero() {
			t.Errorf("zero ValidFrom came back as %v", gotT.ValidFrom)
		}
		gotT, err = tx.TicketByCode(ctx, t3.Code)
		if err != nil {
			return err
		}
		check(t, "ticket by code", *gotT, normTicket(*t3))
		sub, err := tx.SubOrderTickets(ctx, "so1")
		if err != nil {
			return err
		}
		check(t, "sub-order tickets", sub, []daodian.Ticket{normTicket(*t1), normTicket(*t2), normTicket(*t3)})
		if sub, err := tx.SubOrderTickets(ctx, "none"); err != nil || len(sub) != 0 {
			t.Errorf("sub-order none: %v, %v", sub, err)
		}
		gotU, err := tx.Use(ctx, u1.TransID)
		if err != nil {
			return err
		}
		check(t, "reversed use", *gotU, normUse(reversed))
		gotU, err = tx.GroupUse(ctx, u2.TransID, t3.ID)
		if err != nil {
			return err
		}
		check(t, "group use", *gotU, normUse(refunded))
		gotU, err = tx.LatestActiveUse(ctx, t2.ID, "app2")
		if err != nil {
			return err
		}
		check(t, "latest active use", *gotU, normUse(*u2))
		if _, err := tx.LatestActiveUse(ctx, t2.ID, "app1"); !errors.Is(err, daodian.ErrNotFound) {
			t.Errorf("latest active use of app1 (its only use is reversed): %v", err)
		}
		n, err := tx.ActiveUnits(ctx, t2.ID)
		if err != nil {
			return err
		}
		check(t, "active units", n, 1)
		if n, err := tx.ActiveUnits(ctx, "none"); err != nil || n != 0 {
			t.Errorf("active units of none: %d, %v", n, err)
		}
		gotF, err := tx.Fence(ctx, t1.ID, "app1")
		if err != nil {
			return err
		}
		check(t, "fence", *gotF, daodian.Fence{TicketID: t1.ID, AppKey: "app1", At: micro(fence.At),
			RequestID: "rev1", CreatedAt: micro(fence.CreatedAt)})
		gotRec, err := tx.Idem(ctx, rec.IdemKey)
		if err != nil {
			return err
		}
		wantRec := *rec
		wantRec.CreatedAt = micro(rec.CreatedAt)
		check(t, "idem", *gotRec, wantRec)
		c, err := tx.Counts(ctx)
		if err != nil {
			return err
		}
		check(t, "counts", c, daodian.Counts{Apps: 2, Merchants: 1, Shops: 1, Orders: 1, Tickets: 4, Uses: 3, Fences: 1, Idem: 1})
		var ids []string
		if err := tx.EachTicket(ctx, func(tk *daodian.Ticket) error { ids = append(ids, tk.ID); return nil }); err != nil {
			return err
		}
		check(t, "each ticket", ids, []string{t1.ID, t2.ID, t3.ID, other.ID})
		ids = nil
		if err := tx.EachUse(ctx, func(u *daodian.Use) error { ids = append(ids, u.TransID); return nil }); err != nil {
			return err
		}
		check(t, "each use", ids, []string{u1.TransID, u2.TransID, u3.TransID})
		var recs []daodian.IdemRecord
		if err := tx.EachIdem(ctx, func(r *daodian.IdemRecord) error { recs = append(recs, *r); return nil }); err != nil {
			return err
		}
		check(t, "each idem", recs, []daodian.IdemRecord{wantRec})
		return nil
	}
	mustView(t, s, reads)
	mustUpdate(t, s, func(tx daodian.Tx) error { return reads(tx) })
}

func TestNotFoundAndDuplicate(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	tk := sampleTicket("2100000000000000001", "100000000001", "so1", 2)
	u := sampleUse("2200000000000000001", tk.ID, 1)
	rec := &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a", Op: daodian.OpUse, RequestID: "r"},
		Fingerprint: "f", TicketID: tk.ID, Answer: []byte("{}")}
	mustUpdate(t, s, func(tx daodian.Tx) error {
		return errors.Join(tx.InsertTicket(ctx, tk), tx.InsertUse(ctx, u), tx.PutIdem(ctx, rec),
			tx.InsertShop(ctx, &daodian.Shop{MerchantID: "m1", ID: "s1"}),
			tx.InsertApp(ctx, &daodian.App{Key: "k"}),
			tx.InsertOrder(ctx, &daodian.Order{SubOrderNo: "so1"}))
	})

	notFound := map[string]func(tx daodian.ReadTx) error{
		"idem": func(tx daodian.ReadTx) error {
			_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "a", Op: daodian.OpReverse, RequestID: "r"})
			return err
		},
		"ticket":    func(tx daodian.ReadTx) error { _, err := tx.Ticket(ctx, "x"); return err },
		"code":      func(tx daodian.ReadTx) error { _, err := tx.TicketByCode(ctx, "x"); return err },
		"order":     func(tx daodian.ReadTx) error { _, err := tx.Order(ctx, "x"); return err },
		"use":       func(tx daodian.ReadTx) error { _, err := tx.Use(ctx, "x"); return err },
		"group use": func(tx daodian.ReadTx) error { _, err := tx.GroupUse(ctx, u.TransID, "x"); return err },
		"latest":    func(tx daodian.ReadTx) error { _, err := tx.LatestActiveUse(ctx, tk.ID, "other"); return err },
		"fence":     func(tx daodian.ReadTx) error { _, err := tx.Fence(ctx, tk.ID, "app1"); return err },
		"shop":      func(tx daodian.ReadTx) error { _, err := tx.Shop(ctx, "m2", "s1"); return err },
		"app":       func(tx daodian.ReadTx) error { _, err := tx.App(ctx, "x"); return err },
		"merchant":  func(tx daodian.ReadTx) error { _, err := tx.Merchant(ctx, "x"); return err },
		// Keys with NUL bytes are looked up escaped.
		"ticket NUL": func(tx daodian.ReadTx) error { _, err := tx.Ticket(ctx, tk.ID+"\x00"); return err },
		"code NUL":   func(tx daodian.ReadTx) error { _, err := tx.TicketByCode(ctx, "\x00"); return err },
		"idem NUL": func(tx daodian.ReadTx) error {
			_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "a", Op: daodian.OpUse, RequestID: "r\x00"})
			return err
		},
		"use NUL":      func(tx daodian.ReadTx) error { _, err := tx.Use(ctx, "\x00"); return err },
		"shop NUL":     func(tx daodian.ReadTx) error { _, err := tx.Shop(ctx, "m1", "s1\x00"); return err },
		"setAvailable": func(tx daodian.ReadTx) error { return tx.(daodian.Tx).SetAvailable(ctx, "x", 0) },
		"updateApp":    func(tx daodian.ReadTx) error { return tx.(daodian.Tx).UpdateApp(ctx, &daodian.App{Key: "x"}) },
		"markReversed": func(tx daodian.ReadTx) error {
			return tx.(daodian.Tx).MarkReversed(ctx, &daodian.Use{TransID: "x", Reversed: true})
		},
		"markRefunded": func(tx daodian.ReadTx) error {
			return tx.(daodian.Tx).MarkRefunded(ctx, &daodian.Use{TransID: "x", Refunded: true})
		},
	}
	for name, f := range notFound {
		if err := s.Update(ctx, func(tx daodian.Tx) error { return f(tx) }); !errors.Is(err, daodian.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", name, err)
		}
	}

	dup := tk
	dupCode := sampleTicket("2100000000000000002", tk.Code, "so1", 1)
	duplicates := map[string]func(tx daodian.Tx) error{
		"ticket id":   func(tx daodian.Tx) error { return tx.InsertTicket(ctx, dup) },
		"ticket code": func(tx daodian.Tx) error { return tx.InsertTicket(ctx, dupCode) },
		"shop":        func(tx daodian.Tx) error { return tx.InsertShop(ctx, &daodian.Shop{MerchantID: "m1", ID: "s1"}) },
		"app":         func(tx daodian.Tx) error { return tx.InsertApp(ctx, &daodian.App{Key: "k"}) },
		"order":       func(tx daodian.Tx) error { return tx.InsertOrder(ctx, &daodian.Order{SubOrderNo: "so1"}) },
	}
	for name, f := range duplicates {
		// The duplicate is reported without aborting the transaction: fn may go on,
		// and what it writes afterwards is kept.
		var got error
		err := s.Update(ctx, func(tx daodian.Tx) error {
			got = f(tx)
			return tx.PutMerchant(ctx, &daodian.Merchant{ID: "after-" + name})
		})
		if err != nil || !errors.Is(got, daodian.ErrDuplicate) {
			t.Errorf("%s: got %v (Update: %v), want ErrDuplicate", name, got, err)
		}
		mustView(t, s, func(tx daodian.ReadTx) error { _, err := tx.Merchant(ctx, "after-"+name); return err })
	}
	// A use and an idempotency record are held back and pipelined (pgTx.pending):
	// their duplicate is reported later, by Update, and nothing of the
	// transaction is kept.
	for name, f := range map[string]func(tx daodian.Tx) error{
		"use":  func(tx daodian.Tx) error { return tx.InsertUse(ctx, u) },
		"idem": func(tx daodian.Tx) error { return tx.PutIdem(ctx, rec) },
	} {
		calls := 0
		err := s.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if err := tx.PutMerchant(ctx, &daodian.Merchant{ID: "held-" + name}); err != nil {
				return err
			}
			return f(tx)
		})
		if !errors.Is(err, daodian.ErrDuplicate) || errors.Is(err, daodian.ErrTransient) || calls != 1+DefaultRetries {
			t.Errorf("%s: Update returned %v after %d calls, want ErrDuplicate after %d", name, err, calls, 1+DefaultRetries)
		}
		err = s.View(ctx, func(tx daodian.ReadTx) error { _, err := tx.Merchant(ctx, "held-"+name); return err })
		if !errors.Is(err, daodian.ErrNotFound) {
			t.Errorf("%s: the write before the duplicate was kept (%v)", name, err)
		}
	}
	// Returned by fn, a duplicate that persists is a real one: ErrDuplicate, not
	// transient.
	err := s.Update(ctx, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, dup) })
	if !errors.Is(err, daodian.ErrDuplicate) || errors.Is(err, daodian.ErrTransient) {
		t.Errorf("persistent duplicate: %v", err)
	}

	// Strings with NUL bytes, which PostgreSQL text cannot hold, round-trip.
	odd := &daodian.Merchant{ID: "m\x00\x01\x02", Name: "\x01\x01"}
	mustUpdate(t, s, func(tx daodian.Tx) error { return tx.PutMerchant(ctx, odd) })
	mustView(t, s, func(tx daodian.ReadTx) error {
		got, err := tx.Merchant(ctx, odd.ID)
		if err == nil {
			check(t, "merchant with NULs", *got, *odd)
		}
		if _, err := tx.Merchant(ctx, "m\x00"); !errors.Is(err, daodian.ErrNotFound) {
			t.Errorf("a prefix of an escaped key: %v", err)
		}
		return err
	})

	// Broken invariants are refused by the database.
	var inv *daodian.InvariantError
	err = s.Update(ctx, func(tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, 3) })
	if !errors.As(err, &inv) || inv.TicketID != tk.ID {
		t.Errorf("available above quantity: %v", err)
	}
	err = s.Update(ctx, func(tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, -1) })
	if !errors.As(err, &inv) {
		t.Errorf("negative available: %v", err)
	}
	bad := sampleTicket("2100000000000000003", "100000000003", "so1", 1)
	bad.Available = 2
	err = s.Update(ctx, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, bad) })
	if !errors.As(err, &inv) {
		t.Errorf("ticket with available above quantity: %v", err)
	}
	rev := *u
	rev.Reversed, rev.ReversedAt, rev.ReversalRequestID = true, at(1), "rev1"
	mustUpdate(t, s, func(tx daodian.Tx) error { return tx.MarkReversed(ctx, &rev) })
	rev.ReversalRequestID = "rev2"
	err = s.Update(ctx, func(tx daodian.Tx) error { return tx.MarkReversed(ctx, &rev) })
	if !errors.As(err, &inv) {
		t.Errorf("second reversal of a use: %v", err)
	}
	mustView(t, s, func(tx daodian.ReadTx) error {
		got, err := tx.Use(ctx, u.TransID)
		if err == nil && got.ReversalRequestID != "rev1" {
			t.Errorf("the second reversal replaced the first: %+v", got)
		}
		return err
	})
}

func TestFnErrorKeepsNothing(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	boom := errors.New("boom")
	var firstID string
	calls := 0
	err := s.Update(ctx, func(tx daodian.Tx) error {
		calls++
		id, err := tx.NewID(ctx)
		if err != nil {
			return err
		}
		firstID = id
		if err := tx.PutMerchant(ctx, &daodian.Merchant{ID: "m1"}); err != nil {
			return err
		}
		if err := tx.InsertTicket(ctx, sampleTicket(id, "100000000001", "so1", 1)); err != nil {
			return err
		}
		return boom
	})
	if err != boom || calls != 1 {
		t.Fatalf("got %v after %d calls, want boom after 1", err, calls)
	}
	mustView(t, s, func(tx daodian.ReadTx) error {
		c, err := tx.Counts(ctx)
		check(t, "counts", c, daodian.Counts{})
		return err
	})
	// The aborted transaction's id is not handed out again.
	mustUpdate(t, s, func(tx daodian.Tx) error {
		id, err := tx.NewID(ctx)
		if id == firstID {
			t.Errorf("id %s reused", id)
		}
		return err
	})
	// A Refusal (or any other error of fn) comes back as is.
	ref := &daodian.Refusal{SubCode: daodian.SubTicketExpired}
	if err := s.Update(ctx, func(tx daodian.Tx) error { return ref }); err != ref {
		t.Fatalf("got %v", err)
	}
}

func TestEmptyTransactions(t *testing.T) {
	s := newStore(t, Options{})
	// No statement, no transaction: nothing to send, nothing to fail.
	if err := s.Update(context.Background(), func(daodian.Tx) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if err := s.View(context.Background(), func(daodian.ReadTx) error { return nil }); err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentReadModifyWrite(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	tk := sampleTicket("2100000000000000001", "100000000001", "so1", 100)
	tk.Available = 0
	mustUpdate(t, s, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, tk) })
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx daodian.Tx) error {
				got, err := tx.Ticket(ctx, tk.ID)
				if err != nil {
					return err
				}
				return tx.SetAvailable(ctx, tk.ID, got.Available+1)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustView(t, s, func(tx daodian.ReadTx) error {
		got, err := tx.Ticket(ctx, tk.ID)
		if err == nil && got.Available != n {
			t.Errorf("available %d after %d increments", got.Available, n)
		}
		return err
	})
}

// TestSubOrderLocksNoDeadlock has transactions lock all the tickets of one
// sub-order while others lock single tickets of it: locks taken in id order never
// deadlock.
func TestSubOrderLocksNoDeadlock(t *testing.T) {
	s := newStore(t, Options{Retries: -1}) // a deadlock would surface, not be retried
	ctx := context.Background()
	ids := []string{"2100000000000000001", "2100000000000000002", "2100000000000000003", "2100000000000000004"}
	mustUpdate(t, s, func(tx daodian.Tx) error {
		for i, id := range ids {
			tk := sampleTicket(id, "10000000000"+strconv.Itoa(i), "so1", 1000)
			tk.Available = 0
			if err := tx.InsertTicket(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			errs <- s.Update(ctx, func(tx daodian.Tx) error {
				ts, err := tx.SubOrderTickets(ctx, "so1")
				if err != nil {
					return err
				}
				// Write in reverse order: the locks are already held.
				for j := len(ts) - 1; j >= 0; j-- {
					if err := tx.SetAvailable(ctx, ts[j].ID, ts[j].Available+1); err != nil {
						return err
					}
				}
				return nil
			})
		})
		wg.Go(func() {
			id := ids[i%len(ids)]
			errs <- s.Update(ctx, func(tx daodian.Tx) error {
				tk, err := tx.Ticket(ctx, id)
				if err != nil {
					return err
				}
				return tx.SetAvailable(ctx, id, tk.Available+1)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	mustView(t, s, func(tx daodian.ReadTx) error {
		total := 0
		err := tx.EachTicket(ctx, func(tk *daodian.Ticket) error { total += tk.Available; return nil })
		if total != n*len(ids)+n {
			t.Errorf("total available %d, want %d", total, n*len(ids)+n)
		}
		return err
	})
}

// TestTicketMerchantTakesNoLock: an Update reads the merchant of a ticket that
// another Update holds locked, without waiting for it (a second ticket lock
// could deadlock: daodian.ReadTx.TicketMerchant).
func TestTicketMerchantTakesNoLock(t *testing.T) {
	s := newStore(t, Options{Retries: -1})
	ctx := context.Background()
	a := sampleTicket("2100000000000000001", "100000000001", "so1", 1)
	b := sampleTicket("2100000000000000002", "100000000002", "so2", 1)
	mustUpdate(t, s, func(tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, a); err != nil {
			return err
		}
		return tx.InsertTicket(ctx, b)
	})
	release := holdTicket(s, b.ID)
	// Bounded, so that a lock wait fails the test instead of hanging it.
	qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	err := s.Update(qctx, func(tx daodian.Tx) error {
		if _, err := tx.Ticket(qctx, a.ID); err != nil {
			return err
		}
		m, err := tx.TicketMerchant(qctx, b.ID)
		if err == nil && m != b.MerchantID {
			t.Errorf("TicketMerchant = %q, want %q", m, b.MerchantID)
		}
		return err
	})
	cancel()
	if rerr := release(); rerr != nil {
		t.Fatal(rerr)
	}
	if err != nil {
		t.Fatalf("TicketMerchant of a ticket locked elsewhere: %v", err)
	}
}

// holdTicket locks a ticket in an Update of s until release is called, and
// returns once the lock is held; release returns that Update's error.
func holdTicket(s *Store, id string) (release func() error) {
	ctx := context.Background()
	held, free := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx daodian.Tx) error {
			_, err := tx.Ticket(ctx, id)
			close(held)
			if err != nil {
				return err
			}
			<-free
			return nil
		})
	}()
	<-held
	return func() error { close(free); return <-done }
}

// TestIdemRace has Updates race to record the answer of one key, as two processes
// serving the same request would: a fn that reads the record first converges on the
// winner's answer; a fn that writes blindly gets ErrDuplicate after the retries.
func TestIdemRace(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	key := daodian.IdemKey{AppKey: "app1", Op: daodian.OpReverse, RequestID: "r1"}
	const n = 16
	answers := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	var start sync.WaitGroup
	start.Add(1)
	for i := range n {
		wg.Go(func() {
			start.Wait()
			errs <- s.Update(ctx, func(tx daodian.Tx) error {
				rec, err := tx.Idem(ctx, key)
				if err == nil {
					answers[i] = string(rec.Answer)
					return nil
				} else if !errors.Is(err, daodian.ErrNotFound) {
					return err
				}
				answers[i] = fmt.Sprintf(`{"winner":%d}`, i)
				// Hold the transaction a moment so that the racers overlap.
				time.Sleep(5 * time.Millisecond)
				return tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: key, Fingerprint: "fp", Answer: []byte(answers[i])})
			})
		})
	}
	start.Done()
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range answers {
		if answers[i] != answers[0] {
			t.Fatalf("answers differ: %q", answers)
		}
	}
	mustView(t, s, func(tx daodian.ReadTx) error {
		rec, err := tx.Idem(ctx, key)
		if err == nil && string(rec.Answer) != answers[0] {
			t.Errorf("recorded %s, answered %s", rec.Answer, answers[0])
		}
		return err
	})

	// Blind writers: every loser retries, still collides, and gets ErrDuplicate.
	key.RequestID = "r2"
	var calls atomic.Int32
	results := make(chan error, 2)
	var hold sync.WaitGroup
	hold.Add(1)
	for range 2 {
		go func() {
			results <- s.Update(ctx, func(tx daodian.Tx) error {
				calls.Add(1)
				err := tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: key, Answer: []byte("{}")})
				hold.Wait()
				return err
			})
		}()
	}
	time.Sleep(50 * time.Millisecond) // both are in PutIdem: one inserted, one waits for it
	hold.Done()
	var ok, dup int
	for range 2 {
		switch err := <-results; {
		case err == nil:
			ok++
		case errors.Is(err, daodian.ErrDuplicate) && !errors.Is(err, daodian.ErrTransient):
			dup++
		default:
			t.Errorf("blind writer: %v", err)
		}
	}
	if ok != 1 || dup != 1 || int(calls.Load()) != 2+DefaultRetries {
		t.Errorf("%d won, %d duplicates, %d calls; want 1, 1, %d", ok, dup, calls.Load(), 2+DefaultRetries)
	}
}

func TestViewSnapshot(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	tk := sampleTicket("2100000000000000001", "100000000001", "so1", 5)
	mustUpdate(t, s, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, tk) })
	mustView(t, s, func(tx daodian.ReadTx) error {
		before, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		mustUpdate(t, s, func(tx daodian.Tx) error {
			return errors.Join(tx.SetAvailable(ctx, tk.ID, 1), tx.InsertUse(ctx, sampleUse("2200000000000000001", tk.ID, 4)))
		})
		after, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		units, err := tx.ActiveUnits(ctx, tk.ID)
		if err != nil {
			return err
		}
		if after.Available != before.Available || units != 0 {
			t.Errorf("View saw a later commit: available %d then %d, active units %d", before.Available, after.Available, units)
		}
		// A View is read-only all the way down.
		if err := tx.(daodian.Tx).SetAvailable(ctx, tk.ID, 2); err == nil {
			t.Error("a write inside View succeeded")
		}
		return nil
	})
}

func TestEachPagesAndNesting(t *testing.T) {
	s := newStore(t, Options{})
	ctx := context.Background()
	const n = 2*eachPage + 17
	mustUpdate(t, s, func(tx daodian.Tx) error {
		for i := range n {
			id := strconv.Itoa(2100000000000000000 + i)
			if err := tx.InsertTicket(ctx, sampleTicket(id, strconv.Itoa(100000000000+i), "so"+strconv.Itoa(i), 1)); err != nil {
				return err
			}
			if err := tx.InsertUse(ctx, sampleUse(strconv.Itoa(2200000000000000000+i), id, 1)); err != nil {
				return err
			}
			if err := tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a" + strconv.Itoa(i%3),
				Op: daodian.OpUse, RequestID: strconv.Itoa(i)}, Answer: []byte("{}")}); err != nil {
				return err
			}
		}
		return nil
	})
	mustView(t, s, func(tx daodian.ReadTx) error {
		var prev string
		count := 0
		err := tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			if tk.ID <= prev {
				t.Fatalf("ticket %s after %s", tk.ID, prev)
			}
			prev = tk.ID
			count++
			// fn may query the same transaction while the walk is under way.
			_, err := tx.ActiveUnits(ctx, tk.ID)
			return err
		})
		if err != nil || count != n {
			t.Fatalf("each ticket: %d tickets, %v", count, err)
		}
		count = 0
		if err := tx.EachUse(ctx, func(*daodian.Use) error { count++; return nil }); err != nil || count != n {
			t.Fatalf("each use: %d uses, %v", count, err)
		}
		var keys []string
		if err := tx.EachIdem(ctx, func(r *daodian.IdemRecord) error {
			keys = append(keys, r.AppKey+"\x00"+string(r.Op)+"\x00"+r.RequestID)
			return nil
		}); err != nil || len(keys) != n {
			t.Fatalf("each idem: %d records, %v", len(keys), err)
		}
		for i := 1; i < len(keys); i++ {
			if keys[i] <= keys[i-1] {
				t.Fatalf("idem %q after %q", keys[i], keys[i-1])
			}
		}
		stop := errors.New("stop")
		count = 0
		err = tx.EachUse(ctx, func(*daodian.Use) error {
			count++
			if count == eachPage+1 {
				return stop
			}
			return nil
		})
		if err != stop || count != eachPage+1 {
			t.Fatalf("stopped walk: %v after %d", err, count)
		}
		return nil
	})
}

func TestTransientFailures(t *testing.T) {
	s, url := newStoreURL(t, Options{})
	admin := adminPool(t)
	ctx := context.Background()
	tk := sampleTicket("2100000000000000001", "100000000001", "so1", 5)
	mustUpdate(t, s, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, tk) })
	pid := func(tx daodian.Tx) uint32 { return tx.(*pgTx).c.PgConn().PID() }

	t.Run("cancelled context", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		err := s.Update(cctx, func(tx daodian.Tx) error { return tx.SetAvailable(cctx, tk.ID, 1) })
		if !errors.Is(err, daodian.ErrTransient) || !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		err = s.View(cctx, func(tx daodian.ReadTx) error { _, err := tx.Ticket(cctx, tk.ID); return err })
		if !errors.Is(err, daodian.ErrTransient) {
			t.Fatalf("view: got %v", err)
		}
	})

	t.Run("context cancelled inside fn", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		err := s.Update(cctx, func(tx daodian.Tx) error {
			calls++
			if err := tx.SetAvailable(cctx, tk.ID, 1); err != nil {
				return err
			}
			cancel()
			_, err := tx.Ticket(cctx, tk.ID)
			return err
		})
		if !errors.Is(err, daodian.ErrTransient) || calls != 1 {
			t.Fatalf("got %v after %d calls", err, calls)
		}
		assertAvailable(t, s, tk.ID, 5)
	})

	t.Run("connection lost once is retried", func(t *testing.T) {
		calls := 0
		err := s.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if err := tx.SetAvailable(ctx, tk.ID, 4); err != nil {
				return err
			}
			if calls == 1 {
				terminate(t, admin, pid(tx))
			}
			_, err := tx.Ticket(ctx, tk.ID)
			return err
		})
		if err != nil || calls != 2 {
			t.Fatalf("got %v after %d calls, want success after 2", err, calls)
		}
		assertAvailable(t, s, tk.ID, 4)
	})

	t.Run("connection lost before BEGIN", func(t *testing.T) {
		// BEGIN travels with the first statement; when that pipeline fails, no
		// later statement of the attempt may run (it would run outside any
		// transaction), and the attempt is retried.
		calls := 0
		var later error
		err := s.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if calls == 1 {
				terminate(t, admin, pid(tx))
				_, err := tx.Ticket(ctx, tk.ID)
				later = tx.SetAvailable(ctx, tk.ID, 2)
				return err
			}
			return tx.SetAvailable(ctx, tk.ID, 4)
		})
		if err != nil || calls != 2 || later == nil {
			t.Fatalf("got %v after %d calls (later statement: %v)", err, calls, later)
		}
		assertAvailable(t, s, tk.ID, 4)
	})

	t.Run("connection lost every time", func(t *testing.T) {
		calls := 0
		err := s.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if err := tx.SetAvailable(ctx, tk.ID, 3); err != nil {
				return err
			}
			terminate(t, admin, pid(tx))
			_, err := tx.Ticket(ctx, tk.ID)
			return err
		})
		if !errors.Is(err, daodian.ErrTransient) || calls != 1+DefaultRetries {
			t.Fatalf("got %v after %d calls", err, calls)
		}
		assertAvailable(t, s, tk.ID, 4)
	})

	t.Run("connection lost during commit", func(t *testing.T) {
		s2 := newStore(t, Options{})
		mustUpdate(t, s2, func(tx daodian.Tx) error { return tx.InsertTicket(ctx, tk) })
		s2.beforeCommit = func(c *pgxpool.Conn) { terminate(t, admin, c.Conn().PgConn().PID()) }
		calls := 0
		err := s2.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if err := tx.SetAvailable(ctx, tk.ID, 1); err != nil {
				return err
			}
			// The read sends the held-back write: only COMMIT is left to send.
			_, err := tx.Ticket(ctx, tk.ID)
			return err
		})
		if !errors.Is(err, daodian.ErrTransient) || calls != 1 {
			t.Fatalf("got %v after %d calls, want a transient error after 1", err, calls)
		}
		s2.beforeCommit = nil
		assertAvailable(t, s2, tk.ID, 5)
	})

	t.Run("connection lost before BEGIN of a transaction of held writes only", func(t *testing.T) {
		// Nothing was sent before commit: BEGIN and the writes go first, on
		// their own, and their loss means COMMIT was never sent — safe to run
		// fn again.
		s2 := newStore(t, Options{})
		s2.beforeCommit = func(c *pgxpool.Conn) { terminate(t, admin, c.Conn().PgConn().PID()) }
		calls := 0
		rec := &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a", Op: daodian.OpReverse, RequestID: "writes-only"},
			Fingerprint: "f", TicketID: tk.ID, Answer: []byte("{}"), CreatedAt: time.Now()}
		err := s2.Update(ctx, func(tx daodian.Tx) error {
			calls++
			return tx.PutIdem(ctx, rec)
		})
		if !errors.Is(err, daodian.ErrTransient) || calls != 1+DefaultRetries {
			t.Fatalf("got %v after %d calls, want a transient error after %d", err, calls, 1+DefaultRetries)
		}
		s2.beforeCommit = nil
		err = s2.View(ctx, func(tx daodian.ReadTx) error { _, err := tx.Idem(ctx, rec.IdemKey); return err })
		if !errors.Is(err, daodian.ErrNotFound) {
			t.Fatalf("the record of a transaction that never committed: %v", err)
		}
	})

	t.Run("connection lost with held writes sent with commit", func(t *testing.T) {
		// Held-back writes that can fail only on the server go in one pipeline
		// with COMMIT: when it is lost, the outcome is unknown and Update must
		// not run fn again.
		s2 := newStore(t, Options{})
		s2.beforeCommit = func(c *pgxpool.Conn) { terminate(t, admin, c.Conn().PgConn().PID()) }
		calls := 0
		rec := &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: "a", Op: daodian.OpReverse, RequestID: "lost-commit"},
			Fingerprint: "f", TicketID: tk.ID, Answer: []byte("{}"), CreatedAt: time.Now()}
		err := s2.Update(ctx, func(tx daodian.Tx) error {
			calls++
			if _, err := tx.Ticket(ctx, tk.ID); err != nil && !errors.Is(err, daodian.ErrNotFound) {
				return err
			}
			return tx.PutIdem(ctx, rec)
		})
		if !errors.Is(err, daodian.ErrTransient) || calls != 1 {
			t.Fatalf("got %v after %d calls, want a transient error after 1", err, calls)
		}
	})

	t.Run("lock wait beyond the statement timeout", func(t *testing.T) {
		s2, err := openTest(ctx, url, Options{StatementTimeout: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		release := holdTicket(s, tk.ID)
		err = s2.Update(ctx, func(tx daodian.Tx) error { _, err := tx.Ticket(ctx, tk.ID); return err })
		if rerr := release(); rerr != nil {
			t.Fatal(rerr)
		}
		if !errors.Is(err, daodian.ErrTransient) {
			t.Fatalf("got %v", err)
		}
	})

	t.Run("pool exhausted", func(t *testing.T) {
		s2, err := openTest(ctx, url, Options{MaxConns: 1, AcquireTimeout: 50 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		defer s2.Close()
		held, release := make(chan struct{}), make(chan struct{})
		done := make(chan error)
		go func() {
			done <- s2.View(ctx, func(daodian.ReadTx) error { close(held); <-release; return nil })
		}()
		<-held
		err = s2.Update(ctx, func(daodian.Tx) error { return nil })
		close(release)
		if !errors.Is(err, daodian.ErrTransient) {
			t.Fatalf("got %v", err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("closed store", func(t *testing.T) {
		s2, err := openTest(ctx, url, Options{})
		if err != nil {
			t.Fatal(err)
		}
		_ = s2.Close()
		if err := s2.Update(ctx, func(daodian.Tx) error { return nil }); !errors.Is(err, daodian.ErrTransient) {
			t.Fatalf("got %v", err)
		}
	})
}

func assertAvailable(t *testing.T, s *Store, id string, want int) {
	t.Helper()
	mustView(t, s, func(tx daodian.ReadTx) error {
		got, err := tx.Ticket(context.Background(), id)
		if err == nil && got.Available != want {
			t.Errorf("available %d, want %d", got.Available, want)
		}
		return err
	})
}

func TestSessionSettings(t *testing.T) {
	needDB(t)
	u := withParam(freshSchema(t), "synchronous_commit", "off")
	s, err := openTest(context.Background(), u, Options{StatementTimeout: 1500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mustUpdate(t, s, func(tx daodian.Tx) error {
		var sync, timeout, iso string
		if err := tx.(*pgTx).queryRow(context.Background(), "SELECT current_setting('synchronous_commit'), current_setting('statement_timeout'), current_setting('transaction_isolation')").Scan(&sync, &timeout, &iso); err != nil {
			return err
		}
		check(t, "settings", []string{sync, timeout, iso}, []string{"on", "1500ms", "read committed"})
		return nil
	})
	mustView(t, s, func(tx daodian.ReadTx) error {
		var iso, ro string
		if err := tx.(*pgTx).queryRow(context.Background(), "SELECT current_setting('transaction_isolation'), current_setting('transaction_read_only')").Scan(&iso, &ro); err != nil {
			return err
		}
		check(t, "view settings", []string{iso, ro}, []string{"repeatable read", "on"})
		return nil
	})
	if err := s.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestOpenErrorsHideThePassword(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, u := range []string{
		"postgres://daodian:hunter2secret@127.0.0.1:1/x?sslmode=disable&connect_timeout=2",
		"postgres://daodian:hunter2secret@[::1/x",
		"postgres://daodian:hunter2secret@127.0.0.1:5432/x?sslmode=bogus",
	} {
		_, err := openTest(ctx, u, Options{})
		if err == nil {
			t.Fatalf("%s: opened", u)
		}
		if strings.Contains(err.Error(), "hunter2secret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

// TestContract runs the contract suite every store passes.
func TestContract(t *testing.T) {
	needDB(t)
	storetest.Run(t, factory())
}

// factory makes the stores of the shared suites: each on a fresh schema, and
// reopenable on the same database.
func factory() storetest.Factory { return factoryWith(Options{}) }

// factoryWith is factory with the stores opened with opts.
func factoryWith(opts Options) storetest.Factory {
	var mu sync.Mutex
	urls := make(map[daodian.Store]string)
	return storetest.Factory{
		Open: func(t *testing.T) daodian.Store {
			s, u := newStoreURL(t, opts)
			mu.Lock()
			urls[s] = u
			mu.Unlock()
			return s
		},
		Reopen: func(t *testing.T, old daodian.Store) daodian.Store {
			mu.Lock()
			u := urls[old]
			mu.Unlock()
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			s, err := openTest(context.Background(), u, opts)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Close() })
			mu.Lock()
			urls[s] = u
			mu.Unlock()
			return s
		},
		StoredSecrets: func(t *testing.T, s daodian.Store, appKey string) (string, string) {
			mu.Lock()
			u := urls[s]
			mu.Unlock()
			return storedSecrets(t, u, appKey)
		},
	}
}

// TestHeldWrites: more held-back writes than one pipeline takes (maxPending)
// are all applied, in order, at commit; and when one of them fails in a way the
// server does not see (an update that finds no row), the transaction commits
// nothing, whichever pipeline carried the failing write.
func TestHeldWrites(t *testing.T) {
	ctx := context.Background()
	s := newStore(t, Options{})
	const n = 3*maxPending + 5
	var tickets []*daodian.Ticket
	for i := range n {
		tk := sampleTicket(fmt.Sprintf("21000000000000%05d", i), fmt.Sprintf("1000000%05d", i), fmt.Sprintf("so%d", i), 9)
		tickets = append(tickets, tk)
	}
	mustUpdate(t, s, func(tx daodian.Tx) error {
		for _, tk := range tickets {
			if err := tx.InsertTicket(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})

	// Every write held back, none followed by a read: they go out in
	// pipelines of maxPending, the last with COMMIT. Later writes of one row
	// must win over earlier ones.
	mustUpdate(t, s, func(tx daodian.Tx) error {
		for i, tk := range tickets {
			if err := tx.SetAvailable(ctx, tk.ID, 1); err != nil {
				return err
			}
			if err := tx.SetAvailable(ctx, tk.ID, i%9); err != nil {
				return err
			}
		}
		return nil
	})
	for i, tk := range tickets {
		assertAvailable(t, s, tk.ID, i%9)
	}

	for _, at := range []int{0, maxPending - 1, maxPending, n - 1} {
		t.Run(fmt.Sprint("missing ticket at ", at), func(t *testing.T) {
			err := s.Update(ctx, func(tx daodian.Tx) error {
				for i, tk := range tickets {
					id := tk.ID
					if i == at {
						id = "2199999999999999999"
					}
					if err := tx.SetAvailable(ctx, id, 8); err != nil {
						return err
					}
				}
				return nil
			})
			if !errors.Is(err, daodian.ErrNotFound) {
				t.Fatalf("Update: %v, want ErrNotFound", err)
			}
			for i, tk := range tickets {
				assertAvailable(t, s, tk.ID, i%9)
			}
		})
	}
}

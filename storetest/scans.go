// The scans (Each*, Counts) and what a transaction reads of its own writes.

package storetest

import (
	"context"
	"fmt"
	"testing"

	"github.com/daodian/daodian"
)

func testEachTicket(t *testing.T, f Factory) {
	s := f.Open(t)
	var want []string
	var tks []*daodian.Ticket
	for _, n := range []int{5, 3, 9, 1, 7} {
		tks = append(tks, ticket(n, fmt.Sprintf("S%06d", n%2)))
	}
	insertTickets(t, s, tks...)
	for _, n := range []int{1, 3, 5, 7, 9} {
		want = append(want, tid(n))
	}
	var got []string
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			got = append(got, tk.ID)
			if tk.ID == tid(3) {
				same(t, "EachTicket row", ticket(3, "S000001"), tk)
			}
			return nil
		})
	})
	same(t, "EachTicket order", want, got)

	// fn's error stops the walk and is returned.
	n := 0
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachTicket(context.Background(), func(*daodian.Ticket) error {
			n++
			if n == 2 {
				return errBoom
			}
			return nil
		})
	})
	wantErr(t, "EachTicket stopped", err, errBoom)
	if n != 2 {
		t.Errorf("EachTicket called fn %d times after it failed on the 2nd, want 2", n)
	}
	// An empty table.
	empty := f.Open(t)
	view(t, empty, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachTicket(ctx, func(*daodian.Ticket) error {
			t.Error("EachTicket on an empty store called fn")
			return nil
		})
	})
}

func testEachUse(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	var us []*daodian.Use
	for _, n := range []int{4, 2, 8, 6} {
		us = append(us, use(n, tk.ID, "app-a", 1))
	}
	us[1].Reversed, us[1].ReversedAt = true, at(30)
	insertUses(t, s, us...)
	var got []*daodian.Use
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachUse(ctx, func(u *daodian.Use) error {
			got = append(got, u)
			return nil
		})
	})
	want := []*daodian.Use{us[1], us[0], us[3], us[2]}
	same(t, "EachUse", want, got)
	n := 0
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachUse(context.Background(), func(*daodian.Use) error {
			n++
			return errBoom
		})
	})
	wantErr(t, "EachUse stopped", err, errBoom)
	if n != 1 {
		t.Errorf("EachUse called fn %d times after it failed on the 1st", n)
	}
}

func testEachIdem(t *testing.T, f Factory) {
	s := f.Open(t)
	want := map[daodian.IdemKey]*daodian.IdemRecord{}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range 50 {
			ops := []daodian.Operation{daodian.OpUse, daodian.OpReverse, daodian.OpRefund}
			r := idem(fmt.Sprintf("app-%d", i%3), ops[i/3%3], fmt.Sprintf("req-%d", i))
			want[r.IdemKey] = r
			if err := tx.PutIdem(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	seen := map[daodian.IdemKey]bool{}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachIdem(ctx, func(r *daodian.IdemRecord) error {
			w, ok := want[r.IdemKey]
			if !ok {
				t.Errorf("EachIdem: unexpected %v", r.IdemKey)
				return nil
			}
			if seen[r.IdemKey] {
				t.Errorf("EachIdem: %v twice", r.IdemKey)
			}
			seen[r.IdemKey] = true
			same(t, "EachIdem row", w, r)
			return nil
		})
	})
	if len(seen) != len(want) {
		t.Errorf("EachIdem visited %d records, want %d", len(seen), len(want))
	}
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachIdem(context.Background(), func(*daodian.IdemRecord) error { return errBoom })
	})
	wantErr(t, "EachIdem stopped", err, errBoom)
}

// testEachInUpdate walks inside an Update, which sees its own writes.
func testEachInUpdate(t *testing.T, f Factory) {
	s := f.Open(t)
	insertTickets(t, s, ticket(1, "S000001"))
	var ids []string
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, ticket(2, "S000001")); err != nil {
			return err
		}
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			ids = append(ids, tk.ID)
			return nil
		})
	})
	same(t, "EachTicket in Update", []string{tid(1), tid(2)}, ids)
}

func testCounts(t *testing.T, f Factory) {
	s := f.Open(t)
	same(t, "Counts(empty)", daodian.Counts{}, counts(t, s))
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range 2 {
			if err := tx.InsertApp(ctx, &daodian.App{Key: fmt.Sprintf("app-%d", i)}); err != nil {
				return err
			}
		}
		for i := range 3 {
			if err := tx.PutMerchant(ctx, merchant(i)); err != nil {
				return err
			}
		}
		for i := range 4 {
			if err := tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: fmt.Sprintf("shop-%d", i)}); err != nil {
				return err
			}
		}
		for i := range 5 {
			if err := tx.InsertOrder(ctx, order(i)); err != nil {
				return err
			}
		}
		for i := range 6 {
			if err := tx.InsertTicket(ctx, ticket(i, "S000001")); err != nil {
				return err
			}
		}
		for i := range 7 {
			if err := tx.InsertUse(ctx, use(i, tid(0), "app-0", 1)); err != nil {
				return err
			}
		}
		for i := range 8 {
			if err := tx.PutFence(ctx, &daodian.Fence{TicketID: tid(i), AppKey: "app-0", At: at(i)}); err != nil {
				return err
			}
		}
		for i := range 9 {
			if err := tx.PutIdem(ctx, idem("app-0", daodian.OpUse, fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	same(t, "Counts", daodian.Counts{Apps: 2, Merchants: 3, Shops: 4, Orders: 5, Tickets: 6, Uses: 7, Fences: 8, Idem: 9}, counts(t, s))
}

// testFreshCopies checks that callers own what reads return.
func testFreshCopies(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	a := &daodian.App{Key: "app-1", Merchants: []string{"M001"}, Methods: []string{"m"}}
	rec := idem("app-1", daodian.OpUse, "r")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertApp(ctx, a); err != nil {
			return err
		}
		return tx.PutIdem(ctx, rec)
	})
	// Mutating what was written must not reach the store either.
	a.Merchants[0], rec.Answer[0], tk.Available = "changed", 'X', 0
	for range 2 {
		view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
			gotT, err := tx.Ticket(ctx, tk.ID)
			if err != nil {
				return err
			}
			gotA, err := tx.App(ctx, "app-1")
			if err != nil {
				return err
			}
			gotR, err := tx.Idem(ctx, rec.IdemKey)
			if err != nil {
				return err
			}
			if gotT.Available != 7 || gotA.Merchants[0] != "M001" || gotR.Answer[0] != '{' {
				t.Errorf("store shares memory with its callers: available %d, merchant %q, answer %q",
					gotT.Available, gotA.Merchants[0], gotR.Answer)
			}
			gotT.Available, gotA.Merchants[0], gotA.Methods[0], gotR.Answer[0] = 99, "mutated", "mutated", 'Y'
			list, err := tx.SubOrderTickets(ctx, tk.SubOrderNo)
			if err != nil {
				return err
			}
			list[0].Available = 99
			return nil
		})
	}
}

func testReadYourWrites(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, tk); err != nil {
			return err
		}
		if err := tx.SetAvailable(ctx, tk.ID, 2); err != nil {
			return err
		}
		got, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		if got.Available != 2 {
			t.Errorf("Ticket inside the Update that set it: available %d, want 2", got.Available)
		}
		u := use(1, tk.ID, "app-a", 5)
		if err := tx.InsertUse(ctx, u); err != nil {
			return err
		}
		n, err := tx.ActiveUnits(ctx, tk.ID)
		if err != nil {
			return err
		}
		if n != 5 {
			t.Errorf("ActiveUnits inside the Update: %d, want 5", n)
		}
		l, err := tx.LatestActiveUse(ctx, tk.ID, "app-a")
		if err != nil {
			return err
		}
		same(t, "LatestActiveUse inside the Update", u, l)
		return nil
	})
}

// ---- atomicity ----

// writeEverything writes one row of every kind.
func writeEverything(ctx context.Context, tx daodian.Tx, n int) error {
	tk := ticket(n, fmt.Sprintf("S%06d", n))
	for _, err := range []func() error{
		func() error { return tx.PutMerchant(ctx, merchant(n)) },
		func() error { return tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: fmt.Sprint("shop-", n)}) },
		func() error { return tx.InsertApp(ctx, &daodian.App{Key: fmt.Sprint("app-", n)}) },
		func() error { return tx.InsertOrder(ctx, order(n)) },
		func() error { return tx.InsertTicket(ctx, tk) },
		func() error { return tx.InsertUse(ctx, use(n, tk.ID, "app-a", 1)) },
		func() error { return tx.SetAvailable(ctx, tk.ID, 6) },
		func() error { return tx.PutFence(ctx, &daodian.Fence{TicketID: tk.ID, AppKey: "app-a", At: at(n)}) },
		func() error { return tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", n))) },
	} {
		if err := err(); err != nil {
			return err
		}
	}
	return nil
}

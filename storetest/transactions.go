// Transactions as a whole: atomicity, cancellation, identifiers, durability,
// concurrency, snapshots, and a closed store.

package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

func testUpdateErrorKeepsNothing(t *testing.T, f Factory) {
	s := f.Open(t)
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := writeEverything(ctx, tx, 1); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, "Update returning an error", err, errBoom)
	same(t, "Counts after a failed Update", daodian.Counts{}, counts(t, s))
	// fn's own sentinel errors come back as they are.
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		_, err := tx.Ticket(ctx, tid(1))
		return err
	})
	wantErr(t, "Update returning ErrNotFound", err, daodian.ErrNotFound)
	// The store is still usable, and a later Update keeps everything.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return writeEverything(ctx, tx, 2) })
	same(t, "Counts after a good Update",
		daodian.Counts{Apps: 1, Merchants: 1, Shops: 1, Orders: 1, Tickets: 1, Uses: 1, Fences: 1, Idem: 1}, counts(t, s))
	if got := readTicket(t, s, tid(2)); got.Available != 6 {
		t.Errorf("Available = %d, want 6", got.Available)
	}
}

func testUpdateDuplicateKeepsNothing(t *testing.T, f Factory) {
	s := f.Open(t)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.PutIdem(ctx, idem("app-a", daodian.OpReverse, "req-1"))
	})
	// A reversal whose idempotency record collides: its other writes go too.
	tk := ticket(1, "S000001")
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, tk); err != nil {
			return err
		}
		return tx.PutIdem(ctx, idem("app-a", daodian.OpReverse, "req-1"))
	})
	wantErr(t, "Update with a duplicate idempotency key", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		_, err := tx.Ticket(ctx, tk.ID)
		wantErr(t, "ticket of the failed Update", err, daodian.ErrNotFound)
		return nil
	})
}

func testCancelledContext(t *testing.T, f Factory) {
	s := f.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx daodian.Tx) error {
		return tx.PutMerchant(context.Background(), merchant(1))
	})
	if err == nil {
		t.Fatal("Update with a cancelled context succeeded")
	}
	wantErr(t, "Update with a cancelled context", err, daodian.ErrTransient)
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	err = s.Update(dctx, func(tx daodian.Tx) error {
		return tx.PutMerchant(context.Background(), merchant(2))
	})
	wantErr(t, "Update past its deadline", err, daodian.ErrTransient)
	if c := counts(t, s); c.Merchants != 0 {
		t.Errorf("an Update with a dead context wrote %d merchants", c.Merchants)
	}
}

// ---- identifiers ----

func checkID(t *testing.T, id string) {
	t.Helper()
	if len(id) != 19 || id < "2100000000000000000" || strings.Trim(id, "0123456789") != "" {
		t.Fatalf("NewID = %q, want 19 decimal digits from 2100000000000000000", id)
	}
}

func newIDs(t *testing.T, s daodian.Store, n int) []string {
	t.Helper()
	var ids []string
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		ids = ids[:0]
		for range n {
			id, err := tx.NewID(ctx)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

func testNewID(t *testing.T, f Factory) {
	s := f.Open(t)
	const goroutines, updates, perUpdate = 50, 20, 10 // 10 000 ids
	var (
		mu  sync.Mutex
		all = map[string]bool{}
		wg  sync.WaitGroup
	)
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range updates {
				var ids []string
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					ids = ids[:0]
					for range perUpdate {
						id, err := tx.NewID(context.Background())
						if err != nil {
							return err
						}
						ids = append(ids, id)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				// Within a transaction ids increase: the latest use of a ticket
				// is the one with the greatest id.
				for i, id := range ids {
					if i > 0 && id <= ids[i-1] {
						errs <- fmt.Errorf("ids not increasing within a transaction: %s after %s", id, ids[i-1])
						return
					}
				}
				mu.Lock()
				for _, id := range ids {
					if all[id] {
						errs <- fmt.Errorf("NewID returned %s twice", id)
					}
					all[id] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(all) != goroutines*updates*perUpdate {
		t.Fatalf("%d distinct ids, want %d", len(all), goroutines*updates*perUpdate)
	}
	for id := range all {
		checkID(t, id)
	}
}

func testNewIDAbortedNotReused(t *testing.T, f Factory) {
	s := f.Open(t)
	seen := map[string]bool{}
	for i := range 20 {
		var ids []string
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
			ids = ids[:0]
			for range 3 {
				id, err := tx.NewID(ctx)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if i%2 == 0 {
				return errBoom
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		for _, id := range ids {
			checkID(t, id)
			if seen[id] {
				t.Fatalf("id %s handed out again after the Update that got it failed", id)
			}
			seen[id] = true
		}
	}
}

func testNewIDAcrossReopen(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("no Reopen")
	}
	s := f.Open(t)
	seen := map[string]bool{}
	for round := range 3 {
		for _, id := range newIDs(t, s, 50) {
			checkID(t, id)
			if seen[id] {
				t.Fatalf("round %d: id %s handed out before a reopen and again after", round, id)
			}
			seen[id] = true
		}
		s = f.Reopen(t, s)
	}
}

func testDurable(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("no Reopen")
	}
	s := f.Open(t)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return writeEverything(ctx, tx, 1) })
	s = f.Reopen(t, s)
	same(t, "Counts after reopen",
		daodian.Counts{Apps: 1, Merchants: 1, Shops: 1, Orders: 1, Tickets: 1, Uses: 1, Fences: 1, Idem: 1}, counts(t, s))
	want := ticket(1, "S000001")
	want.Available = 6
	got := readTicket(t, s, want.ID)
	same(t, "Ticket after reopen", want, got)
}

// ---- concurrency ----

// testConcurrentIncrements: read-modify-write of one ticket from 64 goroutines
// loses no update, because a Tx's reads of a ticket hold it until the end.
func testConcurrentIncrements(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	tk.Quantity, tk.Available = daodian.MaxQuantity, 0
	insertTickets(t, s, tk)
	const goroutines, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range each {
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					cur, err := tx.Ticket(context.Background(), tk.ID)
					if err != nil {
						return err
					}
					return tx.SetAvailable(context.Background(), tk.ID, cur.Available+1)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := readTicket(t, s, tk.ID); got.Available != goroutines*each {
		t.Fatalf("Available = %d after %d increments", got.Available, goroutines*each)
	}
}

// testConcurrentMixedOutcomes: of many concurrent Updates, exactly those that
// succeeded are kept.
func testConcurrentMixedOutcomes(t *testing.T, f Factory) {
	s := f.Open(t)
	const n = 300
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i] = s.Update(context.Background(), func(tx daodian.Tx) error {
				ctx := context.Background()
				if err := tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", i))); err != nil {
					return err
				}
				if err := tx.PutMerchant(ctx, merchant(i)); err != nil {
					return err
				}
				switch i % 3 {
				case 0:
					return errBoom
				case 1:
					// A duplicate key fails this Update alone.
					return tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", i)))
				}
				return nil
			})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range results {
		switch i % 3 {
		case 0:
			wantErr(t, fmt.Sprintf("Update %d", i), err, errBoom)
		case 1:
			wantErr(t, fmt.Sprintf("Update %d", i), err, daodian.ErrDuplicate)
		default:
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
			ok++
		}
	}
	c := counts(t, s)
	if c.Idem != ok || c.Merchants != ok {
		t.Fatalf("Counts: %d idem, %d merchants; want %d of each", c.Idem, c.Merchants, ok)
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for i := range n {
			_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "app-a", Op: daodian.OpUse, RequestID: fmt.Sprint("req-", i)})
			if i%3 == 2 && err != nil {
				t.Errorf("record of successful Update %d: %v", i, err)
			}
			if i%3 != 2 && !errors.Is(err, daodian.ErrNotFound) {
				t.Errorf("record of failed Update %d: %v, want ErrNotFound", i, err)
			}
		}
		return nil
	})
}

// testViewSnapshot: a View sees one committed state, never half of an Update.
func testViewSnapshot(t *testing.T, f Factory) {
	s := f.Open(t)
	a, b := ticket(1, "S000001"), ticket(2, "S000001")
	a.Quantity, a.Available, b.Quantity, b.Available = 1000, 500, 1000, 500
	insertTickets(t, s, a, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Writers move units from a to b and back, keeping the sum.
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := a.ID, b.ID
				if (i+w)%2 == 1 {
					from, to = to, from
				}
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					ctx := context.Background()
					x, err := tx.Ticket(ctx, from)
					if err != nil {
						return err
					}
					if err := tx.SetAvailable(ctx, from, x.Available-1); err != nil {
						return err
					}
					y, err := tx.Ticket(ctx, to)
					if err != nil {
						return err
					}
					return tx.SetAvailable(ctx, to, y.Available+1)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for range 150 {
				err := s.View(context.Background(), func(tx daodian.ReadTx) error {
					ctx := context.Background()
					x, err := tx.Ticket(ctx, a.ID)
					if err != nil {
						return err
					}
					time.Sleep(50 * time.Microsecond) // let writers commit in between
					y, err := tx.Ticket(ctx, b.ID)
					if err != nil {
						return err
					}
					x2, err := tx.Ticket(ctx, a.ID)
					if err != nil {
						return err
					}
					if x.Available+y.Available != 1000 || x2.Available != x.Available {
						return fmt.Errorf("torn snapshot: a=%d b=%d a again=%d", x.Available, y.Available, x2.Available)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	x, y := readTicket(t, s, a.ID), readTicket(t, s, b.ID)
	if x.Available+y.Available != 1000 {
		t.Fatalf("final a=%d b=%d", x.Available, y.Available)
	}
}

// ---- lifecycle ----

func testPing(t *testing.T, f Factory) {
	s := f.Open(t)
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, f Factory) {
	s := f.Open(t)
	insertTickets(t, s, ticket(1, "S000001"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ran := false
	err := s.Update(ctxT(t), func(tx daodian.Tx) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("Update after Close: error %v, fn ran %v", err, ran)
	}
	err = s.View(ctxT(t), func(tx daodian.ReadTx) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("View after Close: error %v, fn ran %v", err, ran)
	}
	if err := s.Ping(ctxT(t)); err == nil {
		t.Error("Ping after Close succeeded")
	}
	_ = s.Close() // a second Close must not panic or hang
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
)

// TestTwoGatewaysOnOnePostgres runs two real `daodian serve` processes on one
// PostgreSQL database (SPEC §5.3) and splits concurrent requests across them:
// correctness must come from the database, not from either process.
func TestTwoGatewaysOnOnePostgres(t *testing.T) {
	db := testenv.NewDB(t, testenv.Postgres)
	ctx := context.Background()
	store := db.Open(t)
	l := daodian.NewLedger(store, daodian.Config{})
	app := testenv.Seed(t, l).App
	issue := func(q int) daodian.Ticket {
		o, err := l.Issue(ctx, daodian.IssueRequest{MerchantID: testenv.Merchant, Quantity: q})
		if err != nil {
			t.Fatal(err)
		}
		return o.Tickets[0]
	}
	available := func(id string) int {
		var tk *daodian.Ticket
		if err := store.View(ctx, func(tx daodian.ReadTx) error {
			var err error
			tk, err = tx.Ticket(ctx, id)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return tk.Available
	}

	// Both processes start at once on the empty schema they share.
	var procs [2]*testenv.Process
	var wg sync.WaitGroup
	for i := range procs {
		wg.Add(1)
		go func() { defer wg.Done(); procs[i] = testenv.StartServe(t, db.Args()...) }()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	clients := [2]*client.Client{
		client.New(procs[0].URL, app.Key, app.Secret),
		client.New(procs[1].URL, app.Key, app.Secret),
	}
	use := func(c *client.Client, code, rid string) (*alsc.UseResponse, error) {
		return c.Use(ctx, alsc.UseTopRequest{TicketCode: code, ShopID: testenv.Shop, TicketRequestID: rid})
	}

	t.Run("32 identical reversals, one effect", func(t *testing.T) {
		tk := issue(1)
		u, err := use(clients[0], tk.Code, "u-ident")
		if err != nil {
			t.Fatal(err)
		}
		answers := make([]alsc.ReserveResult, 32)
		storetest.Parallel(32, func(i int) {
			r, err := clients[i%2].Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: "same", TicketID: tk.ID, TicketUseTransID: u.TicketTransID})
			if err != nil {
				t.Error(err)
				return
			}
			answers[i] = r.Result
		})
		for i, a := range answers {
			if a != answers[0] || !a.Success {
				t.Fatalf("answer %d %+v differs from %+v or is not a success", i, a, answers[0])
			}
		}
		if got := available(tk.ID); got != 1 {
			t.Fatalf("available %d, want 1", got)
		}
	})

	t.Run("32 reversals of one use under different request ids, one restore", func(t *testing.T) {
		tk := issue(3)
		if _, err := use(clients[0], tk.Code, "u-a"); err != nil {
			t.Fatal(err)
		}
		u, err := use(clients[1], tk.Code, "u-b")
		if err != nil {
			t.Fatal(err)
		}
		storetest.Parallel(32, func(i int) {
			r, err := clients[i%2].Reserve(ctx, alsc.TicketReverseTopRequest{RequestID: fmt.Sprintf("diff-%d", i), TicketID: tk.ID, TicketUseTransID: u.TicketTransID})
			if err != nil || !r.Result.Success {
				t.Errorf("reversal %d: %+v %v", i, r, err)
			}
		})
		if got := available(tk.ID); got != 2 {
			t.Fatalf("available %d, want 2 (one unit restored)", got)
		}
	})

	t.Run("32 uses of a 5-unit ticket, exactly 5 succeed", func(t *testing.T) {
		tk := issue(5)
		var ok, refused atomic.Int32
		storetest.Parallel(32, func(i int) {
			_, err := use(clients[i%2], tk.Code, fmt.Sprintf("u5-%d", i))
			var pe *client.Error
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &pe) && pe.SubCode == daodian.SubNotEnoughQuantity:
				refused.Add(1)
			default:
				t.Errorf("use %d: %v", i, err)
			}
		})
		if ok.Load() != 5 || refused.Load() != 27 || available(tk.ID) != 0 {
			t.Fatalf("%d succeeded, %d refused, available %d; want 5, 27, 0", ok.Load(), refused.Load(), available(tk.ID))
		}
	})

	for _, p := range procs {
		p.Stop(t)
	}
	out, err := db.Command(t, "audit").CombinedOutput()
	if err != nil {
		t.Fatalf("daodian audit: %v\n%s", err, out)
	}
}

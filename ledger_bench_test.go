package daodian_test

import (
	"context"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/sqlite"
)

// BenchmarkUseThenReverse measures one ledger cycle — a use and the reversal of it,
// each a durable transaction — on the embedded store, with GOMAXPROCS×32 concurrent
// callers on distinct tickets, as the gateway drives it.
//
// "memory" is the store as a server opens it (the writer decides from memory,
// sqlite/mem.go); "memory misses" the same with room for 2×16 of the 1 024
// tickets, so that nearly every operation first reads its ticket from the file
// (the cost of a miss); "statements" keeps no memory, a statement per read and
// write.
func BenchmarkUseThenReverse(b *testing.B) {
	b.Run("memory", func(b *testing.B) { benchUseThenReverse(b, sqlite.Options{}) })
	b.Run("memory_misses", func(b *testing.B) { benchUseThenReverse(b, sqlite.Options{MemoryTickets: 16}) })
	b.Run("statements", func(b *testing.B) { benchUseThenReverse(b, sqlite.Options{MemoryTickets: -1}) })
}

func benchUseThenReverse(b *testing.B, opts sqlite.Options) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	l := daodian.NewLedger(s, daodian.Config{})
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: "m", ID: "s"}); err != nil {
		b.Fatal(err)
	}
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "bench", MerchantID: "m"})
	if err != nil {
		b.Fatal(err)
	}
	const tickets = 1024
	reqs := make([]daodian.IssueRequest, tickets)
	for i := range reqs {
		reqs[i] = daodian.IssueRequest{MerchantID: "m"}
	}
	issued, err := l.IssueMany(ctx, reqs)
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		worker := next.Add(1)
		for i := 0; pb.Next(); i++ {
			t := issued[(int(worker)*97+i)%tickets].Tickets[0]
			rid := strconv.FormatInt(worker, 10) + "-" + strconv.Itoa(i)
			u, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: t.Code, ShopID: "s", RequestID: "u" + rid})
			if err != nil {
				// Another worker holds this ticket's unit right now; the cycle is
				// still a full transaction's work.
				continue
			}
			r, err := l.Reverse(ctx, app, daodian.ReverseRequest{RequestID: "r" + rid, TicketID: t.ID, TransID: u.TransID})
			if err != nil || !r.Success {
				b.Fatalf("reverse: %+v %v", r, err)
			}
		}
	})
}

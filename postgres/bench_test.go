package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/daodian/daodian"
)

// BenchmarkUpdate runs the statements of one reversal per operation, from 32
// goroutines per processor (64 on the 2-core machine of SPEC §6, its client
// count): the ticket lock, the idempotency lookup, the latest active use, marking
// it reversed, giving its unit back and recording the answer, all committed with
// synchronous_commit=on. The operations spread over many tickets, as the load
// generator's do; each reverses a use made ready before the timer starts.
// testdata/pgbench_reverse.sql is the same transaction for pgbench, the baseline
// of SPEC §6.
//
// It runs with the default pool (4×GOMAXPROCS connections) and with one connection
// per client, as pgbench uses: commits are flushed in groups, so more transactions
// in flight can mean fewer flushes per reversal. And with and without the
// reversal's record (SPEC §8), whose insert is the one difference: its cost.
func BenchmarkUpdate(b *testing.B) {
	for _, records := range []int{0, 1} {
		b.Run(fmt.Sprintf("pool=default/records=%d", records), func(b *testing.B) { benchmarkReversals(b, Options{}, records) })
		b.Run(fmt.Sprintf("pool=64/records=%d", records), func(b *testing.B) { benchmarkReversals(b, Options{MaxConns: 64}, records) })
	}
}

func benchmarkReversals(b *testing.B, opts Options, records int) {
	s := newStore(b, opts)
	ctx := context.Background()
	tickets := max(256, b.N/5000)
	ids := make([]string, tickets)
	mustUpdateB(b, s, func(tx daodian.Tx) error {
		for i := range ids {
			ids[i] = strconv.Itoa(2100000000000000000 + i)
			tk := sampleTicket(ids[i], strconv.Itoa(100000000000+i), "so"+strconv.Itoa(i), daodian.MaxQuantity)
			tk.Available = daodian.MaxQuantity - (b.N/tickets + boolInt(i < b.N%tickets))
			if err := tx.InsertTicket(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})
	// Use j consumes one unit of ticket j mod tickets, as operation j reverses.
	rows := make([][]any, b.N)
	for j := range rows {
		u := sampleUse(strconv.Itoa(2200000000000000000+j), ids[j%tickets], 1)
		rows[j] = []any{u.TransID, u.GroupTransID, u.TicketID, u.AppKey, u.RequestID, u.ShopID, u.Units, u.GmtBiz, u.CreatedAt}
	}
	if _, err := s.pool.CopyFrom(ctx, pgx.Identifier{"uses"},
		[]string{"trans_id", "group_trans_id", "ticket_id", "app_key", "request_id", "shop_id", "units", "gmt_biz", "created_at"},
		pgx.CopyFromRows(rows)); err != nil {
		b.Fatal(err)
	}
	if _, err := s.pool.Exec(ctx, "ANALYZE"); err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(32)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			j := next.Add(1) - 1
			id := ids[j%int64(tickets)]
			key := daodian.IdemKey{AppKey: "app1", Op: daodian.OpReverse, RequestID: "bench-" + strconv.FormatInt(j, 10)}
			err := s.Update(ctx, func(tx daodian.Tx) error {
				t, err := tx.Ticket(ctx, id)
				if err != nil {
					return err
				}
				if _, err := tx.Idem(ctx, key); err == nil {
					return nil
				} else if !errors.Is(err, daodian.ErrNotFound) {
					return err
				}
				u, err := tx.LatestActiveUse(ctx, id, "app1")
				if err != nil {
					return err
				}
				now := at(20)
				u.Reversed, u.ReversedAt, u.ReversalAppKey, u.ReversalRequestID, u.ReversalBizDate = true, now, key.AppKey, key.RequestID, now
				if err := tx.MarkReversed(ctx, u); err != nil {
					return err
				}
				if err := tx.SetAvailable(ctx, id, t.Available+u.Units); err != nil {
					return err
				}
				for range records {
					r := daodian.Record{At: now, Kind: daodian.RecordReversal, MerchantID: "m1", ShopID: u.ShopID, TicketID: id,
						TransID: u.TransID, RequestID: key.RequestID, AppKey: key.AppKey, Units: u.Units, BizTime: now}
					if err := tx.AppendRecord(ctx, &r); err != nil {
						return err
					}
				}
				return tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: key, Fingerprint: id + "\x00", TicketID: id,
					Answer: []byte(`{"success":true}`), CreatedAt: now})
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reversals/s")
}

func mustUpdateB(b *testing.B, s *Store, fn func(tx daodian.Tx) error) {
	b.Helper()
	if err := s.Update(context.Background(), fn); err != nil {
		b.Fatal(err)
	}
}

func boolInt(v bool) int {
	if v {
		return 1
	}
	return 0
}

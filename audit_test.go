package daodian_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/sqlite"
)

// TestAuditRecordedRefusals: the audit accepts the refusals a use or refund
// records and flags a recorded answer that is never recorded (a conflict, an
// invalid parameter) or a refusal without its sub_code.
func TestAuditRecordedRefusals(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir()+"/audit.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	l := daodian.NewLedger(s, daodian.Config{})
	app, err := l.CreateApp(ctx, daodian.AppSpec{Name: "pos", MerchantID: "m1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Use(ctx, app, daodian.UseRequest{TicketCode: "100000000000", ShopID: "s", RequestID: "real"}); err == nil {
		t.Fatal("a use of no ticket succeeded")
	}
	if _, err := l.Refund(ctx, app, daodian.RefundRequest{TransID: "1", TicketCode: "100000000000", RequestID: "real"}); err == nil {
		t.Fatal("a refund of no ticket succeeded")
	}
	rep, err := l.Audit(ctx)
	if err != nil || len(rep.Violations) != 0 || rep.Idem != 2 {
		t.Fatalf("audit of recorded refusals: %+v, %v", rep, err)
	}
	bad := map[string]string{
		"conflict": `{"refusal":{"sub_code":"isv.request-id-conflict","sub_msg":"请求id重复且参数不一致"}}`,
		"invalid":  `{"refusal":{"sub_code":"isv.invalid-parameter","sub_msg":"非法参数"}}`,
		"empty":    `{"refusal":{"sub_code":"","sub_msg":""}}`,
		"mistyped": `{"refusal":"isv.ticket-not-found"}`,
	}
	err = s.Update(ctx, func(tx daodian.Tx) error {
		for rid, answer := range bad {
			if err := tx.PutIdem(ctx, &daodian.IdemRecord{IdemKey: daodian.IdemKey{AppKey: app.Key, Op: daodian.OpUse, RequestID: rid},
				Fingerprint: "f", Answer: []byte(answer), CreatedAt: time.Now()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err = l.Audit(ctx)
	if err != nil {
		t.Fatal(err)
	}
	flagged := map[string]bool{}
	for _, v := range rep.Violations {
		flagged[v.ID[strings.LastIndexByte(v.ID, '/')+1:]] = true
	}
	for rid := range bad {
		if !flagged[rid] {
			t.Errorf("audit did not flag the recorded answer %q: %v", rid, rep.Violations)
		}
	}
	if len(rep.Violations) != len(bad) {
		t.Errorf("violations %v, want one per bad record", rep.Violations)
	}
}

// recordsStore serves a fixed list of records to the audit, over an otherwise
// empty ledger.
type recordsStore struct {
	daodian.Store
	recs []daodian.Record
}

func (s *recordsStore) View(ctx context.Context, fn func(daodian.ReadTx) error) error {
	return s.Store.View(ctx, func(tx daodian.ReadTx) error { return fn(&recordsTx{tx, s.recs}) })
}

type recordsTx struct {
	daodian.ReadTx
	recs []daodian.Record
}

func (t *recordsTx) EachRecord(ctx context.Context, fn func(*daodian.Record) error) error {
	for i := range t.recs {
		if err := fn(&t.recs[i]); err != nil {
			return err
		}
	}
	return nil
}

// TestAuditRecordOrder: record ids must increase; records a store has not
// numbered yet (empty ID, daodian.RecordSequencer) may only follow the numbered
// ones.
func TestAuditRecordOrder(t *testing.T) {
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir()+"/audit.db", sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for _, c := range []struct {
		ids  []string
		want int
	}{
		{[]string{"1", "2", "10"}, 0},
		{[]string{"1", "2", "", ""}, 0},
		{[]string{"", ""}, 0},
		{[]string{"2", "1"}, 1},
		{[]string{"1", "1"}, 1},
		{[]string{"1", "", "3"}, 1},
	} {
		recs := make([]daodian.Record, len(c.ids))
		for i, id := range c.ids {
			recs[i] = daodian.Record{ID: id, Kind: daodian.RecordFence, MerchantID: "m1", TicketID: "1"}
		}
		rep, err := daodian.NewLedger(&recordsStore{s, recs}, daodian.Config{}).Audit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Violations) != c.want || rep.Records != len(c.ids) {
			t.Errorf("ids %q: %d records, violations %v; want %d", c.ids, rep.Records, rep.Violations, c.want)
		}
	}
}

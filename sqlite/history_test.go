package sqlite

import (
	"context"
	"database/sql"
	"encoding/binary"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/storetest"
)

// TestHistory runs the history contract of SPEC §8 on the embedded store.
func TestHistory(t *testing.T) {
	storetest.RunHistory(t, storetest.Factory{
		Open: func(t *testing.T) daodian.Store { return openAt(t, tempPath(t), Options{}) },
	})
}

// TestRecordsBackfilled: a ledger written before records existed (schema
// version 3: no records table, uses without amounts) gets its history on its
// first open: an issue per ticket, a use per use, a reversal and a refund per
// reversed and refunded use, a fence per fence, in time order, with the uses'
// amounts recovered but for the remainder cents; the audit is clean.
func TestRecordsBackfilled(t *testing.T) {
	path := tempPath(t)
	s := openAt(t, path, Options{})
	w := storetest.NewWorld(t, s)
	tk := w.Issue(1, 3).Tickets[0]
	u1 := w.MustUse(w.A, tk.Code, 1, "u1")
	w.Clock.Advance(time.Minute)
	w.MustUse(w.A, tk.Code, 2, "u2")
	w.Clock.Advance(time.Minute)
	w.Reverse(w.A, "r1", tk.ID, "") // u2
	w.Reverse(w.A2, "r-empty", tk.ID, "")
	w.Clock.Advance(time.Minute)
	if _, err := w.Ledger.Refund(w.Ctx, w.A, daodian.RefundRequest{TransID: u1.TransID, TicketCode: tk.Code, RequestID: "f1"}); err != nil {
		t.Fatal(err)
	}
	want, err := w.Ledger.TicketHistory(w.Ctx, tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Back to version 3.
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT doc, reversal, refund FROM uses`)
	if err != nil {
		t.Fatal(err)
	}
	var legacy []*daodian.Use
	for rows.Next() {
		var doc, rev, ref []byte
		if err := rows.Scan(&doc, &rev, &ref); err != nil {
			t.Fatal(err)
		}
		u, err := decodeUse(doc, rev, ref)
		if err != nil {
			t.Fatal(err)
		}
		legacy = append(legacy, u)
	}
	rows.Close()
	for _, u := range legacy {
		full := useDoc(nil, u)
		amounts := len(binary.AppendVarint(binary.AppendVarint(nil, u.BuyerPayCents), u.ReceiptCents))
		if _, err := db.Exec(`UPDATE uses SET doc = ? WHERE trans_id = ?`, full[:len(full)-amounts], u.TransID); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	schemaAt(t, path, 3, `DROP TABLE records`)

	s2 := openAt(t, path, Options{})
	l := daodian.NewLedger(s2, daodian.Config{})
	got, err := l.TicketHistory(context.Background(), tk.ID, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Timeline) != len(want.Timeline) {
		t.Fatalf("backfilled timeline has %d records, want %d", len(got.Timeline), len(want.Timeline))
	}
	for i, g := range got.Timeline {
		w := want.Timeline[i]
		// The remainder cent of the last unit cannot be recovered.
		if w.Kind != daodian.RecordIssue && w.Units == 2 {
			w.ReceiptCents--
		}
		g.ID, w.ID = "", ""
		if g != w {
			t.Errorf("backfilled record %d:\n got %+v\nwant %+v", i, g, w)
		}
	}
	rep, err := l.Audit(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Violations {
		t.Errorf("audit after the backfill: %s", v)
	}
}

package sqlite

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/daodian/daodian"
)

// Writing the batch's pending writes (mem.go) to the file: a few multi-row
// statements per batch instead of a statement per row, each in the order rows
// were first touched. A row count past maxRowsPerStatement is written in chunks.

// maxRowsPerStatement bounds the rows of one statement: 64 rows of the widest
// table take 896 of SQLite's 32 766 variables, and the prepared statements for
// every size stay few (sizes up to 64, per table).
const maxRowsPerStatement = 64

// Kinds of multi-row statement.
type flushKind int

const (
	flushInsertUses flushKind = iota
	flushUpdateUses
	flushAvailable
	flushFences
	flushIdem
	flushRecords
	nFlushKinds
)

// flushSQL returns the text of a statement of kind k for n rows.
func flushSQL(k flushKind, n int) string {
	values := func(cols int) string {
		row := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
		return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
	}
	switch k {
	case flushInsertUses:
		return `INSERT INTO uses (trans_id, group_trans_id, ticket_id, app_key, units, reversed, refunded, doc, reversal, refund) VALUES ` + values(10)
	case flushUpdateUses:
		return `UPDATE uses SET reversed = v.column2, reversal = v.column3, refunded = v.column4, refund = v.column5
			FROM (VALUES ` + values(5) + `) AS v WHERE uses.trans_id = v.column1`
	case flushAvailable:
		return `UPDATE tickets SET available = v.column2 FROM (VALUES ` + values(2) + `) AS v WHERE tickets.id = v.column1`
	case flushFences:
		return `INSERT INTO fences (ticket_id, app_key, at, request_id, created_at) VALUES ` + values(5) + `
			ON CONFLICT (ticket_id, app_key) DO UPDATE SET at = excluded.at, request_id = excluded.request_id, created_at = excluded.created_at`
	case flushIdem:
		return `INSERT INTO idem (` + idemCols + `) VALUES ` + values(7)
	case flushRecords:
		return `INSERT INTO records (id, at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents) VALUES ` + values(14)
	}
	panic("sqlite: unknown flush kind")
}

// flusher holds the writer's multi-row statements, prepared on first use.
type flusher struct {
	stmts [nFlushKinds][maxRowsPerStatement + 1]*stmt
	args  []any
}

func (f *flusher) stmt(s *session, k flushKind, n int) (*stmt, error) {
	if st := f.stmts[k][n]; st != nil {
		return st, nil
	}
	st, err := s.prepare(bg, flushSQL(k, n))
	if err != nil {
		return nil, err
	}
	f.stmts[k][n] = st
	return st, nil
}

// rows writes n rows of kind k, row i's arguments appended by add, in chunks of
// at most maxRowsPerStatement; want, if not negative, is the number of rows the
// statements must change in all (an update of a row that does not exist is a
// divergence between memory and the file, and fails the batch).
func (f *flusher) rows(s *session, k flushKind, n int, add func(args []any, i int) []any, want int) error {
	changed := int64(0)
	for start := 0; start < n; start += maxRowsPerStatement {
		m := min(maxRowsPerStatement, n-start)
		st, err := f.stmt(s, k, m)
		if err != nil {
			return err
		}
		f.args = f.args[:0]
		for i := start; i < start+m; i++ {
			f.args = add(f.args, i)
		}
		c, err := s.exec(st, f.args...)
		clear(f.args) // drop references to the rows
		if err != nil {
			return fmt.Errorf("sqlite: write the batch (%d rows of kind %d): %w", m, k, err)
		}
		changed += c
	}
	if want >= 0 && changed != int64(want) {
		return fmt.Errorf("sqlite: write the batch: %d rows changed by kind %d, want %d: memory and file differ", changed, k, want)
	}
	return nil
}

// flush writes p to the file, in the writer's open transaction.
func (f *flusher) flush(s *session, p *pending) error {
	if p.empty() {
		return nil
	}
	var inserts, updates []*daodian.Use
	for _, id := range p.useOrder {
		if p.newUses[id] {
			inserts = append(inserts, p.uses[id])
		} else {
			updates = append(updates, p.uses[id])
		}
	}
	if err := f.rows(s, flushInsertUses, len(inserts), func(a []any, i int) []any {
		u := inserts[i]
		return append(a, u.TransID, u.GroupTransID, u.TicketID, u.AppKey, int64(u.Units), u.Reversed, u.Refunded,
			useDoc(nil, u), reversalDoc(nil, u), refundDoc(nil, u))
	}, len(inserts)); err != nil {
		return err
	}
	if err := f.rows(s, flushUpdateUses, len(updates), func(a []any, i int) []any {
		u := updates[i]
		return append(a, u.TransID, u.Reversed, reversalDoc(nil, u), u.Refunded, refundDoc(nil, u))
	}, len(updates)); err != nil {
		return err
	}
	ids := make([]string, 0, len(p.available))
	for id := range p.available {
		ids = append(ids, id)
	}
	slices.Sort(ids) // a fixed order: the same pages in the same order every time
	if err := f.rows(s, flushAvailable, len(ids), func(a []any, i int) []any {
		return append(a, ids[i], int64(p.available[ids[i]]))
	}, len(ids)); err != nil {
		return err
	}
	fences := make([]daodian.Fence, 0, len(p.fences))
	for _, fe := range p.fences {
		fences = append(fences, fe)
	}
	slices.SortFunc(fences, func(a, b daodian.Fence) int {
		if c := strings.Compare(a.TicketID, b.TicketID); c != 0 {
			return c
		}
		return strings.Compare(a.AppKey, b.AppKey)
	})
	if err := f.rows(s, flushFences, len(fences), func(a []any, i int) []any {
		fe := &fences[i]
		return append(a, fe.TicketID, fe.AppKey, micros(fe.At), fe.RequestID, micros(fe.CreatedAt))
	}, -1); err != nil {
		return err
	}
	if err := f.rows(s, flushIdem, len(p.idem), func(a []any, i int) []any {
		r := p.idem[i]
		return append(a, r.AppKey, string(r.Op), r.RequestID, r.Fingerprint, r.TicketID, r.Answer, micros(r.CreatedAt))
	}, len(p.idem)); err != nil {
		return err
	}
	return f.rows(s, flushRecords, len(p.records), func(a []any, i int) []any {
		r := &p.records[i]
		id, _ := strconv.ParseInt(r.ID, 10, 64)
		return append(a, id, micros(r.At), int64(daodian.Day(r.At)), string(r.Kind), r.MerchantID, r.ShopID, r.TicketID,
			r.TransID, r.RequestID, r.AppKey, int64(r.Units), micros(r.BizTime), r.BuyerPayCents, r.ReceiptCents)
	}, len(p.records))
}

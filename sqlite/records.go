package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/daodian/daodian"
)

// Records (SPEC §8). A record's id is its rowid: SQLite hands out the next rowid
// at the insert, and every write transaction on the file is serialised (the one
// writer of a Store, and the write lock across processes), so ids increase in
// commit order. Records are never deleted, so a rowid is never handed out twice.
//
// Indexes: (merchant_id, id) pages a merchant's records; (merchant_id, day) —
// whose entries end with the rowid — finds a day's records in id order for the
// statement and reconciliation; (ticket_id) — likewise — is a ticket's timeline.

const recordCols = `id, at, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents`

const (
	sqlInsertRecord = `INSERT INTO records (at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id`
	sqlTicketRecords = `SELECT ` + recordCols + ` FROM records WHERE ticket_id = ? ORDER BY id LIMIT ` + "?"
	sqlDayTotals     = `SELECT shop_id, kind, count(*), sum(units), sum(buyer_pay_cents), sum(receipt_cents)
		FROM records WHERE merchant_id = ? AND day = ? AND (? = '' OR shop_id = ?) GROUP BY shop_id, kind`
	// The first id of the first day at or after a day, and the last id of the
	// last day at or before a day: one descent of (merchant_id, day) each.
	sqlFirstIDFromDay = `SELECT id FROM records WHERE merchant_id = ? AND day >= ? ORDER BY day, id LIMIT 1`
	sqlLastIDToDay    = `SELECT id FROM records WHERE merchant_id = ? AND day <= ? ORDER BY day DESC, id DESC LIMIT 1`
)

var sqlDayUses = `SELECT ` + prefixed("r.", recordCols) + `, u.reversed, u.refunded
	FROM records r INDEXED BY records_day JOIN uses u ON u.trans_id = r.trans_id
	WHERE r.merchant_id = ? AND r.day = ? AND r.kind = 'use' ORDER BY r.id`

func prefixed(p, cols string) string {
	parts := strings.Split(cols, ", ")
	for i := range parts {
		parts[i] = p + parts[i]
	}
	return strings.Join(parts, ", ")
}

func (t *writeTx) AppendRecord(ctx context.Context, r *daodian.Record) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memAppendRecord(r)
	}
	if err := t.write(); err != nil {
		return err
	}
	row, err := t.s.queryRow(t.s.w.insertRecord, 1, micros(r.At), int64(daodian.Day(r.At)), string(r.Kind), r.MerchantID,
		r.ShopID, r.TicketID, r.TransID, r.RequestID, r.AppKey, int64(r.Units), micros(r.BizTime), r.BuyerPayCents, r.ReceiptCents)
	if err != nil {
		return t.s.fail(err)
	}
	r.ID = strconv.FormatInt(asInt(row[0]), 10)
	return nil
}

func decodeRecord(row []driver.Value) daodian.Record {
	return daodian.Record{
		ID:            strconv.FormatInt(asInt(row[0]), 10),
		At:            fromMicros(asInt(row[1])),
		Kind:          daodian.RecordKind(asStr(row[2])),
		MerchantID:    asStr(row[3]),
		ShopID:        asStr(row[4]),
		TicketID:      asStr(row[5]),
		TransID:       asStr(row[6]),
		RequestID:     asStr(row[7]),
		AppKey:        asStr(row[8]),
		Units:         int(asInt(row[9])),
		BizTime:       fromMicros(asInt(row[10])),
		BuyerPayCents: asInt(row[11]),
		ReceiptCents:  asInt(row[12]),
	}
}

const nRecordCols = 13

// query runs a one-off query (prepared for this call) and hands each row to fn.
func (t *readTx) queryEach(ctx context.Context, text string, ncol int, fn func([]driver.Value) error, args ...any) error {
	if t.done {
		return errTxDone
	}
	if t.s.broken != nil {
		return t.s.broken
	}
	st, err := t.s.prepareOnce(bg, text)
	if err != nil {
		return t.s.fail(err)
	}
	qctx := ctx
	if t.s.w != nil {
		qctx = bg // see walk: an interrupted statement on the writer can roll back the batch
	}
	err = t.s.query(qctx, st, ncol, 0, fn, args...)
	if cerr := st.s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return t.s.walkResult(err)
}

func (t *readTx) Records(ctx context.Context, q daodian.RecordQuery) ([]daodian.Record, error) {
	if q.Limit < 1 || q.Limit > daodian.MaxRecordsPage+1 {
		return nil, fmt.Errorf("sqlite: records limit %d out of range", q.Limit)
	}
	after := int64(0)
	if q.AfterID != "" {
		v, err := strconv.ParseInt(q.AfterID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("sqlite: records after %q: %w", q.AfterID, err)
		}
		after = v
	}
	// A time range is first narrowed to ids: those from the first record of the
	// day before From to the last of the day after To. A record's time is when
	// its change was decided, moments before its commit gave it its id, so ids
	// follow times within far less than a day; the margin keeps every record of
	// the range inside the ids scanned, and the scan stays that of the days
	// asked for, not of the merchant's whole history. The bounds are merged
	// into one lower and one upper bound here: given two lower bounds on id,
	// SQLite seeks by one and filters by the other, and seeking by the cursor
	// on a first page would scan every record before the day.
	lo, hi := after+1, int64(-1)
	var times strings.Builder
	var timeArgs []any
	if !q.From.IsZero() {
		first, ok, err := t.boundID(sqlFirstIDFromDay, q.MerchantID, daodian.Day(q.From.Add(-24*time.Hour)))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		lo = max(lo, first)
		times.WriteString(` AND at >= ?`)
		timeArgs = append(timeArgs, micros(q.From))
	}
	if !q.To.IsZero() {
		last, ok, err := t.boundID(sqlLastIDToDay, q.MerchantID, daodian.Day(q.To.Add(24*time.Hour)))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, nil
		}
		hi = last
		times.WriteString(` AND at < ?`)
		timeArgs = append(timeArgs, micros(q.To))
	}
	var where strings.Builder
	args := []any{q.MerchantID, lo}
	where.WriteString(`merchant_id = ? AND id >= ?`)
	if hi >= 0 {
		if hi < lo {
			return nil, nil
		}
		where.WriteString(` AND id <= ?`)
		args = append(args, hi)
	}
	where.WriteString(times.String())
	args = append(args, timeArgs...)
	if q.ShopID != "" {
		where.WriteString(` AND shop_id = ?`)
		args = append(args, q.ShopID)
	}
	if len(q.Kinds) > 0 {
		where.WriteString(` AND kind IN (?` + strings.Repeat(", ?", len(q.Kinds)-1) + `)`)
		for _, k := range q.Kinds {
			args = append(args, string(k))
		}
	}
	args = append(args, int64(q.Limit))
	recs := make([]daodian.Record, 0, min(q.Limit, 256))
	err := t.queryEach(ctx, `SELECT `+recordCols+` FROM records INDEXED BY records_merchant WHERE `+where.String()+` ORDER BY id LIMIT ?`,
		nRecordCols, func(row []driver.Value) error {
			recs = append(recs, decodeRecord(row))
			return nil
		}, args...)
	if err != nil {
		return nil, err
	}
	return recs, nil
}

// boundID runs one of the id-bound queries; ok is false when it finds no record.
func (t *readTx) boundID(text, merchantID string, day int) (id int64, ok bool, err error) {
	err = t.queryEach(bg, text, 1, func(row []driver.Value) error {
		id, ok = asInt(row[0]), true
		return nil
	}, merchantID, int64(day))
	return id, ok, err
}

func (t *readTx) TicketRecords(ctx context.Context, ticketID string) ([]daodian.Record, error) {
	var recs []daodian.Record
	err := t.queryEach(ctx, sqlTicketRecords, nRecordCols, func(row []driver.Value) error {
		recs = append(recs, decodeRecord(row))
		return nil
	}, ticketID, int64(daodian.MaxTimeline))
	return recs, err
}

func (t *readTx) DayTotals(ctx context.Context, merchantID string, day int, shopID string) ([]daodian.DayTotal, error) {
	var out []daodian.DayTotal
	err := t.queryEach(ctx, sqlDayTotals, 6, func(row []driver.Value) error {
		out = append(out, daodian.DayTotal{
			ShopID: asStr(row[0]), Kind: daodian.RecordKind(asStr(row[1])), Count: int(asInt(row[2])),
			Units: asInt(row[3]), BuyerPayCents: asInt(row[4]), ReceiptCents: asInt(row[5]),
		})
		return nil
	}, merchantID, int64(day), shopID, shopID)
	slices.SortFunc(out, func(a, b daodian.DayTotal) int {
		if c := strings.Compare(a.ShopID, b.ShopID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
	return out, err
}

func (t *readTx) EachDayUse(ctx context.Context, merchantID string, day int, fn func(*daodian.DayUse) error) error {
	return t.queryEach(ctx, sqlDayUses, nRecordCols+2, func(row []driver.Value) error {
		du := daodian.DayUse{Record: decodeRecord(row), Reversed: asInt(row[nRecordCols]) != 0, Refunded: asInt(row[nRecordCols+1]) != 0}
		if err := fn(&du); err != nil {
			return &walkError{err}
		}
		return nil
	}, merchantID, int64(day))
}

// backfillRecords writes the records of a ledger written before records
// existed (the migration to version 4), from what its rows still tell: an issue
// per ticket (at its creation), a use per use, a reversal and a refund per
// reversed or refunded use (at the time each was marked), and a fence per fence
// (at its last move: the moves before it were overwritten). They are numbered in
// time order, records of one instant in the order issue, use, reversal, fence,
// refund. It also gives those uses their amounts, which uses did not keep:
// each unit's share of the ticket's prices, without the remainder cents that a
// ticket's last unit used to carry (which use took the last unit is lost once
// uses are reversed).
func backfillRecords(ctx context.Context, c *sql.Conn) error {
	type ticketInfo struct {
		merchant              string
		quantity              int
		totalCents, realCents int64
	}
	tickets := map[string]ticketInfo{}
	var recs []daodian.Record
	rows, err := c.QueryContext(ctx, `SELECT available, doc FROM tickets`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var available int64
		var doc []byte
		if err := rows.Scan(&available, &doc); err != nil {
			rows.Close()
			return err
		}
		t, err := decodeTicket(available, doc)
		if err != nil {
			rows.Close()
			return err
		}
		tickets[t.ID] = ticketInfo{t.MerchantID, t.Quantity, t.TotalAmountCents, t.RealAmountCents}
		recs = append(recs, daodian.Record{At: t.CreatedAt, Kind: daodian.RecordIssue, MerchantID: t.MerchantID, TicketID: t.ID,
			Units: t.Quantity, BuyerPayCents: t.TotalAmountCents, ReceiptCents: t.RealAmountCents})
	}
	if err := rows.Close(); err != nil {
		return err
	}
	rows, err = c.QueryContext(ctx, `SELECT doc, reversal, refund FROM uses`)
	if err != nil {
		return err
	}
	var amounts []*daodian.Use
	for rows.Next() {
		var doc, rev, ref []byte
		if err := rows.Scan(&doc, &rev, &ref); err != nil {
			rows.Close()
			return err
		}
		u, err := decodeUse(doc, rev, ref)
		if err != nil {
			rows.Close()
			return err
		}
		tk := tickets[u.TicketID]
		if tk.quantity > 0 && u.BuyerPayCents == 0 && u.ReceiptCents == 0 {
			u.BuyerPayCents = tk.totalCents / int64(tk.quantity) * int64(u.Units)
			u.ReceiptCents = tk.realCents / int64(tk.quantity) * int64(u.Units)
			amounts = append(amounts, u)
		}
		base := daodian.Record{MerchantID: tk.merchant, ShopID: u.ShopID, TicketID: u.TicketID, TransID: u.TransID,
			Units: u.Units, BuyerPayCents: u.BuyerPayCents, ReceiptCents: u.ReceiptCents}
		r := base
		r.At, r.Kind, r.RequestID, r.AppKey, r.BizTime = u.CreatedAt, daodian.RecordUse, u.RequestID, u.AppKey, u.GmtBiz
		recs = append(recs, r)
		if u.Reversed {
			r := base
			r.At, r.Kind, r.RequestID, r.AppKey, r.BizTime = u.ReversedAt, daodian.RecordReversal, u.ReversalRequestID, u.ReversalAppKey, u.ReversalBizDate
			recs = append(recs, r)
		}
		if u.Refunded {
			r := base
			r.At, r.Kind, r.RequestID, r.AppKey = u.RefundedAt, daodian.RecordRefund, u.RefundRequestID, u.RefundAppKey
			recs = append(recs, r)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	rows, err = c.QueryContext(ctx, `SELECT ticket_id, app_key, at, request_id, created_at FROM fences`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var ticketID, appKey, requestID string
		var at, created int64
		if err := rows.Scan(&ticketID, &appKey, &at, &requestID, &created); err != nil {
			rows.Close()
			return err
		}
		recs = append(recs, daodian.Record{At: fromMicros(created), Kind: daodian.RecordFence, MerchantID: tickets[ticketID].merchant,
			TicketID: ticketID, RequestID: requestID, AppKey: appKey, BizTime: fromMicros(at)})
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, u := range amounts {
		if _, err := c.ExecContext(ctx, `UPDATE uses SET doc = ? WHERE trans_id = ?`, useDoc(nil, u), u.TransID); err != nil {
			return err
		}
	}
	kindOrder := map[daodian.RecordKind]int{daodian.RecordIssue: 0, daodian.RecordUse: 1, daodian.RecordReversal: 2, daodian.RecordFence: 3, daodian.RecordRefund: 4}
	slices.SortStableFunc(recs, func(a, b daodian.Record) int {
		if c := a.At.Compare(b.At); c != 0 {
			return c
		}
		return kindOrder[a.Kind] - kindOrder[b.Kind]
	})
	st, err := c.PrepareContext(ctx, strings.TrimSuffix(sqlInsertRecord, " RETURNING id"))
	if err != nil {
		return err
	}
	defer st.Close()
	for _, r := range recs {
		if _, err := st.ExecContext(ctx, micros(r.At), int64(daodian.Day(r.At)), string(r.Kind), r.MerchantID, r.ShopID, r.TicketID,
			r.TransID, r.RequestID, r.AppKey, int64(r.Units), micros(r.BizTime), r.BuyerPayCents, r.ReceiptCents); err != nil {
			return err
		}
	}
	return nil
}

func (t *readTx) EachRecord(ctx context.Context, fn func(*daodian.Record) error) error {
	return t.walk(ctx, `SELECT `+recordCols+` FROM records ORDER BY id`, nRecordCols, func(row []driver.Value) error {
		r := decodeRecord(row)
		if err := fn(&r); err != nil {
			return &walkError{err}
		}
		return nil
	})
}

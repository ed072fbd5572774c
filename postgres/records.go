package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
)

// Records (SPEC §8) and their record_id.
//
// A record_id must increase in commit order, and more precisely a reader paging
// by record_id (records pages, and the events of §9 pulled after an event_id)
// must never find a record appear behind its position: once a reader has seen
// id N, no record with an id below N may become visible later. With several
// gateways committing at once, neither obvious way gives that cheaply:
//
//   - an id taken from a sequence when the record is inserted orders records by
//     insertion, not by commit: a transaction that took 10 can commit after one
//     that took 11 and that a reader has already listed;
//   - an id taken from a counter row at commit serialises every commit of every
//     gateway on that row's lock, which undoes PostgreSQL's group commit.
//
// So a record is numbered after its commit. Its transaction appends it to
// record_queue, keyed by seq, a sequence value taken at the insert (a held
// write, sent with COMMIT: no round trip of its own). A numbering pass
// (SequenceRecords) then moves the queued records to records, giving them
// record_ids above every id handed out so far, in seq order, in a transaction
// of its own. Passes run one at a time, whichever process runs them: each
// first locks the row of record_numbering, which holds the last id handed out.
//
// Why that is enough: a pass's moving statement runs at READ COMMITTED after
// the lock is granted, so its snapshot sees every earlier pass committed (a
// transaction's commit is visible before its locks are released), and numbers
// from the last id those handed out. It moves exactly the queued records its
// snapshot sees, that is the records whose transactions had committed; a
// record whose transaction is still running (or has not begun) is invisible to
// it and is left to a later pass, which numbers it above everything numbered
// so far. A reader lists records only, never the queue, so every id it can see
// was handed out by a pass that committed before its snapshot, and every pass
// that commits later hands out higher ids: nothing appears behind a position
// already seen. The move is atomic, so every snapshot has each record exactly
// once, queued or numbered.
//
// What "commit order" then means on PostgreSQL: a record committed before a
// pass began is numbered below every record committed after that pass's
// snapshot; records whose commits fall between the same two passes are
// numbered in seq (insertion) order, and their relative commit order is not
// kept — no reader can tell it from the records anyway, since they become
// visible together. For one ticket the order is exact: its transactions hold
// the ticket's row lock while they insert their records, so their seq values,
// taken with the lock held, follow their commits (record_queue_seq has cache 1
// so that values follow the order they are taken across sessions).
//
// A condition such as "number only the records of transactions older than the
// snapshot's xmin" (pg_snapshot_xmin) is not needed for this, and would hurt:
// visibility in the pass's snapshot already says the inserting transaction
// committed, while xmin is the oldest transaction running anywhere on the
// server (any database, any client): one long transaction would stop
// numbering for its whole life.
//
// Until a pass numbers it, a committed record is in the queue: the reads that
// need no commit order (TicketRecords, DayTotals, EachDayUse, EachRecord,
// Counts) read both tables and report a queued record after the numbered ones,
// in seq order, with an empty ID; Records lists numbered records only, and the
// ledger runs a pass before it (daodian.RecordSequencer), so that a page lists
// everything committed before it.

// recordBatch bounds the records one numbering pass moves: a backlog (records
// written while nothing ran the passes) is numbered in transactions of this
// size.
const recordBatch = 10_000

// recordPage is the number of rows one keyset page of a record walk reads.
const recordPage = 1000

const (
	recordFields = `at, day, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time,
	buyer_pay_cents, receipt_cents`
	// The columns a record is read from: a key for keyset pages (record_id, or
	// seq in the queue), the record_id (NULL in the queue), then the fields.
	recordRead = `record_id, record_id, at, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents`
	queuedRead = `seq, NULL::bigint, at, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents`

	sqlAppendRecord = `INSERT INTO record_queue (` + recordFields + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)`

	// Whether anything is queued: an idle pass takes no lock and writes nothing.
	// Asked of the index: the queue's heap holds every row moved since the
	// last vacuum, and a scan of it (the plan of a plain EXISTS) visits them.
	sqlQueued = `SELECT EXISTS (SELECT 1 FROM (SELECT seq FROM record_queue ORDER BY seq LIMIT 1) q)`
	// Admits one pass at a time. It must be its own statement, before the one
	// that moves records, so that the latter's snapshot is taken once the
	// previous pass has committed.
	sqlNumberingLock = `SELECT last_id FROM record_numbering FOR UPDATE`
	// Moves the oldest queued records (at most $1) to records, numbered from
	// the last id on in seq order, and returns how many it moved, the highest
	// seq it moved and the highest seq handed out so far. The seqs to move are
	// an array computed first: with IN (subquery), the generic plan joined
	// them by hash to a scan of the queue's heap, dead rows and all
	// (TestNumberingPlans).
	sqlNumber = `WITH moved AS (
		DELETE FROM record_queue WHERE seq = ANY(ARRAY(SELECT seq FROM record_queue ORDER BY seq LIMIT $1))
		RETURNING seq, ` + recordFields + `
	), numbered AS (
		INSERT INTO records (record_id, ` + recordFields + `)
		SELECT (SELECT last_id FROM record_numbering) + row_number() OVER (ORDER BY m.seq), ` + prefixedFields + `
		FROM moved m
		RETURNING record_id
	), bumped AS (
		UPDATE record_numbering SET last_id = last_id + (SELECT count(*) FROM numbered)
		WHERE EXISTS (SELECT 1 FROM numbered) RETURNING last_id
	)
	SELECT (SELECT count(*) FROM numbered), (SELECT COALESCE(max(seq), 0) FROM moved),
		(SELECT last_value FROM record_queue_seq)`

	sqlTicketRecords = `SELECT seq, record_id, ` + recordFieldsRead + ` FROM (
		(SELECT record_id, 0::bigint AS seq, ` + recordFieldsRead + ` FROM records WHERE ticket_id = $1
			ORDER BY record_id LIMIT $2)
		UNION ALL
		(SELECT NULL::bigint, seq, ` + recordFieldsRead + ` FROM record_queue WHERE ticket_id = $1 ORDER BY seq LIMIT $2)
	) r ORDER BY record_id NULLS LAST, seq LIMIT $2`

	sqlDayTotals = `SELECT shop_id, kind, count(*), sum(units)::bigint, sum(buyer_pay_cents)::bigint, sum(receipt_cents)::bigint
	FROM (
		SELECT shop_id, kind, units, buyer_pay_cents, receipt_cents FROM records WHERE merchant_id = $1 AND day = $2
		UNION ALL
		SELECT shop_id, kind, units, buyer_pay_cents, receipt_cents FROM record_queue WHERE merchant_id = $1 AND day = $2
	) r WHERE $3 = '' OR shop_id = $3
	GROUP BY shop_id, kind ORDER BY shop_id, kind`

	// The first id of the first day at or after a day, and the last id of the
	// last day at or before a day: one descent of records_day each.
	sqlFirstIDFromDay = `SELECT record_id FROM records WHERE merchant_id = $1 AND day >= $2 ORDER BY day, record_id LIMIT 1`
	sqlLastIDToDay    = `SELECT record_id FROM records WHERE merchant_id = $1 AND day <= $2
	ORDER BY day DESC, record_id DESC LIMIT 1`

	// Keyset walks: the last two parameters are the key to start after and the
	// page size.
	sqlEachRecord = `SELECT ` + recordRead + ` FROM records WHERE record_id > $1 ORDER BY record_id LIMIT $2`
	sqlEachQueued = `SELECT ` + queuedRead + ` FROM record_queue WHERE seq > $1 ORDER BY seq LIMIT $2`
	sqlEachDayUse = `SELECT ` + prefixedRecordRead + `, u.reversed, u.refunded FROM records r JOIN uses u ON u.trans_id = r.trans_id
	WHERE r.merchant_id = $1 AND r.day = $2 AND r.kind = 'use' AND r.record_id > $3 ORDER BY r.record_id LIMIT $4`
	sqlEachQueuedDayUse = `SELECT ` + prefixedQueuedRead + `, u.reversed, u.refunded FROM record_queue r JOIN uses u ON u.trans_id = r.trans_id
	WHERE r.merchant_id = $1 AND r.day = $2 AND r.kind = 'use' AND r.seq > $3 ORDER BY r.seq LIMIT $4`
)

// Column lists qualified for the joins above.
const (
	prefixedFields = `m.at, m.day, m.kind, m.merchant_id, m.shop_id, m.ticket_id, m.trans_id, m.request_id, m.app_key,
	m.units, m.biz_time, m.buyer_pay_cents, m.receipt_cents`
	recordFieldsRead   = `at, kind, merchant_id, shop_id, ticket_id, trans_id, request_id, app_key, units, biz_time, buyer_pay_cents, receipt_cents`
	prefixedRecordRead = `r.record_id, r.record_id, r.at, r.kind, r.merchant_id, r.shop_id, r.ticket_id, r.trans_id,
	r.request_id, r.app_key, r.units, r.biz_time, r.buyer_pay_cents, r.receipt_cents`
	prefixedQueuedRead = `r.seq, NULL::bigint, r.at, r.kind, r.merchant_id, r.shop_id, r.ticket_id, r.trans_id,
	r.request_id, r.app_key, r.units, r.biz_time, r.buyer_pay_cents, r.receipt_cents`
)

// AppendRecord queues a record of a change made in this transaction; it is
// written with the transaction's other held-back writes, and numbered after
// the commit (SequenceRecords), so r.ID is left empty.
func (t *pgTx) AppendRecord(ctx context.Context, r *daodian.Record) error {
	r.ID = ""
	return t.hold(ctx, pendingWrite{
		sql: sqlAppendRecord,
		args: []any{ts(r.At), daodian.Day(r.At), esc(string(r.Kind)), esc(r.MerchantID), esc(r.ShopID), esc(r.TicketID),
			esc(r.TransID), esc(r.RequestID), esc(r.AppKey), r.Units, ts(r.BizTime), r.BuyerPayCents, r.ReceiptCents},
		check:  errOnly("append record"),
		strict: true, // a plain insert: it fails only on the server
	})
}

// SequenceRecords numbers every record committed before it was called (and
// perhaps some committed since), in passes of at most recordBatch records, and
// returns how many it numbered. It is safe to run from any number of processes
// at once: the passes take turns. A pass with nothing to number takes no lock
// and writes nothing.
//
// It implements daodian.RecordSequencer: the ledger runs it before listing
// records, and a long-running process should run it every few hundred
// milliseconds, which bounds how long a committed record stays unnumbered (and
// out of records pages).
func (s *Store) SequenceRecords(ctx context.Context) (int, error) {
	total, horizon := 0, int64(-1)
	for {
		queued, err := s.anyQueued(ctx)
		if err != nil || !queued {
			return total, err
		}
		var moved, maxSeq, lastSeq int64
		err = s.Update(ctx, func(tx daodian.Tx) error {
			t := tx.(*pgTx)
			// A plan over a queue the statistics think large would be compiled
			// (JIT) on every pass, which costs more than the pass.
			for _, w := range []pendingWrite{
				{sql: "SET LOCAL jit = off", check: errOnly("number records"), strict: true},
				{sql: sqlNumberingLock, check: errOnly("lock record numbering"), strict: true},
			} {
				if err := t.hold(ctx, w); err != nil {
					return err
				}
			}
			if err := t.queryRow(ctx, sqlNumber, recordBatch).Scan(&moved, &maxSeq, &lastSeq); err != nil {
				return wrapErr("number records", err)
			}
			return nil
		})
		if err != nil {
			return total, err
		}
		total += int(moved)
		if horizon < 0 {
			// Every record committed before the call has a seq up to this.
			horizon = lastSeq
		}
		// A pass moves the oldest queued records first: once one moves fewer than
		// a batch, or a record taken after the call began, those committed
		// before the call are all numbered.
		if moved < recordBatch || maxSeq >= horizon {
			return total, nil
		}
	}
}

// anyQueued reports whether record_queue holds a record, in a statement of its
// own (no transaction, no lock).
func (s *Store) anyQueued(ctx context.Context) (bool, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer conn.Release()
	var queued bool
	if err := conn.QueryRow(ctx, sqlQueued).Scan(&queued); err != nil {
		return false, wrapErr("queued records", err)
	}
	return queued, nil
}

// errOnly is the check of a held write whose only failure is a server error.
func errOnly(op string) func(pgconn.CommandTag, error) error {
	return func(_ pgconn.CommandTag, err error) error {
		if err != nil {
			return wrapErr(op, err)
		}
		return nil
	}
}

// scanRecord reads a row of one of the record column lists, and returns its
// keyset key.
func scanRecord(r rowScanner, rec *daodian.Record, more ...any) (int64, error) {
	var key int64
	var id pgtype.Int8
	var kind string
	var at, biz pgtype.Timestamptz
	dest := append([]any{&key, &id, &at, &kind, &rec.MerchantID, &rec.ShopID, &rec.TicketID, &rec.TransID,
		&rec.RequestID, &rec.AppKey, &rec.Units, &biz, &rec.BuyerPayCents, &rec.ReceiptCents}, more...)
	if err := r.Scan(dest...); err != nil {
		return 0, err
	}
	rec.ID = ""
	if id.Valid {
		rec.ID = strconv.FormatInt(id.Int64, 10)
	}
	rec.Kind = daodian.RecordKind(unesc(kind))
	for _, p := range []*string{&rec.MerchantID, &rec.ShopID, &rec.TicketID, &rec.TransID, &rec.RequestID, &rec.AppKey} {
		*p = unesc(*p)
	}
	rec.At, rec.BizTime = fromTS(at), fromTS(biz)
	return key, nil
}

// Records returns a merchant's numbered records after q.AfterID, in record_id
// order. Records still queued are not listed: they have no position yet (see
// above); the ledger numbers them before it reads.
func (t *pgTx) Records(ctx context.Context, q daodian.RecordQuery) ([]daodian.Record, error) {
	if q.Limit < 1 || q.Limit > daodian.MaxRecordsPage+1 {
		return nil, fmt.Errorf("postgres: records limit %d out of range", q.Limit)
	}
	after := int64(0)
	if q.AfterID != "" {
		v, err := strconv.ParseInt(q.AfterID, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("postgres: records after %q: %w", q.AfterID, err)
		}
		after = v
	}
	var where strings.Builder
	args := []any{esc(q.MerchantID), after}
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	where.WriteString(`merchant_id = $1 AND record_id > $2`)
	// A time range is first narrowed to ids, as on the embedded store: from the
	// first record of the day before From to the last of the day after To.
	// A record's time is when a gateway decided the change, a moment before
	// its commit, and its id is handed out after the commit: ids follow times
	// within the gateways' clock skew plus the time a transaction and a
	// numbering pass take, far less than the day of margin. The scan is then
	// that of the days asked for, not of the merchant's whole history.
	if !q.From.IsZero() {
		first, ok, err := t.boundID(ctx, sqlFirstIDFromDay, q.MerchantID, daodian.Day(q.From.Add(-24*time.Hour)))
		if err != nil || !ok {
			return nil, err
		}
		where.WriteString(` AND record_id >= ` + param(first) + ` AND at >= ` + param(ts(q.From)))
	}
	if !q.To.IsZero() {
		last, ok, err := t.boundID(ctx, sqlLastIDToDay, q.MerchantID, daodian.Day(q.To.Add(24*time.Hour)))
		if err != nil || !ok {
			return nil, err
		}
		where.WriteString(` AND record_id <= ` + param(last) + ` AND at < ` + param(ts(q.To)))
	}
	if q.ShopID != "" {
		where.WriteString(` AND shop_id = ` + param(esc(q.ShopID)))
	}
	if len(q.Kinds) > 0 {
		kinds := make([]string, len(q.Kinds))
		for i, k := range q.Kinds {
			kinds[i] = esc(string(k))
		}
		where.WriteString(` AND kind = ANY(` + param(kinds) + `)`)
	}
	limit := param(q.Limit)
	return t.queryRecords(ctx, "records", `SELECT `+recordRead+` FROM records WHERE `+where.String()+` ORDER BY record_id LIMIT `+limit, args...)
}

// queryRecords runs a query of one of the record column lists and returns its
// records.
func (t *pgTx) queryRecords(ctx context.Context, op, sql string, args ...any) ([]daodian.Record, error) {
	rows, err := t.query(ctx, sql, args...)
	if err != nil {
		return nil, wrapErr(op, err)
	}
	defer rows.Close()
	var recs []daodian.Record
	for rows.Next() {
		var r daodian.Record
		if _, err := scanRecord(rows, &r); err != nil {
			return nil, wrapErr(op, err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr(op, err)
	}
	return recs, nil
}

// boundID runs one of the id-bound queries; ok is false when it finds no record.
func (t *pgTx) boundID(ctx context.Context, sql, merchantID string, day int) (id int64, ok bool, err error) {
	err = t.queryRow(ctx, sql, esc(merchantID), day).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, wrapErr("records bound", err)
	}
	return id, true, nil
}

// TicketRecords returns a ticket's records: the numbered ones in record_id
// order, then the queued ones (empty ID) in the order they were appended,
// which for one ticket is its commit order.
func (t *pgTx) TicketRecords(ctx context.Context, ticketID string) ([]daodian.Record, error) {
	return t.queryRecords(ctx, "ticket records", sqlTicketRecords, esc(ticketID), daodian.MaxTimeline)
}

// DayTotals sums a merchant's records of a day, numbered and queued alike, by
// shop and kind, in that order.
func (t *pgTx) DayTotals(ctx context.Context, merchantID string, day int, shopID string) ([]daodian.DayTotal, error) {
	rows, err := t.query(ctx, sqlDayTotals, esc(merchantID), day, esc(shopID))
	if err != nil {
		return nil, wrapErr("day totals", err)
	}
	defer rows.Close()
	var out []daodian.DayTotal
	for rows.Next() {
		var d daodian.DayTotal
		var kind string
		if err := rows.Scan(&d.ShopID, &kind, &d.Count, &d.Units, &d.BuyerPayCents, &d.ReceiptCents); err != nil {
			return nil, wrapErr("day totals", err)
		}
		d.ShopID, d.Kind = unesc(d.ShopID), daodian.RecordKind(unesc(kind))
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, wrapErr("day totals", err)
	}
	return out, nil
}

// EachDayUse calls fn for every use record of a merchant's day with its use's
// state: the numbered records in record_id order, then the queued ones.
func (t *pgTx) EachDayUse(ctx context.Context, merchantID string, day int, fn func(*daodian.DayUse) error) error {
	scan := func(rows pgx.Rows, du *daodian.DayUse) (int64, error) {
		return scanRecord(rows, &du.Record, &du.Reversed, &du.Refunded)
	}
	for _, sql := range []string{sqlEachDayUse, sqlEachQueuedDayUse} {
		if err := walkPages(ctx, t, "each day use", sql, []any{esc(merchantID), day}, scan, fn); err != nil {
			return err
		}
	}
	return nil
}

// EachRecord calls fn for every record: the numbered ones in record_id order,
// then the queued ones (empty ID) in the order they were appended.
func (t *pgTx) EachRecord(ctx context.Context, fn func(*daodian.Record) error) error {
	scan := func(rows pgx.Rows, r *daodian.Record) (int64, error) { return scanRecord(rows, r) }
	for _, sql := range []string{sqlEachRecord, sqlEachQueued} {
		if err := walkPages(ctx, t, "each record", sql, nil, scan, fn); err != nil {
			return err
		}
	}
	return nil
}

// walkPages reads sql in keyset pages of recordPage rows — its parameters are
// args, then the key to start after and the page size — and calls fn for each
// row, as EachTicket does: memory stays bounded, fn may query the transaction,
// and in a View every page reads the same snapshot.
func walkPages[T any](ctx context.Context, t *pgTx, op, sql string, args []any, scan func(pgx.Rows, *T) (int64, error), fn func(*T) error) error {
	page := make([]T, 0, recordPage)
	after := int64(0)
	for {
		rows, err := t.query(ctx, sql, append(args[:len(args):len(args)], after, recordPage)...)
		if err != nil {
			return wrapErr(op, err)
		}
		page = page[:0]
		for rows.Next() {
			var v T
			key, err := scan(rows, &v)
			if err != nil {
				rows.Close()
				return wrapErr(op, err)
			}
			after = key
			page = append(page, v)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrapErr(op, err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < recordPage {
			return nil
		}
	}
}

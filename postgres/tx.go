package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/seal"
)

// pgTx is a daodian.Tx (and ReadTx) on one PostgreSQL transaction. Every statement
// text is a constant, so that pgx prepares each once per connection.
//
// The transaction's BEGIN is not sent on its own: it goes in one pipeline with the
// first statement of fn, which saves a round trip per transaction. The writes of
// uses and reversals are held back likewise (pending, below).
type pgTx struct {
	c *pgx.Conn
	// begin is the BEGIN statement still to be sent; "" once it has been.
	begin string
	// broken is set when the pipeline carrying BEGIN failed: whether the
	// transaction began is unknown, so no later statement may run, lest it run
	// outside any transaction.
	broken error
	// lock is set inside Update: ticket reads then lock the rows they return until
	// the transaction ends (SELECT … FOR UPDATE). A View's read-only transaction
	// cannot lock, and needs not.
	lock bool
	// lockAll is set on the attempt of an Update after a use met its
	// sub-order busy (daodian.ErrSubOrderBusy): TicketForUse then locks the
	// whole sub-order in id order, and UseSiblings returns all of it.
	lockAll bool
	// key seals and opens app secrets.
	key *seal.Key
	// pending are the writes of the ledger's hot path (uses, reversals) not yet
	// sent: they go in one pipeline with the next read, or with COMMIT. A
	// reversal then makes five round trips instead of eight, a use seven
	// instead of ten. Their failures are reported by the call that sends them
	// (a later read, or Update itself); the ledger returns on any write error,
	// so it does not matter which call reports it, and the transaction is rolled
	// back either way (see daodian.Tx).
	pending []pendingWrite
}

// pendingWrite is a write held back to be pipelined.
type pendingWrite struct {
	sql  string
	args []any
	// check turns the statement's outcome into the write's error.
	check func(tag pgconn.CommandTag, err error) error
	// strict is set when the write can fail only by a server error, which
	// aborts the transaction: it may then be sent in one pipeline with COMMIT,
	// which turns into a rollback if it failed. A write that can fail by
	// changing no row (an UPDATE that found none) is not strict.
	strict bool
}

// maxPending bounds the writes held back; a transaction that makes more sends
// them in pipelines of this size.
const maxPending = 16

// BEGIN statements of Update and View. The isolation level is explicit so that a
// server or database default cannot change it.
const (
	beginUpdate = "BEGIN ISOLATION LEVEL READ COMMITTED READ WRITE"
	beginView   = "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"
)

// began reports whether BEGIN has been sent: only then is there anything to
// commit or roll back.
func (t *pgTx) began() bool { return t.begin == "" }

// pipeline sends what is waiting — BEGIN if not yet sent, the pending writes —
// followed by sql (if not ""), and returns the batch positioned on sql's
// result, with the pending writes' outcomes, whose checks the caller runs
// once the batch is closed (a check may itself query).
func (t *pgTx) pipeline(ctx context.Context, sql string, args []any) (pgx.BatchResults, []sentWrite, error) {
	b := &pgx.Batch{}
	begin := !t.began()
	if begin {
		b.Queue(t.begin)
		t.begin = ""
	}
	for _, w := range t.pending {
		b.Queue(w.sql, w.args...)
	}
	if sql != "" {
		b.Queue(sql, args...)
	}
	sent := make([]sentWrite, len(t.pending))
	for i, w := range t.pending {
		sent[i].check = w.check
	}
	clear(t.pending)
	t.pending = t.pending[:0]
	br := t.c.SendBatch(ctx, b)
	if begin {
		if _, err := br.Exec(); err != nil {
			_ = br.Close()
			t.broken = err
			return nil, nil, err
		}
	}
	for i := range sent {
		sent[i].tag, sent[i].err = br.Exec()
	}
	return br, sent, nil
}

// sentWrite is the outcome of a pending write that has been sent.
type sentWrite struct {
	tag   pgconn.CommandTag
	err   error
	check func(pgconn.CommandTag, error) error
}

// checkSent runs the checks of sent writes and returns the first failure. A
// server error aborts the transaction, so the statements after it failed only
// because of it: the first error is the one that tells.
func checkSent(sent []sentWrite) error {
	for _, w := range sent {
		if err := w.check(w.tag, w.err); err != nil {
			return err
		}
	}
	return nil
}

// direct reports whether a statement can be sent on its own.
func (t *pgTx) direct() bool { return t.began() && len(t.pending) == 0 }

// hold holds back a write of the hot path to send it with the next statement.
func (t *pgTx) hold(ctx context.Context, w pendingWrite) error {
	if t.broken != nil {
		return t.broken
	}
	if !t.lock {
		// Not inside Update: nothing would commit it. Sent now, the read-only
		// transaction refuses it.
		return w.check(t.exec(ctx, w.sql, w.args...))
	}
	if len(t.pending) >= maxPending {
		if err := t.flush(ctx); err != nil {
			return err
		}
	}
	t.pending = append(t.pending, w)
	return nil
}

// flush sends the pending writes (and BEGIN) and reports their first failure.
func (t *pgTx) flush(ctx context.Context) error {
	if t.broken != nil {
		return t.broken
	}
	if t.direct() {
		return nil
	}
	br, sent, err := t.pipeline(ctx, "", nil)
	if err != nil {
		return err
	}
	err = br.Close()
	if cerr := checkSent(sent); cerr != nil {
		return cerr
	}
	return err
}

func (t *pgTx) queryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if t.broken != nil {
		return errRow{t.broken}
	}
	if t.direct() {
		return t.c.QueryRow(ctx, sql, args...)
	}
	br, sent, err := t.pipeline(ctx, sql, args)
	if err != nil {
		return errRow{err}
	}
	return batchRow{br.QueryRow(), br, sent}
}

func (t *pgTx) query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	// Rows stay open while the caller reads them, so the pending writes' checks
	// (which may query) must run first: send them on their own.
	if err := t.flush(ctx); err != nil {
		return nil, err
	}
	return t.c.Query(ctx, sql, args...)
}

func (t *pgTx) exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if t.broken != nil {
		return pgconn.CommandTag{}, t.broken
	}
	if t.direct() {
		return t.c.Exec(ctx, sql, args...)
	}
	br, sent, err := t.pipeline(ctx, sql, args)
	if err != nil {
		return pgconn.CommandTag{}, err
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if cerr := checkSent(sent); cerr != nil {
		return pgconn.CommandTag{}, cerr
	}
	return tag, err
}

// commit sends COMMIT, in one pipeline with the pending writes if they are all
// strict (a failed one turns COMMIT into a rollback); otherwise it sends them
// first and commits only if every check passed. A failed write returns
// (false, its error); a COMMIT that failed or could not be sent returns
// (true, that error), for commitErr to classify.
func (t *pgTx) commit(ctx context.Context) (committing bool, tag pgconn.CommandTag, err error) {
	// BEGIN never goes in one pipeline with COMMIT: a connection lost while
	// reading BEGIN's answer would then leave the commit's outcome unknown,
	// yet look like a transaction that never began.
	flushFirst := !t.began()
	for _, w := range t.pending {
		flushFirst = flushFirst || !w.strict
	}
	if flushFirst {
		if err := t.flush(ctx); err != nil {
			return false, tag, err
		}
	}
	if t.direct() {
		tag, err = t.c.Exec(ctx, "COMMIT")
		return true, tag, err
	}
	br, sent, err := t.pipeline(ctx, "COMMIT", nil)
	if err != nil {
		return false, tag, err
	}
	tag, err = br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	for _, w := range sent {
		if w.err != nil && !isServerError(w.err) {
			// The connection failed: whether COMMIT ran is unknown.
			return true, tag, w.err
		}
	}
	if werr := checkSent(sent); werr != nil {
		// A write failed on the server, which aborted the transaction and
		// turned COMMIT into a rollback: the write's failure is the answer.
		return false, tag, werr
	}
	return true, tag, err
}

// errRow is a pgx.Row that failed before it was read.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// batchRow is the row of a pipelined statement; scanning it ends the pipeline
// and checks the writes sent before it, whose failure then is the answer.
type batchRow struct {
	row  pgx.Row
	br   pgx.BatchResults
	sent []sentWrite
}

func (r batchRow) Scan(dest ...any) error {
	err := r.row.Scan(dest...)
	if cerr := r.br.Close(); err == nil {
		err = cerr
	}
	if werr := checkSent(r.sent); werr != nil {
		return werr
	}
	return err
}

var _ daodian.Tx = (*pgTx)(nil)

// eachPage is the number of rows one keyset page of an Each walk reads.
const eachPage = 256

// Column lists, in the order of the scan functions below.
const (
	ticketCols = `id, code, merchant_id, order_no, sub_order_no, item_id, out_item_id, item_name,
	quantity, available, original_price_cents, total_amount_cents, real_amount_cents,
	valid_from, valid_to, status, created_at`
	useCols = `trans_id, group_trans_id, ticket_id, app_key, request_id, shop_id, units, gmt_biz, created_at,
	reversed, reversed_at, reversal_app_key, reversal_request_id, reversal_biz_date,
	refunded, refunded_at, refund_app_key, refund_request_id, buyer_pay_cents, receipt_cents`
	idemCols = `app_key, op, request_id, fingerprint, ticket_id, answer, created_at`
)

const (
	sqlIdem = `SELECT ` + idemCols + ` FROM idem WHERE app_key = $1 AND op = $2 AND request_id = $3`

	sqlTicket           = `SELECT ` + ticketCols + ` FROM tickets WHERE id = $1`
	sqlTicketLock       = sqlTicket + ` FOR UPDATE`
	sqlTicketByCode     = `SELECT ` + ticketCols + ` FROM tickets WHERE code = $1`
	sqlTicketByCodeLock = sqlTicketByCode + ` FOR UPDATE`
	// Never FOR UPDATE (daodian.ReadTx.TicketMerchant).
	sqlTicketMerchant = `SELECT merchant_id FROM tickets WHERE id = $1`
	// Ordered by id, so that two transactions locking tickets of one sub-order take
	// the locks in the same order and cannot deadlock on them.
	sqlSubOrderTickets     = `SELECT ` + ticketCols + ` FROM tickets WHERE sub_order_no = $1 ORDER BY id LIMIT $2`
	sqlSubOrderTicketsLock = sqlSubOrderTickets + ` FOR UPDATE`
	// The tickets of a ticket's sub-order by code or id, locked in id order
	// (TicketForUse); the inner read locks nothing.
	sqlTicketSubOrderByCodeLock = `SELECT ` + ticketCols + ` FROM tickets
	WHERE sub_order_no = (SELECT sub_order_no FROM tickets WHERE code = $1) ORDER BY id LIMIT $2 FOR UPDATE`
	sqlTicketSubOrderByIDLock = `SELECT ` + ticketCols + ` FROM tickets
	WHERE sub_order_no = (SELECT sub_order_no FROM tickets WHERE id = $1) ORDER BY id LIMIT $2 FOR UPDATE`
	// A use's siblings with units left ($1 the sub-order, $2 the queried
	// ticket): the first $3 that no other transaction holds, locked
	// (UseSiblings), and how many there are, held or not. One condition for
	// both: the count tells whether the list left any out.
	useSiblingsWhere    = ` FROM tickets WHERE sub_order_no = $1 AND id <> $2 AND available > 0 AND status = 'VALID'`
	sqlUseSiblingsFree  = `SELECT ` + ticketCols + useSiblingsWhere + ` ORDER BY id LIMIT $3 FOR UPDATE SKIP LOCKED`
	sqlUseSiblingsCount = `SELECT count(*)` + useSiblingsWhere

	sqlOrder = `SELECT order_no, sub_order_no, merchant_id, buyer_id, user_phone, item_id, out_item_id, item_name,
	original_price_cents, total_amount_cents, real_amount_cents, created_at FROM orders WHERE sub_order_no = $1`
	sqlUse             = `SELECT ` + useCols + ` FROM uses WHERE trans_id = $1`
	sqlGroupUse        = `SELECT ` + useCols + ` FROM uses WHERE group_trans_id = $1 AND ticket_id = $2 ORDER BY trans_id LIMIT 1`
	sqlLatestActiveUse = `SELECT ` + useCols + ` FROM uses WHERE ticket_id = $1 AND app_key = $2 AND NOT reversed
	ORDER BY trans_id DESC LIMIT 1`
	sqlActiveUnits = `SELECT COALESCE(sum(units), 0) FROM uses WHERE ticket_id = $1 AND NOT reversed`
	sqlFence       = `SELECT ticket_id, app_key, at, request_id, created_at FROM fences WHERE ticket_id = $1 AND app_key = $2`
	sqlShop        = `SELECT merchant_id, shop_id, name FROM shops WHERE merchant_id = $1 AND shop_id = $2`
	sqlApp         = `SELECT key, secret, previous_secret, previous_secret_until, name, merchants, enabled, methods,
	rate_limit_per_s, created_at FROM apps WHERE key = $1`
	// An Update that reads an app may rewrite its secrets from what it read
	// (a rotation): the lock keeps two rotations from losing one.
	sqlAppLock  = sqlApp + ` FOR UPDATE`
	sqlMerchant = `SELECT id, name FROM merchants WHERE id = $1`

	// Each walks read keyset pages: the next page starts after the last key seen.
	sqlEachTicketFirst = `SELECT ` + ticketCols + ` FROM tickets ORDER BY id LIMIT $1`
	sqlEachTicketNext  = `SELECT ` + ticketCols + ` FROM tickets WHERE id > $1 ORDER BY id LIMIT $2`
	sqlEachUseFirst    = `SELECT ` + useCols + ` FROM uses ORDER BY trans_id LIMIT $1`
	sqlEachUseNext     = `SELECT ` + useCols + ` FROM uses WHERE trans_id > $1 ORDER BY trans_id LIMIT $2`
	sqlEachIdemFirst   = `SELECT ` + idemCols + ` FROM idem ORDER BY app_key, op, request_id LIMIT $1`
	sqlEachIdemNext    = `SELECT ` + idemCols + ` FROM idem WHERE (app_key, op, request_id) > ($1, $2, $3)
	ORDER BY app_key, op, request_id LIMIT $4`
	sqlCounts = `SELECT (SELECT count(*) FROM apps), (SELECT count(*) FROM merchants), (SELECT count(*) FROM shops),
	(SELECT count(*) FROM orders), (SELECT count(*) FROM tickets), (SELECT count(*) FROM uses),
	(SELECT count(*) FROM fences), (SELECT count(*) FROM idem),
	(SELECT count(*) FROM records) + (SELECT count(*) FROM record_queue)`

	// Inserts use ON CONFLICT DO NOTHING rather than letting a unique violation
	// fail the statement: a failed statement would abort the whole transaction,
	// while a duplicate must only be reported (ErrDuplicate), as on the embedded
	// store. A conflicting insert still waits for the transaction holding the key
	// and reports the duplicate only if that one commits. The exceptions are the
	// idempotency record and the use: they are held back and pipelined
	// (pgTx.pending), the record with COMMIT, and only a write that fails on the
	// server can be (see pendingWrite.strict). The ledger ends the transaction
	// on their duplicate anyway.
	sqlPutIdem      = `INSERT INTO idem (` + idemCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7)`
	sqlSetAvailable = `UPDATE tickets SET available = $2 WHERE id = $1`
	sqlInsertUse    = `INSERT INTO uses (` + useCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)`
	// Reversal and refund fields are set once and never cleared (SPEC §4.4): the
	// guards keep a second write from replacing them.
	sqlMarkReversed = `UPDATE uses SET reversed = $2, reversed_at = $3, reversal_app_key = $4, reversal_request_id = $5,
	reversal_biz_date = $6 WHERE trans_id = $1 AND NOT reversed`
	sqlMarkRefunded = `UPDATE uses SET refunded = $2, refunded_at = $3, refund_app_key = $4, refund_request_id = $5
	WHERE trans_id = $1 AND NOT refunded`
	sqlUseExists = `SELECT true FROM uses WHERE trans_id = $1`
	sqlPutFence  = `INSERT INTO fences (ticket_id, app_key, at, request_id, created_at) VALUES ($1, $2, $3, $4, $5)
	ON CONFLICT (ticket_id, app_key) DO UPDATE SET at = EXCLUDED.at, request_id = EXCLUDED.request_id,
	created_at = EXCLUDED.created_at`
	sqlNewID       = `SELECT nextval('daodian_ids')`
	sqlPutMerchant = `INSERT INTO merchants (id, name) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name`
	sqlInsertShop  = `INSERT INTO shops (merchant_id, shop_id, name) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`
	sqlInsertApp   = `INSERT INTO apps (key, secret, previous_secret, previous_secret_until, name, merchants, enabled,
	methods, rate_limit_per_s, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING`
	sqlUpdateApp = `UPDATE apps SET name = $2, merchants = $3, enabled = $4, methods = $5, rate_limit_per_s = $6
	WHERE key = $1`
	sqlSetAppSecrets = `UPDATE apps SET secret = $2, previous_secret = $3, previous_secret_until = $4 WHERE key = $1`
	sqlInsertOrder   = `INSERT INTO orders (order_no, sub_order_no, merchant_id, buyer_id, user_phone, item_id, out_item_id,
	item_name, original_price_cents, total_amount_cents, real_amount_cents, created_at)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT DO NOTHING`
	sqlInsertTicket = `INSERT INTO tickets (` + ticketCols + `)
	VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`
)

// --- reads ---

// Idem returns the recorded answer of a request. It takes no lock: callers that
// need the read to be current lock the ticket first, and a racing insert of the
// same key is caught by the primary key (ErrDuplicate, then Update's retry).
func (t *pgTx) Idem(ctx context.Context, key daodian.IdemKey) (*daodian.IdemRecord, error) {
	rec := new(daodian.IdemRecord)
	if err := scanIdem(t.queryRow(ctx, sqlIdem, esc(key.AppKey), esc(string(key.Op)), esc(key.RequestID)), rec); err != nil {
		return nil, rowErr("idem", err)
	}
	return rec, nil
}

// Ticket returns a ticket by id; inside Update the row stays locked until the
// transaction ends.
func (t *pgTx) Ticket(ctx context.Context, id string) (*daodian.Ticket, error) {
	q := sqlTicket
	if t.lock {
		q = sqlTicketLock
	}
	tk := new(daodian.Ticket)
	if err := scanTicket(t.queryRow(ctx, q, esc(id)), tk); err != nil {
		return nil, rowErr("ticket", err)
	}
	return tk, nil
}

// TicketByCode returns a ticket by code; inside Update the row stays locked until
// the transaction ends.
func (t *pgTx) TicketByCode(ctx context.Context, code string) (*daodian.Ticket, error) {
	q := sqlTicketByCode
	if t.lock {
		q = sqlTicketByCodeLock
	}
	tk := new(daodian.Ticket)
	if err := scanTicket(t.queryRow(ctx, q, esc(code)), tk); err != nil {
		return nil, rowErr("ticket by code", err)
	}
	return tk, nil
}

// TicketMerchant returns a ticket's merchant without locking the ticket, inside
// Update too.
func (t *pgTx) TicketMerchant(ctx context.Context, id string) (string, error) {
	var m string
	if err := t.queryRow(ctx, sqlTicketMerchant, esc(id)).Scan(&m); err != nil {
		return "", rowErr("ticket merchant", err)
	}
	return unesc(m), nil
}

// SubOrderTickets returns the tickets of a sub-order in id order; inside Update
// they stay locked until the transaction ends, locked in id order.
func (t *pgTx) SubOrderTickets(ctx context.Context, subOrderNo string) ([]daodian.Ticket, error) {
	q := sqlSubOrderTickets
	if t.lock {
		q = sqlSubOrderTicketsLock
	}
	return t.ticketList(ctx, q, esc(subOrderNo), daodian.MaxTicketsPerOrder)
}

// UseSiblings returns, inside Update, the first need siblings with units left
// that no other transaction holds, locked; complete says there are no others
// (a count, read only when fewer than need were found). After the sub-order
// was met busy (lockAll), and outside Update, it is SubOrderTickets.
func (t *pgTx) UseSiblings(ctx context.Context, tk *daodian.Ticket, need int) ([]daodian.Ticket, bool, error) {
	if !t.lock || t.lockAll {
		list, err := t.SubOrderTickets(ctx, tk.SubOrderNo)
		return list, true, err
	}
	need = min(max(need, 1), daodian.MaxTicketsPerOrder)
	list, err := t.ticketList(ctx, sqlUseSiblingsFree, esc(tk.SubOrderNo), esc(tk.ID), need)
	if err != nil || len(list) == need {
		// need tickets of one unit at least each: enough, unless the rule
		// rejects some (another merchant's, out of their window), and then
		// the ones beyond decide: not complete.
		return list, false, err
	}
	var n int
	if err := t.queryRow(ctx, sqlUseSiblingsCount, esc(tk.SubOrderNo), esc(tk.ID)).Scan(&n); err != nil {
		return nil, false, wrapErr("sub-order siblings", err)
	}
	return list, n <= len(list), nil
}

// TicketForUse returns a ticket by code or id. Inside Update it locks that
// ticket alone (its siblings are locked by UseSiblings, without waiting), or,
// once the sub-order was met busy (lockAll), every ticket of its sub-order, in
// id order, in one statement.
func (t *pgTx) TicketForUse(ctx context.Context, code, id string) (*daodian.Ticket, error) {
	if !t.lock || !t.lockAll {
		if code == "" {
			return t.Ticket(ctx, id)
		}
		return t.TicketByCode(ctx, code)
	}
	q, key := sqlTicketSubOrderByCodeLock, code
	if code == "" {
		q, key = sqlTicketSubOrderByIDLock, id
	}
	list, err := t.ticketList(ctx, q, esc(key), daodian.MaxTicketsPerOrder)
	if err != nil {
		return nil, err
	}
	for i := range list {
		if code != "" && list[i].Code == code || code == "" && list[i].ID == id {
			return &list[i], nil
		}
	}
	return nil, daodian.ErrNotFound
}

// ticketList reads the tickets statement q returns. It goes in one pipeline
// with what is waiting (BEGIN, held-back writes), like queryRow: the use's
// lock is the first statement of its transaction.
func (t *pgTx) ticketList(ctx context.Context, q string, args ...any) ([]daodian.Ticket, error) {
	if t.broken != nil {
		return nil, t.broken
	}
	var rows pgx.Rows
	var br pgx.BatchResults
	var sent []sentWrite
	var err error
	if t.direct() {
		rows, err = t.c.Query(ctx, q, args...)
	} else if br, sent, err = t.pipeline(ctx, q, args); err == nil {
		rows, err = br.Query()
	}
	if err != nil {
		if br != nil {
			_ = br.Close()
		}
		return nil, wrapErr("sub-order tickets", err)
	}
	var out []daodian.Ticket
	for rows.Next() {
		var tk daodian.Ticket
		if err = scanTicket(rows, &tk); err != nil {
			break
		}
		out = append(out, tk)
	}
	rows.Close()
	if err == nil {
		err = rows.Err()
	}
	if br != nil {
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if werr := checkSent(sent); werr != nil {
			return nil, werr
		}
	}
	if err != nil {
		return nil, wrapErr("sub-order tickets", err)
	}
	return out, nil
}

// Order returns an order by sub-order number.
func (t *pgTx) Order(ctx context.Context, subOrderNo string) (*daodian.Order, error) {
	o := new(daodian.Order)
	var created pgtype.Timestamptz
	err := t.queryRow(ctx, sqlOrder, esc(subOrderNo)).Scan(&o.OrderNo, &o.SubOrderNo, &o.MerchantID, &o.BuyerID,
		&o.UserPhone, &o.ItemID, &o.OutItemID, &o.ItemName, &o.OriginalPriceCents, &o.TotalAmountCents,
		&o.RealAmountCents, &created)
	if err != nil {
		return nil, rowErr("order", err)
	}
	for _, p := range []*string{&o.OrderNo, &o.SubOrderNo, &o.MerchantID, &o.BuyerID, &o.UserPhone, &o.ItemID,
		&o.OutItemID, &o.ItemName} {
		*p = unesc(*p)
	}
	o.CreatedAt = fromTS(created)
	return o, nil
}

// Use returns a use by transaction id.
func (t *pgTx) Use(ctx context.Context, transID string) (*daodian.Use, error) {
	u := new(daodian.Use)
	if err := scanUse(t.queryRow(ctx, sqlUse, esc(transID)), u); err != nil {
		return nil, rowErr("use", err)
	}
	return u, nil
}

// GroupUse returns the part of a group-buy use that consumed ticketID.
func (t *pgTx) GroupUse(ctx context.Context, groupTransID, ticketID string) (*daodian.Use, error) {
	u := new(daodian.Use)
	if err := scanUse(t.queryRow(ctx, sqlGroupUse, esc(groupTransID), esc(ticketID)), u); err != nil {
		return nil, rowErr("group use", err)
	}
	return u, nil
}

// LatestActiveUse returns the unreversed use of the ticket by the app with the
// greatest transaction id. Ids come from one sequence, so within one ticket (whose
// uses are serialised by its row lock) the greatest id is the most recent use.
func (t *pgTx) LatestActiveUse(ctx context.Context, ticketID, appKey string) (*daodian.Use, error) {
	u := new(daodian.Use)
	if err := scanUse(t.queryRow(ctx, sqlLatestActiveUse, esc(ticketID), esc(appKey)), u); err != nil {
		return nil, rowErr("latest active use", err)
	}
	return u, nil
}

// ActiveUnits returns the units of the ticket's unreversed uses.
func (t *pgTx) ActiveUnits(ctx context.Context, ticketID string) (int, error) {
	var n int64
	if err := t.queryRow(ctx, sqlActiveUnits, esc(ticketID)).Scan(&n); err != nil {
		return 0, wrapErr("active units", err)
	}
	return int(n), nil
}

// Fence returns the fence of (ticket, app).
func (t *pgTx) Fence(ctx context.Context, ticketID, appKey string) (*daodian.Fence, error) {
	f := new(daodian.Fence)
	var at, created pgtype.Timestamptz
	if err := t.queryRow(ctx, sqlFence, esc(ticketID), esc(appKey)).Scan(&f.TicketID, &f.AppKey, &at, &f.RequestID, &created); err != nil {
		return nil, rowErr("fence", err)
	}
	f.TicketID, f.AppKey, f.RequestID = unesc(f.TicketID), unesc(f.AppKey), unesc(f.RequestID)
	f.At, f.CreatedAt = fromTS(at), fromTS(created)
	return f, nil
}

// Shop returns a shop of a merchant.
func (t *pgTx) Shop(ctx context.Context, merchantID, shopID string) (*daodian.Shop, error) {
	s := new(daodian.Shop)
	if err := t.queryRow(ctx, sqlShop, esc(merchantID), esc(shopID)).Scan(&s.MerchantID, &s.ID, &s.Name); err != nil {
		return nil, rowErr("shop", err)
	}
	s.MerchantID, s.ID, s.Name = unesc(s.MerchantID), unesc(s.ID), unesc(s.Name)
	return s, nil
}

// App returns an app by key, its secrets unsealed; inside Update it locks the
// app's row.
func (t *pgTx) App(ctx context.Context, key string) (*daodian.App, error) {
	a := new(daodian.App)
	var created, until pgtype.Timestamptz
	q := sqlApp
	if t.lock {
		q = sqlAppLock
	}
	err := t.queryRow(ctx, q, esc(key)).Scan(&a.Key, &a.Secret, &a.PreviousSecret, &until, &a.Name, &a.Merchants,
		&a.Enabled, &a.Methods, &a.RateLimitPerS, &created)
	if err != nil {
		return nil, rowErr("app", err)
	}
	a.Key, a.Secret, a.PreviousSecret, a.Name = unesc(a.Key), unesc(a.Secret), unesc(a.PreviousSecret), unesc(a.Name)
	a.Merchants, a.Methods = unescList(a.Merchants), unescList(a.Methods)
	a.CreatedAt, a.PreviousSecretUntil = fromTS(created), fromTS(until)
	if err := t.key.OpenApp(a); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	return a, nil
}

// Merchant returns a merchant.
func (t *pgTx) Merchant(ctx context.Context, id string) (*daodian.Merchant, error) {
	m := new(daodian.Merchant)
	if err := t.queryRow(ctx, sqlMerchant, esc(id)).Scan(&m.ID, &m.Name); err != nil {
		return nil, rowErr("merchant", err)
	}
	m.ID, m.Name = unesc(m.ID), unesc(m.Name)
	return m, nil
}

// EachTicket calls fn for every ticket in id order. It reads keyset pages of
// eachPage rows rather than one open result, so memory stays bounded and fn may
// itself query the transaction (pgx allows one open result per connection). In a
// View every page reads the same snapshot.
func (t *pgTx) EachTicket(ctx context.Context, fn func(*daodian.Ticket) error) error {
	page := make([]daodian.Ticket, 0, eachPage)
	var last string
	for first := true; ; first = false {
		var rows pgx.Rows
		var err error
		if first {
			rows, err = t.query(ctx, sqlEachTicketFirst, eachPage)
		} else {
			rows, err = t.query(ctx, sqlEachTicketNext, esc(last), eachPage)
		}
		if err != nil {
			return wrapErr("each ticket", err)
		}
		page = page[:0]
		for rows.Next() {
			var tk daodian.Ticket
			if err := scanTicket(rows, &tk); err != nil {
				rows.Close()
				return wrapErr("each ticket", err)
			}
			page = append(page, tk)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrapErr("each ticket", err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < eachPage {
			return nil
		}
		last = page[len(page)-1].ID
	}
}

// EachUse calls fn for every use in transaction id order, in keyset pages like
// EachTicket.
func (t *pgTx) EachUse(ctx context.Context, fn func(*daodian.Use) error) error {
	page := make([]daodian.Use, 0, eachPage)
	var last string
	for first := true; ; first = false {
		var rows pgx.Rows
		var err error
		if first {
			rows, err = t.query(ctx, sqlEachUseFirst, eachPage)
		} else {
			rows, err = t.query(ctx, sqlEachUseNext, esc(last), eachPage)
		}
		if err != nil {
			return wrapErr("each use", err)
		}
		page = page[:0]
		for rows.Next() {
			var u daodian.Use
			if err := scanUse(rows, &u); err != nil {
				rows.Close()
				return wrapErr("each use", err)
			}
			page = append(page, u)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrapErr("each use", err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < eachPage {
			return nil
		}
		last = page[len(page)-1].TransID
	}
}

// EachIdem calls fn for every idempotency record in key order, in keyset pages
// like EachTicket.
func (t *pgTx) EachIdem(ctx context.Context, fn func(*daodian.IdemRecord) error) error {
	page := make([]daodian.IdemRecord, 0, eachPage)
	var last daodian.IdemKey
	for first := true; ; first = false {
		var rows pgx.Rows
		var err error
		if first {
			rows, err = t.query(ctx, sqlEachIdemFirst, eachPage)
		} else {
			rows, err = t.query(ctx, sqlEachIdemNext, esc(last.AppKey), esc(string(last.Op)), esc(last.RequestID), eachPage)
		}
		if err != nil {
			return wrapErr("each idem", err)
		}
		page = page[:0]
		for rows.Next() {
			var rec daodian.IdemRecord
			if err := scanIdem(rows, &rec); err != nil {
				rows.Close()
				return wrapErr("each idem", err)
			}
			page = append(page, rec)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return wrapErr("each idem", err)
		}
		for i := range page {
			if err := fn(&page[i]); err != nil {
				return err
			}
		}
		if len(page) < eachPage {
			return nil
		}
		last = page[len(page)-1].IdemKey
	}
}

// Counts returns the number of rows of each table.
func (t *pgTx) Counts(ctx context.Context) (daodian.Counts, error) {
	var c daodian.Counts
	err := t.queryRow(ctx, sqlCounts).Scan(&c.Apps, &c.Merchants, &c.Shops, &c.Orders, &c.Tickets, &c.Uses,
		&c.Fences, &c.Idem, &c.Records)
	if err != nil {
		return daodian.Counts{}, wrapErr("counts", err)
	}
	return c, nil
}

// --- writes ---

// PutIdem records a final answer; ErrDuplicate if the key has one.
func (t *pgTx) PutIdem(ctx context.Context, rec *daodian.IdemRecord) error {
	answer := rec.Answer
	if answer == nil {
		answer = []byte{} // NOT NULL: an empty answer is still an answer
	}
	return t.hold(ctx, pendingWrite{
		sql: sqlPutIdem,
		args: []any{esc(rec.AppKey), esc(string(rec.Op)), esc(rec.RequestID), []byte(rec.Fingerprint), esc(rec.TicketID),
			answer, ts(rec.CreatedAt)},
		check:  func(tag pgconn.CommandTag, err error) error { return insertErr("put idem", tag, err) },
		strict: true,
	})
}

// SetAvailable stores a ticket's available units. A value outside [0, quantity]
// is refused by the table's CHECK constraint and reported as an InvariantError.
func (t *pgTx) SetAvailable(ctx context.Context, ticketID string, available int) error {
	return t.hold(ctx, pendingWrite{
		sql:  sqlSetAvailable,
		args: []any{esc(ticketID), available},
		check: func(tag pgconn.CommandTag, err error) error {
			if err != nil {
				if isCheckViolation(err) {
					return &daodian.InvariantError{TicketID: ticketID, What: fmt.Sprintf("available %d outside [0, quantity]", available)}
				}
				return wrapErr("set available", err)
			}
			if tag.RowsAffected() == 0 {
				return daodian.ErrNotFound
			}
			return nil
		},
	})
}

// InsertUse records a new use; ErrDuplicate on a repeated transaction id.
func (t *pgTx) InsertUse(ctx context.Context, u *daodian.Use) error {
	return t.hold(ctx, pendingWrite{
		sql: sqlInsertUse,
		args: []any{esc(u.TransID), esc(u.GroupTransID), esc(u.TicketID), esc(u.AppKey),
			esc(u.RequestID), esc(u.ShopID), u.Units, ts(u.GmtBiz), ts(u.CreatedAt), u.Reversed, ts(u.ReversedAt),
			esc(u.ReversalAppKey), esc(u.ReversalRequestID), ts(u.ReversalBizDate), u.Refunded, ts(u.RefundedAt),
			esc(u.RefundAppKey), esc(u.RefundRequestID), u.BuyerPayCents, u.ReceiptCents},
		check:  func(tag pgconn.CommandTag, err error) error { return insertErr("insert use", tag, err) },
		strict: true,
	})
}

// MarkReversed stores the reversal fields of a use. They are written once: marking
// a reversed use again is an InvariantError, an unknown use ErrNotFound.
func (t *pgTx) MarkReversed(ctx context.Context, u *daodian.Use) error {
	return t.hold(ctx, pendingWrite{
		sql: sqlMarkReversed,
		args: []any{esc(u.TransID), u.Reversed, ts(u.ReversedAt), esc(u.ReversalAppKey),
			esc(u.ReversalRequestID), ts(u.ReversalBizDate)},
		check: func(tag pgconn.CommandTag, err error) error {
			if err != nil {
				return wrapErr("mark reversed", err)
			}
			if tag.RowsAffected() == 0 {
				return t.markMissed(ctx, u, "reversed")
			}
			return nil
		},
	})
}

// MarkRefunded stores the refund fields of a use. They are written once: marking a
// refunded use again is an InvariantError, an unknown use ErrNotFound.
func (t *pgTx) MarkRefunded(ctx context.Context, u *daodian.Use) error {
	tag, err := t.exec(ctx, sqlMarkRefunded, esc(u.TransID), u.Refunded, ts(u.RefundedAt), esc(u.RefundAppKey),
		esc(u.RefundRequestID))
	if err != nil {
		return wrapErr("mark refunded", err)
	}
	if tag.RowsAffected() == 0 {
		return t.markMissed(ctx, u, "refunded")
	}
	return nil
}

// markMissed tells why a guarded update of a use changed no row.
func (t *pgTx) markMissed(ctx context.Context, u *daodian.Use, what string) error {
	var exists bool
	if err := t.queryRow(ctx, sqlUseExists, esc(u.TransID)).Scan(&exists); err != nil {
		return rowErr("mark "+what, err)
	}
	return &daodian.InvariantError{TicketID: u.TicketID, What: "use " + u.TransID + " is already " + what}
}

// PutFence creates or replaces the fence of (ticket, app).
func (t *pgTx) PutFence(ctx context.Context, f *daodian.Fence) error {
	return t.hold(ctx, pendingWrite{
		sql:    sqlPutFence,
		args:   []any{esc(f.TicketID), esc(f.AppKey), ts(f.At), esc(f.RequestID), ts(f.CreatedAt)},
		check:  errOnly("put fence"),
		strict: true, // an upsert: it fails only on the server
	})
}

// NewID returns the next value of the daodian_ids sequence as 19 digits. A
// sequence is shared by every process and never hands a value out twice, even when
// the transaction that took it aborts. Its cache is 1, so ids are increasing in the
// order they are taken across processes, which LatestActiveUse relies on.
func (t *pgTx) NewID(ctx context.Context) (string, error) {
	var id int64
	if err := t.queryRow(ctx, sqlNewID).Scan(&id); err != nil {
		return "", wrapErr("new id", err)
	}
	return strconv.FormatInt(id, 10), nil
}

// PutMerchant creates a merchant or updates its name.
func (t *pgTx) PutMerchant(ctx context.Context, m *daodian.Merchant) error {
	if _, err := t.exec(ctx, sqlPutMerchant, esc(m.ID), esc(m.Name)); err != nil {
		return wrapErr("put merchant", err)
	}
	return nil
}

// InsertShop registers a shop; ErrDuplicate if (merchant, shop id) exists.
func (t *pgTx) InsertShop(ctx context.Context, s *daodian.Shop) error {
	tag, err := t.exec(ctx, sqlInsertShop, esc(s.MerchantID), esc(s.ID), esc(s.Name))
	return insertErr("insert shop", tag, err)
}

// InsertApp creates an app; ErrDuplicate on a repeated key.
func (t *pgTx) InsertApp(ctx context.Context, a *daodian.App) error {
	secret, previous := t.key.SealApp(a)
	tag, err := t.exec(ctx, sqlInsertApp, esc(a.Key), esc(secret), esc(previous), ts(a.PreviousSecretUntil), esc(a.Name),
		escList(a.Merchants), a.Enabled, escList(a.Methods), a.RateLimitPerS, ts(a.CreatedAt))
	return insertErr("insert app", tag, err)
}

// SetAppSecrets replaces an app's secrets, sealed; ErrNotFound for an unknown key.
func (t *pgTx) SetAppSecrets(ctx context.Context, a *daodian.App) error {
	secret, previous := t.key.SealApp(a)
	tag, err := t.exec(ctx, sqlSetAppSecrets, esc(a.Key), esc(secret), esc(previous), ts(a.PreviousSecretUntil))
	if err != nil {
		return wrapErr("set app secrets", err)
	}
	if tag.RowsAffected() == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

// UpdateApp replaces an app's mutable fields; ErrNotFound for an unknown key.
func (t *pgTx) UpdateApp(ctx context.Context, a *daodian.App) error {
	tag, err := t.exec(ctx, sqlUpdateApp, esc(a.Key), esc(a.Name), escList(a.Merchants), a.Enabled,
		escList(a.Methods), a.RateLimitPerS)
	if err != nil {
		return wrapErr("update app", err)
	}
	if tag.RowsAffected() == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

// InsertOrder records an order; ErrDuplicate on a repeated sub-order number.
func (t *pgTx) InsertOrder(ctx context.Context, o *daodian.Order) error {
	tag, err := t.exec(ctx, sqlInsertOrder, esc(o.OrderNo), esc(o.SubOrderNo), esc(o.MerchantID), esc(o.BuyerID),
		esc(o.UserPhone), esc(o.ItemID), esc(o.OutItemID), esc(o.ItemName), o.OriginalPriceCents, o.TotalAmountCents,
		o.RealAmountCents, ts(o.CreatedAt))
	return insertErr("insert order", tag, err)
}

// InsertTicket records a ticket; ErrDuplicate on a repeated id or code.
func (t *pgTx) InsertTicket(ctx context.Context, tk *daodian.Ticket) error {
	tag, err := t.exec(ctx, sqlInsertTicket, esc(tk.ID), esc(tk.Code), esc(tk.MerchantID), esc(tk.OrderNo),
		esc(tk.SubOrderNo), esc(tk.ItemID), esc(tk.OutItemID), esc(tk.ItemName), tk.Quantity, tk.Available,
		tk.OriginalPriceCents, tk.TotalAmountCents, tk.RealAmountCents, ts(tk.ValidFrom), ts(tk.ValidTo),
		esc(string(tk.Status)), ts(tk.CreatedAt))
	if err != nil && isCheckViolation(err) {
		return &daodian.InvariantError{TicketID: tk.ID, What: fmt.Sprintf("available %d outside [0, %d]", tk.Available, tk.Quantity)}
	}
	return insertErr("insert ticket", tag, err)
}

// --- helpers ---

// rowScanner is a pgx.Row or pgx.Rows.
type rowScanner interface {
	Scan(dest ...any) error
}

func scanTicket(r rowScanner, tk *daodian.Ticket) error {
	var status string
	var from, to, created pgtype.Timestamptz
	err := r.Scan(&tk.ID, &tk.Code, &tk.MerchantID, &tk.OrderNo, &tk.SubOrderNo, &tk.ItemID, &tk.OutItemID,
		&tk.ItemName, &tk.Quantity, &tk.Available, &tk.OriginalPriceCents, &tk.TotalAmountCents, &tk.RealAmountCents,
		&from, &to, &status, &created)
	if err != nil {
		return err
	}
	for _, p := range []*string{&tk.ID, &tk.Code, &tk.MerchantID, &tk.OrderNo, &tk.SubOrderNo, &tk.ItemID,
		&tk.OutItemID, &tk.ItemName} {
		*p = unesc(*p)
	}
	tk.Status = daodian.TicketStatus(unesc(status))
	tk.ValidFrom, tk.ValidTo, tk.CreatedAt = fromTS(from), fromTS(to), fromTS(created)
	return nil
}

func scanUse(r rowScanner, u *daodian.Use) error {
	var gmtBiz, created, reversedAt, bizDate, refundedAt pgtype.Timestamptz
	err := r.Scan(&u.TransID, &u.GroupTransID, &u.TicketID, &u.AppKey, &u.RequestID, &u.ShopID, &u.Units, &gmtBiz,
		&created, &u.Reversed, &reversedAt, &u.ReversalAppKey, &u.ReversalRequestID, &bizDate, &u.Refunded,
		&refundedAt, &u.RefundAppKey, &u.RefundRequestID, &u.BuyerPayCents, &u.ReceiptCents)
	if err != nil {
		return err
	}
	for _, p := range []*string{&u.TransID, &u.GroupTransID, &u.TicketID, &u.AppKey, &u.RequestID, &u.ShopID,
		&u.ReversalAppKey, &u.ReversalRequestID, &u.RefundAppKey, &u.RefundRequestID} {
		*p = unesc(*p)
	}
	u.GmtBiz, u.CreatedAt = fromTS(gmtBiz), fromTS(created)
	u.ReversedAt, u.ReversalBizDate, u.RefundedAt = fromTS(reversedAt), fromTS(bizDate), fromTS(refundedAt)
	return nil
}

func scanIdem(r rowScanner, rec *daodian.IdemRecord) error {
	var op string
	var fp []byte
	var created pgtype.Timestamptz
	if err := r.Scan(&rec.AppKey, &op, &rec.RequestID, &fp, &rec.TicketID, &rec.Answer, &created); err != nil {
		return err
	}
	rec.AppKey, rec.RequestID, rec.TicketID = unesc(rec.AppKey), unesc(rec.RequestID), unesc(rec.TicketID)
	rec.Op, rec.Fingerprint = daodian.Operation(unesc(op)), string(fp)
	rec.CreatedAt = fromTS(created)
	return nil
}

// ts encodes a time as timestamptz: the zero time.Time as NULL, so that it comes
// back as the zero time rather than as the year 1 in some zone.
func ts(t time.Time) pgtype.Timestamptz {
	if t.IsZero() {
		return pgtype.Timestamptz{}
	}
	return pgtype.Timestamptz{Time: t, Valid: true}
}

// fromTS decodes a timestamptz in UTC; NULL is the zero time.Time.
func fromTS(v pgtype.Timestamptz) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return v.Time.UTC()
}

// rowErr maps a single-row read's failure: no row is ErrNotFound.
func rowErr(op string, err error) error {
	if errors.Is(err, pgx.ErrNoRows) {
		return daodian.ErrNotFound
	}
	return wrapErr(op, err)
}

// insertErr maps an INSERT … ON CONFLICT DO NOTHING: no row inserted means the key
// exists. A unique violation that still reaches here (another unique index than
// the one in conflict, say) is ErrDuplicate too.
func insertErr(op string, tag pgconn.CommandTag, err error) error {
	if err != nil {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" {
			return daodian.ErrDuplicate
		}
		return wrapErr(op, err)
	}
	if tag.RowsAffected() == 0 {
		return daodian.ErrDuplicate
	}
	return nil
}

func isCheckViolation(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23514"
}

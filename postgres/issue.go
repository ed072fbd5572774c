package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daodian/daodian"
)

// Issuing in bulk: identifiers in one statement, and orders, tickets and
// records with COPY, so that a batch of thousands of orders costs a handful of
// round trips instead of several per order.
//
// COPY has no ON CONFLICT, and one taken ticket code would fail the whole COPY
// (and abort the transaction). So tickets are copied into a temporary staging
// table first, then moved to tickets by one INSERT … ON CONFLICT (code) DO
// NOTHING, which skips a ticket whose code is taken — waiting, as a single
// insert does, for a transaction holding the same code — and the statement
// returns the ids it skipped; the ledger draws those tickets new codes and
// inserts them one by one. The staging table lives as long as the session
// (created on first use in each session, ON COMMIT DELETE ROWS), so a batch
// adds no catalog rows; temporary tables write no WAL.

// Columns of the bulk writes, in the order of the rows below.
var (
	orderCopyCols = []string{"order_no", "sub_order_no", "merchant_id", "buyer_id", "user_phone", "item_id",
		"out_item_id", "item_name", "original_price_cents", "total_amount_cents", "real_amount_cents", "created_at"}
	ticketCopyCols = []string{"id", "code", "merchant_id", "order_no", "sub_order_no", "item_id", "out_item_id",
		"item_name", "quantity", "available", "original_price_cents", "total_amount_cents", "real_amount_cents",
		"valid_from", "valid_to", "status", "created_at"}
	recordCopyCols = []string{"at", "day", "kind", "merchant_id", "shop_id", "ticket_id", "trans_id", "request_id",
		"app_key", "units", "biz_time", "buyer_pay_cents", "receipt_cents"}
)

// ticketStage is the session's staging table of InsertTickets; pg_temp names
// the session's own schema of temporary tables, so no table of the database
// can be meant instead.
var ticketStage = pgx.Identifier{"pg_temp", "daodian_issue_stage"}

const (
	sqlNewIDs = `SELECT nextval('daodian_ids') FROM generate_series(1, $1)`

	// LIKE copies the columns and their NOT NULLs, not the keys: the stage
	// must take rows that collide.
	sqlCreateTicketStage = `CREATE TEMPORARY TABLE IF NOT EXISTS daodian_issue_stage (LIKE tickets)
	ON COMMIT DELETE ROWS`
	// Empties the stage into tickets and returns the ids of the staged tickets
	// that were not inserted, whose code was taken. The stage is emptied
	// whatever happens to its rows, for the next call in the transaction.
	sqlMoveTicketStage = `WITH staged AS (
		DELETE FROM pg_temp.daodian_issue_stage RETURNING ` + ticketCols + `
	), inserted AS (
		INSERT INTO tickets (` + ticketCols + `) SELECT ` + ticketCols + ` FROM staged
		ON CONFLICT (code) DO NOTHING RETURNING id
	)
	SELECT id FROM staged EXCEPT ALL SELECT id FROM inserted`
)

// NewIDs returns n values of the daodian_ids sequence, in increasing order, in
// one statement.
func (t *pgTx) NewIDs(ctx context.Context, n int) ([]string, error) {
	if n < 1 || n > daodian.MaxBulkRows {
		return nil, fmt.Errorf("postgres: new ids: %d out of range 1 to %d", n, daodian.MaxBulkRows)
	}
	rows, err := t.query(ctx, sqlNewIDs, n)
	if err != nil {
		return nil, wrapErr("new ids", err)
	}
	vals, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return nil, wrapErr("new ids", err)
	}
	if len(vals) != n {
		return nil, fmt.Errorf("postgres: new ids: got %d, want %d", len(vals), n)
	}
	// The rows come in the order the values were taken; sorting costs nothing
	// and does not rely on it.
	slices.Sort(vals)
	ids := make([]string, n)
	for i, v := range vals {
		ids[i] = strconv.FormatInt(v, 10)
	}
	return ids, nil
}

// InsertOrders copies orders into orders; a sub-order number stored already
// or repeated fails the COPY with a unique violation: ErrDuplicate.
func (t *pgTx) InsertOrders(ctx context.Context, os []daodian.Order) error {
	err := t.copyRows(ctx, pgx.Identifier{"orders"}, orderCopyCols, len(os), func(i int) []any {
		o := &os[i]
		return []any{esc(o.OrderNo), esc(o.SubOrderNo), esc(o.MerchantID), esc(o.BuyerID), esc(o.UserPhone),
			esc(o.ItemID), esc(o.OutItemID), esc(o.ItemName), o.OriginalPriceCents, o.TotalAmountCents,
			o.RealAmountCents, ts(o.CreatedAt)}
	})
	return bulkErr("insert orders", err)
}

// InsertTickets copies tickets into the staging table, then moves them to
// tickets (see above) and returns the indexes of those whose code was taken.
func (t *pgTx) InsertTickets(ctx context.Context, tks []daodian.Ticket) ([]int, error) {
	if len(tks) == 0 {
		return nil, nil
	}
	if err := t.hold(ctx, pendingWrite{sql: sqlCreateTicketStage, check: errOnly("create ticket stage"), strict: true}); err != nil {
		return nil, err
	}
	err := t.copyRows(ctx, ticketStage, ticketCopyCols, len(tks), func(i int) []any {
		tk := &tks[i]
		return []any{esc(tk.ID), esc(tk.Code), esc(tk.MerchantID), esc(tk.OrderNo), esc(tk.SubOrderNo),
			esc(tk.ItemID), esc(tk.OutItemID), esc(tk.ItemName), tk.Quantity, tk.Available, tk.OriginalPriceCents,
			tk.TotalAmountCents, tk.RealAmountCents, ts(tk.ValidFrom), ts(tk.ValidTo), esc(string(tk.Status)),
			ts(tk.CreatedAt)}
	})
	if err != nil {
		return nil, bulkErr("stage tickets", err)
	}
	rows, err := t.query(ctx, sqlMoveTicketStage)
	if err != nil {
		return nil, bulkErr("insert tickets", err)
	}
	skipped, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		if isCheckViolation(err) {
			return nil, &daodian.InvariantError{What: "a ticket's available units outside [0, quantity]"}
		}
		return nil, bulkErr("insert tickets", err)
	}
	if len(skipped) == 0 {
		return nil, nil
	}
	left := make(map[string]int, len(skipped))
	for _, id := range skipped {
		left[unesc(id)]++
	}
	var taken []int
	for i := range tks {
		if left[tks[i].ID] > 0 {
			left[tks[i].ID]--
			taken = append(taken, i)
		}
	}
	return taken, nil
}

// AppendRecords copies records into record_queue, in order, so that their seq
// values (and then their record_ids) follow it. Like AppendRecord it leaves
// their IDs empty: they are numbered after the commit.
func (t *pgTx) AppendRecords(ctx context.Context, rs []daodian.Record) error {
	err := t.copyRows(ctx, pgx.Identifier{"record_queue"}, recordCopyCols, len(rs), func(i int) []any {
		r := &rs[i]
		r.ID = ""
		return []any{ts(r.At), daodian.Day(r.At), esc(string(r.Kind)), esc(r.MerchantID), esc(r.ShopID),
			esc(r.TicketID), esc(r.TransID), esc(r.RequestID), esc(r.AppKey), r.Units, ts(r.BizTime),
			r.BuyerPayCents, r.ReceiptCents}
	})
	return bulkErr("append records", err)
}

// copyRows sends what the transaction holds back (BEGIN, pending writes), then
// copies n rows into table. It bounds n as every bulk write is bounded.
func (t *pgTx) copyRows(ctx context.Context, table pgx.Identifier, cols []string, n int, row func(i int) []any) error {
	if n == 0 {
		return nil
	}
	if n > daodian.MaxBulkRows {
		return fmt.Errorf("%d rows, more than %d", n, daodian.MaxBulkRows)
	}
	if err := t.flush(ctx); err != nil {
		return err
	}
	_, err := t.c.CopyFrom(ctx, table, cols, pgx.CopyFromSlice(n, func(i int) ([]any, error) { return row(i), nil }))
	return err
}

// bulkErr maps the failure of a bulk write: a unique violation is
// ErrDuplicate.
func bulkErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return fmt.Errorf("postgres: %s: %w (%s)", op, daodian.ErrDuplicate, pgErr.ConstraintName)
	}
	return wrapErr(op, err)
}

package sqlite

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"

	"github.com/daodian/daodian"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// errTxDone is returned by a ReadTx or Tx used after its View or Update ended.
var errTxDone = errors.New("sqlite: transaction used after its View or Update returned")

// readTx implements daodian.ReadTx on one connection's session. It is the read
// half of the writer's Tx as well, so reads inside an Update see the batch's
// earlier writes.
type readTx struct {
	s    *session
	done bool
}

var (
	_ daodian.ReadTx = (*readTx)(nil)
	_ daodian.Tx     = (*writeTx)(nil)
)

// fail classifies a driver error: failures that may pass on retry become
// transient, and on the writer any driver error other than a constraint
// violation (which SQLite undoes statement by statement) breaks the batch.
func (s *session) fail(err error) error {
	if err == nil {
		return nil
	}
	if s.broken != nil && errors.Is(err, s.broken) {
		return s.broken
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_CONSTRAINT:
			return err
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
			sqlite3.SQLITE_INTERRUPT, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_CANTOPEN:
			err = daodian.Transient(fmt.Errorf("sqlite: %w", err))
		}
	} else if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		err = daodian.Transient(err)
	}
	if s.w != nil {
		s.broken = err
	}
	return err
}

// failWrite is fail for an insert: a unique-key violation is ErrDuplicate.
func (s *session) failWrite(err error, what, key string) error {
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() {
		case sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY, sqlite3.SQLITE_CONSTRAINT_UNIQUE:
			return fmt.Errorf("sqlite: %s %q: %w (%v)", what, key, daodian.ErrDuplicate, err)
		}
	}
	return s.fail(err)
}

// lookup maps the result of a single-row query.
func (s *session) lookup(err error) error {
	if err == errNoRow {
		return daodian.ErrNotFound
	}
	return s.fail(err)
}

func (t *readTx) Idem(ctx context.Context, key daodian.IdemKey) (*daodian.IdemRecord, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.idem, 4, key.AppKey, string(key.Op), key.RequestID)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return &daodian.IdemRecord{
		IdemKey:     key,
		Fingerprint: asStr(row[0]),
		TicketID:    asStr(row[1]),
		Answer:      asBytes(row[2]),
		CreatedAt:   fromMicros(asInt(row[3])),
	}, nil
}

func (t *readTx) Ticket(ctx context.Context, id string) (*daodian.Ticket, error) {
	return t.ticket(t.s.r.ticket, id)
}

func (t *readTx) TicketByCode(ctx context.Context, code string) (*daodian.Ticket, error) {
	return t.ticket(t.s.r.ticketByCode, code)
}

// TicketMerchant needs no care to stay unlocked: the single writer serialises
// every Update, so no read of the embedded store takes a lock of its own.
func (t *readTx) TicketMerchant(ctx context.Context, id string) (string, error) {
	if t.done {
		return "", errTxDone
	}
	row, err := t.s.queryRow(t.s.r.ticketMerchant, 1, id)
	if err != nil {
		return "", t.s.lookup(err)
	}
	return asStr(row[0]), nil
}

func (t *readTx) ticket(st *stmt, key string) (*daodian.Ticket, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(st, 2, key)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return decodeTicket(asInt(row[0]), asBytes(row[1]))
}

// walkError carries an error of a callback through session.query, so that it
// is returned unchanged rather than classified as a driver error.
type walkError struct{ err error }

func (e *walkError) Error() string { return e.err.Error() }

// walkResult maps the error of session.query.
func (s *session) walkResult(err error) error {
	var we *walkError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		return we.err
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		// A walk stopped by its caller's context: nothing is wrong with the
		// connection or the batch.
		return daodian.Transient(err)
	}
	return s.fail(err)
}

func (t *readTx) SubOrderTickets(ctx context.Context, subOrderNo string) ([]daodian.Ticket, error) {
	if t.done {
		return nil, errTxDone
	}
	var list []daodian.Ticket
	err := t.s.query(bg, t.s.r.subOrder, 2, daodian.MaxTicketsPerOrder, func(row []driver.Value) error {
		tk, err := decodeTicket(asInt(row[0]), asBytes(row[1]))
		if err != nil {
			return &walkError{err}
		}
		list = append(list, *tk)
		return nil
	}, subOrderNo)
	if errors.Is(err, errTooMany) {
		// Issuance bounds a sub-order's tickets; more means the ledger was
		// written around that rule. Refuse rather than answer on a truncated
		// list.
		return nil, fmt.Errorf("sqlite: sub-order %q has more than %d tickets", subOrderNo, daodian.MaxTicketsPerOrder)
	}
	if err := t.s.walkResult(err); err != nil {
		return nil, err
	}
	return list, nil
}

// TicketForUse locks nothing: the single writer serialises every Update.
func (t *readTx) TicketForUse(ctx context.Context, code, id string) (*daodian.Ticket, error) {
	if code == "" {
		return t.Ticket(ctx, id)
	}
	return t.TicketByCode(ctx, code)
}

func (t *readTx) Order(ctx context.Context, subOrderNo string) (*daodian.Order, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.order, 1, subOrderNo)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return decodeOrder(asBytes(row[0]))
}

func (t *readTx) use(st *stmt, args ...any) (*daodian.Use, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(st, 3, args...)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return decodeUse(asBytes(row[0]), asBytes(row[1]), asBytes(row[2]))
}

func (t *readTx) Use(ctx context.Context, transID string) (*daodian.Use, error) {
	return t.use(t.s.r.use, transID)
}

func (t *readTx) GroupUse(ctx context.Context, groupTransID, ticketID string) (*daodian.Use, error) {
	return t.use(t.s.r.groupUse, groupTransID, ticketID)
}

func (t *readTx) LatestActiveUse(ctx context.Context, ticketID, appKey string) (*daodian.Use, error) {
	return t.use(t.s.r.latestActive, ticketID, appKey)
}

func (t *readTx) ActiveUnits(ctx context.Context, ticketID string) (int, error) {
	if t.done {
		return 0, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.activeUnits, 1, ticketID)
	if err != nil {
		return 0, t.s.fail(err)
	}
	return int(asInt(row[0])), nil
}

func (t *readTx) Fence(ctx context.Context, ticketID, appKey string) (*daodian.Fence, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.fence, 3, ticketID, appKey)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return &daodian.Fence{
		TicketID:  ticketID,
		AppKey:    appKey,
		At:        fromMicros(asInt(row[0])),
		RequestID: asStr(row[1]),
		CreatedAt: fromMicros(asInt(row[2])),
	}, nil
}

func (t *readTx) Shop(ctx context.Context, merchantID, shopID string) (*daodian.Shop, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.shop, 1, merchantID, shopID)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return &daodian.Shop{MerchantID: merchantID, ID: shopID, Name: asStr(row[0])}, nil
}

func (t *readTx) App(ctx context.Context, key string) (*daodian.App, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.app, 5, key)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	a, err := decodeApp(key, asInt(row[3]), asBytes(row[4]))
	if err != nil {
		return nil, err
	}
	a.Secret, a.PreviousSecret, a.PreviousSecretUntil = asStr(row[0]), asStr(row[1]), fromMicros(asInt(row[2]))
	if err := t.s.key.OpenApp(a); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	return a, nil
}

func (t *readTx) Merchant(ctx context.Context, id string) (*daodian.Merchant, error) {
	if t.done {
		return nil, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.merchant, 1, id)
	if err != nil {
		return nil, t.s.lookup(err)
	}
	return &daodian.Merchant{ID: id, Name: asStr(row[0])}, nil
}

// walk streams the rows of a full-table query. Its statement is prepared for
// this walk alone, so fn may start other walks (or any other read) on the same
// transaction. On the writer the caller's context is checked between rows
// rather than handed to the driver: an interrupted statement can roll back the
// whole batch.
func (t *readTx) walk(ctx context.Context, text string, ncol int, fn func([]driver.Value) error) error {
	if t.done {
		return errTxDone
	}
	if t.s.broken != nil {
		return t.s.broken
	}
	if err := ctx.Err(); err != nil {
		return daodian.Transient(err)
	}
	st, err := t.s.prepareOnce(bg, text)
	if err != nil {
		return t.s.fail(err)
	}
	qctx := ctx
	if t.s.w != nil {
		qctx = bg
	}
	err = t.s.query(qctx, st, ncol, 0, fn)
	if cerr := st.s.Close(); err == nil && cerr != nil {
		err = cerr
	}
	return t.s.walkResult(err)
}

func (t *readTx) EachTicket(ctx context.Context, fn func(*daodian.Ticket) error) error {
	return t.walk(ctx, sqlEachTicket, 2, func(row []driver.Value) error {
		tk, err := decodeTicket(asInt(row[0]), asBytes(row[1]))
		if err == nil {
			err = fn(tk)
		}
		if err != nil {
			return &walkError{err}
		}
		return nil
	})
}

func (t *readTx) EachUse(ctx context.Context, fn func(*daodian.Use) error) error {
	return t.walk(ctx, sqlEachUse, 3, func(row []driver.Value) error {
		u, err := decodeUse(asBytes(row[0]), asBytes(row[1]), asBytes(row[2]))
		if err == nil {
			err = fn(u)
		}
		if err != nil {
			return &walkError{err}
		}
		return nil
	})
}

func (t *readTx) EachIdem(ctx context.Context, fn func(*daodian.IdemRecord) error) error {
	return t.walk(ctx, sqlEachIdem, 7, func(row []driver.Value) error {
		rec := &daodian.IdemRecord{
			IdemKey: daodian.IdemKey{
				AppKey:    asStr(row[0]),
				Op:        daodian.Operation(asStr(row[1])),
				RequestID: asStr(row[2]),
			},
			Fingerprint: asStr(row[3]),
			TicketID:    asStr(row[4]),
			Answer:      asBytes(row[5]),
			CreatedAt:   fromMicros(asInt(row[6])),
		}
		if err := fn(rec); err != nil {
			return &walkError{err}
		}
		return nil
	})
}

func (t *readTx) Counts(ctx context.Context) (daodian.Counts, error) {
	if t.done {
		return daodian.Counts{}, errTxDone
	}
	row, err := t.s.queryRow(t.s.r.counts, 9)
	if err != nil {
		return daodian.Counts{}, t.s.fail(err)
	}
	return daodian.Counts{
		Apps:      int(asInt(row[0])),
		Merchants: int(asInt(row[1])),
		Shops:     int(asInt(row[2])),
		Orders:    int(asInt(row[3])),
		Tickets:   int(asInt(row[4])),
		Uses:      int(asInt(row[5])),
		Fences:    int(asInt(row[6])),
		Idem:      int(asInt(row[7])),
		Records:   int(asInt(row[8])),
	}, nil
}

// writeTx is the Tx of one Update, run by the writer inside the batch's
// transaction, under the savepoint of that Update.
type writeTx struct {
	readTx
	w *writer
	// savepoint is whether the op's savepoint is open: it is opened by the
	// first write, so that Updates that only read (replays, refusals) skip it.
	savepoint bool
	// st is the op's stage on the writer's memory (mem.go); nil without memory.
	st *stage
}

// write readies the op for a write through a statement: under its savepoint,
// which it opens on the first. With memory, the batch's pending writes go to the
// file first, outside the savepoint, so that undoing this op undoes nothing of
// the ops before it.
func (t *writeTx) write() error {
	if t.done {
		return errTxDone
	}
	if !t.savepoint {
		if err := t.syncFile(); err != nil {
			return err
		}
		if _, err := t.s.exec(t.s.w.savepoint); err != nil {
			return t.s.fail(err)
		}
		t.savepoint = true
	}
	return nil
}

func (t *writeTx) PutIdem(ctx context.Context, rec *daodian.IdemRecord) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memPutIdem(rec)
	}
	if err := t.write(); err != nil {
		return err
	}
	answer := rec.Answer
	if answer == nil {
		answer = []byte{} // a nil []byte binds NULL
	}
	_, err := t.s.exec(t.s.w.putIdem, rec.AppKey, string(rec.Op), rec.RequestID, rec.Fingerprint,
		rec.TicketID, answer, micros(rec.CreatedAt))
	if err != nil {
		return t.s.failWrite(err, "idempotency record", rec.AppKey+"/"+string(rec.Op)+"/"+rec.RequestID)
	}
	return nil
}

func (t *writeTx) SetAvailable(ctx context.Context, ticketID string, available int) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memSetAvailable(ticketID, available)
	}
	if err := t.write(); err != nil {
		return err
	}
	n, err := t.s.exec(t.s.w.setAvailable, int64(available), ticketID)
	if err != nil {
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_CHECK {
			return &daodian.InvariantError{TicketID: ticketID, What: fmt.Sprintf("available %d outside [0, quantity]", available)}
		}
		return t.s.fail(err)
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

func (t *writeTx) InsertUse(ctx context.Context, u *daodian.Use) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memInsertUse(u)
	}
	return t.sqlInsertUse(u)
}

func (t *writeTx) sqlInsertUse(u *daodian.Use) error {
	if err := t.write(); err != nil {
		return err
	}
	// One scratch buffer holds the three docs; the driver copies each argument
	// when it binds it.
	b := useDoc(t.s.buf[:0], u)
	n1 := len(b)
	b = reversalDoc(b, u)
	n2 := len(b)
	b = refundDoc(b, u)
	t.s.buf = b
	_, err := t.s.exec(t.s.w.insertUse, u.TransID, u.GroupTransID, u.TicketID, u.AppKey, int64(u.Units),
		u.Reversed, u.Refunded, b[:n1:n1], b[n1:n2:n2], b[n2:])
	if err != nil {
		return t.s.failWrite(err, "use", u.TransID)
	}
	return nil
}

func (t *writeTx) MarkReversed(ctx context.Context, u *daodian.Use) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memMarkUse(u, true)
	}
	return t.sqlMarkUse(u, true)
}

func (t *writeTx) MarkRefunded(ctx context.Context, u *daodian.Use) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memMarkUse(u, false)
	}
	return t.sqlMarkUse(u, false)
}

// sqlMarkUse stores the reversal (reversed) or refund fields of u.
func (t *writeTx) sqlMarkUse(u *daodian.Use, reversed bool) error {
	if err := t.write(); err != nil {
		return err
	}
	var n int64
	var err error
	if reversed {
		t.s.buf = reversalDoc(t.s.buf[:0], u)
		n, err = t.s.exec(t.s.w.markReversed, u.Reversed, t.s.buf, u.TransID)
	} else {
		t.s.buf = refundDoc(t.s.buf[:0], u)
		n, err = t.s.exec(t.s.w.markRefunded, u.Refunded, t.s.buf, u.TransID)
	}
	if err != nil {
		return t.s.fail(err)
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

func (t *writeTx) PutFence(ctx context.Context, f *daodian.Fence) error {
	if t.st != nil {
		if t.done {
			return errTxDone
		}
		return t.memPutFence(f)
	}
	return t.sqlPutFence(f)
}

func (t *writeTx) sqlPutFence(f *daodian.Fence) error {
	if err := t.write(); err != nil {
		return err
	}
	_, err := t.s.exec(t.s.w.putFence, f.TicketID, f.AppKey, micros(f.At), f.RequestID, micros(f.CreatedAt))
	return t.s.fail(err)
}

func (t *writeTx) NewID(ctx context.Context) (string, error) {
	if t.done {
		return "", errTxDone
	}
	return t.w.newID()
}

func (t *writeTx) PutMerchant(ctx context.Context, m *daodian.Merchant) error {
	if err := t.write(); err != nil {
		return err
	}
	_, err := t.s.exec(t.s.w.putMerchant, m.ID, m.Name)
	return t.s.fail(err)
}

func (t *writeTx) InsertShop(ctx context.Context, sh *daodian.Shop) error {
	if err := t.write(); err != nil {
		return err
	}
	if _, err := t.s.exec(t.s.w.insertShop, sh.MerchantID, sh.ID, sh.Name); err != nil {
		return t.s.failWrite(err, "shop", sh.MerchantID+"/"+sh.ID)
	}
	return nil
}

func (t *writeTx) InsertApp(ctx context.Context, a *daodian.App) error {
	if err := t.write(); err != nil {
		return err
	}
	secret, previous := t.s.key.SealApp(a)
	t.s.buf = appDoc(t.s.buf[:0], a)
	if _, err := t.s.exec(t.s.w.insertApp, a.Key, secret, previous, micros(a.PreviousSecretUntil), micros(a.CreatedAt), t.s.buf); err != nil {
		return t.s.failWrite(err, "app", a.Key)
	}
	return nil
}

func (t *writeTx) UpdateApp(ctx context.Context, a *daodian.App) error {
	if err := t.write(); err != nil {
		return err
	}
	t.s.buf = appDoc(t.s.buf[:0], a)
	n, err := t.s.exec(t.s.w.updateApp, t.s.buf, a.Key)
	if err != nil {
		return t.s.fail(err)
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

func (t *writeTx) SetAppSecrets(ctx context.Context, a *daodian.App) error {
	if err := t.write(); err != nil {
		return err
	}
	secret, previous := t.s.key.SealApp(a)
	n, err := t.s.exec(t.s.w.setAppSecrets, secret, previous, micros(a.PreviousSecretUntil), a.Key)
	if err != nil {
		return t.s.fail(err)
	}
	if n == 0 {
		return daodian.ErrNotFound
	}
	return nil
}

func (t *writeTx) InsertOrder(ctx context.Context, o *daodian.Order) error {
	if err := t.write(); err != nil {
		return err
	}
	t.s.buf = orderDoc(t.s.buf[:0], o)
	if _, err := t.s.exec(t.s.w.insertOrder, o.SubOrderNo, o.OrderNo, o.MerchantID, t.s.buf); err != nil {
		return t.s.failWrite(err, "order", o.SubOrderNo)
	}
	return nil
}

func (t *writeTx) InsertTicket(ctx context.Context, tk *daodian.Ticket) error {
	if err := t.write(); err != nil {
		return err
	}
	if err := t.insertTicket(tk); err != nil {
		return t.ticketErr(tk, err)
	}
	return nil
}

// insertTicket inserts a ticket, once write() has succeeded, and returns the
// statement's own error, for the caller to tell a taken code from a repeated
// id.
func (t *writeTx) insertTicket(tk *daodian.Ticket) error {
	t.s.buf = ticketDoc(t.s.buf[:0], tk)
	_, err := t.s.exec(t.s.w.insertTicket, tk.ID, tk.Code, tk.MerchantID, tk.SubOrderNo,
		int64(tk.Quantity), int64(tk.Available), t.s.buf)
	return err
}

// ticketErr maps the failure of insertTicket.
func (t *writeTx) ticketErr(tk *daodian.Ticket, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_CHECK {
		return &daodian.InvariantError{TicketID: tk.ID, What: fmt.Sprintf("available %d outside [0, quantity %d]", tk.Available, tk.Quantity)}
	}
	return t.s.failWrite(err, "ticket", tk.ID+" (code "+tk.Code+")")
}

// syncFile writes the batch's pending writes to the file (mem.go), so that a
// statement of this op sees what the ops before it wrote. It runs only outside
// the op's savepoint (none is open yet, or it was opened after the last sync):
// the op's own memory writes stay staged until it succeeds.
func (t *writeTx) syncFile() error {
	if t.st == nil || t.savepoint {
		return nil
	}
	if err := t.w.flusher.flush(t.s, &t.w.mem.pend); err != nil {
		return t.s.fail(err)
	}
	t.w.mem.pend.reset()
	return nil
}

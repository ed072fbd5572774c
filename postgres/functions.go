package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/daodian/daodian"
)

// The idempotent operations in one round trip.
//
// Through Update, a use costs the ledger a transaction of several statements
// (BEGIN, lock, the key's record, shop, fence, id, writes, the check, COMMIT):
// several round trips, each holding the ticket's lock while the next one
// travels. Decide instead calls one server-side function per operation
// (daodian_use, daodian_reverse, daodian_refund, created by migration 7, see
// functions_sql.go) as one prepared statement in autocommit: the function does
// what daodian's run does with the rules — lock, read the key's record, replay
// it or answer a conflict, or decide, write the change, its records and the
// answer — and the statement's end is the commit. The ticket's lock is held for
// the function's run, not for round trips. Calls made together share one
// pipeline, one transaction and its commit (batch.go).
//
// The commit is the statement's, so it is guarded like every commit of the
// store (commitDurably): the call runs detached from the caller's context,
// under CommitTimeout, and a cut-short wait for the synchronous standby turns
// its success into a transient failure. A call whose outcome is unknown (the
// connection was lost after the statement was sent, or its bound passed) is a
// transient failure and is not retried here: the caller's retry, under the
// same request id, finds the answer recorded or decides afresh.

// Statements of the functions. Constant texts: pgx prepares each once per
// connection, then a call is one Bind/Execute round trip.
const (
	sqlDecideUse = `SELECT o_answer, o_replayed, o_conflict FROM daodian_use($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,
	$11, $12, $13, $14)`
	sqlDecideReverse = `SELECT o_answer, o_replayed, o_conflict FROM daodian_reverse($1, $2, $3, $4, $5, $6, $7, $8,
	$9, $10, $11, $12)`
	sqlDecideRefund = `SELECT o_answer, o_replayed, o_conflict FROM daodian_refund($1, $2, $3, $4, $5, $6, $7, $8)`
)

// sqlStateInvariant is the SQLSTATE the functions raise when an invariant
// fails (daodian_check_ticket): message what, detail the ticket.
const sqlStateInvariant = "DD001"

// sqlStateContended is what daodian_use raises when it found too few units
// among the tickets of the sub-order no other transaction held, and some were
// held (migrationUseLocks): the call is made again with p_lock_all.
const sqlStateContended = "DD002"

// Decide implements daodian.Decider: d as one call of its operation's
// function, in one round trip, which it shares with the calls of the decisions
// waiting with it (batch.go). With Options.RulesInGo it returns
// daodian.ErrUndecided and the ledger runs its rules through Update.
//
// Retried here, like Update's attempts: a serialisation failure or deadlock
// (after a backoff), a call that could not be sent, and a unique violation of
// the key's record (at once: a concurrent request with the same key on another
// ticket committed first, and the next call finds its record). A use that
// met its sub-order contended is called again at once, locking the whole
// sub-order: that call cannot be contended, so it happens once at most.
func (s *Store) Decide(ctx context.Context, d *daodian.Decision) (daodian.Decided, error) {
	if s.opts.RulesInGo {
		return daodian.Decided{}, daodian.ErrUndecided
	}
	st, err := decideCall(d)
	if err != nil {
		return daodian.Decided{}, err
	}
	for attempt := 0; ; attempt++ {
		out, class, err := s.decideBatched(ctx, st)
		switch {
		case err == nil:
			return out, nil
		case class == classPermanent:
			return daodian.Decided{}, err
		case class == classContended && !st.args[useLockAll].(bool):
			st.args[useLockAll] = true
			continue
		case class == classTransient, attempt >= s.opts.Retries:
			return daodian.Decided{}, daodian.Transient(err)
		}
		if class == classRetry {
			if serr := sleep(ctx, backoff(attempt)); serr != nil {
				return daodian.Decided{}, daodian.Transient(err)
			}
		}
		if ctx.Err() != nil {
			return daodian.Decided{}, daodian.Transient(err)
		}
	}
}

// decideOnce makes the call st on its own and says how its failure may be
// handled.
func (s *Store) decideOnce(ctx context.Context, st *decideStmt) (daodian.Decided, errClass, error) {
	conn, err := s.acquire(ctx)
	if err != nil {
		return daodian.Decided{}, classify(err), err
	}
	// A connection whose call failed mid-way is closed, and Release drops it.
	defer conn.Release()
	if err := ctx.Err(); err != nil {
		// The caller is gone: nothing was sent, nothing is decided.
		return daodian.Decided{}, classTransient, fmt.Errorf("postgres: not decided: %w", err)
	}
	var out daodian.Decided
	err = s.commitDurably(ctx, conn.Conn(), func(cctx context.Context) error {
		return conn.QueryRow(cctx, st.sql, st.args...).Scan(&out.Answer, &out.Replayed, &out.Conflict)
	})
	if err == nil {
		return out, classPermanent, nil
	}
	class, err := decideErr(err)
	return daodian.Decided{}, class, err
}

// decideErr classifies a failed call. A server error says the transaction
// rolled back; a call that could not be sent did nothing; anything else leaves
// the outcome unknown.
func decideErr(err error) (errClass, error) {
	if errors.Is(err, errUnreplicated) {
		return classTransient, fmt.Errorf("postgres: decide: %w", err)
	}
	if isServerError(err) {
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		switch pgErr.Code {
		case sqlStateContended:
			return classContended, err
		case sqlStateInvariant:
			return classPermanent, &daodian.InvariantError{TicketID: unesc(pgErr.Detail), What: pgErr.Message}
		case "23514": // check_violation: tickets_available_range
			return classPermanent, &daodian.InvariantError{TicketID: unesc(pgErr.Detail), What: "available outside [0, quantity]: " + pgErr.Message}
		case "23505": // unique_violation: the key's record, written by a concurrent call
			return classDuplicate, err
		}
		return classify(err), wrapErr("decide", err)
	}
	if pgconn.SafeToRetry(err) {
		return classRetry, fmt.Errorf("postgres: decide not sent: %w", err)
	}
	return classTransient, fmt.Errorf("postgres: decide outcome unknown: %w", err)
}

// decideStmt is the call of a decision's function: its statement and
// arguments, and the ticket they name by code or by id (escaped, as in the
// arguments; "" for none), which a batch locks before its calls (batch.go).
type decideStmt struct {
	sql            string
	args           []any
	code, ticketID string
}

// decideCall is the call of d's function. Times go as microseconds
// (timestamptz) plus the nanoseconds below, where a rule compares them (see
// migrationFunctions).
func decideCall(d *daodian.Decision) (*decideStmt, error) {
	key := []any{esc(d.Key.AppKey), esc(d.Key.RequestID), []byte(d.Fingerprint), escList(d.AppMerchants), ts(d.Now)}
	switch {
	case d.Use != nil:
		u := d.Use
		useDate, err := d.Now.MarshalJSON()
		if err != nil {
			return nil, fmt.Errorf("postgres: decide: the use's time: %w", err)
		}
		code, id := esc(u.TicketCode), esc(u.TicketID)
		return &decideStmt{sql: sqlDecideUse, code: code, ticketID: id, args: append(key, daodian.Day(d.Now), string(useDate),
			code, id, esc(u.ShopID), u.Quantity, ts(u.GmtBiz), subMicro(u.GmtBiz), false)}, nil
	case d.Reverse != nil:
		r := d.Reverse
		id := esc(r.TicketID)
		return &decideStmt{sql: sqlDecideReverse, ticketID: id, args: append(key, subMicro(d.Now), daodian.Day(d.Now), id,
			esc(r.TransID), ts(r.BizDate), subMicro(r.BizDate), int64(d.ReverseWindow))}, nil
	case d.Refund != nil:
		r := d.Refund
		code := esc(r.TicketCode)
		return &decideStmt{sql: sqlDecideRefund, code: code, args: append(key, daodian.Day(d.Now), code, esc(r.TransID))}, nil
	}
	// An operation without a function of its own (a new one, say) is decided
	// by the Go rules through Update: slower, never wrong.
	return nil, daodian.ErrUndecided
}

// useLockAll is the index of daodian_use's p_lock_all in its call's
// arguments.
const useLockAll = 13

// subMicro returns the nanoseconds of t below its microsecond, which a
// timestamptz drops.
func subMicro(t time.Time) int32 { return int32(t.Nanosecond() % 1000) }

var _ daodian.Decider = (*Store)(nil)

package postgres

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/daodian/daodian"
)

// Fault rules (daodian/faults.go): a small table read by every gateway every few
// hundred milliseconds, written by `daodian fault` and by each injection of a
// counted rule.

const (
	faultCols = `id, app_key, method, ticket_id, ticket_code, kind, remaining, probability, code, wait_us, created_at`

	sqlPutFault = `INSERT INTO fault_rules (` + faultCols + `) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
	ON CONFLICT DO NOTHING`
	// An empty filter matches every row.
	sqlDeleteFaults = `DELETE FROM fault_rules WHERE ($1 = '' OR app_key = $1) AND ($2 = '' OR id = $2)`
	// The row lock serialises consumers on every process: a second one waits for
	// the first to commit, then reads the count it left (or finds no row).
	sqlFaultCountLock = `SELECT remaining FROM fault_rules WHERE id = $1 FOR UPDATE`
	sqlFaultDecrease  = `UPDATE fault_rules SET remaining = remaining - 1 WHERE id = $1`
	sqlFaultDelete    = `DELETE FROM fault_rules WHERE id = $1`
)

var sqlFaultRules = `SELECT ` + faultCols + ` FROM fault_rules ORDER BY id LIMIT ` + strconv.Itoa(daodian.MaxFaultRules)

// FaultRules returns the fault rules in id order.
func (t *pgTx) FaultRules(ctx context.Context) ([]daodian.FaultRule, error) {
	rows, err := t.query(ctx, sqlFaultRules)
	if err != nil {
		return nil, wrapErr("fault rules", err)
	}
	defer rows.Close()
	var rules []daodian.FaultRule
	for rows.Next() {
		var r daodian.FaultRule
		var kind string
		var waitUS int64
		var created pgtype.Timestamptz
		if err := rows.Scan(&r.ID, &r.AppKey, &r.Method, &r.TicketID, &r.TicketCode, &kind, &r.Count,
			&r.Probability, &r.Code, &waitUS, &created); err != nil {
			return nil, wrapErr("fault rules", err)
		}
		for _, p := range []*string{&r.ID, &r.AppKey, &r.Method, &r.TicketID, &r.TicketCode} {
			*p = unesc(*p)
		}
		r.Kind = daodian.FaultKind(unesc(kind))
		r.Wait = time.Duration(waitUS) * time.Microsecond
		r.CreatedAt = fromTS(created)
		rules = append(rules, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, wrapErr("fault rules", err)
	}
	return rules, nil
}

// PutFaultRule stores a new fault rule; ErrDuplicate on a repeated id.
func (t *pgTx) PutFaultRule(ctx context.Context, r *daodian.FaultRule) error {
	tag, err := t.exec(ctx, sqlPutFault, esc(r.ID), esc(r.AppKey), esc(r.Method), esc(r.TicketID), esc(r.TicketCode),
		esc(string(r.Kind)), r.Count, r.Probability, r.Code, r.Wait.Microseconds(), ts(r.CreatedAt))
	return insertErr("put fault rule", tag, err)
}

// DeleteFaultRules deletes the rules matching the filter and says how many.
func (t *pgTx) DeleteFaultRules(ctx context.Context, appKey, id string) (int, error) {
	tag, err := t.exec(ctx, sqlDeleteFaults, esc(appKey), esc(id))
	if err != nil {
		return 0, wrapErr("delete fault rules", err)
	}
	return int(tag.RowsAffected()), nil
}

// ConsumeFaultRule takes one injection from a rule under its row lock.
func (t *pgTx) ConsumeFaultRule(ctx context.Context, id string) (bool, error) {
	var n int
	if err := t.queryRow(ctx, sqlFaultCountLock, esc(id)).Scan(&n); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		return false, wrapErr("consume fault rule", err)
	}
	q := sqlFaultDecrease
	switch {
	case n == 0: // unlimited
		return true, nil
	case n == 1: // the last one: the rule is spent
		q = sqlFaultDelete
	}
	if _, err := t.exec(ctx, q, esc(id)); err != nil {
		return false, wrapErr("consume fault rule", err)
	}
	return true, nil
}

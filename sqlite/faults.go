package sqlite

import (
	"context"
	"database/sql/driver"
	"strconv"
	"time"

	"github.com/daodian/daodian"
)

// Fault rules (daodian/faults.go) are read every few hundred milliseconds by a
// gateway and written by admin commands and by the injection of counted rules:
// rare next to the ledger's statements, so they are prepared for each use
// rather than kept on every connection.

const (
	faultCols = `id, app_key, method, ticket_id, ticket_code, kind, remaining, probability, code, wait, created_at`

	sqlPutFault = `INSERT INTO fault_rules (` + faultCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	// An empty filter matches every row.
	sqlDeleteFaults  = `DELETE FROM fault_rules WHERE (? = '' OR app_key = ?) AND (? = '' OR id = ?)`
	sqlFaultCount    = `SELECT remaining FROM fault_rules WHERE id = ?`
	sqlFaultDecrease = `UPDATE fault_rules SET remaining = remaining - 1 WHERE id = ? AND remaining > 1`
	sqlFaultDelete   = `DELETE FROM fault_rules WHERE id = ?`
)

var sqlFaultRules = `SELECT ` + faultCols + ` FROM fault_rules ORDER BY id LIMIT ` + strconv.Itoa(daodian.MaxFaultRules)

func (t *readTx) FaultRules(ctx context.Context) ([]daodian.FaultRule, error) {
	var rules []daodian.FaultRule
	err := t.walk(ctx, sqlFaultRules, 11, func(row []driver.Value) error {
		rules = append(rules, daodian.FaultRule{
			ID:          asStr(row[0]),
			AppKey:      asStr(row[1]),
			Method:      asStr(row[2]),
			TicketID:    asStr(row[3]),
			TicketCode:  asStr(row[4]),
			Kind:        daodian.FaultKind(asStr(row[5])),
			Count:       int(asInt(row[6])),
			Probability: asFloat(row[7]),
			Code:        int(asInt(row[8])),
			Wait:        time.Duration(asInt(row[9])) * time.Microsecond,
			CreatedAt:   fromMicros(asInt(row[10])),
		})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rules, nil
}

// prepared readies the op for a write and prepares a statement for this call
// alone; the caller closes it. Its errors are already classified.
func (t *writeTx) prepared(text string) (*stmt, error) {
	if err := t.write(); err != nil {
		return nil, err
	}
	st, err := t.s.prepareOnce(bg, text)
	if err != nil {
		return nil, t.s.fail(err)
	}
	return st, nil
}

// execOnce runs a statement prepared for this call alone and returns the rows
// it changed. Its errors are classified, a unique-key violation as ErrDuplicate.
func (t *writeTx) execOnce(text, what, key string, args ...any) (int64, error) {
	st, err := t.prepared(text)
	if err != nil {
		return 0, err
	}
	defer st.s.Close()
	n, err := t.s.exec(st, args...)
	if err != nil {
		return 0, t.s.failWrite(err, what, key)
	}
	return n, nil
}

func (t *writeTx) PutFaultRule(ctx context.Context, r *daodian.FaultRule) error {
	_, err := t.execOnce(sqlPutFault, "fault rule", r.ID, r.ID, r.AppKey, r.Method, r.TicketID, r.TicketCode,
		string(r.Kind), int64(r.Count), r.Probability, int64(r.Code), r.Wait.Microseconds(), micros(r.CreatedAt))
	return err
}

func (t *writeTx) DeleteFaultRules(ctx context.Context, appKey, id string) (int, error) {
	n, err := t.execOnce(sqlDeleteFaults, "fault rules of", appKey, appKey, appKey, id, id)
	return int(n), err
}

// ConsumeFaultRule needs no lock beyond the writer's: every Update runs alone on
// the one write connection, and a Shared store's writer holds SQLite's write lock
// for the whole transaction.
func (t *writeTx) ConsumeFaultRule(ctx context.Context, id string) (bool, error) {
	st, err := t.prepared(sqlFaultCount)
	if err != nil {
		return false, err
	}
	row, err := t.s.queryRow(st, 1, id)
	var n int64
	if err == nil {
		n = asInt(row[0])
	}
	_ = st.s.Close()
	switch {
	case err == errNoRow:
		return false, nil
	case err != nil:
		return false, t.s.fail(err)
	case n == 0: // unlimited
		return true, nil
	case n == 1: // the last one: the rule is spent
		_, err = t.execOnce(sqlFaultDelete, "fault rule", id, id)
	default:
		_, err = t.execOnce(sqlFaultDecrease, "fault rule", id, id)
	}
	return err == nil, err
}

func asFloat(v driver.Value) float64 {
	switch x := v.(type) {
	case float64:
		return x
	case int64: // a row written by hand may hold an integer
		return float64(x)
	}
	return 0
}

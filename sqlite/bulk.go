package sqlite

import (
	"context"
	"errors"
	"fmt"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/daodian/daodian"
)

// The bulk writes of issuing. The embedded store runs in-process, where a
// statement costs no round trip: each is the single-row write, row by row, on
// the writer's prepared statements.

// NewIDs returns n fresh ids from the writer's reserved range.
func (t *writeTx) NewIDs(ctx context.Context, n int) ([]string, error) {
	if n < 1 || n > daodian.MaxBulkRows {
		return nil, fmt.Errorf("sqlite: new ids: %d out of range 1 to %d", n, daodian.MaxBulkRows)
	}
	ids := make([]string, n)
	for i := range ids {
		id, err := t.NewID(ctx)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

// InsertOrders inserts the orders one by one.
func (t *writeTx) InsertOrders(ctx context.Context, os []daodian.Order) error {
	if err := bulkLimit("insert orders", len(os)); err != nil {
		return err
	}
	for i := range os {
		if err := t.InsertOrder(ctx, &os[i]); err != nil {
			return err
		}
	}
	return nil
}

// InsertTickets inserts the tickets one by one; one refused by the unique
// index on codes is taken, one refused by the primary key is ErrDuplicate.
func (t *writeTx) InsertTickets(ctx context.Context, tks []daodian.Ticket) ([]int, error) {
	if err := bulkLimit("insert tickets", len(tks)); err != nil {
		return nil, err
	}
	if len(tks) == 0 {
		return nil, nil
	}
	if err := t.write(); err != nil {
		return nil, err
	}
	var taken []int
	for i := range tks {
		err := t.insertTicket(&tks[i])
		var se *sqlite.Error
		if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE {
			taken = append(taken, i)
			continue
		}
		if err != nil {
			return nil, t.ticketErr(&tks[i], err)
		}
	}
	return taken, nil
}

// AppendRecords appends the records one by one.
func (t *writeTx) AppendRecords(ctx context.Context, rs []daodian.Record) error {
	if err := bulkLimit("append records", len(rs)); err != nil {
		return err
	}
	for i := range rs {
		if err := t.AppendRecord(ctx, &rs[i]); err != nil {
			return err
		}
	}
	return nil
}

func bulkLimit(op string, n int) error {
	if n > daodian.MaxBulkRows {
		return fmt.Errorf("sqlite: %s: %d rows, more than %d", op, n, daodian.MaxBulkRows)
	}
	return nil
}

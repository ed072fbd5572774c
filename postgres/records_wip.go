package postgres

// Temporary, on the w23 branch only: the PostgreSQL side of records (SPEC §8)
// is being written; this file keeps the package compiling until then and must
// not reach main.

import (
	"context"
	"errors"

	"github.com/daodian/daodian"
)

var errRecordsWIP = errors.New("postgres: records are not implemented yet")

func (t *pgTx) AppendRecord(ctx context.Context, r *daodian.Record) error { return errRecordsWIP }
func (t *pgTx) Records(ctx context.Context, q daodian.RecordQuery) ([]daodian.Record, error) {
	return nil, errRecordsWIP
}
func (t *pgTx) TicketRecords(ctx context.Context, ticketID string) ([]daodian.Record, error) {
	return nil, errRecordsWIP
}
func (t *pgTx) DayTotals(ctx context.Context, merchantID string, day int, shopID string) ([]daodian.DayTotal, error) {
	return nil, errRecordsWIP
}
func (t *pgTx) EachDayUse(ctx context.Context, merchantID string, day int, fn func(*daodian.DayUse) error) error {
	return errRecordsWIP
}
func (t *pgTx) EachRecord(ctx context.Context, fn func(*daodian.Record) error) error {
	return errRecordsWIP
}

// The reads of records that webhooks and the events pull need (SPEC §9),
// written against the records of that work when it lands.
func (t *pgTx) RecordByID(ctx context.Context, id string) (*daodian.Record, error) {
	return nil, errRecordsWIP
}
func (t *pgTx) LastRecordID(ctx context.Context) (string, error) { return "", errRecordsWIP }

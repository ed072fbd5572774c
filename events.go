package daodian

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// Events (SPEC §9). Every record of §8 is also an event, with event_id =
// record_id: the records table is the outbox. Writing the record is writing the
// event, in the transaction of the change and through the one runner, so an
// event exists exactly when its change committed, on every store, and no
// operation writes twice. Consumers follow the records in record_id order: a
// webhook from the cursor it keeps (webhooks.go), a pull consumer from the
// event_id it passes as after (Ledger.Events).

// EventType is the type of an event, one per kind of record.
type EventType string

// The event types, one per RecordKind.
const (
	EventIssued         EventType = "ticket.issued"
	EventUsed           EventType = "ticket.used"
	EventUseReversed    EventType = "ticket.use_reversed"
	EventReversalFenced EventType = "ticket.reversal_fenced"
	EventRefunded       EventType = "ticket.refunded"
)

// EventTypes are the event types, in the order of RecordKinds.
var EventTypes = []EventType{EventIssued, EventUsed, EventUseReversed, EventReversalFenced, EventRefunded}

// EventTypeOf returns the type of the event of a record of kind k ("" for an
// unknown kind).
func EventTypeOf(k RecordKind) EventType {
	switch k {
	case RecordIssue:
		return EventIssued
	case RecordUse:
		return EventUsed
	case RecordReversal:
		return EventUseReversed
	case RecordFence:
		return EventReversalFenced
	case RecordRefund:
		return EventRefunded
	}
	return ""
}

// Kind returns the kind of record whose events have type t ("" for an unknown
// type).
func (t EventType) Kind() RecordKind {
	for i, et := range EventTypes {
		if et == t {
			return RecordKinds[i]
		}
	}
	return ""
}

// ParseEventTypes parses a comma-separated list of event types (spaces around
// each allowed); the empty list means every type and parses to nil. Each type
// is kept once, in the order of EventTypes.
func ParseEventTypes(s string) ([]EventType, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var ts []EventType
	for _, p := range strings.Split(s, ",") {
		ts = append(ts, EventType(strings.TrimSpace(p)))
	}
	return normalizeEventTypes(ts)
}

// normalizeEventTypes checks event types and returns each once, in the order
// of EventTypes; nil for none (every type).
func normalizeEventTypes(ts []EventType) ([]EventType, error) {
	seen := map[EventType]bool{}
	for _, t := range ts {
		if t.Kind() == "" {
			return nil, invalid("types", strconv.Quote(clipText(string(t)))+" is not one of "+eventTypeList())
		}
		seen[t] = true
	}
	var out []EventType
	for _, t := range EventTypes {
		if seen[t] {
			out = append(out, t)
		}
	}
	return out, nil
}

func eventTypeList() string {
	names := make([]string, len(EventTypes))
	for i, t := range EventTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// clipText shortens a caller's text before an error message echoes it.
func clipText(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// EventNumber returns an event_id (a record_id; "" for none, 0) as the
// integer both stores keep it as; a malformed one is an error, never a silent
// 0.
func EventNumber(id string) (int64, error) {
	if id == "" {
		return 0, nil
	}
	v, err := strconv.ParseInt(id, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("event id %q is not a record id", clipText(id))
	}
	return v, nil
}

// EventIDOf is the event_id of an integer kept by a store (0: "").
func EventIDOf(n int64) string {
	if n == 0 {
		return ""
	}
	return strconv.FormatInt(n, 10)
}

// Limits of the events pull.
const (
	// DefaultEventsPage is the page size of an events pull that names none.
	DefaultEventsPage = 100
	// MaxEventsPage bounds one page of events.
	MaxEventsPage = 1000
)

// EventPage is one page of a merchant's events, in event_id order, and the
// event_id to pass as after for the next page: the last event's, or the after
// the page was asked with when it is empty (nothing new yet: ask again later).
type EventPage struct {
	Events    []Record
	NextAfter string
}

// Events returns the events of a merchant with an event_id after after ("" for
// the first), at most limit of them (0: DefaultEventsPage), for consumers that
// pull rather than receive webhooks. The merchant must exist (ErrNotFound).
// Paging from any event_id on lists every event committed since, each once, in
// order: an event never appears behind a position already returned.
func (l *Ledger) Events(ctx context.Context, merchantID, after string, limit int) (*EventPage, error) {
	q := RecordQuery{MerchantID: merchantID, AfterID: after, Limit: limit}
	if limit == 0 {
		q.Limit = DefaultEventsPage
	}
	if q.Limit < 1 || q.Limit > MaxEventsPage {
		return nil, invalid("limit", "must be between 1 and "+strconv.Itoa(MaxEventsPage))
	}
	if err := checkRecordQuery(&q); err != nil {
		return nil, err
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	page := &EventPage{NextAfter: after}
	err := l.store.View(ctx, func(tx ReadTx) error {
		if _, err := tx.Merchant(ctx, merchantID); err != nil {
			return err
		}
		recs, err := tx.Records(ctx, q)
		if err != nil {
			return err
		}
		page.Events = recs
		if len(recs) > 0 {
			page.NextAfter = recs[len(recs)-1].ID
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return page, nil
}

// NumberRecords runs the store's numbering pass, if it numbers records after
// their commit (RecordSequencer): the webhook deliverer runs it before it
// looks for new events, as the ledger's history reads do.
func (l *Ledger) NumberRecords(ctx context.Context) error { return l.sequenceRecords(ctx) }

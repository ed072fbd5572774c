package admin

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// Event is an event of SPEC §9: a record (§8) as what happened. It is the body
// of a webhook delivery and an element of GET /admin/v1/events, in one shape.
type Event struct {
	EventID string `json:"event_id"`
	Type    string `json:"type"`
	// OccurredAt is the record's at: yyyy-MM-dd HH:mm:ss in GMT+8.
	OccurredAt string `json:"occurred_at"`
	MerchantID string `json:"merchant_id"`
	Data       Record `json:"data"`
}

// EventOf renders the event of a record.
func EventOf(r *daodian.Record) Event {
	return Event{
		EventID: r.ID, Type: string(daodian.EventTypeOf(r.Kind)), OccurredAt: top.FormatTime(r.At),
		MerchantID: r.MerchantID, Data: RecordOf(r),
	}
}

// EventJSON is the event of a record as JSON, as a webhook delivery's body:
// compact, one line, without a trailing newline, and with <, > and & as they
// are (the same bytes as the admin API writes them).
func EventJSON(r *daodian.Record) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(EventOf(r)); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// EventPage is a page of GET /admin/v1/events: the events in event_id order
// and the event_id to pass as after for the next page (the after asked with,
// when the page is empty).
type EventPage struct {
	Events    []Event `json:"events"`
	NextAfter string  `json:"next_after"`
}

// EventPageOf renders a page of events; Events is never nil.
func EventPageOf(p *daodian.EventPage) EventPage {
	out := EventPage{Events: make([]Event, len(p.Events)), NextAfter: p.NextAfter}
	for i := range p.Events {
		out.Events[i] = EventOf(&p.Events[i])
	}
	return out
}

// events answers GET /admin/v1/events?merchant=M&after=<event_id>&limit=N
// (SPEC §9): the merchant's events after the one named, for consumers that
// pull rather than receive webhooks.
func (a *API) events(c *call, _ string) {
	q, ok := parse(c, true, "after", "limit")
	if !ok {
		return
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > daodian.MaxEventsPage {
			c.fail(errInvalid("limit must be a whole number from 1 to " + strconv.Itoa(daodian.MaxEventsPage)))
			return
		}
		limit = n
	}
	page, err := a.ledger.Events(c.r.Context(), q.merchant, q.Get("after"), limit)
	if err != nil {
		a.failWith(c, err, msgMerchantNotFound)
		return
	}
	c.json(EventPageOf(page))
}

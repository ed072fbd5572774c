package daodian

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// History (SPEC §8): what the ledger did, read from its records. Every method
// here is read-only and runs on one consistent snapshot.

// TicketHistory is a ticket and its timeline: its records in commit order.
type TicketHistory struct {
	Ticket   Ticket
	Timeline []Record
}

// TicketHistory returns the ticket with the id (or, when id is empty, the code)
// and its timeline. A non-empty merchantID scopes the lookup: a ticket of another
// merchant is ErrNotFound, exactly like a missing one.
func (l *Ledger) TicketHistory(ctx context.Context, id, code, merchantID string) (*TicketHistory, error) {
	switch {
	case id != "":
		if err := checkDigits("ticket_id", id, true); err != nil {
			return nil, err
		}
	case code != "":
		if err := checkDigits("ticket_code", code, true); err != nil {
			return nil, err
		}
	default:
		return nil, invalid("ticket_id", "or ticket_code is required")
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	var h *TicketHistory
	err := l.store.View(ctx, func(tx ReadTx) error {
		var t *Ticket
		var err error
		if id != "" {
			t, err = tx.Ticket(ctx, id)
		} else {
			t, err = tx.TicketByCode(ctx, code)
		}
		if err != nil {
			return err
		}
		if merchantID != "" && t.MerchantID != merchantID {
			return ErrNotFound
		}
		recs, err := tx.TicketRecords(ctx, t.ID)
		if err != nil {
			return err
		}
		h = &TicketHistory{Ticket: *t, Timeline: recs}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// RecordPage is one page of records and the cursor of the next page, empty on the
// last.
type RecordPage struct {
	Records    []Record
	NextCursor string
}

// ErrNoSuchShop is a shop filter naming a shop the merchant does not have (it
// may be a typo: an empty answer would look like a quiet day). It is also
// ErrNotFound.
var ErrNoSuchShop = fmt.Errorf("%w: the merchant has no such shop", ErrNotFound)

// checkMerchantShop reports ErrNotFound for an unknown merchant and
// ErrNoSuchShop for a shop filter naming none of its shops.
func checkMerchantShop(ctx context.Context, tx ReadTx, merchantID, shopID string) error {
	if _, err := tx.Merchant(ctx, merchantID); err != nil {
		return err
	}
	if shopID == "" {
		return nil
	}
	if _, err := tx.Shop(ctx, merchantID, shopID); errors.Is(err, ErrNotFound) {
		return ErrNoSuchShop
	} else if err != nil {
		return err
	}
	return nil
}

// ErrBadCursor is a records cursor that this query did not hand out: made for
// another query, altered, or not a cursor at all.
var ErrBadCursor = errors.New("the cursor does not belong to this query (it was made for other filters, or altered)")

// Records returns one page of a merchant's records in commit order: those
// matching q after the position cursor ("" for the first page) names. q.Limit 0
// means DefaultRecordsPage. Paging from the first page to the last, whatever is
// written meanwhile, lists every record committed before the first page exactly
// once.
//
// The merchant must exist (ErrNotFound), and the shop, if q names one
// (ErrNoSuchShop). A cursor is bound to the query's filters:
// one from another query, or altered, is ErrBadCursor. Cursors are not secrets —
// they carry a record id and a checksum — and grant nothing: the merchant scope is
// the caller's to enforce.
func (l *Ledger) Records(ctx context.Context, q RecordQuery, cursor string) (*RecordPage, error) {
	if err := checkRecordQuery(&q); err != nil {
		return nil, err
	}
	if cursor != "" {
		after, err := decodeCursor(cursor, &q)
		if err != nil {
			return nil, err
		}
		q.AfterID = after
	}
	if err := l.sequenceRecords(ctx); err != nil {
		return nil, err
	}
	var page RecordPage
	err := l.store.View(ctx, func(tx ReadTx) error {
		if err := checkMerchantShop(ctx, tx, q.MerchantID, q.ShopID); err != nil {
			return err
		}
		want := q.Limit
		q.Limit++ // one more tells whether another page follows
		recs, err := tx.Records(ctx, q)
		if err != nil {
			return err
		}
		if len(recs) > want {
			recs = recs[:want]
			page.NextCursor = encodeCursor(&q, recs[want-1].ID)
		}
		page.Records = recs
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &page, nil
}

// sequenceRecords has a store that numbers records after their commit
// (RecordSequencer) number those committed so far, before a read that lists
// records by id: a page then lists every record committed before it, and a
// timeline shows their ids.
func (l *Ledger) sequenceRecords(ctx context.Context) error {
	if s, ok := l.store.(RecordSequencer); ok {
		_, err := s.SequenceRecords(ctx)
		return err
	}
	return nil
}

func checkRecordQuery(q *RecordQuery) error {
	if err := checkText("merchant", q.MerchantID, true, MaxNameLen); err != nil {
		return err
	}
	if err := checkText("shop_id", q.ShopID, false, MaxShopIDLen); err != nil {
		return err
	}
	for _, k := range q.Kinds {
		if !k.Valid() {
			return invalid("kind", strconv.Quote(string(k))+" is not one of issue, use, reversal, fence, refund")
		}
	}
	if len(q.Kinds) > 0 {
		q.Kinds = slices.Clone(q.Kinds)
		slices.Sort(q.Kinds)
		q.Kinds = slices.Compact(q.Kinds)
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		return invalid("to", "must be after from")
	}
	switch {
	case q.Limit == 0:
		q.Limit = DefaultRecordsPage
	case q.Limit < 1 || q.Limit > MaxRecordsPage:
		return invalid("limit", "must be between 1 and "+strconv.Itoa(MaxRecordsPage))
	}
	return checkDigits("after", q.AfterID, false)
}

// A cursor is base64url("r1" ‖ 8-byte checksum ‖ record id). The checksum covers
// the query's filters and the id, so that a cursor is refused by any other query
// and when altered.
func encodeCursor(q *RecordQuery, afterID string) string {
	sum := cursorSum(q, afterID)
	b := make([]byte, 0, 2+len(sum)+len(afterID))
	b = append(b, "r1"...)
	b = append(b, sum[:]...)
	b = append(b, afterID...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(c string, q *RecordQuery) (string, error) {
	if len(c) > 128 {
		return "", ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(b) < 2+8+1 || string(b[:2]) != "r1" {
		return "", ErrBadCursor
	}
	id := string(b[10:])
	if checkDigits("after", id, true) != nil {
		return "", ErrBadCursor
	}
	if sum := cursorSum(q, id); string(sum[:]) != string(b[2:10]) {
		return "", ErrBadCursor
	}
	return id, nil
}

func cursorSum(q *RecordQuery, afterID string) [8]byte {
	h := sha256.New()
	var n [8]byte
	field := func(s string) {
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	field(q.MerchantID)
	field(q.ShopID)
	kinds := make([]string, len(q.Kinds))
	for i, k := range q.Kinds {
		kinds[i] = string(k)
	}
	field(strings.Join(kinds, ","))
	field(strconv.FormatInt(q.From.UnixMicro(), 10))
	field(strconv.FormatInt(q.To.UnixMicro(), 10))
	field(afterID)
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

// StatementLine is what one shop (or the total) did on one business day: uses,
// their reversals and refunds committed that day, and the net.
type StatementLine struct {
	ShopID               string
	Uses                 int64
	UsedUnits            int64
	UsedReceiptCents     int64
	Reversals            int64
	ReversedUnits        int64
	ReversedReceiptCents int64
	Refunds              int64
	RefundedUnits        int64
	RefundedReceiptCents int64
	// NetUnits is used − reversed (a refunded use stays consumed).
	NetUnits int64
	// NetReceiptCents is used − reversed − refunded.
	NetReceiptCents int64
}

// Statement is a merchant's business day (GMT+8) per shop, in shop order, and in
// total. A reversal or refund counts on the day it was committed, even when the
// use it undid was made the day before.
type Statement struct {
	MerchantID string
	Date       string // YYYY-MM-DD
	Shops      []StatementLine
	Total      StatementLine
}

// Statement returns the statement of a merchant's day, date written YYYY-MM-DD;
// a non-empty shopID keeps that shop only. The merchant must exist (ErrNotFound),
// and the shop if one is named (ErrNoSuchShop).
func (l *Ledger) Statement(ctx context.Context, merchantID, date, shopID string) (*Statement, error) {
	if err := checkText("merchant", merchantID, true, MaxNameLen); err != nil {
		return nil, err
	}
	if err := checkText("shop_id", shopID, false, MaxShopIDLen); err != nil {
		return nil, err
	}
	day, err := ParseDay(date)
	if err != nil {
		return nil, err
	}
	var totals []DayTotal
	err = l.store.View(ctx, func(tx ReadTx) error {
		if err := checkMerchantShop(ctx, tx, merchantID, shopID); err != nil {
			return err
		}
		var err error
		totals, err = tx.DayTotals(ctx, merchantID, day, shopID)
		return err
	})
	if err != nil {
		return nil, err
	}
	st := &Statement{MerchantID: merchantID, Date: DayString(day)}
	byShop := map[string]*StatementLine{}
	for _, d := range totals {
		if d.Kind != RecordUse && d.Kind != RecordReversal && d.Kind != RecordRefund {
			continue // issues and fences move no money and no units
		}
		line := byShop[d.ShopID]
		if line == nil {
			line = &StatementLine{ShopID: d.ShopID}
			byShop[d.ShopID] = line
		}
		line.add(d)
		st.Total.add(d)
	}
	for _, line := range byShop {
		line.net()
		st.Shops = append(st.Shops, *line)
	}
	slices.SortFunc(st.Shops, func(a, b StatementLine) int { return strings.Compare(a.ShopID, b.ShopID) })
	st.Total.net()
	return st, nil
}

func (s *StatementLine) add(d DayTotal) {
	n := int64(d.Count)
	switch d.Kind {
	case RecordUse:
		s.Uses += n
		s.UsedUnits += d.Units
		s.UsedReceiptCents += d.ReceiptCents
	case RecordReversal:
		s.Reversals += n
		s.ReversedUnits += d.Units
		s.ReversedReceiptCents += d.ReceiptCents
	case RecordRefund:
		s.Refunds += n
		s.RefundedUnits += d.Units
		s.RefundedReceiptCents += d.ReceiptCents
	}
}

func (s *StatementLine) net() {
	s.NetUnits = s.UsedUnits - s.ReversedUnits
	s.NetReceiptCents = s.UsedReceiptCents - s.ReversedReceiptCents - s.RefundedReceiptCents
}

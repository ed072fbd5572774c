package daodian

import (
	"strconv"
	"time"
)

// RecordKind is the kind of change a record tells of (SPEC §8).
type RecordKind string

// The kinds of record, one per kind of change the ledger commits.
const (
	// RecordIssue is a ticket issued: units is its quantity, the amounts its
	// prices.
	RecordIssue RecordKind = "issue"
	// RecordUse is one ticket's part of a use (a group-buy use spanning several
	// tickets is one record per ticket, each with its own trans_id).
	RecordUse RecordKind = "use"
	// RecordReversal is a use reversed: trans_id, shop, units and amounts are the
	// reversed use's.
	RecordReversal RecordKind = "reversal"
	// RecordFence is an empty reversal that set (or moved forward) a fence:
	// biz_time is the fence's time; there is no trans_id and no units.
	RecordFence RecordKind = "fence"
	// RecordRefund is a use refunded after sale: trans_id, shop, units and
	// amounts are the refunded use's (its units stay consumed).
	RecordRefund RecordKind = "refund"
)

// RecordKinds are the kinds of record, in the order SPEC §8 names them.
var RecordKinds = []RecordKind{RecordIssue, RecordUse, RecordReversal, RecordFence, RecordRefund}

// Valid reports whether k is one of RecordKinds.
func (k RecordKind) Valid() bool {
	switch k {
	case RecordIssue, RecordUse, RecordReversal, RecordFence, RecordRefund:
		return true
	}
	return false
}

// Record is one change the ledger committed, written in the same transaction as
// the change: there is never a change without its record, nor a record without its
// change. Records never change once committed. A record never holds a ticket code:
// codes are bearer secrets.
type Record struct {
	// ID is the record_id: decimal digits, assigned by the store, increasing in
	// the order records become visible (on the embedded store, commit order; on
	// PostgreSQL, see that store's documentation), so that a reader paging by ID
	// never finds a record appear behind its cursor. It is empty for a record a
	// RecordSequencer has not numbered yet.
	ID string
	// At is when the ledger made the change (its clock when it decided, a
	// moment before the commit).
	At         time.Time
	Kind       RecordKind
	MerchantID string
	// ShopID is the shop of a use, and of the reversal or refund that undid it.
	ShopID   string
	TicketID string
	// TransID is the use's ticket_trans_id; for a reversal or a refund, the id
	// of the use it undid.
	TransID string
	// RequestID is the caller's idempotency key (ticket_request_id of a use or
	// refund, request_id of a reversal); empty for an issue.
	RequestID string
	// AppKey is the calling app; empty for an issue (an administrator's act).
	AppKey string
	Units  int
	// BizTime is the caller's business time: gmt_biz of a use, biz_date of a
	// reversal or fence; zero for the others.
	BizTime time.Time
	// BuyerPayCents and ReceiptCents are the amounts the change moves: what the
	// buyer paid for these units, and what the merchant receives for them.
	BuyerPayCents int64
	ReceiptCents  int64
}

// GMT8 is the time zone of the platform's times and of business days.
var GMT8 = time.FixedZone("GMT+8", 8*3600)

// Day returns the GMT+8 business day of t as the number YYYYMMDD, how stores key
// records by day.
func Day(t time.Time) int {
	y, m, d := t.In(GMT8).Date()
	return y*10000 + int(m)*100 + d
}

// ParseDay parses a business day written YYYY-MM-DD and returns it as YYYYMMDD.
func ParseDay(s string) (int, error) {
	t, err := time.ParseInLocation(time.DateOnly, s, GMT8)
	if err != nil || t.Format(time.DateOnly) != s {
		return 0, invalid("date", "must be a day written YYYY-MM-DD")
	}
	return Day(t), nil
}

// DayString renders a YYYYMMDD day as YYYY-MM-DD.
func DayString(day int) string {
	b := make([]byte, 0, 10)
	b = strconv.AppendInt(b, int64(day/10000), 10)
	for len(b) < 4 {
		b = append([]byte{'0'}, b...)
	}
	m, d := day/100%100, day%100
	b = append(b, '-', byte('0'+m/10), byte('0'+m%10), '-', byte('0'+d/10), byte('0'+d%10))
	return string(b)
}

// Limits of the record queries.
const (
	// DefaultRecordsPage is the page size of a records query that names none.
	DefaultRecordsPage = 100
	// MaxRecordsPage bounds one page of records.
	MaxRecordsPage = 10_000
	// MaxTimeline bounds the records of one ticket's timeline: an issue, and per
	// use at most a use, a reversal and a refund, for a ticket of MaxQuantity
	// units, plus its fences.
	MaxTimeline = 4*MaxQuantity + 16
)

// RecordQuery selects one merchant's records, in record_id order.
type RecordQuery struct {
	MerchantID string
	// ShopID, if not empty, keeps the records of that shop.
	ShopID string
	// Kinds, if not empty, keeps the records of those kinds.
	Kinds []RecordKind
	// From and To, if not zero, keep the records with From ≤ At < To.
	From, To time.Time
	// AfterID, if not empty, keeps the records after that record_id: the
	// position a page ended at.
	AfterID string
	// Limit is the most records returned, 1 to MaxRecordsPage.
	Limit int
}

// DayTotal is the sum of one merchant's records of one kind, one shop and one
// business day.
type DayTotal struct {
	ShopID        string
	Kind          RecordKind
	Count         int
	Units         int64
	BuyerPayCents int64
	ReceiptCents  int64
}

// DayUse is one use the ledger committed on a business day, as reconciliation
// sees it: its record, and what became of the use since (it may have been reversed
// or refunded on a later day).
type DayUse struct {
	Record   Record
	Reversed bool
	Refunded bool
}

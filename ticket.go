package daodian

import "time"

// TicketStatus is the issuance status of a ticket. Whether it is used up is not a
// status: it follows from Available.
type TicketStatus string

const (
	// TicketValid is an issued ticket that may be used while units remain.
	TicketValid TicketStatus = "VALID"
	// TicketRefunded is a ticket whose unused units were refunded to the buyer.
	TicketRefunded TicketStatus = "REFUNDED"
	// TicketCancelled is a ticket withdrawn by the merchant.
	TicketCancelled TicketStatus = "CANCELLED"
)

// Valid reports whether s is one of the known statuses.
func (s TicketStatus) Valid() bool {
	return s == TicketValid || s == TicketRefunded || s == TicketCancelled
}

// Ticket is one voucher of an order, with the order's descriptive fields copied in so
// that every operation reads one ticket's row.
type Ticket struct {
	ID         string // 19 digits
	Code       string // 12 digits, unique
	MerchantID string
	OrderNo    string
	SubOrderNo string
	ItemID     string
	OutItemID  string
	ItemName   string
	// Quantity is the number of units issued: 1 for a group-buy voucher, N for an
	// N-times card.
	Quantity int
	// Available is Quantity minus the units of the ticket's unreversed uses.
	Available int
	// Prices of this ticket, in cents.
	OriginalPriceCents int64
	TotalAmountCents   int64
	RealAmountCents    int64
	ValidFrom          time.Time
	ValidTo            time.Time
	Status             TicketStatus
	CreatedAt          time.Time
}

// NotYetValid reports whether now is before the ticket's validity window.
func (t *Ticket) NotYetValid(now time.Time) bool { return now.Before(t.ValidFrom) }

// Expired reports whether the ticket's validity window has ended at now.
func (t *Ticket) Expired(now time.Time) bool { return !now.Before(t.ValidTo) }

// InWindow reports whether now is inside the ticket's validity window.
func (t *Ticket) InWindow(now time.Time) bool { return !t.NotYetValid(now) && !t.Expired(now) }

// Use is one redemption of units of one ticket. A group-buy use spanning several
// tickets is several Use rows sharing a GroupTransID.
type Use struct {
	TransID      string // ticket_trans_id / ticket_use_trans_id, 19 digits
	GroupTransID string // the top-level ticket_trans_id of the use request
	TicketID     string
	AppKey       string
	RequestID    string // ticket_request_id of the use
	ShopID       string
	Units        int
	// BuyerPayCents and ReceiptCents are what these units are worth: the
	// buyer's payment and the merchant's receipt (a share of the ticket's
	// prices, see share). A reversal or refund of the use moves them back.
	BuyerPayCents int64
	ReceiptCents  int64
	GmtBiz        time.Time // business time claimed by the caller
	CreatedAt     time.Time // when the ledger recorded it

	// Reversal, set once and never cleared.
	Reversed          bool
	ReversedAt        time.Time
	ReversalAppKey    string
	ReversalRequestID string
	ReversalBizDate   time.Time

	// After-sale refund, set once and never cleared. A refunded use stays consumed.
	Refunded        bool
	RefundedAt      time.Time
	RefundAppKey    string
	RefundRequestID string
}

// Fence is left by a reversal that found nothing to reverse. A later use of the ticket
// by the same app whose business time is at or before At is refused (anti-hanging).
type Fence struct {
	TicketID  string
	AppKey    string
	At        time.Time
	RequestID string
	CreatedAt time.Time
}

// Package daodian is the domain of the in-store voucher service: merchants, shops,
// orders, tickets, uses (redemptions), reversals, fences and idempotency records,
// and the rules of SPEC §4 that every store applies in the same way.
//
// The package has no dependencies beyond the standard library. Stores (sqlite/,
// postgres/) implement Store; the gateway (gateway/) calls Ledger.
package daodian

import (
	"time"
)

// Limits. Every collection the ledger handles has a bound, so that one request can
// never make the server do unbounded work.
const (
	// MaxQuantity bounds the units of one ticket (an N-times card).
	MaxQuantity = 10_000
	// MaxUseQuantity bounds the units of one use (SPEC §4.3), which may span the
	// tickets of a group-buy sub-order.
	MaxUseQuantity = 10_000
	// MaxTicketsPerOrder bounds the tickets of one sub-order, which a group-buy use
	// may span.
	MaxTicketsPerOrder = 100
	// MaxRequestIDLen bounds caller-chosen idempotency keys.
	MaxRequestIDLen = 64
	// MaxShopIDLen bounds shop identifiers.
	MaxShopIDLen = 64
	// MaxNameLen bounds free-text names (shop, item, app, merchant).
	MaxNameLen = 256
)

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

// App is a calling application (ISV).
type App struct {
	Key string
	// Secret is the current signing secret, in plain text in memory only: stores
	// keep it sealed (SPEC §5.4).
	Secret string
	// PreviousSecret is the secret the last rotation replaced. It still signs valid
	// requests until PreviousSecretUntil, so that running POS terminals can be
	// updated; empty when there is none.
	PreviousSecret      string
	PreviousSecretUntil time.Time
	Name                string
	// Merchants are the merchant ids whose tickets this app may see and change.
	Merchants []string
	Enabled   bool
	// Methods are the API methods the app is granted; empty means all.
	Methods []string
	// RateLimitPerS is the number of calls per second the app may make; 0 means
	// unlimited.
	RateLimitPerS int
	CreatedAt     time.Time
}

// CanSee reports whether the app is bound to the merchant.
func (a *App) CanSee(merchantID string) bool {
	for _, m := range a.Merchants {
		if m == merchantID {
			return true
		}
	}
	return false
}

// PreviousSecretValid reports whether PreviousSecret still signs valid requests at
// now.
func (a *App) PreviousSecretValid(now time.Time) bool {
	return a.PreviousSecret != "" && now.Before(a.PreviousSecretUntil)
}

// Allows reports whether the app is granted the method.
func (a *App) Allows(method string) bool {
	if len(a.Methods) == 0 {
		return true
	}
	for _, m := range a.Methods {
		if m == method {
			return true
		}
	}
	return false
}

// Merchant is a business that sells vouchers.
type Merchant struct {
	ID   string
	Name string
}

// Shop is a store of a merchant where tickets are redeemed.
type Shop struct {
	MerchantID string
	ID         string
	Name       string
}

// Order is one purchase: a main order with one sub-order holding the tickets.
type Order struct {
	OrderNo    string // alsc_order_no
	SubOrderNo string // alsc_sub_order_no
	MerchantID string
	BuyerID    string
	// UserPhone is stored masked (e.g. *******4139); the full number never enters the
	// ledger.
	UserPhone string
	ItemID    string
	OutItemID string
	ItemName  string
	// Prices of one ticket, in cents.
	OriginalPriceCents int64
	TotalAmountCents   int64
	RealAmountCents    int64
	CreatedAt          time.Time
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
	GmtBiz       time.Time // business time claimed by the caller
	CreatedAt    time.Time // when the ledger recorded it

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

// Operation names the kind of an idempotent request; each has its own key space.
type Operation string

const (
	// OpUse is alibaba.alsc.merchant.ext.ticketcode.use.
	OpUse Operation = "use"
	// OpReverse is alibaba.alsc.daodian.ticket.reserve.
	OpReverse Operation = "reverse"
	// OpRefund is alibaba.alsc.merchant.ext.ticket.refund.
	OpRefund Operation = "refund"
)

// IdemKey identifies an idempotent request.
type IdemKey struct {
	AppKey    string
	Op        Operation
	RequestID string
}

// IdemRecord is the recorded final answer to an idempotent request. It never changes
// once written.
type IdemRecord struct {
	IdemKey
	// Fingerprint is the canonical form of the request's content; the same key with a
	// different fingerprint is a conflict.
	Fingerprint string
	TicketID    string
	// Answer is the encoded answer (see the Encode/Decode functions of each answer
	// type).
	Answer    []byte
	CreatedAt time.Time
}

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

package daodian

import (
	"time"
)

// ReverseRequest is the decoded `ticket_reverse_top_request` of SPEC §4.4.
type ReverseRequest struct {
	RequestID string
	TicketID  string
	TransID   string // ticket_use_trans_id; empty: reverse the latest use
	// BizDate is the business time of the reversal; zero means the time the call is
	// received.
	BizDate time.Time
}

// ReverseResult is the `result` of a reversal.
type ReverseResult struct {
	Success   bool   `json:"success"`
	ErrorCode string `json:"error_code,omitempty"`
	ErrorMsg  string `json:"error_msg,omitempty"`
	Retry     bool   `json:"retry,omitempty"`
}

// ConsultRequest is the decoded `consult_request` of SPEC §4.2.
type ConsultRequest struct {
	RequestID  string
	ShopID     string
	TicketCode string
}

// ConsultResult is the `result` of a consult.
type ConsultResult struct {
	Success   bool
	ErrorCode string
	ErrorMsg  string
	Retry     bool
	Value     *ConsultValue // nil unless Success
}

// ConsultValue describes the usable tickets of the queried ticket's sub-order.
type ConsultValue struct {
	Tickets           []ConsultTicket
	AvailableQuantity int
	UserPhone         string
	BuyerID           string
	OrderNo           string
	SubOrderNo        string
	ItemID            string
	OutItemID         string
}

// ConsultTicket is one entry of `ticket_info_list`.
type ConsultTicket struct {
	TicketID           string
	TicketName         string
	TicketCode         string // only on the queried ticket
	TotalAmountCents   int64
	RealAmountCents    int64
	OriginalPriceCents int64
	Quantity           int
}

// UseRequest is the decoded `use_request` of SPEC §4.3.
type UseRequest struct {
	TicketCode string
	TicketID   string
	ShopID     string
	ShopType   string
	// Quantity is the units to use, 1 to MaxUseQuantity; 0 means absent (1).
	Quantity  int
	RequestID string
	// GmtBiz is the business time of the use; zero means now.
	GmtBiz time.Time
}

// Shop types accepted by the use method; both name a shop registered for the
// ticket's merchant.
const (
	ShopTypeInternal = "INTERNAL_SHOP"
	ShopTypeExternal = "EXTERNAL_SHOP"
)

// Business codes of a use or refund answer.
const (
	BizSuccess           = "SUCCESS"
	BizTicketAlreadyUsed = "TICKET_ALREADY_USED"
)

// UseResult is the answer to a use. Money is in cents; the method renders yuan.
type UseResult struct {
	TransID            string      `json:"trans_id"`
	RequestID          string      `json:"request_id"`
	TicketCode         string      `json:"ticket_code"`
	TicketID           string      `json:"ticket_id"`
	UseDate            time.Time   `json:"use_date"`
	ShopID             string      `json:"shop_id"`
	ShopName           string      `json:"shop_name"`
	ItemID             string      `json:"item_id"`
	ItemName           string      `json:"item_name"`
	OrderNo            string      `json:"order_no"`
	OriginalPriceCents int64       `json:"original_price_cents"`
	CurrentPriceCents  int64       `json:"current_price_cents"`
	BuyerPayCents      int64       `json:"buyer_pay_cents"`
	ReceiptCents       int64       `json:"receipt_cents"`
	BizCode            string      `json:"biz_code"`
	Details            []UseDetail `json:"details"`
}

// UseDetail is one ticket consumed by a use.
type UseDetail struct {
	TransID       string `json:"trans_id"`
	TicketID      string `json:"ticket_id"`
	TicketCode    string `json:"ticket_code"`
	Units         int    `json:"units"`
	BuyerPayCents int64  `json:"buyer_pay_cents"`
	ReceiptCents  int64  `json:"receipt_cents"`
}

// RefundRequest is the input of the after-sale refund of SPEC §4.5.
type RefundRequest struct {
	TransID    string
	TicketCode string
	RequestID  string
}

// RefundResult is the answer to a refund.
type RefundResult struct {
	RequestID string `json:"request_id"`
	BizCode   string `json:"biz_code"`
}

// share returns the part of a ticket's amount that units of its quantity are worth.
// Integer cents, rounded down; the remainder stays with the last unit so that using
// all units one by one adds up to the whole amount.
func share(amountCents int64, units, quantity int, remainingAfter int) int64 {
	if quantity <= 0 {
		return 0
	}
	per := amountCents / int64(quantity)
	v := per * int64(units)
	if remainingAfter == 0 {
		v += amountCents - per*int64(quantity)
	}
	return v
}

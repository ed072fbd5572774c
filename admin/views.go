// Package admin is the administration surface of SPEC §8–§10 over HTTP: the admin
// API under /admin/v1/ and, with it, the JSON and CSV shapes of the ledger's
// history that the CLI prints as well, so that `daodian records --json` and
// GET /admin/v1/records answer in one shape.
package admin

import (
	"strconv"
	"strings"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/top"
)

// Record is a record as SPEC §8 names its fields. Times are yyyy-MM-dd HH:mm:ss
// in GMT+8; gmt_biz is set on uses, biz_date on reversals and fences.
type Record struct {
	RecordID      string `json:"record_id"`
	At            string `json:"at"`
	Kind          string `json:"kind"`
	MerchantID    string `json:"merchant_id"`
	ShopID        string `json:"shop_id,omitempty"`
	TicketID      string `json:"ticket_id"`
	TransID       string `json:"trans_id,omitempty"`
	RequestID     string `json:"request_id,omitempty"`
	AppKey        string `json:"app_key,omitempty"`
	Units         int    `json:"units"`
	GmtBiz        string `json:"gmt_biz,omitempty"`
	BizDate       string `json:"biz_date,omitempty"`
	BuyerPayCents int64  `json:"buyer_pay_cents"`
	ReceiptCents  int64  `json:"receipt_cents"`
}

// RecordOf renders a record.
func RecordOf(r *daodian.Record) Record {
	out := Record{
		RecordID: r.ID, At: top.FormatTime(r.At), Kind: string(r.Kind), MerchantID: r.MerchantID, ShopID: r.ShopID,
		TicketID: r.TicketID, TransID: r.TransID, RequestID: r.RequestID, AppKey: r.AppKey, Units: r.Units,
		BuyerPayCents: r.BuyerPayCents, ReceiptCents: r.ReceiptCents,
	}
	if !r.BizTime.IsZero() {
		if r.Kind == daodian.RecordUse {
			out.GmtBiz = top.FormatTime(r.BizTime)
		} else {
			out.BizDate = top.FormatTime(r.BizTime)
		}
	}
	return out
}

// RecordsOf renders records; never nil, so that JSON shows [] for none.
func RecordsOf(rs []daodian.Record) []Record {
	out := make([]Record, len(rs))
	for i := range rs {
		out[i] = RecordOf(&rs[i])
	}
	return out
}

// RecordCSVHeader is the header line of records as CSV: the fields of SPEC §8.
var RecordCSVHeader = []string{"record_id", "at", "kind", "merchant_id", "shop_id", "ticket_id", "trans_id",
	"request_id", "app_key", "units", "gmt_biz", "biz_date", "buyer_pay_cents", "receipt_cents"}

// CSV returns the record's fields in the order of RecordCSVHeader.
func (r Record) CSV() []string {
	return []string{r.RecordID, r.At, r.Kind, cell(r.MerchantID), cell(r.ShopID), r.TicketID, r.TransID, cell(r.RequestID), r.AppKey,
		strconv.Itoa(r.Units), r.GmtBiz, r.BizDate, strconv.FormatInt(r.BuyerPayCents, 10), strconv.FormatInt(r.ReceiptCents, 10)}
}

// cell makes a text field chosen by a caller or an administrator (a request id, a
// shop or merchant id) safe to open in a spreadsheet: one that starts with =, +,
// -, @, a tab or a carriage return would be read as a formula (CSV injection), so
// it gets a leading apostrophe, which spreadsheets show as text and do not
// display. Ids the ledger makes are digits and never need it.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// RecordPage is a page of records: `{"records": […], "next_cursor": "…"}`,
// next_cursor empty on the last page.
type RecordPage struct {
	Records    []Record `json:"records"`
	NextCursor string   `json:"next_cursor"`
}

// RecordPageOf renders a page.
func RecordPageOf(p *daodian.RecordPage) RecordPage {
	return RecordPage{Records: RecordsOf(p.Records), NextCursor: p.NextCursor}
}

// Ticket is a ticket as `ticket show` and GET /admin/v1/tickets/{id} show it.
// The code is shown only to a caller that asked by code: codes are bearer secrets.
type Ticket struct {
	TicketID           string `json:"ticket_id"`
	TicketCode         string `json:"ticket_code,omitempty"`
	MerchantID         string `json:"merchant_id"`
	AlscOrderNo        string `json:"alsc_order_no"`
	AlscSubOrderNo     string `json:"alsc_sub_order_no"`
	ItemID             string `json:"item_id"`
	OutItemID          string `json:"out_item_id,omitempty"`
	ItemName           string `json:"item_name"`
	Quantity           int    `json:"quantity"`
	Available          int    `json:"available"`
	Status             string `json:"status"`
	ValidFrom          string `json:"valid_from"`
	ValidTo            string `json:"valid_to"`
	OriginalPriceCents int64  `json:"original_price_cents"`
	TotalAmountCents   int64  `json:"total_amount_cents"`
	RealAmountCents    int64  `json:"real_amount_cents"`
	CreatedAt          string `json:"created_at"`
}

// TicketHistory is `{"ticket": {…}, "timeline": [record, …]}`.
type TicketHistory struct {
	Ticket   Ticket   `json:"ticket"`
	Timeline []Record `json:"timeline"`
}

// TicketHistoryOf renders a ticket and its timeline; withCode shows its code.
func TicketHistoryOf(h *daodian.TicketHistory, withCode bool) TicketHistory {
	t := &h.Ticket
	out := TicketHistory{Ticket: Ticket{
		TicketID: t.ID, MerchantID: t.MerchantID, AlscOrderNo: t.OrderNo, AlscSubOrderNo: t.SubOrderNo,
		ItemID: t.ItemID, OutItemID: t.OutItemID, ItemName: t.ItemName, Quantity: t.Quantity, Available: t.Available,
		Status: string(t.Status), ValidFrom: top.FormatTime(t.ValidFrom), ValidTo: top.FormatTime(t.ValidTo),
		OriginalPriceCents: t.OriginalPriceCents, TotalAmountCents: t.TotalAmountCents, RealAmountCents: t.RealAmountCents,
		CreatedAt: top.FormatTime(t.CreatedAt),
	}, Timeline: RecordsOf(h.Timeline)}
	if withCode {
		out.Ticket.TicketCode = t.Code
	}
	return out
}

// StatementLine is one shop's (or the total's) line of a statement.
type StatementLine struct {
	ShopID               string `json:"shop_id,omitempty"`
	Uses                 int64  `json:"uses"`
	UsedUnits            int64  `json:"used_units"`
	UsedReceiptCents     int64  `json:"used_receipt_cents"`
	Reversals            int64  `json:"reversals"`
	ReversedUnits        int64  `json:"reversed_units"`
	ReversedReceiptCents int64  `json:"reversed_receipt_cents"`
	Refunds              int64  `json:"refunds"`
	RefundedUnits        int64  `json:"refunded_units"`
	RefundedReceiptCents int64  `json:"refunded_receipt_cents"`
	NetUnits             int64  `json:"net_units"`
	NetReceiptCents      int64  `json:"net_receipt_cents"`
}

// Statement is `{"merchant_id", "date", "shops": [{"shop_id", …}], "total": {…}}`.
type Statement struct {
	MerchantID string          `json:"merchant_id"`
	Date       string          `json:"date"`
	Shops      []StatementLine `json:"shops"`
	Total      StatementLine   `json:"total"`
}

func statementLineOf(l *daodian.StatementLine) StatementLine {
	return StatementLine{
		ShopID: l.ShopID, Uses: l.Uses, UsedUnits: l.UsedUnits, UsedReceiptCents: l.UsedReceiptCents,
		Reversals: l.Reversals, ReversedUnits: l.ReversedUnits, ReversedReceiptCents: l.ReversedReceiptCents,
		Refunds: l.Refunds, RefundedUnits: l.RefundedUnits, RefundedReceiptCents: l.RefundedReceiptCents,
		NetUnits: l.NetUnits, NetReceiptCents: l.NetReceiptCents,
	}
}

// StatementOf renders a statement.
func StatementOf(s *daodian.Statement) Statement {
	out := Statement{MerchantID: s.MerchantID, Date: s.Date, Shops: make([]StatementLine, len(s.Shops)), Total: statementLineOf(&s.Total)}
	for i := range s.Shops {
		out.Shops[i] = statementLineOf(&s.Shops[i])
	}
	return out
}

// StatementCSVHeader is the header line of a statement as CSV: one line per
// shop, then the total with shop_id "total".
var StatementCSVHeader = []string{"shop_id", "uses", "used_units", "used_receipt_cents", "reversals", "reversed_units",
	"reversed_receipt_cents", "refunds", "refunded_units", "refunded_receipt_cents", "net_units", "net_receipt_cents"}

// CSV returns the line's fields in the order of StatementCSVHeader.
func (l StatementLine) CSV() []string {
	f := func(v int64) string { return strconv.FormatInt(v, 10) }
	return []string{cell(l.ShopID), f(l.Uses), f(l.UsedUnits), f(l.UsedReceiptCents), f(l.Reversals), f(l.ReversedUnits),
		f(l.ReversedReceiptCents), f(l.Refunds), f(l.RefundedUnits), f(l.RefundedReceiptCents), f(l.NetUnits), f(l.NetReceiptCents)}
}

// Difference is one difference of a reconciliation.
type Difference struct {
	Kind         string `json:"kind"`
	RequestID    string `json:"ticket_request_id"`
	TransID      string `json:"trans_id,omitempty"`
	POSStatus    string `json:"pos_status,omitempty"`
	LedgerStatus string `json:"ledger_status,omitempty"`
	POSUnits     int    `json:"pos_units,omitempty"`
	LedgerUnits  int    `json:"ledger_units,omitempty"`
	POSLine      int    `json:"pos_line,omitempty"`
}

// Reconciliation is `{"matched": N, "differences": [{"kind", "ticket_request_id",
// "trans_id", "pos_status", "ledger_status"}, …]}`, with the day it is of.
type Reconciliation struct {
	MerchantID  string       `json:"merchant_id"`
	Date        string       `json:"date"`
	Matched     int          `json:"matched"`
	Differences []Difference `json:"differences"`
	// Truncated is set when an answer of the admin API lists only the first of
	// the differences (admin.Config.MaxDifferences); DifferencesTotal then
	// says how many there were.
	Truncated        bool `json:"truncated,omitempty"`
	DifferencesTotal int  `json:"differences_total,omitempty"`
}

// ReconciliationOf renders a reconciliation.
func ReconciliationOf(r *daodian.Reconciliation) Reconciliation {
	out := Reconciliation{MerchantID: r.MerchantID, Date: r.Date, Matched: r.Matched, Differences: make([]Difference, len(r.Differences))}
	for i, d := range r.Differences {
		out.Differences[i] = Difference{Kind: d.Kind, RequestID: d.RequestID, TransID: d.TransID, POSStatus: d.POSStatus,
			LedgerStatus: d.LedgerStatus, POSUnits: d.POSUnits, LedgerUnits: d.LedgerUnits, POSLine: d.POSLine}
	}
	return out
}

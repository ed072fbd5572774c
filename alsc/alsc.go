// Package alsc defines the methods of the voucher service: their names, business
// parameters, and the request and response types that the gateway encodes and the
// SDK sends and decodes. The field names and nesting follow the platform's published
// pages, so the official SDKs decode what the gateway writes.
package alsc

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/daodian/daodian/top"
)

// Method names.
const (
	MethodTimeGet = "taobao.time.get"
	MethodConsult = "alibaba.alsc.daodian.ticket.consult"
	MethodUse     = "alibaba.alsc.merchant.ext.ticketcode.use"
	MethodReserve = "alibaba.alsc.daodian.ticket.reserve"
	MethodRefund  = "alibaba.alsc.merchant.ext.ticket.refund"
)

// Business parameter names, as the methods' published pages spell them.
const (
	ParamConsultRequest = "consult_request"
	ParamUseRequest     = "use_request"
	ParamReverseRequest = "ticket_reverse_top_request"
	// The refund's plain parameters.
	ParamTransID         = "trans_id"
	ParamTicketCode      = "ticket_code"
	ParamTicketRequestID = "ticket_request_id"
)

// Param describes one business parameter of a method.
type Param struct {
	Name     string
	Required bool
	// Object marks a parameter that carries a JSON object (SPEC §4).
	Object bool
}

// Spec describes a method's business parameters.
type Spec struct {
	Name   string
	Params []Param
}

// Specs are the methods this service implements.
var Specs = []Spec{
	{Name: MethodTimeGet},
	{Name: MethodConsult, Params: []Param{{Name: ParamConsultRequest, Required: true, Object: true}}},
	{Name: MethodUse, Params: []Param{{Name: ParamUseRequest, Required: true, Object: true}}},
	// The published page marks ticket_reverse_top_request optional; a request
	// without it fails on its required request_id instead (code 50).
	{Name: MethodReserve, Params: []Param{{Name: ParamReverseRequest, Object: true}}},
	{Name: MethodRefund, Params: []Param{
		{Name: ParamTransID, Required: true},
		{Name: ParamTicketCode, Required: true},
		{Name: ParamTicketRequestID, Required: true},
	}},
}

// Request is a call the SDK can send: its method and its business parameters,
// already encoded as form values.
type Request interface {
	APIMethod() string
	APIParams() (map[string]string, error)
}

func objectParam(name string, v any) (map[string]string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return map[string]string{name: string(b)}, nil
}

// TimeGetRequest is taobao.time.get.
type TimeGetRequest struct{}

// APIMethod implements Request.
func (TimeGetRequest) APIMethod() string { return MethodTimeGet }

// APIParams implements Request.
func (TimeGetRequest) APIParams() (map[string]string, error) { return map[string]string{}, nil }

// TimeGetResponse is the answer to taobao.time.get.
type TimeGetResponse struct {
	Time      string `json:"time" xml:"time"`
	RequestID string `json:"request_id" xml:"request_id"`
}

// EncodeTOP implements top.Body.
func (r *TimeGetResponse) EncodeTOP(e *top.Encoder) { e.String("time", r.Time) }

// TicketReverseTopRequest is the business object of the reversal.
type TicketReverseTopRequest struct {
	TicketUseTransID string `json:"ticket_use_trans_id,omitempty"`
	BizDate          string `json:"biz_date,omitempty"`
	RequestID        string `json:"request_id"`
	TicketID         string `json:"ticket_id"`
}

// ReserveRequest is alibaba.alsc.daodian.ticket.reserve.
type ReserveRequest struct {
	TicketReverseTopRequest *TicketReverseTopRequest
}

// APIMethod implements Request.
func (*ReserveRequest) APIMethod() string { return MethodReserve }

// APIParams implements Request.
func (r *ReserveRequest) APIParams() (map[string]string, error) {
	if r.TicketReverseTopRequest == nil {
		return map[string]string{}, nil
	}
	return objectParam(ParamReverseRequest, r.TicketReverseTopRequest)
}

// ReserveResult is the `result` of a reversal.
type ReserveResult struct {
	Success   bool   `json:"success" xml:"success"`
	ErrorCode string `json:"error_code,omitempty" xml:"error_code,omitempty"`
	Retry     bool   `json:"retry" xml:"retry"`
	ErrorMsg  string `json:"error_msg,omitempty" xml:"error_msg,omitempty"`
}

// ReserveResponse is the answer to a reversal.
type ReserveResponse struct {
	Result    ReserveResult `json:"result" xml:"result"`
	RequestID string        `json:"request_id" xml:"request_id"`
}

// EncodeTOP implements top.Body.
func (r *ReserveResponse) EncodeTOP(e *top.Encoder) {
	e.Object("result", func(e *top.Encoder) {
		e.Bool("success", r.Result.Success)
		if !r.Result.Success {
			e.String("error_code", r.Result.ErrorCode)
			e.Bool("retry", r.Result.Retry)
			e.String("error_msg", r.Result.ErrorMsg)
		}
	})
}

// ConsultTopRequest is the business object of the consult.
type ConsultTopRequest struct {
	RequestID  string `json:"request_id"`
	ShopID     string `json:"shop_id"`
	TicketCode string `json:"ticket_code"`
}

// ConsultRequest is alibaba.alsc.daodian.ticket.consult.
type ConsultRequest struct {
	ConsultRequest *ConsultTopRequest
}

// APIMethod implements Request.
func (*ConsultRequest) APIMethod() string { return MethodConsult }

// APIParams implements Request.
func (r *ConsultRequest) APIParams() (map[string]string, error) {
	if r.ConsultRequest == nil {
		return map[string]string{}, nil
	}
	return objectParam(ParamConsultRequest, r.ConsultRequest)
}

// TicketInfo is one usable ticket in a consult answer. Money is in cents.
type TicketInfo struct {
	TicketID      string `json:"ticket_id" xml:"ticket_id"`
	TicketName    string `json:"ticket_name" xml:"ticket_name"`
	TicketCode    string `json:"ticket_code,omitempty" xml:"ticket_code,omitempty"`
	TotalAmount   int64  `json:"total_amount" xml:"total_amount"`
	RealAmount    int64  `json:"real_amount" xml:"real_amount"`
	OriginalPrice int64  `json:"original_price" xml:"original_price"`
	Quantity      int64  `json:"quantity" xml:"quantity"`
}

// TicketInfoList decodes both JSON list shapes of SPEC §3.4: a plain array
// (simplify=true) and an object with one member holding the array.
type TicketInfoList []TicketInfo

// UnmarshalJSON implements json.Unmarshaler.
func (l *TicketInfoList) UnmarshalJSON(b []byte) error {
	return unmarshalList(b, (*[]TicketInfo)(l), "ticket_info")
}

// TicketConsultValue is the `value` of a consult answer.
type TicketConsultValue struct {
	TicketInfoList    TicketInfoList `json:"ticket_info_list" xml:"ticket_info_list>ticket_info"`
	AvailableQuantity int64          `json:"available_quantity" xml:"available_quantity"`
	UserPhone         string         `json:"user_phone,omitempty" xml:"user_phone,omitempty"`
	BuyerID           string         `json:"buyer_id,omitempty" xml:"buyer_id,omitempty"`
	AlscOrderNo       string         `json:"alsc_order_no" xml:"alsc_order_no"`
	AlscSubOrderNo    string         `json:"alsc_sub_order_no" xml:"alsc_sub_order_no"`
	ItemID            string         `json:"item_id" xml:"item_id"`
	OutItemID         string         `json:"out_item_id,omitempty" xml:"out_item_id,omitempty"`
}

// ConsultResult is the `result` of a consult.
type ConsultResult struct {
	Success   bool                `json:"success" xml:"success"`
	ErrorCode string              `json:"error_code,omitempty" xml:"error_code,omitempty"`
	ErrorMsg  string              `json:"error_msg,omitempty" xml:"error_msg,omitempty"`
	Retry     bool                `json:"retry" xml:"retry"`
	Value     *TicketConsultValue `json:"value,omitempty" xml:"value,omitempty"`
}

// ConsultResponse is the answer to a consult.
type ConsultResponse struct {
	Result    ConsultResult `json:"result" xml:"result"`
	RequestID string        `json:"request_id" xml:"request_id"`
}

// EncodeTOP implements top.Body.
func (r *ConsultResponse) EncodeTOP(e *top.Encoder) {
	e.Object("result", func(e *top.Encoder) {
		e.Bool("success", r.Result.Success)
		if !r.Result.Success {
			e.String("error_code", r.Result.ErrorCode)
			e.String("error_msg", r.Result.ErrorMsg)
			e.Bool("retry", r.Result.Retry)
			return
		}
		v := r.Result.Value
		if v == nil {
			return
		}
		e.Object("value", func(e *top.Encoder) {
			e.List("ticket_info_list", "ticket_info", len(v.TicketInfoList), func(i int, e *top.Encoder) {
				t := &v.TicketInfoList[i]
				e.String("ticket_id", t.TicketID)
				e.String("ticket_name", t.TicketName)
				if t.TicketCode != "" {
					e.String("ticket_code", t.TicketCode)
				}
				e.Int("total_amount", t.TotalAmount)
				e.Int("real_amount", t.RealAmount)
				e.Int("original_price", t.OriginalPrice)
				e.Int("quantity", t.Quantity)
			})
			e.Int("available_quantity", v.AvailableQuantity)
			if v.UserPhone != "" {
				e.String("user_phone", v.UserPhone)
			}
			e.String("buyer_id", v.BuyerID)
			e.String("alsc_order_no", v.AlscOrderNo)
			e.String("alsc_sub_order_no", v.AlscSubOrderNo)
			e.String("item_id", v.ItemID)
			if v.OutItemID != "" {
				e.String("out_item_id", v.OutItemID)
			}
		})
	})
}

// Quantity is the `quantity` of a use request; 0 when absent. The official SDKs
// send it as a string ("2"), JSON clients as a number: either is accepted when it
// spells a whole number from 1 in plain decimal digits — no sign, fraction,
// exponent or leading zero, and at most 9 digits, so that it fits an int on every
// platform (the ledger bounds it further). JSON null is absent, since JSON
// serializers write null for a field left unset. Anything else — 0, -0, 1.5, 1e2,
// "", "null", "01", true — is ErrQuantity: a count given wrong is refused, never
// taken for the default.
type Quantity int

// ErrQuantity is the error of a `quantity` that is given but is not a whole number
// from 1 in decimal digits.
var ErrQuantity = errors.New("must be a whole number from 1, in decimal digits")

// maxQuantityDigits keeps a decoded quantity within an int on every platform.
const maxQuantityDigits = 9

// UnmarshalJSON implements json.Unmarshaler.
func (q *Quantity) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return ErrQuantity
		}
	}
	if len(s) == 0 || len(s) > maxQuantityDigits || s[0] == '0' {
		return ErrQuantity
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return ErrQuantity
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return ErrQuantity
	}
	*q = Quantity(n)
	return nil
}

// UseTopRequest is the business object of the use method.
type UseTopRequest struct {
	TicketCode      string   `json:"ticket_code,omitempty"`
	TicketID        string   `json:"ticket_id,omitempty"`
	ShopID          string   `json:"shop_id"`
	ShopType        string   `json:"shop_type,omitempty"`
	Quantity        Quantity `json:"quantity,omitempty"`
	TicketRequestID string   `json:"ticket_request_id"`
	GmtBiz          string   `json:"gmt_biz,omitempty"`
}

// UseRequest is alibaba.alsc.merchant.ext.ticketcode.use.
type UseRequest struct {
	UseRequest *UseTopRequest
}

// APIMethod implements Request.
func (*UseRequest) APIMethod() string { return MethodUse }

// APIParams implements Request.
func (r *UseRequest) APIParams() (map[string]string, error) {
	if r.UseRequest == nil {
		return map[string]string{}, nil
	}
	return objectParam(ParamUseRequest, r.UseRequest)
}

// MerchantTicketUseDetail is one ticket consumed by a use. Amounts are yuan with two
// decimals, as on the published page.
type MerchantTicketUseDetail struct {
	TicketTransID         string `json:"ticket_trans_id" xml:"ticket_trans_id"`
	TicketCode            string `json:"ticket_code" xml:"ticket_code"`
	TicketID              string `json:"ticket_id" xml:"ticket_id"`
	Quantity              int64  `json:"quantity" xml:"quantity"`
	BuyerPayAmount        string `json:"buyer_pay_amount" xml:"buyer_pay_amount"`
	ReceiptAmount         string `json:"receipt_amount" xml:"receipt_amount"`
	DiscountAmount        string `json:"discount_amount" xml:"discount_amount"`
	MerchantSubsidyAmount string `json:"merchant_subsidy_amount" xml:"merchant_subsidy_amount"`
	InvoiceAmount         string `json:"invoice_amount" xml:"invoice_amount"`
}

// UseDetailList decodes both JSON list shapes (see TicketInfoList).
type UseDetailList []MerchantTicketUseDetail

// UnmarshalJSON implements json.Unmarshaler.
func (l *UseDetailList) UnmarshalJSON(b []byte) error {
	return unmarshalList(b, (*[]MerchantTicketUseDetail)(l), "merchant_ticket_use_detail")
}

// UseResponse is the answer to a use.
type UseResponse struct {
	TicketTransID         string        `json:"ticket_trans_id" xml:"ticket_trans_id"`
	TicketRequestID       string        `json:"ticket_request_id" xml:"ticket_request_id"`
	TicketCode            string        `json:"ticket_code" xml:"ticket_code"`
	UseDate               string        `json:"use_date" xml:"use_date"`
	UseShopID             string        `json:"use_shop_id" xml:"use_shop_id"`
	UseShopName           string        `json:"use_shop_name" xml:"use_shop_name"`
	ItemID                string        `json:"item_id" xml:"item_id"`
	ItemName              string        `json:"item_name" xml:"item_name"`
	OrderNo               string        `json:"order_no" xml:"order_no"`
	OriginalPrice         string        `json:"original_price" xml:"original_price"`
	CurrentPrice          string        `json:"current_price" xml:"current_price"`
	BuyerPayAmount        string        `json:"buyer_pay_amount" xml:"buyer_pay_amount"`
	ReceiptAmount         string        `json:"receipt_amount" xml:"receipt_amount"`
	DiscountAmount        string        `json:"discount_amount" xml:"discount_amount"`
	MerchantSubsidyAmount string        `json:"merchant_subsidy_amount" xml:"merchant_subsidy_amount"`
	InvoiceAmount         string        `json:"invoice_amount" xml:"invoice_amount"`
	BizCode               string        `json:"biz_code" xml:"biz_code"`
	TicketUseDetails      UseDetailList `json:"ticket_use_details" xml:"ticket_use_details>merchant_ticket_use_detail"`
	RequestID             string        `json:"request_id" xml:"request_id"`
}

// EncodeTOP implements top.Body.
func (r *UseResponse) EncodeTOP(e *top.Encoder) {
	e.String("ticket_trans_id", r.TicketTransID)
	e.String("ticket_request_id", r.TicketRequestID)
	e.String("ticket_code", r.TicketCode)
	e.String("use_date", r.UseDate)
	e.String("use_shop_id", r.UseShopID)
	e.String("use_shop_name", r.UseShopName)
	e.String("item_id", r.ItemID)
	e.String("item_name", r.ItemName)
	e.String("order_no", r.OrderNo)
	e.String("original_price", r.OriginalPrice)
	e.String("current_price", r.CurrentPrice)
	e.String("buyer_pay_amount", r.BuyerPayAmount)
	e.String("receipt_amount", r.ReceiptAmount)
	e.String("discount_amount", r.DiscountAmount)
	e.String("merchant_subsidy_amount", r.MerchantSubsidyAmount)
	e.String("invoice_amount", r.InvoiceAmount)
	e.String("biz_code", r.BizCode)
	e.List("ticket_use_details", "merchant_ticket_use_detail", len(r.TicketUseDetails), func(i int, e *top.Encoder) {
		d := &r.TicketUseDetails[i]
		e.String("ticket_trans_id", d.TicketTransID)
		e.String("ticket_code", d.TicketCode)
		e.String("ticket_id", d.TicketID)
		e.Int("quantity", d.Quantity)
		e.String("buyer_pay_amount", d.BuyerPayAmount)
		e.String("receipt_amount", d.ReceiptAmount)
		e.String("discount_amount", d.DiscountAmount)
		e.String("merchant_subsidy_amount", d.MerchantSubsidyAmount)
		e.String("invoice_amount", d.InvoiceAmount)
	})
}

// RefundRequest is alibaba.alsc.merchant.ext.ticket.refund.
type RefundRequest struct {
	TransID         string
	TicketCode      string
	TicketRequestID string
}

// APIMethod implements Request.
func (*RefundRequest) APIMethod() string { return MethodRefund }

// APIParams implements Request.
func (r *RefundRequest) APIParams() (map[string]string, error) {
	return map[string]string{ParamTransID: r.TransID, ParamTicketCode: r.TicketCode, ParamTicketRequestID: r.TicketRequestID}, nil
}

// RefundResponse is the answer to a refund.
type RefundResponse struct {
	TicketRequestID string `json:"ticket_request_id" xml:"ticket_request_id"`
	BizCode         string `json:"biz_code" xml:"biz_code"`
	RequestID       string `json:"request_id" xml:"request_id"`
}

// EncodeTOP implements top.Body.
func (r *RefundResponse) EncodeTOP(e *top.Encoder) {
	e.String("ticket_request_id", r.TicketRequestID)
	e.String("biz_code", r.BizCode)
}

// Yuan renders cents as yuan with two decimals ("12.30"), the unit of the use
// method's published page.
func Yuan(cents int64) string {
	// The magnitude as uint64: -cents overflows for math.MinInt64.
	mag := uint64(cents)
	b := make([]byte, 0, 24)
	if cents < 0 {
		mag = -mag
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, mag/100, 10)
	b = append(b, '.')
	c := mag % 100
	b = append(b, byte('0'+c/10), byte('0'+c%10))
	return string(b)
}

func unmarshalList[T any](b []byte, dst *[]T, elem string) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var wrap map[string][]T
		if err := json.Unmarshal(b, &wrap); err != nil {
			return err
		}
		*dst = wrap[elem]
		return nil
	}
	return json.Unmarshal(b, dst)
}

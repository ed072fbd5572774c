package gateway

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/top"
)

// Method is a registered API method, declared once: its parameters, how its
// request decodes, its handler, and what fault injection, logs and metrics need
// to know of it. Only Spec and Handle are required; the built-in methods are
// declared in builtinMethods.
type Method struct {
	Spec alsc.Spec
	// Decode turns the business parameters — the required ones present (code 40
	// otherwise) — into the request Handle reads as Input.Request, or answers
	// why they are malformed (code 50). Nil: the method reads Input.Params.
	Decode func(p *top.Params) (any, *top.Error)
	// Handle answers a call whose checks have passed.
	Handle func(ctx context.Context, in *Input) (top.Body, *top.Error)
	// Ticket returns the ticket a decoded request names, by id and/or code, for
	// fault rules that name one. Nil: none.
	Ticket func(in *Input) (id, code string)
	// Transient is the method's own answer to a transient failure, which an
	// error fault answers in its place (SYSTEM_ERROR retry=true for the methods
	// that have a retry flag). Nil: code 15 isp.service-busy.
	Transient func() top.Body
	// Outcome names the business outcome of a successful answer, for logs and
	// metrics. Nil: "success".
	Outcome func(top.Body) string
}

// outcome names the business outcome of body, an answer of m.
func (m *Method) outcome(body top.Body) string {
	if m.Outcome == nil {
		return "success"
	}
	return m.Outcome(body)
}

// ticket returns the ticket the request names, if m can tell.
func (m *Method) ticket(in *Input) (id, code string) {
	if m.Ticket == nil || in.Request == nil {
		return "", ""
	}
	return m.Ticket(in)
}

// Input is what a handler sees: the authenticated app, the parameters and the
// decoded request.
type Input struct {
	App       *daodian.App
	Params    *top.Params
	RequestID string
	Now       time.Time
	// Request is what the method's Decode returned; nil without Decode.
	Request any
}

// decodeParams enforces required parameters (code 40) and runs the method's
// Decode.
func decodeParams(m *Method, p *top.Params, in *Input) *top.Error {
	for _, sp := range m.Spec.Params {
		if sp.Required && p.Get(sp.Name) == "" {
			return top.ErrMissingArgument(sp.Name)
		}
	}
	if m.Decode == nil {
		return nil
	}
	req, terr := m.Decode(p)
	if terr != nil {
		return terr
	}
	in.Request = req
	return nil
}

// define declares a built-in method whose request decodes into an R: the typed
// handler and ticket read it without an assertion of their own.
func define[R any](name string, decode func(p *top.Params, r *R) *top.Error,
	handle func(ctx context.Context, in *Input, r *R) (top.Body, *top.Error),
	ticket func(r *R) (id, code string)) *Method {
	m := &Method{
		Spec: specOf(name),
		Decode: func(p *top.Params) (any, *top.Error) {
			r := new(R)
			if terr := decode(p, r); terr != nil {
				return nil, terr
			}
			return r, nil
		},
		Handle: func(ctx context.Context, in *Input) (top.Body, *top.Error) {
			return handle(ctx, in, in.Request.(*R))
		},
	}
	if ticket != nil {
		m.Ticket = func(in *Input) (string, string) { return ticket(in.Request.(*R)) }
	}
	return m
}

func specOf(name string) alsc.Spec {
	for _, s := range alsc.Specs {
		if s.Name == name {
			return s
		}
	}
	panic("gateway: no spec for " + name)
}

// object returns a Decode step for a method whose one business parameter is the
// JSON object param (absent: the zero request, as for the reversal, whose object
// the published page marks optional).
func object[R any](param string) func(p *top.Params, r *R) *top.Error {
	return func(p *top.Params, r *R) *top.Error {
		if v := p.Get(param); v != "" {
			return decodeObject(param, v, r)
		}
		return nil
	}
}

// objectOptions decode business objects. Member names match exactly (the v2
// default: a differently-cased name is an unknown member, ignored) and an object
// that names a member twice, at any depth, is an error (SPEC §4), never resolved
// silently as encoding/json does (last wins, case-insensitively). Invalid UTF-8
// in a string (a lone surrogate escape: the form layer has refused raw invalid
// bytes) becomes U+FFFD, which the ledger's checks refuse naming the field.
var objectOptions = jsontext.AllowInvalidUTF8(true)

// objectBufs recycles the buffer a business object is copied into for
// json.Unmarshal, which takes bytes where the parameter is a string: the copy
// was an allocation of the object's size on every business request. Decoding
// copies every string it keeps out of the buffer, so nothing decoded refers to
// it once Unmarshal has returned.
var objectBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledObjectBuf keeps one huge object from pinning a huge buffer in the
// pool.
const maxPooledObjectBuf = 64 << 10

func decodeObject(name, v string, dst any) *top.Error {
	v = strings.TrimSpace(v)
	if len(v) == 0 || v[0] != '{' {
		return top.ErrInvalidParameter(name + " 必须是JSON对象")
	}
	bp := objectBufs.Get().(*[]byte)
	b := append((*bp)[:0], v...)
	defer func() {
		if cap(b) <= maxPooledObjectBuf {
			*bp = b[:0]
			objectBufs.Put(bp)
		}
	}()
	if err := json.Unmarshal(b, dst, objectOptions); err != nil {
		var syn *jsontext.SyntacticError
		var sem *json.SemanticError
		switch {
		case errors.As(err, &syn) && errors.Is(err, jsontext.ErrDuplicateName):
			return top.ErrInvalidParameter(memberPath(name, syn.JSONPointer) + " 重复")
		case errors.As(err, &sem) && errors.Is(err, alsc.ErrQuantity):
			return top.ErrInvalidParameter(memberPath(name, sem.JSONPointer) + " " + alsc.ErrQuantity.Error())
		case errors.As(err, &sem):
			return top.ErrInvalidParameter(memberPath(name, sem.JSONPointer) + " 类型错误")
		}
		return top.ErrInvalidParameter(name + " 不是合法的JSON")
	}
	return nil
}

// maxMemberPath bounds the member path an error message names.
const maxMemberPath = 64

// memberPath names the member at ptr inside the object name, for an error
// message: its dotted path when that is short and every name on it is made of
// lower-case ASCII letters, digits and underscores (as every field of SPEC §4
// is), else the object alone, so that a message never echoes arbitrary input.
func memberPath(name string, ptr jsontext.Pointer) string {
	path := name
	for tok := range ptr.Tokens() {
		if tok == "" || len(path)+1+len(tok) > maxMemberPath {
			return name
		}
		for i := 0; i < len(tok); i++ {
			if c := tok[i]; (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '_' {
				return name
			}
		}
		path += "." + tok
	}
	return path
}

// ledgerError maps an error of the ledger to its platform answer.
func (g *Gateway) ledgerError(in *Input, err error) *top.Error {
	var ip *daodian.InvalidParameter
	var rf *daodian.Refusal
	switch {
	case errors.As(err, &ip):
		return top.ErrInvalidParameter(ip.Field + " " + ip.Reason)
	case errors.As(err, &rf):
		return top.ErrBusiness(rf.SubCode, rf.SubMsg)
	case errors.Is(err, daodian.ErrTransient):
		e := top.ErrRemoteService()
		e.SubCode, e.SubMsg = "isp.service-busy", "系统繁忙,请稍后重试"
		return e
	default:
		g.cfg.Logger.Error("method failed", "request_id", in.RequestID, "err", err)
		e := top.ErrRemoteService()
		e.SubCode, e.SubMsg = "isp.unknown-error", "服务内部错误"
		return e
	}
}

func parseBizTime(field, v string) (time.Time, *top.Error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := top.ParseTime(v)
	if err != nil {
		return time.Time{}, top.ErrInvalidParameter(field + " 格式应为 yyyy-MM-dd HH:mm:ss")
	}
	return t, nil
}

func (gw *Gateway) builtinMethods() []*Method {
	h := &handlers{l: gw.ledger, gw: gw}
	timeGet := &Method{Spec: specOf(alsc.MethodTimeGet), Handle: h.timeGet}
	reserve := define(alsc.MethodReserve, object[alsc.TicketReverseTopRequest](alsc.ParamReverseRequest), h.reserve,
		func(r *alsc.TicketReverseTopRequest) (string, string) { return r.TicketID, "" })
	reserve.Transient = func() top.Body {
		return &alsc.ReserveResponse{Result: alsc.ReserveResult{ErrorCode: daodian.CodeSystemError, ErrorMsg: daodian.Message(daodian.CodeSystemError), Retry: true}}
	}
	reserve.Outcome = func(b top.Body) string {
		if r := b.(*alsc.ReserveResponse).Result; !r.Success {
			return r.ErrorCode
		}
		return "success"
	}
	consult := define(alsc.MethodConsult, object[alsc.ConsultTopRequest](alsc.ParamConsultRequest), h.consult,
		func(r *alsc.ConsultTopRequest) (string, string) { return "", r.TicketCode })
	consult.Transient = func() top.Body {
		return &alsc.ConsultResponse{Result: alsc.ConsultResult{ErrorCode: daodian.CodeSystemError, ErrorMsg: daodian.Message(daodian.CodeSystemError), Retry: true}}
	}
	consult.Outcome = func(b top.Body) string {
		if r := b.(*alsc.ConsultResponse).Result; !r.Success {
			return r.ErrorCode
		}
		return "success"
	}
	use := define(alsc.MethodUse, object[alsc.UseTopRequest](alsc.ParamUseRequest), h.use,
		func(r *alsc.UseTopRequest) (string, string) { return r.TicketID, r.TicketCode })
	refund := define(alsc.MethodRefund, func(p *top.Params, r *alsc.RefundRequest) *top.Error {
		r.TransID, r.TicketCode, r.TicketRequestID = p.Get(alsc.ParamTransID), p.Get(alsc.ParamTicketCode), p.Get(alsc.ParamTicketRequestID)
		return nil
	}, h.refund, func(r *alsc.RefundRequest) (string, string) { return "", r.TicketCode })
	return []*Method{timeGet, reserve, consult, use, refund}
}

type handlers struct {
	l  *daodian.Ledger
	gw *Gateway
}

func (h *handlers) timeGet(_ context.Context, in *Input) (top.Body, *top.Error) {
	return &alsc.TimeGetResponse{Time: top.FormatTime(in.Now)}, nil
}

func (h *handlers) reserve(ctx context.Context, in *Input, r *alsc.TicketReverseTopRequest) (top.Body, *top.Error) {
	biz, terr := parseBizTime("biz_date", r.BizDate)
	if terr != nil {
		return nil, terr
	}
	res, err := h.l.Reverse(ctx, in.App, daodian.ReverseRequest{
		RequestID: r.RequestID, TicketID: r.TicketID, TransID: r.TicketUseTransID, BizDate: biz,
	})
	if err != nil {
		return nil, h.gw.ledgerError(in, err)
	}
	return &alsc.ReserveResponse{Result: alsc.ReserveResult{
		Success: res.Success, ErrorCode: res.ErrorCode, ErrorMsg: res.ErrorMsg, Retry: res.Retry,
	}}, nil
}

func (h *handlers) consult(ctx context.Context, in *Input, r *alsc.ConsultTopRequest) (top.Body, *top.Error) {
	res, err := h.l.Consult(ctx, in.App, daodian.ConsultRequest{RequestID: r.RequestID, ShopID: r.ShopID, TicketCode: r.TicketCode})
	if err != nil {
		return nil, h.gw.ledgerError(in, err)
	}
	out := &alsc.ConsultResponse{Result: alsc.ConsultResult{
		Success: res.Success, ErrorCode: res.ErrorCode, ErrorMsg: res.ErrorMsg, Retry: res.Retry,
	}}
	if v := res.Value; v != nil {
		cv := &alsc.TicketConsultValue{
			AvailableQuantity: int64(v.AvailableQuantity), UserPhone: v.UserPhone, BuyerID: v.BuyerID,
			AlscOrderNo: v.OrderNo, AlscSubOrderNo: v.SubOrderNo, ItemID: v.ItemID, OutItemID: v.OutItemID,
			TicketInfoList: make(alsc.TicketInfoList, 0, len(v.Tickets)),
		}
		for _, t := range v.Tickets {
			cv.TicketInfoList = append(cv.TicketInfoList, alsc.TicketInfo{
				TicketID: t.TicketID, TicketName: t.TicketName, TicketCode: t.TicketCode,
				TotalAmount: t.TotalAmountCents, RealAmount: t.RealAmountCents,
				OriginalPrice: t.OriginalPriceCents, Quantity: int64(t.Quantity),
			})
		}
		out.Result.Value = cv
	}
	return out, nil
}

func (h *handlers) use(ctx context.Context, in *Input, r *alsc.UseTopRequest) (top.Body, *top.Error) {
	gmt, terr := parseBizTime("gmt_biz", r.GmtBiz)
	if terr != nil {
		return nil, terr
	}
	res, err := h.l.Use(ctx, in.App, daodian.UseRequest{
		TicketCode: r.TicketCode, TicketID: r.TicketID, ShopID: r.ShopID, ShopType: r.ShopType,
		Quantity: int(r.Quantity), RequestID: r.TicketRequestID, GmtBiz: gmt,
	})
	if err != nil {
		return nil, h.gw.ledgerError(in, err)
	}
	return UseResponse(&res), nil
}

// UseResponse renders a use result in the published page's fields.
func UseResponse(res *daodian.UseResult) *alsc.UseResponse {
	out := &alsc.UseResponse{
		TicketTransID: res.TransID, TicketRequestID: res.RequestID, TicketCode: res.TicketCode,
		UseDate: top.FormatTime(res.UseDate), UseShopID: res.ShopID, UseShopName: res.ShopName,
		ItemID: res.ItemID, ItemName: res.ItemName, OrderNo: res.OrderNo,
		OriginalPrice: alsc.Yuan(res.OriginalPriceCents), CurrentPrice: alsc.Yuan(res.CurrentPriceCents),
		BuyerPayAmount: alsc.Yuan(res.BuyerPayCents), ReceiptAmount: alsc.Yuan(res.ReceiptCents),
		DiscountAmount: alsc.Yuan(res.BuyerPayCents - res.ReceiptCents), MerchantSubsidyAmount: alsc.Yuan(0),
		InvoiceAmount: alsc.Yuan(res.BuyerPayCents), BizCode: res.BizCode,
	}
	for _, d := range res.Details {
		out.TicketUseDetails = append(out.TicketUseDetails, alsc.MerchantTicketUseDetail{
			TicketTransID: d.TransID, TicketCode: d.TicketCode, TicketID: d.TicketID, Quantity: int64(d.Units),
			BuyerPayAmount: alsc.Yuan(d.BuyerPayCents), ReceiptAmount: alsc.Yuan(d.ReceiptCents),
			DiscountAmount: alsc.Yuan(d.BuyerPayCents - d.ReceiptCents), MerchantSubsidyAmount: alsc.Yuan(0),
			InvoiceAmount: alsc.Yuan(d.BuyerPayCents),
		})
	}
	return out
}

func (h *handlers) refund(ctx context.Context, in *Input, r *alsc.RefundRequest) (top.Body, *top.Error) {
	res, err := h.l.Refund(ctx, in.App, daodian.RefundRequest{TransID: r.TransID, TicketCode: r.TicketCode, RequestID: r.TicketRequestID})
	if err != nil {
		return nil, h.gw.ledgerError(in, err)
	}
	return &alsc.RefundResponse{TicketRequestID: res.RequestID, BizCode: res.BizCode}, nil
}

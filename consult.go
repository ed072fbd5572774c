package daodian

import (
	"context"
	"errors"
)

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

// Consult applies SPEC §4.2. It is read-only.
func (l *Ledger) Consult(ctx context.Context, app *App, req ConsultRequest) (ConsultResult, error) {
	if err := checkRequestID("request_id", req.RequestID); err != nil {
		return ConsultResult{}, err
	}
	if err := checkText("shop_id", req.ShopID, true, MaxShopIDLen); err != nil {
		return ConsultResult{}, err
	}
	if err := checkDigits("ticket_code", req.TicketCode, true); err != nil {
		return ConsultResult{}, err
	}
	now := l.cfg.Clock()
	var res ConsultResult
	fail := func(code string) {
		res = ConsultResult{ErrorCode: code, ErrorMsg: Message(code), Retry: Retryable(code)}
	}
	err := l.store.View(ctx, func(tx ReadTx) error {
		res = ConsultResult{}
		t, err := tx.TicketByCode(ctx, req.TicketCode)
		if errors.Is(err, ErrNotFound) || (err == nil && !app.CanSee(t.MerchantID)) {
			fail(CodeTicketCodeInvalid)
			return nil
		} else if err != nil {
			return err
		}
		if _, err := tx.Shop(ctx, t.MerchantID, req.ShopID); errors.Is(err, ErrNotFound) {
			fail(CodeShopNotMatch)
			return nil
		} else if err != nil {
			return err
		}
		if t.Status != TicketValid {
			res = ConsultResult{ErrorCode: CodeTicketStatusInvalid, ErrorMsg: msgConsultStatusInvalid}
			return nil
		}
		if t.NotYetValid(now) {
			fail(CodeTicketNotYetValid)
			return nil
		}
		if t.Expired(now) {
			fail(CodeTicketExpired)
			return nil
		}
		o, err := tx.Order(ctx, t.SubOrderNo)
		if err != nil {
			return err
		}
		siblings, err := tx.SubOrderTickets(ctx, t.SubOrderNo)
		if err != nil {
			return err
		}
		v := &ConsultValue{
			UserPhone: o.UserPhone, BuyerID: o.BuyerID, OrderNo: o.OrderNo, SubOrderNo: o.SubOrderNo,
			ItemID: o.ItemID, OutItemID: o.OutItemID,
		}
		for i := range siblings {
			s := &siblings[i]
			if s.Available == 0 || s.Status != TicketValid || !s.InWindow(now) {
				continue
			}
			ct := ConsultTicket{
				TicketID: s.ID, TicketName: s.ItemName, TotalAmountCents: s.TotalAmountCents,
				RealAmountCents: s.RealAmountCents, OriginalPriceCents: s.OriginalPriceCents, Quantity: s.Quantity,
			}
			if s.ID == t.ID {
				ct.TicketCode = s.Code
			}
			v.Tickets = append(v.Tickets, ct)
			v.AvailableQuantity += s.Available
		}
		res = ConsultResult{Success: true, Value: v}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrTransient) {
			fail(CodeSystemError)
			return res, nil
		}
		return ConsultResult{}, err
	}
	return res, nil
}

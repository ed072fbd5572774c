package daodian

import (
	"context"
	"errors"
	"time"
)

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

// Refund applies SPEC §4.5: the use is marked refunded and stays consumed. Its
// answers are recorded like the use's, refusals included.
func (l *Ledger) Refund(ctx context.Context, app *App, req RefundRequest) (RefundResult, error) {
	if err := checkDigits("trans_id", req.TransID, true); err != nil {
		return RefundResult{}, err
	}
	if err := checkDigits("ticket_code", req.TicketCode, true); err != nil {
		return RefundResult{}, err
	}
	if err := checkRequestID("ticket_request_id", req.RequestID); err != nil {
		return RefundResult{}, err
	}
	now := l.cfg.Clock()
	d, err := run(ctx, l, app, &operation[RefundResult]{
		key:         IdemKey{AppKey: app.Key, Op: OpRefund, RequestID: req.RequestID},
		request:     Decision{Refund: &req},
		fingerprint: req.TicketCode + "\x00" + req.TransID,
		now:         now,
		answers:     l.answers.refund,
		lock: func(ctx context.Context, tx Tx) (*Ticket, error) {
			return lockTicket(tx.TicketByCode(ctx, req.TicketCode))
		},
		notFound: decision[RefundResult]{refusal: refuse(SubTicketNotFound, subMsgTicketNotFound)},
		conflict: decision[RefundResult]{refusal: refuse(SubRequestIDConflict, subMsgRequestIDConflict)},
		decide: func(ctx context.Context, tx Tx, t *Ticket) (decision[RefundResult], error) {
			return l.refundUse(ctx, tx, app, t, &req, now)
		},
	})
	if err != nil {
		return RefundResult{}, err
	}
	if d.refusal != nil {
		return RefundResult{}, d.refusal
	}
	return d.answer, nil
}

// refundUse refunds a use of a ticket the app can see; a refusal is decided
// before any write.
func (l *Ledger) refundUse(ctx context.Context, tx Tx, app *App, t *Ticket, req *RefundRequest, now time.Time) (decision[RefundResult], error) {
	u, err := tx.Use(ctx, req.TransID)
	if errors.Is(err, ErrNotFound) || (err == nil && u.TicketID != t.ID) {
		return refused[RefundResult](SubUseTransNotFound, subMsgUseTransNotFound), nil
	} else if err != nil {
		return decision[RefundResult]{}, err
	}
	if u.Reversed {
		return refused[RefundResult](SubUseAlreadyReversed, subMsgUseAlreadyReversed), nil
	}
	d := answered(RefundResult{RequestID: req.RequestID, BizCode: BizSuccess})
	if !u.Refunded { // a refund of a refunded use changes nothing, and records nothing
		u.Refunded = true
		u.RefundedAt = now
		u.RefundAppKey = app.Key
		u.RefundRequestID = req.RequestID
		if err := tx.MarkRefunded(ctx, u); err != nil {
			return decision[RefundResult]{}, err
		}
		if err := checkTicket(ctx, tx, t, t.Available, 0); err != nil {
			return decision[RefundResult]{}, err
		}
		d.changes = []Record{{
			Kind: RecordRefund, MerchantID: t.MerchantID, ShopID: u.ShopID, TicketID: t.ID, TransID: u.TransID,
			Units: u.Units, BuyerPayCents: u.BuyerPayCents, ReceiptCents: u.ReceiptCents,
		}}
	}
	return d, nil
}

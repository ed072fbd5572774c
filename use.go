package daodian

import (
	"context"
	"errors"
	"strconv"
	"time"
)

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

// Use applies SPEC §4.3. A refusal is returned as *Refusal, an invalid parameter as
// *InvalidParameter, a transient failure as an error wrapping ErrTransient (nothing
// changed); anything else is a bug.
//
// A refusal is a final answer like a success: it is recorded under the request's
// key in the same transaction, and the same request gets it again forever, so
// that a delayed duplicate of a refused use never takes effect once its cause is
// gone (after a reversal freed units, say).
func (l *Ledger) Use(ctx context.Context, app *App, req UseRequest) (UseResult, error) {
	now := l.cfg.Clock()
	if err := l.validateUse(&req, now); err != nil {
		return UseResult{}, err
	}
	fp := useFingerprint(&req)
	if req.GmtBiz.IsZero() {
		req.GmtBiz = now
	}
	d, err := run(ctx, l, app, &operation[UseResult]{
		key:         IdemKey{AppKey: app.Key, Op: OpUse, RequestID: req.RequestID},
		request:     Decision{Use: &req},
		fingerprint: fp,
		now:         now,
		answers:     l.answers.use,
		// The use's lock: the ticket, and the siblings allocate takes units
		// from as it takes them (UseSiblings), or, once the sub-order was
		// met busy, its whole sub-order in id order (TicketForUse).
		lock: func(ctx context.Context, tx Tx) (*Ticket, error) {
			t, err := lockTicket(tx.TicketForUse(ctx, req.TicketCode, req.TicketID))
			if t != nil && req.TicketCode != "" && req.TicketID != "" && t.ID != req.TicketID {
				return nil, nil // a code and an id of two tickets name neither
			}
			return t, err
		},
		missingTicketID: req.TicketID,
		notFound:        decision[UseResult]{refusal: refuse(SubTicketNotFound, subMsgTicketNotFound)},
		conflict:        decision[UseResult]{refusal: refuse(SubRequestIDConflict, subMsgRequestIDConflict)},
		decide: func(ctx context.Context, tx Tx, t *Ticket) (decision[UseResult], error) {
			return l.useTicket(ctx, tx, app, t, &req, now)
		},
		replay: func(res UseResult) UseResult {
			res.BizCode = BizTicketAlreadyUsed
			return res
		},
	})
	if err != nil {
		return UseResult{}, err
	}
	if d.refusal != nil {
		return UseResult{}, d.refusal
	}
	return d.answer, nil
}

// useTicket applies a use to a ticket the app can see. Every refusal is decided
// before the first write, so a refused use leaves the ledger as it was and only
// its answer is recorded.
func (l *Ledger) useTicket(ctx context.Context, tx Tx, app *App, t *Ticket, req *UseRequest, now time.Time) (decision[UseResult], error) {
	shop, err := tx.Shop(ctx, t.MerchantID, req.ShopID)
	if errors.Is(err, ErrNotFound) {
		return refused[UseResult](SubShopNotMatch, subMsgShopNotMatch), nil
	} else if err != nil {
		return decision[UseResult]{}, err
	}
	if t.Status != TicketValid {
		return refused[UseResult](SubTicketStatusInvalid, subMsgStatusInvalid), nil
	}
	if t.NotYetValid(now) {
		return refused[UseResult](SubTicketNotYetValid, subMsgTicketNotYetValid), nil
	}
	if t.Expired(now) {
		return refused[UseResult](SubTicketExpired, subMsgTicketExpired), nil
	}
	parts, err := l.allocate(ctx, tx, t, req.Quantity, now)
	if err != nil {
		return decision[UseResult]{}, err
	}
	if parts == nil {
		return refused[UseResult](SubNotEnoughQuantity, subMsgNotEnoughQuantity), nil
	}
	for _, p := range parts {
		f, err := tx.Fence(ctx, p.t.ID, app.Key)
		if err == nil && !req.GmtBiz.After(f.At) {
			return refused[UseResult](SubUseFencedByReversal, subMsgFenced), nil
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return decision[UseResult]{}, err
		}
	}
	return l.applyUse(ctx, tx, app, req, shop, parts, now)
}

type part struct {
	t     *Ticket
	units int
}

// allocate takes units from the queried ticket first, then from the other usable
// tickets of its sub-order in id order (a group-buy use of several vouchers). It
// returns no parts when the sub-order has too few units left, and
// ErrSubOrderBusy when it cannot tell because siblings held by other
// transactions were left out.
func (l *Ledger) allocate(ctx context.Context, tx Tx, t *Ticket, quantity int, now time.Time) ([]part, error) {
	if t.Available >= quantity {
		return []part{{t, quantity}}, nil
	}
	need := quantity
	var parts []part
	if t.Available > 0 {
		parts = append(parts, part{t, t.Available})
		need -= t.Available
	}
	siblings, complete, err := tx.UseSiblings(ctx, t, need)
	if err != nil {
		return nil, err
	}
	for i := range siblings {
		s := &siblings[i]
		if need == 0 {
			break
		}
		if s.ID == t.ID || s.Available == 0 || s.Status != TicketValid || !s.InWindow(now) || s.MerchantID != t.MerchantID {
			continue
		}
		n := min(s.Available, need)
		parts = append(parts, part{s, n})
		need -= n
	}
	if need > 0 && !complete {
		return nil, ErrSubOrderBusy
	}
	if need > 0 {
		return nil, nil
	}
	return parts, nil
}

func (l *Ledger) applyUse(ctx context.Context, tx Tx, app *App, req *UseRequest, shop *Shop, parts []part, now time.Time) (decision[UseResult], error) {
	first := parts[0].t
	res := UseResult{
		RequestID:          req.RequestID,
		TicketCode:         first.Code,
		TicketID:           first.ID,
		UseDate:            now,
		ShopID:             shop.ID,
		ShopName:           shop.Name,
		ItemID:             first.ItemID,
		ItemName:           first.ItemName,
		OrderNo:            first.OrderNo,
		OriginalPriceCents: first.OriginalPriceCents,
		CurrentPriceCents:  first.TotalAmountCents,
		BizCode:            BizSuccess,
	}
	changes := make([]Record, 0, len(parts))
	for i, p := range parts {
		id, err := tx.NewID(ctx)
		if err != nil {
			return decision[UseResult]{}, err
		}
		if i == 0 {
			// The first ticket's use id is also the id of the whole request, so
			// that a single-ticket use has one id and a reversal naming the
			// top-level id of a group-buy use finds this ticket's part directly.
			res.TransID = id
		}
		before := p.t.Available
		p.t.Available -= p.units
		u := &Use{
			TransID: id, GroupTransID: res.TransID, TicketID: p.t.ID, AppKey: app.Key,
			RequestID: req.RequestID, ShopID: shop.ID, Units: p.units, GmtBiz: req.GmtBiz, CreatedAt: now,
			BuyerPayCents: share(p.t.TotalAmountCents, p.units, p.t.Quantity, p.t.Available),
			ReceiptCents:  share(p.t.RealAmountCents, p.units, p.t.Quantity, p.t.Available),
		}
		if err := tx.InsertUse(ctx, u); err != nil {
			return decision[UseResult]{}, err
		}
		if err := tx.SetAvailable(ctx, p.t.ID, p.t.Available); err != nil {
			return decision[UseResult]{}, err
		}
		if err := checkTicket(ctx, tx, p.t, before, -p.units); err != nil {
			return decision[UseResult]{}, err
		}
		res.BuyerPayCents += u.BuyerPayCents
		res.ReceiptCents += u.ReceiptCents
		res.Details = append(res.Details, UseDetail{
			TransID: id, TicketID: p.t.ID, TicketCode: p.t.Code, Units: p.units,
			BuyerPayCents: u.BuyerPayCents, ReceiptCents: u.ReceiptCents,
		})
		changes = append(changes, Record{
			Kind: RecordUse, MerchantID: p.t.MerchantID, ShopID: shop.ID, TicketID: p.t.ID, TransID: id,
			Units: p.units, BizTime: req.GmtBiz, BuyerPayCents: u.BuyerPayCents, ReceiptCents: u.ReceiptCents,
		})
	}
	return decision[UseResult]{answer: res, changes: changes}, nil
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

func useFingerprint(r *UseRequest) string {
	b := make([]byte, 0, 96)
	b = append(b, r.TicketCode...)
	b = append(b, 0)
	b = append(b, r.TicketID...)
	b = append(b, 0)
	b = append(b, r.ShopID...)
	b = append(b, 0)
	b = append(b, r.ShopType...)
	b = append(b, 0)
	b = strconv.AppendInt(b, int64(r.Quantity), 10)
	b = append(b, 0)
	if !r.GmtBiz.IsZero() {
		b = strconv.AppendInt(b, r.GmtBiz.Unix(), 10)
	}
	return string(b)
}

func (l *Ledger) validateUse(req *UseRequest, now time.Time) error {
	if req.TicketCode == "" && req.TicketID == "" {
		return invalid("ticket_code", "or ticket_id is required")
	}
	if err := checkDigits("ticket_code", req.TicketCode, false); err != nil {
		return err
	}
	if err := checkDigits("ticket_id", req.TicketID, false); err != nil {
		return err
	}
	if err := checkText("shop_id", req.ShopID, true, MaxShopIDLen); err != nil {
		return err
	}
	if err := checkRequestID("ticket_request_id", req.RequestID); err != nil {
		return err
	}
	switch req.ShopType {
	case "":
		req.ShopType = ShopTypeInternal
	case ShopTypeInternal, ShopTypeExternal:
	default:
		return invalid("shop_type", "must be INTERNAL_SHOP or EXTERNAL_SHOP")
	}
	if req.Quantity == 0 {
		req.Quantity = 1
	}
	if req.Quantity < 1 || req.Quantity > MaxUseQuantity {
		return invalid("quantity", "must be a whole number from 1 to "+strconv.Itoa(MaxUseQuantity))
	}
	if req.GmtBiz.IsZero() {
		// Fingerprinted before defaulting so that a replay that also omits gmt_biz
		// matches the first request.
		return nil
	}
	if req.GmtBiz.Sub(now) > l.cfg.FutureSkew {
		return invalid("gmt_biz", "is in the future")
	}
	return nil
}

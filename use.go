package daodian

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Use applies SPEC §4.3. A refusal is returned as *Refusal, an invalid parameter as
// *InvalidParameter, a transient failure as an error wrapping ErrTransient (nothing
// changed); anything else is a bug.
//
// A refusal is a final answer like a success: it is recorded under the request's
// key in the same transaction, and the same request gets it again forever, so
// that a delayed duplicate of a refused use never takes effect once its cause is
// gone (after a reversal freed units, say). A conflict (the key names another
// request) is not recorded: it is not this request's answer.
func (l *Ledger) Use(ctx context.Context, app *App, req UseRequest) (UseResult, error) {
	now := l.cfg.Clock()
	if err := l.validateUse(&req, now); err != nil {
		return UseResult{}, err
	}
	key := IdemKey{AppKey: app.Key, Op: OpUse, RequestID: req.RequestID}
	fp := useFingerprint(&req)
	if req.GmtBiz.IsZero() {
		req.GmtBiz = now
	}
	if a, ok := l.answers.get(key); ok {
		if a.fingerprint != fp {
			return UseResult{}, refuse(SubRequestIDConflict, subMsgRequestIDConflict)
		}
		if rf, ok := a.answer.(Refusal); ok {
			return UseResult{}, &rf
		}
		res := a.answer.(UseResult)
		res.BizCode = BizTicketAlreadyUsed
		return res, nil
	}
	var res UseResult
	var rf *Refusal
	var replayed bool
	err := l.store.Update(ctx, func(tx Tx) error {
		res, rf, replayed = UseResult{}, nil, false
		var t *Ticket
		var err error
		if req.TicketCode != "" {
			t, err = tx.TicketByCode(ctx, req.TicketCode)
		} else {
			t, err = tx.Ticket(ctx, req.TicketID)
		}
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if rec, err := tx.Idem(ctx, key); err == nil {
			if rec.Fingerprint != fp {
				return refuse(SubRequestIDConflict, subMsgRequestIDConflict)
			}
			replayed = true
			rf, err = decodeOutcome(rec.Answer, &res)
			return err
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if t == nil || !app.CanSee(t.MerchantID) || (req.TicketID != "" && req.TicketCode != "" && t.ID != req.TicketID) {
			rf = refuse(SubTicketNotFound, subMsgTicketNotFound)
			return l.recordOutcome(ctx, tx, key, fp, req.TicketID, nil, rf, now)
		}
		res, rf, err = l.useTicket(ctx, tx, app, t, &req, now)
		if err != nil {
			return err
		}
		return l.recordOutcome(ctx, tx, key, fp, t.ID, res, rf, now)
	})
	if err != nil {
		l.loud(err)
		return UseResult{}, err
	}
	// Whether fresh or replayed from the store, res or rf is now the key's
	// recorded first answer; a replayed success reports it as already used.
	if rf != nil {
		l.answers.put(key, fp, *rf)
		return UseResult{}, rf
	}
	l.answers.put(key, fp, res)
	if replayed {
		res.BizCode = BizTicketAlreadyUsed
	}
	return res, nil
}

// useTicket applies a use to a ticket the app can see. Every refusal is decided
// before the first write, so a refused use leaves the ledger as it was and only
// its answer is recorded.
func (l *Ledger) useTicket(ctx context.Context, tx Tx, app *App, t *Ticket, req *UseRequest, now time.Time) (UseResult, *Refusal, error) {
	shop, err := tx.Shop(ctx, t.MerchantID, req.ShopID)
	if errors.Is(err, ErrNotFound) {
		return UseResult{}, refuse(SubShopNotMatch, subMsgShopNotMatch), nil
	} else if err != nil {
		return UseResult{}, nil, err
	}
	if t.Status != TicketValid {
		return UseResult{}, refuse(SubTicketStatusInvalid, subMsgStatusInvalid), nil
	}
	if t.NotYetValid(now) {
		return UseResult{}, refuse(SubTicketNotYetValid, subMsgTicketNotYetValid), nil
	}
	if t.Expired(now) {
		return UseResult{}, refuse(SubTicketExpired, subMsgTicketExpired), nil
	}
	parts, err := l.allocate(ctx, tx, t, req.Quantity, now)
	if err != nil {
		return UseResult{}, nil, err
	}
	if parts == nil {
		return UseResult{}, refuse(SubNotEnoughQuantity, subMsgNotEnoughQuantity), nil
	}
	for _, p := range parts {
		f, err := tx.Fence(ctx, p.t.ID, app.Key)
		if err == nil && !req.GmtBiz.After(f.At) {
			return UseResult{}, refuse(SubUseFencedByReversal, subMsgFenced), nil
		} else if err != nil && !errors.Is(err, ErrNotFound) {
			return UseResult{}, nil, err
		}
	}
	res, err := l.applyUse(ctx, tx, app, req, shop, parts, now)
	return res, nil, err
}

type part struct {
	t     *Ticket
	units int
}

// allocate takes units from the queried ticket first, then from the other usable
// tickets of its sub-order in id order (a group-buy use of several vouchers). It
// returns no parts when the sub-order has too few units left.
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
	siblings, err := tx.SubOrderTickets(ctx, t.SubOrderNo)
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
	if need > 0 {
		return nil, nil
	}
	return parts, nil
}

func (l *Ledger) applyUse(ctx context.Context, tx Tx, app *App, req *UseRequest, shop *Shop, parts []part, now time.Time) (UseResult, error) {
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
	for i, p := range parts {
		id, err := tx.NewID(ctx)
		if err != nil {
			return UseResult{}, err
		}
		if i == 0 {
			// The first ticket's use id is also the id of the whole request, so
			// that a single-ticket use has one id and a reversal naming the
			// top-level id of a group-buy use finds this ticket's part directly.
			res.TransID = id
		}
		u := &Use{
			TransID: id, GroupTransID: res.TransID, TicketID: p.t.ID, AppKey: app.Key,
			RequestID: req.RequestID, ShopID: shop.ID, Units: p.units, GmtBiz: req.GmtBiz, CreatedAt: now,
		}
		if err := tx.InsertUse(ctx, u); err != nil {
			return UseResult{}, err
		}
		before := p.t.Available
		p.t.Available -= p.units
		if err := tx.SetAvailable(ctx, p.t.ID, p.t.Available); err != nil {
			return UseResult{}, err
		}
		if err := checkTicket(ctx, tx, p.t, before, -p.units); err != nil {
			return UseResult{}, err
		}
		d := UseDetail{
			TransID: id, TicketID: p.t.ID, TicketCode: p.t.Code, Units: p.units,
			BuyerPayCents: share(p.t.TotalAmountCents, p.units, p.t.Quantity, p.t.Available),
			ReceiptCents:  share(p.t.RealAmountCents, p.units, p.t.Quantity, p.t.Available),
		}
		res.BuyerPayCents += d.BuyerPayCents
		res.ReceiptCents += d.ReceiptCents
		res.Details = append(res.Details, d)
	}
	return res, nil
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
	key := IdemKey{AppKey: app.Key, Op: OpRefund, RequestID: req.RequestID}
	fp := req.TicketCode + "\x00" + req.TransID
	if a, ok := l.answers.get(key); ok {
		if a.fingerprint != fp {
			return RefundResult{}, refuse(SubRequestIDConflict, subMsgRequestIDConflict)
		}
		if rf, ok := a.answer.(Refusal); ok {
			return RefundResult{}, &rf
		}
		return a.answer.(RefundResult), nil
	}
	var res RefundResult
	var rf *Refusal
	err := l.store.Update(ctx, func(tx Tx) error {
		res, rf = RefundResult{}, nil
		t, err := tx.TicketByCode(ctx, req.TicketCode)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if rec, err := tx.Idem(ctx, key); err == nil {
			if rec.Fingerprint != fp {
				return refuse(SubRequestIDConflict, subMsgRequestIDConflict)
			}
			rf, err = decodeOutcome(rec.Answer, &res)
			return err
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		if t == nil || !app.CanSee(t.MerchantID) {
			rf = refuse(SubTicketNotFound, subMsgTicketNotFound)
			return l.recordOutcome(ctx, tx, key, fp, "", nil, rf, now)
		}
		res, rf, err = l.refundUse(ctx, tx, app, t, &req, now)
		if err != nil {
			return err
		}
		return l.recordOutcome(ctx, tx, key, fp, t.ID, res, rf, now)
	})
	if err != nil {
		l.loud(err)
		return RefundResult{}, err
	}
	if rf != nil {
		l.answers.put(key, fp, *rf)
		return RefundResult{}, rf
	}
	l.answers.put(key, fp, res)
	return res, nil
}

// refundUse refunds a use of a ticket the app can see; a refusal is decided
// before any write.
func (l *Ledger) refundUse(ctx context.Context, tx Tx, app *App, t *Ticket, req *RefundRequest, now time.Time) (RefundResult, *Refusal, error) {
	u, err := tx.Use(ctx, req.TransID)
	if errors.Is(err, ErrNotFound) || (err == nil && u.TicketID != t.ID) {
		return RefundResult{}, refuse(SubUseTransNotFound, subMsgUseTransNotFound), nil
	} else if err != nil {
		return RefundResult{}, nil, err
	}
	if u.Reversed {
		return RefundResult{}, refuse(SubUseAlreadyReversed, subMsgUseAlreadyReversed), nil
	}
	if !u.Refunded {
		u.Refunded = true
		u.RefundedAt = now
		u.RefundAppKey = app.Key
		u.RefundRequestID = req.RequestID
		if err := tx.MarkRefunded(ctx, u); err != nil {
			return RefundResult{}, nil, err
		}
		if err := checkTicket(ctx, tx, t, t.Available, 0); err != nil {
			return RefundResult{}, nil, err
		}
	}
	return RefundResult{RequestID: req.RequestID, BizCode: BizSuccess}, nil, nil
}

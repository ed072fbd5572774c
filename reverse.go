package daodian

import (
	"context"
	"errors"
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

func failure(code string) ReverseResult {
	return ReverseResult{ErrorCode: code, ErrorMsg: Message(code), Retry: Retryable(code)}
}

// SystemError is the reversal answer to a transient failure: nothing changed,
// nothing was recorded, the same request may be retried.
func SystemError() ReverseResult { return failure(CodeSystemError) }

// Reverse applies SPEC §4.4. The returned error is nil for every business outcome,
// including SYSTEM_ERROR after a transient failure; it is non-nil only for invalid
// parameters (*InvalidParameter) and for bugs (anything else), which the gateway
// answers as platform errors 50 and 15.
func (l *Ledger) Reverse(ctx context.Context, app *App, req ReverseRequest) (ReverseResult, error) {
	now := l.cfg.Clock()
	if err := l.validateReverse(&req, now); err != nil {
		return ReverseResult{}, err
	}
	d, err := run(ctx, l, app, &operation[ReverseResult]{
		key:         IdemKey{AppKey: app.Key, Op: OpReverse, RequestID: req.RequestID},
		request:     Decision{Reverse: &req},
		fingerprint: req.TicketID + "\x00" + req.TransID,
		now:         now,
		answers:     l.answers.reverse,
		lock: func(ctx context.Context, tx Tx) (*Ticket, error) {
			return lockTicket(tx.Ticket(ctx, req.TicketID))
		},
		missingTicketID: req.TicketID,
		notFound:        answered(failure(CodeTicketNotFound)),
		conflict:        answered(failure(CodeRequestIDConflict)),
		decide: func(ctx context.Context, tx Tx, t *Ticket) (decision[ReverseResult], error) {
			return l.reverseTicket(ctx, tx, app, t, &req, now)
		},
	})
	if errors.Is(err, ErrTransient) {
		return SystemError(), nil
	}
	return d.answer, err
}

func (l *Ledger) reverseTicket(ctx context.Context, tx Tx, app *App, t *Ticket, req *ReverseRequest, now time.Time) (decision[ReverseResult], error) {
	var u *Use
	var err error
	if req.TransID != "" {
		u, err = tx.Use(ctx, req.TransID)
		if errors.Is(err, ErrNotFound) {
			return answered(failure(CodeUseTransNotFound)), nil
		}
		if err != nil {
			return decision[ReverseResult]{}, err
		}
		if u.TicketID != t.ID {
			// The top-level id of a group-buy use names the whole group: reverse
			// this ticket's part of it.
			g, gerr := tx.GroupUse(ctx, req.TransID, t.ID)
			if gerr != nil && !errors.Is(gerr, ErrNotFound) {
				return decision[ReverseResult]{}, gerr
			}
			if g == nil {
				return l.foreignUse(ctx, tx, app, u)
			}
			u = g
		}
		if u.Reversed {
			return answered(ReverseResult{Success: true}), nil
		}
	} else {
		u, err = tx.LatestActiveUse(ctx, t.ID, app.Key)
		if errors.Is(err, ErrNotFound) {
			return l.fence(ctx, tx, app, t, req, now)
		}
		if err != nil {
			return decision[ReverseResult]{}, err
		}
	}
	if u.Refunded {
		return answered(failure(CodeTicketStatusInvalid)), nil
	}
	if now.Sub(u.CreatedAt) > l.cfg.ReverseWindow {
		return answered(failure(CodeReverseTimeExpired)), nil
	}
	before := t.Available
	u.Reversed = true
	u.ReversedAt = now
	u.ReversalAppKey = app.Key
	u.ReversalRequestID = req.RequestID
	u.ReversalBizDate = req.BizDate
	if err := tx.MarkReversed(ctx, u); err != nil {
		return decision[ReverseResult]{}, err
	}
	t.Available += u.Units
	if err := tx.SetAvailable(ctx, t.ID, t.Available); err != nil {
		return decision[ReverseResult]{}, err
	}
	if err := checkTicket(ctx, tx, t, before, u.Units); err != nil {
		return decision[ReverseResult]{}, err
	}
	return decision[ReverseResult]{answer: ReverseResult{Success: true}, changes: []Record{{
		Kind: RecordReversal, MerchantID: t.MerchantID, ShopID: u.ShopID, TicketID: t.ID, TransID: u.TransID,
		Units: u.Units, BizTime: req.BizDate, BuyerPayCents: u.BuyerPayCents, ReceiptCents: u.ReceiptCents,
	}}}, nil
}

// foreignUse answers a reversal naming a use of another ticket. MISMATCH would
// tell that the use exists, so it is only for a use the app could see anyway;
// a use of a ticket the app cannot see answers exactly like one that does not
// exist, or any app could count every merchant's redemptions by probing the
// sequential ids (SPEC §4.4 step 3). The use's ticket is not locked to learn its
// merchant: a transaction holds one ticket's locks only.
func (l *Ledger) foreignUse(ctx context.Context, tx Tx, app *App, u *Use) (decision[ReverseResult], error) {
	m, err := tx.TicketMerchant(ctx, u.TicketID)
	if errors.Is(err, ErrNotFound) || (err == nil && !app.CanSee(m)) {
		return answered(failure(CodeUseTransNotFound)), nil
	}
	if err != nil {
		return decision[ReverseResult]{}, err
	}
	return answered(failure(CodeUseTransMismatch)), nil
}

// fence records an empty reversal. A fence only moves forward: an earlier empty
// reversal with a later business time keeps protecting what it protected.
func (l *Ledger) fence(ctx context.Context, tx Tx, app *App, t *Ticket, req *ReverseRequest, now time.Time) (decision[ReverseResult], error) {
	d := answered(ReverseResult{Success: true})
	f, err := tx.Fence(ctx, t.ID, app.Key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return decision[ReverseResult]{}, err
	}
	if f != nil && !req.BizDate.After(f.At) {
		return d, nil // nothing changes, so nothing is recorded
	}
	err = tx.PutFence(ctx, &Fence{TicketID: t.ID, AppKey: app.Key, At: req.BizDate, RequestID: req.RequestID, CreatedAt: now})
	d.changes = []Record{{Kind: RecordFence, MerchantID: t.MerchantID, TicketID: t.ID, BizTime: req.BizDate}}
	return d, err
}

func (l *Ledger) validateReverse(req *ReverseRequest, now time.Time) error {
	if err := checkRequestID("request_id", req.RequestID); err != nil {
		return err
	}
	if err := checkDigits("ticket_id", req.TicketID, true); err != nil {
		return err
	}
	if err := checkDigits("ticket_use_trans_id", req.TransID, false); err != nil {
		return err
	}
	if req.BizDate.IsZero() {
		req.BizDate = now
	} else if req.BizDate.Sub(now) > l.cfg.FutureSkew {
		return invalid("biz_date", "is in the future")
	}
	return nil
}

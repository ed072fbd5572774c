package daodian

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"
)

// Config sets the rules' tunables.
type Config struct {
	// ReverseWindow is how long after a use it may still be reversed (default 24h).
	ReverseWindow time.Duration
	// FutureSkew is how far in the future a caller's business time (biz_date,
	// gmt_biz) may be; further is an invalid parameter (default 10 minutes, the
	// timestamp window).
	FutureSkew time.Duration
	// Clock is the time source (default time.Now).
	Clock Clock
	// Logger receives the loud report of a broken invariant (default slog.Default()).
	Logger *slog.Logger
}

// Ledger applies the business rules of SPEC §4 on a Store. It is safe for concurrent
// use: every operation is one Store transaction, and the store serialises the
// transactions on one ticket.
type Ledger struct {
	store   Store
	cfg     Config
	answers *answerCache
}

// NewLedger returns a ledger over store.
func NewLedger(store Store, cfg Config) *Ledger {
	if cfg.ReverseWindow <= 0 {
		cfg.ReverseWindow = 24 * time.Hour
	}
	if cfg.FutureSkew <= 0 {
		cfg.FutureSkew = 10 * time.Minute
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Ledger{store: store, cfg: cfg, answers: newAnswerCache(maxAnswers)}
}

// Store returns the ledger's store.
func (l *Ledger) Store() Store { return l.store }

// Now returns the ledger's current time.
func (l *Ledger) Now() time.Time { return l.cfg.Clock() }

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
	key := IdemKey{AppKey: app.Key, Op: OpReverse, RequestID: req.RequestID}
	fp := req.TicketID + "\x00" + req.TransID
	if a, ok := l.answers.get(key); ok {
		if a.fingerprint != fp {
			return failure(CodeRequestIDConflict), nil
		}
		return a.answer.(ReverseResult), nil
	}
	var res ReverseResult
	var final bool // res is the key's recorded answer
	err := l.store.Update(ctx, func(tx Tx) error {
		res, final = ReverseResult{}, false
		// Lock the ticket before reading the idempotency row: a concurrent duplicate
		// on another process then sees the winner's record once it gets the lock.
		t, err := tx.Ticket(ctx, req.TicketID)
		if err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
		if rec, err := tx.Idem(ctx, key); err == nil {
			if rec.Fingerprint != fp {
				res = failure(CodeRequestIDConflict)
				return nil
			}
			final = true
			return json.Unmarshal(rec.Answer, &res)
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		final = true
		if t == nil || !app.CanSee(t.MerchantID) {
			res = failure(CodeTicketNotFound)
			return l.record(ctx, tx, key, fp, req.TicketID, res, now)
		}
		res, err = l.reverseTicket(ctx, tx, app, t, &req, now)
		if err != nil {
			return err
		}
		return l.record(ctx, tx, key, fp, t.ID, res, now)
	})
	if err != nil {
		if errors.Is(err, ErrTransient) {
			return SystemError(), nil
		}
		l.loud(err)
		return ReverseResult{}, err
	}
	if final {
		l.answers.put(key, fp, res)
	}
	return res, nil
}

func (l *Ledger) reverseTicket(ctx context.Context, tx Tx, app *App, t *Ticket, req *ReverseRequest, now time.Time) (ReverseResult, error) {
	var u *Use
	var err error
	if req.TransID != "" {
		u, err = tx.Use(ctx, req.TransID)
		if errors.Is(err, ErrNotFound) {
			return failure(CodeUseTransNotFound), nil
		}
		if err != nil {
			return ReverseResult{}, err
		}
		if u.TicketID != t.ID {
			// The top-level id of a group-buy use names the whole group: reverse
			// this ticket's part of it.
			g, gerr := tx.GroupUse(ctx, req.TransID, t.ID)
			if gerr != nil && !errors.Is(gerr, ErrNotFound) {
				return ReverseResult{}, gerr
			}
			if g == nil {
				return l.foreignUse(ctx, tx, app, u)
			}
			u = g
		}
		if u.Reversed {
			return ReverseResult{Success: true}, nil
		}
	} else {
		u, err = tx.LatestActiveUse(ctx, t.ID, app.Key)
		if errors.Is(err, ErrNotFound) {
			return ReverseResult{Success: true}, l.fence(ctx, tx, app, t, req, now)
		}
		if err != nil {
			return ReverseResult{}, err
		}
	}
	if u.Refunded {
		return failure(CodeTicketStatusInvalid), nil
	}
	if now.Sub(u.CreatedAt) > l.cfg.ReverseWindow {
		return failure(CodeReverseTimeExpired), nil
	}
	before := t.Available
	u.Reversed = true
	u.ReversedAt = now
	u.ReversalAppKey = app.Key
	u.ReversalRequestID = req.RequestID
	u.ReversalBizDate = req.BizDate
	if err := tx.MarkReversed(ctx, u); err != nil {
		return ReverseResult{}, err
	}
	t.Available += u.Units
	if err := tx.SetAvailable(ctx, t.ID, t.Available); err != nil {
		return ReverseResult{}, err
	}
	if err := checkTicket(ctx, tx, t, before, u.Units); err != nil {
		return ReverseResult{}, err
	}
	return ReverseResult{Success: true}, nil
}

// foreignUse answers a reversal naming a use of another ticket. MISMATCH would
// tell that the use exists, so it is only for a use the app could see anyway;
// a use of a ticket the app cannot see answers exactly like one that does not
// exist, or any app could count every merchant's redemptions by probing the
// sequential ids (SPEC §4.4 step 3). The use's ticket is not locked to learn its
// merchant: a transaction holds one ticket's locks only.
func (l *Ledger) foreignUse(ctx context.Context, tx Tx, app *App, u *Use) (ReverseResult, error) {
	m, err := tx.TicketMerchant(ctx, u.TicketID)
	if errors.Is(err, ErrNotFound) || (err == nil && !app.CanSee(m)) {
		return failure(CodeUseTransNotFound), nil
	}
	if err != nil {
		return ReverseResult{}, err
	}
	return failure(CodeUseTransMismatch), nil
}

// fence records an empty reversal. A fence only moves forward: an earlier empty
// reversal with a later business time keeps protecting what it protected.
func (l *Ledger) fence(ctx context.Context, tx Tx, app *App, t *Ticket, req *ReverseRequest, now time.Time) error {
	f, err := tx.Fence(ctx, t.ID, app.Key)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if f != nil && !req.BizDate.After(f.At) {
		return nil
	}
	return tx.PutFence(ctx, &Fence{TicketID: t.ID, AppKey: app.Key, At: req.BizDate, RequestID: req.RequestID, CreatedAt: now})
}

// checkTicket asserts the §4.4 invariants on a ticket after a write, inside the
// transaction, so that a broken state is never committed: available moved by
// exactly delta, stays within [0, quantity], and equals quantity minus the units of
// the unreversed uses.
func checkTicket(ctx context.Context, tx Tx, t *Ticket, before, delta int) error {
	if t.Available != before+delta {
		return &InvariantError{TicketID: t.ID, What: fmt.Sprintf("available %d, want %d%+d", t.Available, before, delta)}
	}
	if t.Available < 0 || t.Available > t.Quantity {
		return &InvariantError{TicketID: t.ID, What: fmt.Sprintf("available %d outside [0, %d]", t.Available, t.Quantity)}
	}
	active, err := tx.ActiveUnits(ctx, t.ID)
	if err != nil {
		return err
	}
	if t.Available != t.Quantity-active {
		return &InvariantError{TicketID: t.ID, What: fmt.Sprintf("available %d but quantity %d minus active units %d", t.Available, t.Quantity, active)}
	}
	return nil
}

func (l *Ledger) record(ctx context.Context, tx Tx, key IdemKey, fp, ticketID string, answer any, now time.Time) error {
	b, err := json.Marshal(answer)
	if err != nil {
		return err
	}
	return tx.PutIdem(ctx, &IdemRecord{IdemKey: key, Fingerprint: fp, TicketID: ticketID, Answer: b, CreatedAt: now})
}

// refusalRecord is how a refusal of a use or refund is recorded under its key:
// {"refusal":{"sub_code":…,"sub_msg":…}}. A recorded result has no "refusal"
// member, so the records written before refusals were recorded read as results.
type refusalRecord struct {
	Refusal *Refusal `json:"refusal"`
}

// recordOutcome records the final answer of a use or refund: rf if the request
// was refused, else res.
func (l *Ledger) recordOutcome(ctx context.Context, tx Tx, key IdemKey, fp, ticketID string, res any, rf *Refusal, now time.Time) error {
	if rf != nil {
		return l.record(ctx, tx, key, fp, ticketID, refusalRecord{rf}, now)
	}
	return l.record(ctx, tx, key, fp, ticketID, res, now)
}

// decodeOutcome reads a recorded use or refund answer: the refusal, or nil and
// the result decoded into res.
func decodeOutcome(answer []byte, res any) (*Refusal, error) {
	var r refusalRecord
	if err := json.Unmarshal(answer, &r); err != nil {
		return nil, err
	}
	if r.Refusal != nil {
		return r.Refusal, nil
	}
	return nil, json.Unmarshal(answer, res)
}

func (l *Ledger) loud(err error) {
	var inv *InvariantError
	if errors.As(err, &inv) {
		l.cfg.Logger.Error("INVARIANT VIOLATED: transaction aborted, nothing committed", "ticket_id", inv.TicketID, "what", inv.What)
	}
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

// maxDigitsLen bounds numeric identifiers: ours are 19 digits; a longer string cannot
// name anything.
const maxDigitsLen = 32

func checkDigits(field, v string, required bool) error {
	if v == "" {
		if required {
			return invalid(field, "must not be empty")
		}
		return nil
	}
	if len(v) > maxDigitsLen {
		return invalid(field, "is too long")
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return invalid(field, "must be decimal digits")
		}
	}
	return nil
}

func checkRequestID(field, v string) error {
	if v == "" {
		return invalid(field, "must not be empty")
	}
	if len(v) > MaxRequestIDLen {
		return invalid(field, "is longer than "+strconv.Itoa(MaxRequestIDLen))
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c == 0x7f || c >= 0x80 {
			return invalid(field, "must be printable ASCII without spaces")
		}
	}
	return nil
}

func checkText(field, v string, required bool, max int) error {
	if v == "" && required {
		return invalid(field, "must not be empty")
	}
	if len(v) > max {
		return invalid(field, "is longer than "+strconv.Itoa(max))
	}
	for _, r := range v {
		if r < ' ' || r == 0x7f || r == 0xFFFD {
			return invalid(field, "contains a control character or invalid UTF-8")
		}
	}
	return nil
}

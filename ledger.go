package daodian

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	answers answers
}

// answers are the answer caches of the idempotent operations, one per kind, so
// that each holds its own answer type.
type answers struct {
	reverse *answerCache[ReverseResult]
	use     *answerCache[UseResult]
	refund  *answerCache[RefundResult]
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
	return &Ledger{store: store, cfg: cfg, answers: answers{
		reverse: newAnswerCache[ReverseResult](maxAnswers),
		use:     newAnswerCache[UseResult](maxAnswers),
		refund:  newAnswerCache[RefundResult](maxAnswers),
	}}
}

// Store returns the ledger's store.
func (l *Ledger) Store() Store { return l.store }

// Now returns the ledger's current time.
func (l *Ledger) Now() time.Time { return l.cfg.Clock() }

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

func (l *Ledger) loud(err error) {
	var inv *InvariantError
	if errors.As(err, &inv) {
		l.cfg.Logger.Error("INVARIANT VIOLATED: transaction aborted, nothing committed", "ticket_id", inv.TicketID, "what", inv.What)
	}
}

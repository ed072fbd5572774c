package daodian

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// Fault injection lets an integrator make the hard cases of SPEC §1 happen on
// demand: a lost answer, a transient error, a slow answer, a use that arrives
// after its reversal. A FaultRule is a row of the store, so that `daodian fault
// add` in one process takes effect in every gateway serving that store without a
// restart; the gateway (gateway/faults.go) reads the rules and injects the faults.
// Nothing here changes a business rule: a fault only changes when, whether and how
// an answer is delivered, or answers a retryable failure without running the
// method.

// FaultKind is what an injected fault does.
type FaultKind string

const (
	// FaultError answers a retryable failure without running the method:
	// SYSTEM_ERROR with retry=true for the reversal and the consult, code 15
	// isp.service-busy for the other methods, or the rule's platform Code.
	// Nothing changes and nothing is recorded.
	FaultError FaultKind = "error"
	// FaultLoseResponse runs the method (its effect is committed) and then closes
	// the connection without answering: it happened, but the caller never heard.
	FaultLoseResponse FaultKind = "lose_response"
	// FaultDelay runs the method at once and holds its answer back for Wait.
	FaultDelay FaultKind = "delay"
	// FaultHold keeps a use request, unexecuted, until a later request of the same
	// app has been answered (or for at most Wait), then executes it: a use that
	// arrives after its reversal.
	FaultHold FaultKind = "hold"
)

// FaultKinds lists every kind, in the order the documentation presents them.
var FaultKinds = []FaultKind{FaultError, FaultLoseResponse, FaultDelay, FaultHold}

// Valid reports whether k is a known kind.
func (k FaultKind) Valid() bool {
	switch k {
	case FaultError, FaultLoseResponse, FaultDelay, FaultHold:
		return true
	}
	return false
}

// Bounds of fault rules. A fault must never be a way to make a server do
// unbounded work or hold unbounded resources.
const (
	// MaxFaultRules bounds the rules of a store: AddFaultRule refuses more, and a
	// gateway reads at most this many.
	MaxFaultRules = 256
	// MaxFaultCount bounds the count of a counted rule.
	MaxFaultCount = 1_000_000
	// MaxFaultWait bounds the Wait of a delay or hold rule.
	MaxFaultWait = 60 * time.Second
	// DefaultFaultHold is the Wait of a hold rule that names none: how long a use
	// is held at most when no later request releases it.
	DefaultFaultHold = 30 * time.Second
	// maxFaultField bounds the text fields of a rule.
	maxFaultField = 128
)

// FaultRule is one fault to inject into the requests of one app.
type FaultRule struct {
	// ID is assigned by AddFaultRule: a fresh 19-digit identifier, so rules sort
	// in the order they were added.
	ID string
	// AppKey is the app whose requests the rule applies to (required: a fault
	// never touches another integrator's traffic).
	AppKey string
	// Method narrows the rule to one API method; empty means every method.
	Method string
	// TicketID and TicketCode narrow the rule to requests naming one ticket.
	// AddFaultRule fills both from whichever was given, so that a rule given by
	// code also matches a reversal, which names the ticket by id. Empty: any
	// request.
	TicketID   string
	TicketCode string
	Kind       FaultKind
	// Count is how many more times the rule may fire, across every gateway on
	// the store; the rule is deleted when it reaches zero. 0 means no limit.
	Count int
	// Probability is the chance that a matching request gets the fault, in
	// (0, 1]; AddFaultRule turns 0 into 1 (every matching request).
	Probability float64
	// Code is, for an error rule, the platform error code to answer (SPEC §3.5);
	// 0 answers the method's own transient failure.
	Code int
	// Wait is, for a delay rule, how long the answer is held back; for a hold
	// rule, the longest a use is held when no later request releases it.
	Wait      time.Duration
	CreatedAt time.Time
}

// Validate checks the rule's fields on their own (AddFaultRule also checks that
// the app and the ticket exist). Which methods and codes exist is the gateway's
// knowledge: gateway.CheckFaultRule checks those.
func (r *FaultRule) Validate() error {
	switch {
	case r.AppKey == "":
		return invalid("app_key", "is required: a fault rule applies to one app")
	case len(r.AppKey) > maxFaultField:
		return invalid("app_key", "is too long")
	case !r.Kind.Valid():
		return invalid("kind", fmt.Sprintf("%q is not one of error, lose_response, delay, hold", r.Kind))
	case len(r.Method) > maxFaultField:
		return invalid("method", "is too long")
	case len(r.TicketID) > maxFaultField:
		return invalid("ticket_id", "is too long")
	case len(r.TicketCode) > maxFaultField:
		return invalid("ticket_code", "is too long")
	case r.Count < 0 || r.Count > MaxFaultCount:
		return invalid("count", fmt.Sprintf("must be between 0 (no limit) and %d", MaxFaultCount))
	case math.IsNaN(r.Probability) || r.Probability < 0 || r.Probability > 1:
		return invalid("probability", "must be in (0, 1]")
	case r.Code != 0 && r.Kind != FaultError:
		return invalid("code", "applies to error rules only")
	case r.Code < 0:
		return invalid("code", "must be a platform error code")
	case r.Wait < 0 || r.Wait > MaxFaultWait:
		return invalid("wait", fmt.Sprintf("must be at most %v", MaxFaultWait))
	case r.Kind == FaultDelay && r.Wait == 0:
		return invalid("wait", "is required for a delay rule (how long the answer waits)")
	case r.Wait != 0 && r.Kind != FaultDelay && r.Kind != FaultHold:
		return invalid("wait", "applies to delay and hold rules only")
	}
	return nil
}

// Matches reports whether a request of the rule's app, for method, naming the
// ticket by id and/or code (either may be empty), is in the rule's scope.
func (r *FaultRule) Matches(method, ticketID, ticketCode string) bool {
	if r.Method != "" && r.Method != method {
		return false
	}
	if r.TicketID == "" && r.TicketCode == "" {
		return true
	}
	return (ticketID != "" && ticketID == r.TicketID) || (ticketCode != "" && ticketCode == r.TicketCode)
}

// ErrTooManyFaultRules is returned by AddFaultRule when the store holds
// MaxFaultRules rules.
var ErrTooManyFaultRules = fmt.Errorf("too many fault rules (at most %d): clear some first", MaxFaultRules)

// AddFaultRule validates r, resolves its ticket, assigns its id and creation time
// and stores it. The app must exist, and so must the ticket if one is named.
func (l *Ledger) AddFaultRule(ctx context.Context, r FaultRule) (*FaultRule, error) {
	return l.AddFaultRuleFor(ctx, "", r)
}

// AddFaultRuleFor is AddFaultRule on behalf of someone who sees one merchant
// only ("" for every merchant): an app not bound to merchantID, or a ticket of
// another merchant, is refused exactly like one that does not exist, so that
// adding a rule never reveals what another merchant has.
func (l *Ledger) AddFaultRuleFor(ctx context.Context, merchantID string, r FaultRule) (*FaultRule, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if r.Probability == 0 {
		r.Probability = 1
	}
	if r.Kind == FaultHold && r.Wait == 0 {
		r.Wait = DefaultFaultHold
	}
	r.CreatedAt = l.cfg.Clock()
	byID, byCode := r.TicketID, r.TicketCode
	err := l.store.Update(ctx, func(tx Tx) error {
		app, err := tx.App(ctx, r.AppKey)
		if errors.Is(err, ErrNotFound) || (err == nil && merchantID != "" && !app.CanSee(merchantID)) {
			return invalid("app_key", fmt.Sprintf("%q names no app", r.AppKey))
		}
		if err != nil {
			return err
		}
		if err := resolveFaultTicket(ctx, tx, &r, byID, byCode, merchantID); err != nil {
			return err
		}
		rules, err := tx.FaultRules(ctx)
		if err != nil {
			return err
		}
		if len(rules) >= MaxFaultRules {
			return ErrTooManyFaultRules
		}
		if r.ID, err = tx.NewID(ctx); err != nil {
			return err
		}
		return tx.PutFaultRule(ctx, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// resolveFaultTicket fills both ticket fields of r from the one the caller gave
// (byID, byCode: the caller's values, since fn may run more than once). A
// ticket of a merchant other than merchantID (when set) names no ticket.
func resolveFaultTicket(ctx context.Context, tx Tx, r *FaultRule, byID, byCode, merchantID string) error {
	r.TicketID, r.TicketCode = byID, byCode
	var t *Ticket
	var err error
	field, named := "ticket_id", byID
	switch {
	case byID != "":
		t, err = tx.Ticket(ctx, byID)
	case byCode != "":
		t, err = tx.TicketByCode(ctx, byCode)
		field, named = "ticket_code", byCode
	default:
		return nil
	}
	if err == nil && merchantID != "" && t.MerchantID != merchantID {
		err = ErrNotFound
	}
	if errors.Is(err, ErrNotFound) {
		return invalid(field, fmt.Sprintf("%q names no ticket", named))
	}
	if err != nil {
		return err
	}
	if byCode != "" && byCode != t.Code {
		return invalid("ticket_code", fmt.Sprintf("is not the code of ticket %s", t.ID))
	}
	r.TicketID, r.TicketCode = t.ID, t.Code
	return nil
}

// FaultRules returns every rule of the store in the order they were added.
func (l *Ledger) FaultRules(ctx context.Context) ([]FaultRule, error) {
	var rules []FaultRule
	err := l.store.View(ctx, func(tx ReadTx) error {
		var err error
		rules, err = tx.FaultRules(ctx)
		return err
	})
	return rules, err
}

// ClearFaultRules deletes the rules of one app ("" for every app), or the one
// rule id ("" for any), and returns how many it deleted.
func (l *Ledger) ClearFaultRules(ctx context.Context, appKey, id string) (int, error) {
	var n int
	err := l.store.Update(ctx, func(tx Tx) error {
		var err error
		n, err = tx.DeleteFaultRules(ctx, appKey, id)
		return err
	})
	return n, err
}

// ConsumeFaultRule takes one injection from a counted rule, atomically across
// every process on the store; it reports false when the rule is gone or spent
// (another gateway took the last one), and then the fault must not be injected.
func (l *Ledger) ConsumeFaultRule(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := l.store.Update(ctx, func(tx Tx) error {
		var err error
		ok, err = tx.ConsumeFaultRule(ctx, id)
		return err
	})
	return ok, err
}

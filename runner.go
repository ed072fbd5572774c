package daodian

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Operation names the kind of an idempotent request; each has its own key space.
type Operation string

const (
	// OpUse is alibaba.alsc.merchant.ext.ticketcode.use.
	OpUse Operation = "use"
	// OpReverse is alibaba.alsc.daodian.ticket.reserve.
	OpReverse Operation = "reverse"
	// OpRefund is alibaba.alsc.merchant.ext.ticket.refund.
	OpRefund Operation = "refund"
)

// IdemKey identifies an idempotent request.
type IdemKey struct {
	AppKey    string
	Op        Operation
	RequestID string
}

// IdemRecord is the recorded final answer to an idempotent request. It never changes
// once written.
type IdemRecord struct {
	IdemKey
	// Fingerprint is the canonical form of the request's content; the same key with a
	// different fingerprint is a conflict.
	Fingerprint string
	TicketID    string
	// Answer is the encoded decision (see encodeDecision).
	Answer    []byte
	CreatedAt time.Time
}

// decision is the final answer to an idempotent request: an answer, or a refusal.
// The use and the refund answer a refusal as a platform error (SPEC §4.3, §4.5); the
// reversal has none, its failures are answers with success=false (§4.4).
type decision[A any] struct {
	answer  A
	refusal *Refusal
	// changes are the records of what the decision changed in the ledger
	// (SPEC §8), without the fields run fills in (At, AppKey, RequestID). They
	// are written with the decision, never recorded in it.
	changes []Record
}

// operation is one idempotent request as the runner sees it: what identifies it,
// and the rule that decides it. Every use, reversal and refund is one operation;
// run owns what they share.
type operation[A any] struct {
	key         IdemKey
	fingerprint string
	now         time.Time
	// answers remembers this process's recorded decisions of the operation's kind.
	answers *answerCache[A]
	// lock reads the ticket the request names and locks it until the transaction
	// ends; nil (no error) when there is no such ticket or the request names it
	// inconsistently.
	lock func(ctx context.Context, tx Tx) (*Ticket, error)
	// missingTicketID is recorded with the answer when lock found no ticket.
	missingTicketID string
	// notFound answers a request whose ticket is missing or belongs to a merchant
	// the app is not bound to: one answer for both, so an app learns nothing of
	// other merchants' tickets.
	notFound decision[A]
	// conflict answers the request's key sent with other content. It is not
	// recorded: it is not this request's answer.
	conflict decision[A]
	// decide applies the operation's rule to a ticket the app can see. A refusal
	// must be decided before the first write, so that only its record is kept.
	decide func(ctx context.Context, tx Tx, t *Ticket) (decision[A], error)
	// replay turns a recorded answer into the answer to a replay; nil keeps it.
	replay func(A) A
	// request is the operation as a Decider store takes it (with Key,
	// Fingerprint and Now filled by run).
	request Decision
}

// run answers an idempotent request exactly once, whatever the retries and the
// concurrent duplicates:
//
//  1. a decision this process recorded is answered from memory (the cache only
//     holds durable decisions, which never change);
//  2. otherwise, in one Store.Update: lock the ticket, then read the key's record —
//     in that order, so that a concurrent duplicate on another process, once it
//     gets the ticket's lock, sees the winner's record; a record is replayed (or is
//     a conflict), else the rule decides and its decision is recorded under the key
//     in the same transaction as the change it made;
//  3. once durable, the decision is remembered.
//
// A transient store failure is returned wrapped with ErrTransient: nothing changed,
// nothing was recorded, and the same request may run again.
func run[A any](ctx context.Context, l *Ledger, app *App, op *operation[A]) (decision[A], error) {
	if c, ok := op.answers.get(op.key); ok {
		if c.fingerprint != op.fingerprint {
			return op.conflict, nil
		}
		return op.replayed(c.decision), nil
	}
	if ds, ok := l.store.(Decider); ok {
		d, err := decideInStore(ctx, l, ds, app, op)
		if !errors.Is(err, ErrUndecided) {
			return d, err
		}
	}
	var d decision[A]
	var final, replayed bool
	err := l.store.Update(ctx, func(tx Tx) error {
		d, final, replayed = decision[A]{}, false, false
		t, err := op.lock(ctx, tx)
		if err != nil {
			return err
		}
		rec, err := tx.Idem(ctx, op.key)
		if err == nil {
			if rec.Fingerprint != op.fingerprint {
				d = op.conflict
				return nil
			}
			final, replayed = true, true
			d, err = decodeDecision[A](rec.Answer)
			return err
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		ticketID := op.missingTicketID
		if t == nil || !app.CanSee(t.MerchantID) {
			d = op.notFound
		} else {
			ticketID = t.ID
			if d, err = op.decide(ctx, tx, t); err != nil {
				return err
			}
		}
		final = true
		for i := range d.changes {
			r := &d.changes[i]
			r.At, r.AppKey, r.RequestID = op.now, op.key.AppKey, op.key.RequestID
			if err := tx.AppendRecord(ctx, r); err != nil {
				return err
			}
		}
		b, err := encodeDecision(d)
		if err != nil {
			return err
		}
		return tx.PutIdem(ctx, &IdemRecord{IdemKey: op.key, Fingerprint: op.fingerprint, TicketID: ticketID, Answer: b, CreatedAt: op.now})
	})
	if err != nil {
		l.loud(err)
		return decision[A]{}, err
	}
	d.changes = nil
	if final {
		op.answers.put(op.key, op.fingerprint, d)
	}
	if replayed {
		return op.replayed(d), nil
	}
	return d, nil
}

func (op *operation[A]) replayed(d decision[A]) decision[A] {
	if op.replay != nil && d.refusal == nil {
		d.answer = op.replay(d.answer)
	}
	return d
}

// refusalRecord is how a refusal is recorded under its key:
// {"refusal":{"sub_code":…,"sub_msg":…}}. A recorded answer has no "refusal"
// member, so the records written before refusals were recorded read as answers.
type refusalRecord struct {
	Refusal *Refusal `json:"refusal"`
}

func encodeDecision[A any](d decision[A]) ([]byte, error) {
	if d.refusal != nil {
		return json.Marshal(refusalRecord{d.refusal})
	}
	return json.Marshal(d.answer)
}

// refusalPrefix is how a recorded refusal begins: encodeDecision and the
// PostgreSQL functions (daodian_refusal) both write exactly this.
var refusalPrefix = []byte(`{"refusal":`)

func decodeDecision[A any](b []byte) (decision[A], error) {
	var d decision[A]
	// One parse instead of two for an answer, the common record: what both
	// writers produce begins with its first member's name, and only a refusal's
	// is "refusal". Any other shape takes the general way below.
	if len(b) > 2 && b[0] == '{' && b[1] == '"' && !bytes.HasPrefix(b, refusalPrefix) {
		err := json.Unmarshal(b, &d.answer)
		return d, err
	}
	var r refusalRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return d, err
	}
	if r.Refusal != nil {
		d.refusal = r.Refusal
		return d, nil
	}
	err := json.Unmarshal(b, &d.answer)
	return d, err
}

// answered is the decision to answer res.
func answered[A any](res A) decision[A] { return decision[A]{answer: res} }

// refused is the decision to refuse with a sub-code and message.
func refused[A any](sub, msg string) decision[A] {
	return decision[A]{refusal: refuse(sub, msg)}
}

// lockTicket adapts a ticket read for operation.lock: a ticket that does not
// exist is no error there, the rule's notFound answers it.
func lockTicket(t *Ticket, err error) (*Ticket, error) {
	if errors.Is(err, ErrNotFound) {
		return nil, nil
	}
	return t, err
}

// Decider is a Store that applies the rules of an operation itself, in one round
// trip: PostgreSQL runs each operation as one server-side function call
// (postgres/functions.go). It must do exactly what run does with this package's
// rules — lock the ticket, then read the key's record; replay it or answer a
// conflict; else decide, write the change and its records, and record the
// decision under the key, all in one durable transaction — and return the
// decision encoded as run records it (encodeDecision). The contract suite
// (storetest) holds both to the same tests.
//
// Decide returns ErrUndecided, having done nothing, when the store leaves the
// operation to run (PostgreSQL with Options.RulesInGo).
type Decider interface {
	Decide(ctx context.Context, d *Decision) (Decided, error)
}

// ErrUndecided is a Decider's answer to an operation it leaves to the Go rules.
var ErrUndecided = errors.New("the store leaves the decision to the ledger")

// Decision is one operation handed to a Decider: exactly one of Use, Reverse
// and Refund is set, validated and with its defaults applied (a use's GmtBiz, a
// reversal's BizDate).
type Decision struct {
	Key         IdemKey
	Fingerprint string
	// Now is the ledger's time of the operation: the records' at, the use's
	// created_at, and what the reversal window and validity are measured at.
	Now time.Time
	// AppMerchants are the merchants the calling app may see.
	AppMerchants []string
	// ReverseWindow is Config.ReverseWindow.
	ReverseWindow time.Duration
	Use           *UseRequest
	Reverse       *ReverseRequest
	Refund        *RefundRequest
}

// Decided is a Decider's answer: the decision encoded as run records it, whether
// it was replayed from the key's record, and whether the key was taken by other
// content (a conflict: Answer is empty, nothing was written).
type Decided struct {
	Answer   []byte
	Replayed bool
	Conflict bool
}

// decideInStore runs op on a Decider: the answer cache in front, as in run.
func decideInStore[A any](ctx context.Context, l *Ledger, ds Decider, app *App, op *operation[A]) (decision[A], error) {
	req := op.request
	req.Key, req.Fingerprint, req.Now = op.key, op.fingerprint, op.now
	req.AppMerchants, req.ReverseWindow = app.Merchants, l.cfg.ReverseWindow
	out, err := ds.Decide(ctx, &req)
	if errors.Is(err, ErrUndecided) {
		return decision[A]{}, err
	}
	if err != nil {
		l.loud(err)
		return decision[A]{}, err
	}
	if out.Conflict {
		return op.conflict, nil
	}
	d, err := decodeDecision[A](out.Answer)
	if err != nil {
		return decision[A]{}, fmt.Errorf("decision of %s/%s from the store: %w", op.key.Op, op.key.RequestID, err)
	}
	op.answers.put(op.key, op.fingerprint, d)
	if out.Replayed {
		return op.replayed(d), nil
	}
	return d, nil
}

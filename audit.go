package daodian

import (
	"context"
	"encoding/json"
	"fmt"
)

// Violation is one broken invariant found by Audit.
type Violation struct {
	Kind string // ticket, use, idem, record
	ID   string
	What string
}

func (v Violation) String() string { return v.Kind + " " + v.ID + ": " + v.What }

// MaxViolations bounds the report of Audit; a ledger that broken needs a human, not
// a longer list.
const MaxViolations = 1000

// AuditReport is the result of Audit.
type AuditReport struct {
	Tickets, Uses, Reversed, Refunded, Idem, Records int
	Violations                                       []Violation
	Truncated                                        bool
}

// Audit checks every invariant of SPEC §4.4 over the whole ledger on one consistent
// snapshot:
//   - every ticket has 0 ≤ available = quantity − Σ units of its unreversed uses ≤ quantity
//     (refunded uses stay consumed);
//   - every use names an existing ticket, has at least one unit, and is reversed at
//     most once: a reversed use carries its reversal's request id and time, and is
//     never also refunded;
//   - every idempotency record has a fingerprint and an answer that decodes; a
//     recorded refusal of a use or refund names its sub_code, and is never a
//     conflict or an invalid parameter (answers that are not recorded);
//   - every change has its record and every record its change (SPEC §8): each
//     ticket one issue record, each use one use record (same ticket, units),
//     each reversed use one reversal record and each refunded use one refund
//     record, and no such record of a ticket or use that does not exist;
//     record ids increase (records a store has not numbered yet, with an
//     empty ID, come after the numbered ones: see RecordSequencer).
//
// Memory is a few bytes per ticket and per use.
func (l *Ledger) Audit(ctx context.Context) (*AuditReport, error) {
	rep := &AuditReport{}
	add := func(kind, id, format string, args ...any) {
		if len(rep.Violations) >= MaxViolations {
			rep.Truncated = true
			return
		}
		rep.Violations = append(rep.Violations, Violation{Kind: kind, ID: id, What: fmt.Sprintf(format, args...)})
	}
	err := l.store.View(ctx, func(tx ReadTx) error {
		issued, useRecs, err := auditRecords(ctx, tx, rep, add)
		if err != nil {
			return err
		}
		active := make(map[string]int)
		useTickets := make(map[string]struct{})
		err = tx.EachUse(ctx, func(u *Use) error {
			rep.Uses++
			useTickets[u.TicketID] = struct{}{}
			ur := useRecs[u.TransID]
			delete(useRecs, u.TransID)
			switch {
			case ur.uses != 1:
				add("record", u.TransID, "use has %d use records, want 1", ur.uses)
			case ur.ticketID != u.TicketID || ur.units != u.Units:
				add("record", u.TransID, "use record of ticket %s, %d units; the use is of ticket %s, %d units", ur.ticketID, ur.units, u.TicketID, u.Units)
			}
			if want := b2i(u.Reversed); ur.reversals != want {
				add("record", u.TransID, "use has %d reversal records, want %d", ur.reversals, want)
			}
			if want := b2i(u.Refunded); ur.refunds != want {
				add("record", u.TransID, "use has %d refund records, want %d", ur.refunds, want)
			}
			if u.Units < 1 {
				add("use", u.TransID, "has %d units", u.Units)
			}
			if u.Reversed {
				rep.Reversed++
				if u.ReversalRequestID == "" || u.ReversedAt.IsZero() {
					add("use", u.TransID, "reversed without a reversal request id and time")
				}
				if u.Refunded {
					add("use", u.TransID, "both reversed and refunded")
				}
			} else {
				active[u.TicketID] += u.Units
			}
			if u.Refunded {
				rep.Refunded++
				if u.RefundRequestID == "" || u.RefundedAt.IsZero() {
					add("use", u.TransID, "refunded without a refund request id and time")
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id := range useRecs {
			add("record", id, "records of a use that does not exist")
		}
		err = tx.EachTicket(ctx, func(t *Ticket) error {
			rep.Tickets++
			delete(useTickets, t.ID)
			if n := issued[t.ID]; n != 1 {
				add("record", t.ID, "ticket has %d issue records, want 1", n)
			}
			delete(issued, t.ID)
			a := active[t.ID]
			if t.Available < 0 || t.Available > t.Quantity {
				add("ticket", t.ID, "available %d outside [0, %d]", t.Available, t.Quantity)
			}
			if t.Available != t.Quantity-a {
				add("ticket", t.ID, "available %d but quantity %d minus active units %d is %d", t.Available, t.Quantity, a, t.Quantity-a)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for id := range useTickets {
			add("use", id, "uses name a ticket that does not exist")
		}
		for id := range issued {
			add("record", id, "issue record of a ticket that does not exist")
		}
		return tx.EachIdem(ctx, func(r *IdemRecord) error {
			rep.Idem++
			id := r.AppKey + "/" + string(r.Op) + "/" + r.RequestID
			if r.Fingerprint == "" {
				add("idem", id, "has no fingerprint")
			}
			if !json.Valid(r.Answer) {
				add("idem", id, "answer does not decode")
				return nil
			}
			if r.Op != OpUse && r.Op != OpRefund {
				return nil
			}
			d, err := decodeDecision[json.RawMessage](r.Answer)
			rf := d.refusal
			switch {
			case err != nil:
				add("idem", id, "answer does not decode: %v", err)
			case rf == nil:
			case rf.SubCode == "" || rf.SubMsg == "":
				add("idem", id, "recorded refusal without a sub_code and sub_msg")
			case rf.SubCode == SubRequestIDConflict || rf.SubCode == SubInvalidParameter:
				add("idem", id, "recorded refusal %s, an answer that is never recorded", rf.SubCode)
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// useRecords counts the records of one use.
type useRecords struct {
	ticketID                 string
	units                    int
	uses, reversals, refunds int
}

// auditRecords walks the records: ids must increase; it returns the issue
// records per ticket and the records per use, for the walks of tickets and uses
// to hold against the rows.
func auditRecords(ctx context.Context, tx ReadTx, rep *AuditReport, add func(kind, id, format string, args ...any)) (map[string]int, map[string]useRecords, error) {
	issued := map[string]int{}
	uses := map[string]useRecords{}
	last, unnumbered := "", false
	err := tx.EachRecord(ctx, func(r *Record) error {
		rep.Records++
		switch {
		case r.ID == "":
			unnumbered = true
		case unnumbered:
			add("record", r.ID, "numbered record after a record not numbered yet")
		case !idLess(last, r.ID):
			add("record", r.ID, "record id does not increase (after %s)", last)
		}
		if r.ID != "" {
			last = r.ID
		}
		if !r.Kind.Valid() {
			add("record", r.ID, "unknown kind %q", r.Kind)
		}
		switch r.Kind {
		case RecordIssue:
			issued[r.TicketID]++
		case RecordUse, RecordReversal, RecordRefund:
			u := uses[r.TransID]
			switch r.Kind {
			case RecordUse:
				u.uses++
				u.ticketID, u.units = r.TicketID, r.Units
			case RecordReversal:
				u.reversals++
			default:
				u.refunds++
			}
			uses[r.TransID] = u
		}
		return nil
	})
	return issued, uses, err
}

// idLess orders decimal ids: a shorter one is smaller. "" is before every id.
func idLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

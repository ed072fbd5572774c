package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/daodian/daodian"
)

// The sequential specification of SPEC §4 for one ticket, as a porcupine model:
// the ticket's available units, its uses in the order they happened (each with its
// app, units, reversed and refunded flags), the fences left by empty reversals per
// app, and the recorded answers of idempotent requests. Operations are use,
// reversal (of a named use, or of the app's latest use), refund and consult; each
// is checked against exactly what the spec allows in that state, so that a lost
// update, a double restore, a reversal of the wrong use, a changed recorded answer
// or a read of a state that never existed makes the history non-linearizable.

type linKind uint8

const (
	linUse linKind = iota
	linReverse
	linRefund
	linConsult
)

func (k linKind) String() string {
	return [...]string{"use", "reverse", "refund", "consult"}[k]
}

// linIn is an operation as invoked.
type linIn struct {
	Kind    linKind
	Ticket  string
	App     string // app key
	RID     string // idempotency key (not for consult)
	Units   int    // use
	TransID string // reverse (empty: the latest use) and refund
}

// linOut is what the operation answered.
type linOut struct {
	// Transient: code 15 or SYSTEM_ERROR; the spec says nothing changed.
	Transient bool
	OK        bool   // use/refund succeeded; reversal success=true; consult success
	Code      string // refusal sub_code (use, refund) or reversal error_code
	TransID   string // use: ticket_trans_id
	Biz       string // use, refund: biz_code
	Avail     int    // consult: available_quantity
}

type linUseRow struct {
	id       string
	app      string
	units    int
	reversed bool
	refunded bool
}

// linState is immutable: Step returns a modified copy.
type linState struct {
	avail  int
	uses   []linUseRow
	fences []string          // apps with a fence, sorted
	idem   map[string]linOut // "kind/app/rid" → recorded answer
}

func (s *linState) clone() *linState {
	c := &linState{avail: s.avail, uses: append([]linUseRow(nil), s.uses...), fences: append([]string(nil), s.fences...),
		idem: make(map[string]linOut, len(s.idem)+1)}
	for k, v := range s.idem {
		c.idem[k] = v
	}
	return c
}

func (s *linState) fenced(app string) bool {
	for _, f := range s.fences {
		if f == app {
			return true
		}
	}
	return false
}

func (s *linState) find(id string) int {
	for i := range s.uses {
		if s.uses[i].id == id {
			return i
		}
	}
	return -1
}

func (s *linState) key() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(s.avail))
	for _, u := range s.uses {
		fmt.Fprintf(&b, "|%s,%s,%d,%t,%t", u.id, u.app, u.units, u.reversed, u.refunded)
	}
	b.WriteString("|F" + strings.Join(s.fences, ","))
	keys := make([]string, 0, len(s.idem))
	for k := range s.idem {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "|%s=%+v", k, s.idem[k])
	}
	return b.String()
}

func idemKey(in linIn) string { return in.Kind.String() + "/" + in.App + "/" + in.RID }

// linStep applies one operation to the state, or reports that the spec does not
// allow this answer in this state.
func linStep(s *linState, in linIn, out linOut) (bool, *linState) {
	if out.Transient {
		// Nothing changed and nothing was recorded; only reads and methods
		// that can fail transiently may answer it.
		return true, s
	}
	switch in.Kind {
	case linConsult:
		return out.OK && out.Avail == s.avail, s

	case linUse:
		if rec, ok := s.idem[idemKey(in)]; ok {
			// A replay answers the first answer: the same refusal, or the
			// success as already used.
			if !rec.OK {
				return !out.OK && out.Code == rec.Code, s
			}
			return out.OK && out.TransID == rec.TransID && out.Biz == daodian.BizTicketAlreadyUsed, s
		}
		// A refusal is recorded too (SPEC §4.3).
		refused := func(allowed bool) (bool, *linState) {
			if !allowed {
				return false, s
			}
			n := s.clone()
			n.idem[idemKey(in)] = linOut{Code: out.Code}
			return true, n
		}
		switch {
		case out.OK:
			if s.avail < in.Units || out.Biz != daodian.BizSuccess || out.TransID == "" || s.find(out.TransID) >= 0 {
				return false, s
			}
			n := s.clone()
			n.avail -= in.Units
			n.uses = append(n.uses, linUseRow{id: out.TransID, app: in.App, units: in.Units})
			n.idem[idemKey(in)] = linOut{OK: true, TransID: out.TransID}
			return true, n
		case out.Code == daodian.SubNotEnoughQuantity:
			return refused(s.avail < in.Units)
		case out.Code == daodian.SubUseFencedByReversal:
			// Refused only when enough units remain (quantity is checked first)
			// and an empty reversal of this app left a fence.
			return refused(s.avail >= in.Units && s.fenced(in.App))
		}
		return false, s

	case linRefund:
		if rec, ok := s.idem[idemKey(in)]; ok {
			if !rec.OK {
				return !out.OK && out.Code == rec.Code, s
			}
			return out.OK && out.Biz == daodian.BizSuccess, s
		}
		i := s.find(in.TransID)
		if i < 0 {
			return false, s
		}
		if s.uses[i].reversed {
			if out.OK || out.Code != daodian.SubUseAlreadyReversed {
				return false, s
			}
			n := s.clone()
			n.idem[idemKey(in)] = linOut{Code: out.Code}
			return true, n
		}
		if !out.OK || out.Biz != daodian.BizSuccess {
			return false, s
		}
		n := s.clone()
		n.uses[i].refunded = true
		n.idem[idemKey(in)] = linOut{OK: true, Biz: daodian.BizSuccess}
		return true, n

	case linReverse:
		if rec, ok := s.idem[idemKey(in)]; ok {
			return out.OK == rec.OK && out.Code == rec.Code, s
		}
		n := s.clone()
		rec := func(ok bool, code string) (bool, *linState) {
			if out.OK != ok || out.Code != code {
				return false, s
			}
			n.idem[idemKey(in)] = linOut{OK: ok, Code: code}
			return true, n
		}
		i := -1
		if in.TransID != "" {
			if i = s.find(in.TransID); i < 0 {
				return false, s // the test reverses only uses it saw succeed
			}
			if s.uses[i].reversed {
				return rec(true, "")
			}
		} else {
			for j := len(s.uses) - 1; j >= 0; j-- {
				if s.uses[j].app == in.App && !s.uses[j].reversed {
					i = j
					break
				}
			}
			if i < 0 {
				// An empty reversal: success, and a fence for this app.
				if !s.fenced(in.App) {
					n.fences = append(n.fences, in.App)
					sort.Strings(n.fences)
				}
				return rec(true, "")
			}
		}
		if s.uses[i].refunded {
			return rec(false, daodian.CodeTicketStatusInvalid)
		}
		n.uses[i].reversed = true
		n.avail += s.uses[i].units
		return rec(true, "")
	}
	return false, s
}

// linModel returns the model of one ticket of quantity units, partitioned by
// ticket.
func linModel(quantity map[string]int) porcupine.Model {
	return porcupine.Model{
		Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
			by := map[string][]porcupine.Operation{}
			var order []string
			for _, op := range h {
				t := op.Input.(linIn).Ticket
				if _, ok := by[t]; !ok {
					order = append(order, t)
				}
				by[t] = append(by[t], op)
			}
			out := make([][]porcupine.Operation, 0, len(order))
			for _, t := range order {
				out = append(out, by[t])
			}
			return out
		},
		Init: func() any { return (*linState)(nil) },
		Step: func(state, input, output any) (bool, any) {
			in, out := input.(linIn), output.(linOut)
			s := state.(*linState)
			if s == nil {
				s = &linState{avail: quantity[in.Ticket], idem: map[string]linOut{}}
			}
			ok, n := linStep(s, in, out)
			return ok, n
		},
		Equal: func(a, b any) bool {
			sa, sb := a.(*linState), b.(*linState)
			if sa == nil || sb == nil {
				return sa == sb
			}
			return sa.key() == sb.key()
		},
		DescribeOperation: func(input, output any) string {
			in, out := input.(linIn), output.(linOut)
			return fmt.Sprintf("%s(%s %s %d %s) -> %+v", in.Kind, in.App, in.RID, in.Units, in.TransID, out)
		},
		DescribeState: func(state any) string {
			if s := state.(*linState); s != nil {
				return s.key()
			}
			return "init"
		},
	}
}

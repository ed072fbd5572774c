package storetest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// Differential runs one long randomized sequence of uses (group-buy ones
// included), reversals (by id, of the latest use, empty ones that fence),
// refunds, replays, conflicts, unknown and foreign ids, with a clock that moves
// across validity and reversal windows and carries nanoseconds, against two
// stores seeded with the same rows, and fails at the first answer on which
// they differ, or when their rows, recorded answers (byte for byte) or
// records differ. ref and got are fresh, empty stores; a store that applies
// the rules itself (daodian.Decider) is held this way to the one that leaves
// them to the ledger.
//
// Half of the operations run on a fresh Ledger, whose answer cache is empty,
// so that replays reach the stores' recorded answers.
func Differential(t *testing.T, ref, got daodian.Store, seed uint64, ops int) {
	t.Helper()
	ctx := context.Background()
	stores := [2]daodian.Store{ref, got}
	for _, s := range stores {
		diffSeed(t, s)
	}
	clock := NewClock(diffStart)
	ledgers := [2]*daodian.Ledger{}
	renew := func() {
		for i, s := range stores {
			ledgers[i] = daodian.NewLedger(s, daodian.Config{Clock: clock.Now})
		}
	}
	renew()
	kinds := map[string]int{}
	g := &diffGen{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), clock: clock}
	for i := range ops {
		if g.r.IntN(2) == 0 {
			renew()
		}
		op := g.next()
		var out [2]string
		var res any
		for k := range stores {
			out[k], res = op.run(ctx, ledgers[k])
		}
		if out[0] != out[1] {
			t.Fatalf("operation %d (seed %d) %s:\n ref: %s\n got: %s", i, seed, op.desc, out[0], out[1])
		}
		g.learn(res)
		kinds[diffKind(op, out[0], res)]++
		if i%100 == 99 || i == ops-1 {
			diffState(t, ref, got, i)
		}
	}
	t.Logf("seed %d: outcomes %v", seed, kinds)
	for k, s := range stores {
		rep, err := daodian.NewLedger(s, daodian.Config{Clock: clock.Now}).Audit(ctx)
		must(t, err)
		for _, v := range rep.Violations {
			t.Errorf("store %d: audit: %s", k, v)
		}
	}
}

// diffStart is the differential's first instant: nanoseconds below the
// microsecond, which stores drop, so that the rules' comparisons are seen to
// use the exact time.
var diffStart = time.Date(2026, 11, 1, 10, 0, 0, 123, time.UTC)

// The differential's apps: two of merchant M1, one of M2, one of both (which may
// see a use of another ticket of either, and gets MISMATCH for it).
var diffApps = []daodian.App{
	{Key: "diff-a", Secret: "s-a", Name: "a", Merchants: []string{M1}, Enabled: true},
	{Key: "diff-a2", Secret: "s-a2", Name: "a2", Merchants: []string{M1}, Enabled: true},
	{Key: "diff-b", Secret: "s-b", Name: "b", Merchants: []string{M2}, Enabled: true},
	{Key: "diff-ab", Secret: "s-ab", Name: "ab", Merchants: []string{M1, M2}, Enabled: true},
}

// diffShops have names that Go's JSON escapes (< > &, U+2028) or that the
// PostgreSQL store keeps escaped (NUL, 0x01).
var diffShops = []daodian.Shop{
	{MerchantID: M1, ID: S1, Name: "一号店 A&B <1>"},
	{MerchantID: M1, ID: "shop-3", Name: "three\x01\x00\"\\\t\u2029"},
	{MerchantID: M2, ID: S2, Name: "二号店\u2028"},
}

var diffShopIDs = []string{S1, S1, S1, S1, S1, S1, S1, "shop-3", "shop-3", S2, "no-such-shop"}

// diffTickets is the seeded ledger: group-buy sub-orders (one with a ticket of
// the other merchant, a cancelled one, an expired one), multi-unit cards,
// tickets whose validity starts or ends while the clock moves, one with no end
// (never valid), and amounts that do not divide by the quantity.
func diffTickets() []daodian.Ticket {
	var out []daodian.Ticket
	n := 0
	add := func(sub, merchant string, quantity int, from, to time.Duration, status daodian.TicketStatus, item string) {
		n++
		t := daodian.Ticket{
			ID: tid(n), Code: code(n), MerchantID: merchant, OrderNo: "O" + sub, SubOrderNo: sub,
			ItemID: "item-" + strconv.Itoa(n%3), OutItemID: "out", ItemName: item, Quantity: quantity, Available: quantity,
			OriginalPriceCents: 12800, TotalAmountCents: 9900 + int64(n), RealAmountCents: 8800 + int64(n),
			ValidFrom: diffStart.Add(from), ValidTo: diffStart.Add(to), Status: status, CreatedAt: diffStart.Add(-time.Hour),
		}
		if to == 0 {
			t.ValidTo = time.Time{}
		}
		out = append(out, t)
	}
	day := 24 * time.Hour
	for g := range 6 {
		sub := "G" + strconv.Itoa(g)
		for range 5 {
			add(sub, M1, 1, -time.Hour, 30*day, daodian.TicketValid, "团购 <套餐> & 饮料")
		}
	}
	add("G1", M2, 1, -time.Hour, 30*day, daodian.TicketValid, "other merchant")
	add("G2", M1, 1, -time.Hour, 30*day, daodian.TicketCancelled, "cancelled")
	add("G3", M1, 1, -2*day, -time.Hour, daodian.TicketValid, "expired")
	add("G3", M1, 2, 2*time.Hour, 30*day, daodian.TicketValid, "later")
	for c := range 6 {
		add("C"+strconv.Itoa(c), M1, 20+c*10, -time.Hour, 30*day, daodian.TicketValid, "次卡\x01")
	}
	add("C9", M2, 30, -time.Hour, 30*day, daodian.TicketValid, "m2 card")
	add("L0", M1, 4, 90*time.Minute, 30*day, daodian.TicketValid, "not yet")
	add("L1", M1, 4, -time.Hour, 3*time.Hour, daodian.TicketValid, "ends soon")
	add("L2", M1, 2, -time.Hour, 0, daodian.TicketValid, "no end")
	add("R0", M1, 3, -time.Hour, 30*day, daodian.TicketRefunded, "refunded")
	return out
}

func diffSeed(t *testing.T, s daodian.Store) {
	t.Helper()
	ctx := context.Background()
	for _, a := range diffApps {
		InsertApp(t, s, a)
	}
	must(t, s.Update(ctx, func(tx daodian.Tx) error {
		for _, sh := range diffShops {
			sh := sh
			if err := tx.InsertShop(ctx, &sh); err != nil {
				return err
			}
		}
		for _, tk := range diffTickets() {
			tk := tk
			if err := tx.InsertTicket(ctx, &tk); err != nil {
				return err
			}
			if err := tx.AppendRecord(ctx, &daodian.Record{
				At: tk.CreatedAt, Kind: daodian.RecordIssue, MerchantID: tk.MerchantID, TicketID: tk.ID,
				Units: tk.Quantity, BuyerPayCents: tk.TotalAmountCents, ReceiptCents: tk.RealAmountCents,
			}); err != nil {
				return err
			}
		}
		return nil
	}))
}

// diffOp is one generated operation.
type diffOp struct {
	desc    string
	app     *daodian.App
	use     *daodian.UseRequest
	reverse *daodian.ReverseRequest
	refund  *daodian.RefundRequest
}

// run applies the operation and renders its outcome; it returns the answer too.
func (o *diffOp) run(ctx context.Context, l *daodian.Ledger) (string, any) {
	var res any
	var err error
	switch {
	case o.use != nil:
		res, err = l.Use(ctx, o.app, *o.use)
	case o.reverse != nil:
		res, err = l.Reverse(ctx, o.app, *o.reverse)
	case o.refund != nil:
		res, err = l.Refund(ctx, o.app, *o.refund)
	}
	if err != nil {
		return fmt.Sprintf("error %T: %v", err, err), nil
	}
	return fmt.Sprintf("%+v", res), res
}

// diffGen generates operations, remembering what it has seen to aim at it:
// the uses' ids, the requests sent (to replay them, or send their ids with
// other content), the business times of reversals (to use at exactly them).
type diffGen struct {
	r       *rand.Rand
	clock   *Clock
	n       int
	tickets []daodian.Ticket
	trans   []string
	// byTicket are the use ids of each ticket (a group's id under each of its
	// tickets too).
	byTicket map[string][]string
	uses     []daodian.UseRequest
	revs     []daodian.ReverseRequest
	refunds  []daodian.RefundRequest
	bizes    []time.Time
}

func (g *diffGen) pick(n int) int { return g.r.IntN(n) }

func (g *diffGen) chance(pct int) bool { return g.r.IntN(100) < pct }

func (g *diffGen) app() *daodian.App {
	switch p := g.pick(20); {
	case p < 12:
		return &diffApps[0]
	case p < 15:
		return &diffApps[1]
	case p < 18:
		return &diffApps[2]
	default:
		return &diffApps[3]
	}
}

// bizTime is a caller's business time: none (now), a while ago, or exactly
// (or a nanosecond after) one a reversal was sent with.
func (g *diffGen) bizTime() time.Time {
	now := g.clock.Now()
	switch p := g.pick(10); {
	case p < 6 || len(g.bizes) == 0:
		return time.Time{}
	case p < 8:
		return now.Add(-time.Duration(g.r.Int64N(int64(2 * time.Hour))))
	default:
		b := g.bizes[g.pick(len(g.bizes))]
		if g.chance(50) {
			b = b.Add(time.Nanosecond)
		}
		if b.After(now) {
			return time.Time{}
		}
		return b
	}
}

// transID is a use id to name with a ticket: mostly one of its own uses.
func (g *diffGen) transID(ticketID string) string {
	own := g.byTicket[ticketID]
	switch p := g.pick(20); {
	case p < 13 && len(own) > 0:
		return own[g.pick(len(own))]
	case p < 17 && len(g.trans) > 0:
		return g.trans[g.pick(len(g.trans))]
	case p < 18:
		return "2100000000000999999"
	default:
		return "123"
	}
}

func (g *diffGen) next() *diffOp {
	if g.tickets == nil {
		g.tickets = diffTickets()
	}
	g.n++
	// The clock moves by seconds with nanoseconds, and now and then by hours:
	// across validity starts and ends and the 24 h reversal window.
	if g.chance(1) {
		g.clock.Advance(6 * time.Hour)
	}
	g.clock.Advance(time.Duration(g.r.Int64N(int64(90 * time.Second))))
	tk := g.tickets[g.pick(len(g.tickets))]
	other := g.tickets[g.pick(len(g.tickets))]
	op := &diffOp{app: g.app()}
	id := strconv.Itoa(g.n)
	switch p := g.pick(100); {
	case p < 45:
		if len(g.uses) > 0 && g.chance(15) {
			u := g.uses[g.pick(len(g.uses))]
			if g.chance(40) {
				u.Quantity = u.Quantity%4 + 1 // the same id with other content
			}
			op.use = &u
			op.desc = "use again " + u.RequestID
			break
		}
		u := daodian.UseRequest{RequestID: "u-" + id, ShopID: diffShopIDs[g.pick(len(diffShopIDs))], GmtBiz: g.bizTime()}
		switch q := g.pick(100); {
		case q < 60:
			u.TicketCode = tk.Code
		case q < 85:
			u.TicketID = tk.ID
		case q < 95:
			u.TicketCode, u.TicketID = tk.Code, tk.ID
		case q < 98:
			u.TicketCode, u.TicketID = tk.Code, other.ID
		default:
			u.TicketCode = "999999999999"
		}
		switch q := g.pick(100); {
		case q < 60:
			u.Quantity = 1
		case q < 85:
			u.Quantity = 2
		default:
			u.Quantity = 3 + g.pick(3)
		}
		g.uses = append(g.uses, u)
		op.use = &u
		op.desc = fmt.Sprintf("use %+v", u)
	case p < 82:
		if len(g.revs) > 0 && g.chance(15) {
			r := g.revs[g.pick(len(g.revs))]
			if g.chance(40) {
				r.TicketID = other.ID
			}
			op.reverse = &r
			op.desc = "reverse again " + r.RequestID
			break
		}
		r := daodian.ReverseRequest{RequestID: "r-" + id, TicketID: tk.ID, BizDate: g.bizTime()}
		if g.chance(60) {
			r.TransID = g.transID(r.TicketID)
		}
		if g.chance(2) {
			r.TicketID = "2100000000000888888"
		}
		b := r.BizDate
		if b.IsZero() {
			b = g.clock.Now()
		}
		g.bizes = append(g.bizes, b)
		g.revs = append(g.revs, r)
		op.reverse = &r
		op.desc = fmt.Sprintf("reverse %+v", r)
	default:
		if len(g.refunds) > 0 && g.chance(15) {
			r := g.refunds[g.pick(len(g.refunds))]
			if g.chance(40) {
				r.TransID = g.transID(tk.ID)
			}
			op.refund = &r
			op.desc = "refund again " + r.RequestID
			break
		}
		r := daodian.RefundRequest{RequestID: "f-" + id, TicketCode: tk.Code, TransID: g.transID(tk.ID)}
		if g.chance(3) {
			r.TicketCode = "999999999999"
		}
		g.refunds = append(g.refunds, r)
		op.refund = &r
		op.desc = fmt.Sprintf("refund %+v", r)
	}
	return op
}

// learn remembers the use ids an answer gave: the group's and each ticket's.
func (g *diffGen) learn(res any) {
	u, ok := res.(daodian.UseResult)
	if !ok {
		return
	}
	if g.byTicket == nil {
		g.byTicket = map[string][]string{}
	}
	for _, d := range u.Details {
		g.trans = append(g.trans, d.TransID)
		g.byTicket[d.TicketID] = append(g.byTicket[d.TicketID], d.TransID, u.TransID)
	}
}

// diffState fails the test if the two stores' rows, recorded answers or records
// differ.
func diffState(t *testing.T, ref, got daodian.Store, at int) {
	t.Helper()
	a, b := diffRead(t, ref), diffRead(t, got)
	for _, part := range []string{"tickets", "uses", "fences", "idem", "records"} {
		if !reflect.DeepEqual(a[part], b[part]) {
			var d []string
			diff(&d, part, reflect.ValueOf(a[part]), reflect.ValueOf(b[part]))
			if len(d) > 5 {
				d = d[:5]
			}
			t.Fatalf("after operation %d the stores' %s differ: %v", at, part, d)
		}
	}
}

// diffRead reads what the differential compares.
func diffRead(t *testing.T, s daodian.Store) map[string]any {
	t.Helper()
	ctx := context.Background()
	var tickets []daodian.Ticket
	var uses []daodian.Use
	var fences []daodian.Fence
	var idem []daodian.IdemRecord
	var records []daodian.Record
	must(t, s.View(ctx, func(tx daodian.ReadTx) error {
		tickets, uses, fences, idem, records = nil, nil, nil, nil, nil
		if err := tx.EachTicket(ctx, func(tk *daodian.Ticket) error { tickets = append(tickets, *tk); return nil }); err != nil {
			return err
		}
		if err := tx.EachUse(ctx, func(u *daodian.Use) error { uses = append(uses, *u); return nil }); err != nil {
			return err
		}
		for _, tk := range tickets {
			for _, a := range diffApps {
				f, err := tx.Fence(ctx, tk.ID, a.Key)
				if err == nil {
					fences = append(fences, *f)
				} else if !errors.Is(err, daodian.ErrNotFound) {
					return err
				}
			}
		}
		if err := tx.EachIdem(ctx, func(r *daodian.IdemRecord) error { idem = append(idem, *r); return nil }); err != nil {
			return err
		}
		return tx.EachRecord(ctx, func(r *daodian.Record) error { records = append(records, *r); return nil })
	}))
	return map[string]any{"tickets": tickets, "uses": uses, "fences": fences, "idem": idem, "records": records}
}

// diffKind names an outcome for the run's tally, which shows what the
// sequence exercised.
func diffKind(op *diffOp, out string, res any) string {
	switch r := res.(type) {
	case daodian.UseResult:
		if len(r.Details) > 1 {
			return "use/group"
		}
		return "use/" + r.BizCode
	case daodian.ReverseResult:
		if r.Success {
			return "reverse/ok"
		}
		return "reverse/" + r.ErrorCode
	case daodian.RefundResult:
		return "refund/" + r.BizCode
	}
	kind := "use"
	if op.refund != nil {
		kind = "refund"
	}
	if i := strings.Index(out, "sub_code:"); i >= 0 {
		return kind + "/" + strings.Fields(out[i+len("sub_code:"):])[0]
	}
	if len(out) > 40 {
		out = out[:40]
	}
	return kind + "/" + out
}

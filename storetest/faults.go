package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// RunFaults runs the contract of the fault-rule methods of Store (daodian/faults.go)
// and the Ledger's fault-rule rules as subtests of t. Stores call it beside Run.
func RunFaults(t *testing.T, f Factory) {
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"RoundTrip", testFaultRoundTrip},
		{"Delete", testFaultDelete},
		{"Consume", testFaultConsume},
		{"ConsumeRollsBack", testFaultConsumeRollsBack},
		{"ConcurrentConsume", testFaultConcurrentConsume},
		{"Durable", testFaultDurable},
		{"LedgerAdd", testFaultLedgerAdd},
		{"LedgerBound", testFaultLedgerBound},
		{"LedgerScoped", testFaultLedgerScoped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// faultRule returns a rule with every field set, distinct for each n.
func faultRule(n int) *daodian.FaultRule {
	return &daodian.FaultRule{
		ID:          tid(900000 + n),
		AppKey:      fmt.Sprintf("app-%d", n%3),
		Method:      "alibaba.alsc.daodian.ticket.reserve",
		TicketID:    tid(n),
		TicketCode:  code(n),
		Kind:        daodian.FaultKinds[n%len(daodian.FaultKinds)],
		Count:       n,
		Probability: 0.25 + float64(n%3)/4,
		Code:        n % 2 * 15,
		Wait:        time.Duration(n)*time.Second + 1500*time.Microsecond,
		CreatedAt:   at(n),
	}
}

func putFaults(t *testing.T, s daodian.Store, rules ...*daodian.FaultRule) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, r := range rules {
			if err := tx.PutFaultRule(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

func readFaults(t *testing.T, s daodian.Store) []daodian.FaultRule {
	t.Helper()
	var rules []daodian.FaultRule
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		rules, err = tx.FaultRules(ctx)
		return err
	})
	return rules
}

func testFaultRoundTrip(t *testing.T, f Factory) {
	s := f.Open(t)
	if got := readFaults(t, s); len(got) != 0 {
		t.Fatalf("a new store has %d fault rules", len(got))
	}
	// Put out of order: FaultRules returns id order.
	r3, r1, r2 := faultRule(3), faultRule(1), faultRule(2)
	r2.Method, r2.TicketID, r2.TicketCode, r2.Count, r2.Probability, r2.Code, r2.Wait = "", "", "", 0, 1, 0, 0
	r3.AppKey = "app-\x00\x01-键" // any string an admin may type round-trips
	putFaults(t, s, r3, r1, r2)
	same(t, "rules", []daodian.FaultRule{*r1, *r2, *r3}, readFaults(t, s))

	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutFaultRule(ctx, faultRule(1)) })
	wantErr(t, "put of a repeated id", err, daodian.ErrDuplicate)

	// Read inside an Update too, with the Update's own writes.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.PutFaultRule(ctx, faultRule(4)); err != nil {
			return err
		}
		rules, err := tx.FaultRules(ctx)
		if err == nil && len(rules) != 4 {
			err = fmt.Errorf("%d rules inside the Update, want 4", len(rules))
		}
		return err
	})
}

func testFaultDelete(t *testing.T, f Factory) {
	s := f.Open(t)
	var rules []*daodian.FaultRule
	for i := 1; i <= 6; i++ {
		rules = append(rules, faultRule(i)) // apps app-1, app-2, app-0, app-1, app-2, app-0
	}
	putFaults(t, s, rules...)
	del := func(app, id string) int {
		t.Helper()
		var n int
		update(t, s, func(ctx context.Context, tx daodian.Tx) error {
			var err error
			n, err = tx.DeleteFaultRules(ctx, app, id)
			return err
		})
		return n
	}
	if n := del("app-1", ""); n != 2 {
		t.Fatalf("delete of app-1: %d rules, want 2", n)
	}
	if n := del("", rules[1].ID); n != 1 {
		t.Fatalf("delete by id: %d rules, want 1", n)
	}
	if n := del("app-2", rules[2].ID); n != 0 {
		t.Fatalf("delete of an id under another app: %d rules, want 0", n)
	}
	if n := del("nobody", ""); n != 0 {
		t.Fatalf("delete of an app without rules: %d, want 0", n)
	}
	same(t, "left", []daodian.FaultRule{*rules[2], *rules[4], *rules[5]}, readFaults(t, s))
	if n := del("", ""); n != 3 {
		t.Fatalf("delete of all: %d rules, want 3", n)
	}
	if got := readFaults(t, s); len(got) != 0 {
		t.Fatalf("%d rules left after deleting all", len(got))
	}
}

func consume(t *testing.T, s daodian.Store, id string) bool {
	t.Helper()
	var ok bool
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		var err error
		ok, err = tx.ConsumeFaultRule(ctx, id)
		return err
	})
	return ok
}

func testFaultConsume(t *testing.T, f Factory) {
	s := f.Open(t)
	counted, unlimited := faultRule(3), faultRule(7)
	unlimited.Count = 0
	putFaults(t, s, counted, unlimited)
	for i := 3; i > 0; i-- {
		if !consume(t, s, counted.ID) {
			t.Fatalf("consume with %d left: false", i)
		}
		rules := readFaults(t, s)
		if i > 1 && (len(rules) != 2 || rules[0].Count != i-1) {
			t.Fatalf("after a consume with %d left: %+v", i, rules)
		}
	}
	if rules := readFaults(t, s); len(rules) != 1 || rules[0].ID != unlimited.ID {
		t.Fatalf("a spent rule was not deleted: %+v", rules)
	}
	if consume(t, s, counted.ID) {
		t.Fatal("consume of a spent rule: true")
	}
	if consume(t, s, tid(1)) {
		t.Fatal("consume of an unknown rule: true")
	}
	for range 3 {
		if !consume(t, s, unlimited.ID) {
			t.Fatal("consume of an unlimited rule: false")
		}
	}
	same(t, "unlimited rule", []daodian.FaultRule{*unlimited}, readFaults(t, s))
}

func testFaultConsumeRollsBack(t *testing.T, f Factory) {
	s := f.Open(t)
	r := faultRule(1)
	putFaults(t, s, r)
	errBoom := errors.New("boom")
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if ok, err := tx.ConsumeFaultRule(ctx, r.ID); err != nil || !ok {
			return fmt.Errorf("consume: %v, %v", ok, err)
		}
		return errBoom
	})
	wantErr(t, "failed Update", err, errBoom)
	same(t, "rule after a failed consume", []daodian.FaultRule{*r}, readFaults(t, s))
}

// testFaultConcurrentConsume: a count of N gives exactly N injections however
// many gateways race for them.
func testFaultConcurrentConsume(t *testing.T, f Factory) {
	s := f.Open(t)
	r := faultRule(1)
	r.Count = 25
	putFaults(t, s, r)
	raceConsume(t, r, s)
}

// FaultConsumeAcrossStores checks that two Stores on one ledger (two gateway
// processes, or a server and an admin command) see the fault rule one of them
// adds and, racing to consume it, take exactly its count of injections in all.
func FaultConsumeAcrossStores(t *testing.T, a, b daodian.Store) {
	t.Helper()
	r := faultRule(1)
	r.Count = 30
	putFaults(t, a, r)
	if got := readFaults(t, b); len(got) != 1 || got[0].ID != r.ID {
		t.Fatalf("the other store sees %+v, want the rule just added", got)
	}
	raceConsume(t, r, a, b)
}

// raceConsume consumes r from 60 goroutines spread over stores, and checks that
// exactly r.Count of them got an injection and that the spent rule is gone.
func raceConsume(t *testing.T, r *daodian.FaultRule, stores ...daodian.Store) {
	t.Helper()
	var won atomic.Int32
	var wg sync.WaitGroup
	errs := make(chan error, 60)
	for i := range 60 {
		s := stores[i%len(stores)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx := ctxT(t)
			var ok bool
			err := s.Update(ctx, func(tx daodian.Tx) error {
				var err error
				ok, err = tx.ConsumeFaultRule(ctx, r.ID)
				return err
			})
			if err != nil {
				errs <- err
				return
			}
			if ok {
				won.Add(1)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent consume: %v", err)
	}
	if n := won.Load(); n != int32(r.Count) {
		t.Fatalf("%d consumes succeeded, want exactly %d", n, r.Count)
	}
	for _, s := range stores {
		if got := readFaults(t, s); len(got) != 0 {
			t.Fatalf("a spent rule is left: %+v", got)
		}
	}
}

func testFaultDurable(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("the store cannot be reopened")
	}
	s := f.Open(t)
	r := faultRule(2)
	putFaults(t, s, r)
	s = f.Reopen(t, s)
	same(t, "rules after reopen", []daodian.FaultRule{*r}, readFaults(t, s))
}

func testFaultLedgerAdd(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	tk := w.Issue(1, 1).Tickets[0]
	add := func(r daodian.FaultRule) (*daodian.FaultRule, error) { return w.Ledger.AddFaultRule(w.Ctx, r) }

	// The ticket is resolved both ways; defaults are filled.
	byCode, err := add(daodian.FaultRule{AppKey: w.A.Key, Kind: daodian.FaultHold, TicketCode: tk.Code, Count: 1})
	if err != nil {
		t.Fatal(err)
	}
	if byCode.TicketID != tk.ID || byCode.Probability != 1 || byCode.Wait != daodian.DefaultFaultHold || len(byCode.ID) != 19 {
		t.Fatalf("added rule %+v", byCode)
	}
	byID, err := add(daodian.FaultRule{AppKey: w.A.Key, Kind: daodian.FaultError, TicketID: tk.ID, Probability: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	if byID.TicketCode != tk.Code || byID.Count != 0 || byID.ID <= byCode.ID {
		t.Fatalf("added rule %+v after %s", byID, byCode.ID)
	}
	rules, err := w.Ledger.FaultRules(w.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	same(t, "rules", []daodian.FaultRule{*byCode, *byID}, rules)

	var ip *daodian.InvalidParameter
	for _, bad := range []daodian.FaultRule{
		{Kind: daodian.FaultError},
		{AppKey: "no-such-app", Kind: daodian.FaultError},
		{AppKey: w.A.Key, Kind: "explode"},
		{AppKey: w.A.Key, Kind: daodian.FaultError, TicketID: tid(1)},
		{AppKey: w.A.Key, Kind: daodian.FaultError, TicketCode: "000000000000"},
		{AppKey: w.A.Key, Kind: daodian.FaultError, TicketID: tk.ID, TicketCode: "000000000000"},
		{AppKey: w.A.Key, Kind: daodian.FaultError, Count: -1},
		{AppKey: w.A.Key, Kind: daodian.FaultError, Count: daodian.MaxFaultCount + 1},
		{AppKey: w.A.Key, Kind: daodian.FaultError, Probability: 1.5},
		{AppKey: w.A.Key, Kind: daodian.FaultDelay},
		{AppKey: w.A.Key, Kind: daodian.FaultDelay, Wait: daodian.MaxFaultWait + 1},
		{AppKey: w.A.Key, Kind: daodian.FaultError, Wait: time.Second},
		{AppKey: w.A.Key, Kind: daodian.FaultDelay, Wait: time.Second, Code: 15},
	} {
		if _, err := add(bad); !errors.As(err, &ip) {
			t.Errorf("AddFaultRule(%+v): %v, want an InvalidParameter", bad, err)
		}
	}

	n, err := w.Ledger.ClearFaultRules(w.Ctx, w.B.Key, "")
	if err != nil || n != 0 {
		t.Fatalf("clear of another app: %d, %v", n, err)
	}
	ok, err := w.Ledger.ConsumeFaultRule(w.Ctx, byCode.ID)
	if err != nil || !ok {
		t.Fatalf("consume: %v, %v", ok, err)
	}
	if n, err = w.Ledger.ClearFaultRules(w.Ctx, w.A.Key, ""); err != nil || n != 1 {
		t.Fatalf("clear of app A after its count-1 rule was spent: %d, %v; want 1", n, err)
	}
}

func testFaultLedgerBound(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	update(t, w.Store, func(ctx context.Context, tx daodian.Tx) error {
		for i := range daodian.MaxFaultRules {
			r := faultRule(i + 1)
			r.AppKey = w.A.Key
			if err := tx.PutFaultRule(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	_, err := w.Ledger.AddFaultRule(w.Ctx, daodian.FaultRule{AppKey: w.A.Key, Kind: daodian.FaultError})
	wantErr(t, "add beyond the bound", err, daodian.ErrTooManyFaultRules)
	// A store never hands out more than the bound, even if more were written.
	update(t, w.Store, func(ctx context.Context, tx daodian.Tx) error {
		return tx.PutFaultRule(ctx, faultRule(daodian.MaxFaultRules+1))
	})
	if got := readFaults(t, w.Store); len(got) != daodian.MaxFaultRules {
		t.Fatalf("FaultRules returned %d rules, want the bound %d", len(got), daodian.MaxFaultRules)
	}
}

// testFaultLedgerScoped: a rule added on behalf of one merchant may name only
// that merchant's apps and tickets; another merchant's app or ticket is
// refused exactly like one that does not exist, and nothing is stored.
func testFaultLedgerScoped(t *testing.T, f Factory) {
	w := NewWorld(t, f.Open(t))
	mine := w.Issue(1, 1).Tickets[0]
	o, err := w.Ledger.Issue(w.Ctx, daodian.IssueRequest{MerchantID: M2, Quantity: 1})
	if err != nil {
		t.Fatal(err)
	}
	theirs := o.Tickets[0]
	for _, c := range []struct {
		name string
		r    daodian.FaultRule
		want string // the error, as for a missing app or ticket
	}{
		{"another merchant's app", daodian.FaultRule{AppKey: w.B.Key}, fmt.Sprintf("app_key %q names no app", w.B.Key)},
		{"a missing app", daodian.FaultRule{AppKey: "no-such-app"}, `app_key "no-such-app" names no app`},
		{"another merchant's ticket by id", daodian.FaultRule{AppKey: w.A.Key, TicketID: theirs.ID}, fmt.Sprintf("ticket_id %q names no ticket", theirs.ID)},
		{"another merchant's ticket by code", daodian.FaultRule{AppKey: w.A.Key, TicketCode: theirs.Code}, fmt.Sprintf("ticket_code %q names no ticket", theirs.Code)},
		{"a missing ticket", daodian.FaultRule{AppKey: w.A.Key, TicketCode: "000000000000"}, `ticket_code "000000000000" names no ticket`},
	} {
		c.r.Kind = daodian.FaultError
		if _, err := w.Ledger.AddFaultRuleFor(w.Ctx, M1, c.r); err == nil || err.Error() != c.want {
			t.Errorf("%s: %v, want %q", c.name, err, c.want)
		}
	}
	if rules, err := w.Ledger.FaultRules(w.Ctx); err != nil || len(rules) != 0 {
		t.Fatalf("after refusals: %v, %v", rules, err)
	}
	if r, err := w.Ledger.AddFaultRuleFor(w.Ctx, M1, daodian.FaultRule{AppKey: w.A.Key, Kind: daodian.FaultError, TicketCode: mine.Code}); err != nil || r.TicketID != mine.ID {
		t.Errorf("own app and ticket: %+v, %v", r, err)
	}
	// For every merchant, as AddFaultRule: any app, any ticket.
	if _, err := w.Ledger.AddFaultRuleFor(w.Ctx, "", daodian.FaultRule{AppKey: w.B.Key, Kind: daodian.FaultError, TicketID: mine.ID}); err != nil {
		t.Errorf("unscoped: %v", err)
	}
}

// Package storetest is the one contract every daodian.Store passes, so that the
// embedded and the PostgreSQL stores behave identically:
//
//   - Run: the row-level behaviour of Store, ReadTx and Tx (rows.go: round
//     trips, not-found and duplicate mapping, secrets sealed at rest; scans.go:
//     the scans and reading one's own writes; transactions.go: atomicity,
//     identifiers, durability, concurrency, snapshots);
//   - RunLedger: the business rules of SPEC §4 as daodian.Ledger applies them on
//     the store (idempotency, refusals, reversals, fences, concurrency, the
//     invariants, issuing in bulk);
//   - RunHistory: the records of SPEC §8 (one per change, atomic with it, in
//     commit order, paged, filtered), statements and reconciliation;
//   - RunWebhooks: events and webhooks of SPEC §9 (the records as the outbox,
//     webhooks' stored state, deliveries, redelivery);
//   - RunFaults: the fault rules' storage and their counted consumption;
//   - RunAdminTokens: admin tokens (SPEC §10): stored by hash, scoped, revoked
//     once;
//   - Differential: the same random operations on two stores answer the same
//     and leave the same ledger (PostgreSQL's functions against the Go rules).
//
// A store's test calls each with a Factory:
//
//	func TestContract(t *testing.T) {
//		f := storetest.Factory{Open: ..., Reopen: ...}
//		storetest.Run(t, f)
//		storetest.RunLedger(t, f)
//		storetest.RunHistory(t, f)
//		storetest.RunFaults(t, f)
//		storetest.RunAdminTokens(t, f)
//	}
package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
)

// Factory makes the stores Run tests.
type Factory struct {
	// Open returns a store over a new, empty database. The factory closes it
	// when the test ends (t.Cleanup); Run may close it earlier, so Close must be
	// safe to call twice.
	Open func(t *testing.T) daodian.Store
	// Reopen closes s and returns a new store over the same database, closed by
	// the factory when the test ends. Nil skips the tests that need it.
	Reopen func(t *testing.T, s daodian.Store) daodian.Store
	// StoredSecrets returns an app's secret and previous secret as the store
	// keeps them, read past the store, for the test that they are sealed at
	// rest (SPEC §5.4). Nil skips that part.
	StoredSecrets func(t *testing.T, s daodian.Store, appKey string) (secret, previous string)
}

// Run runs the contract suite as subtests of t.
func Run(t *testing.T, f Factory) {
	if f.Open == nil {
		t.Fatal("storetest: Factory.Open is nil")
	}
	tests := []struct {
		name string
		fn   func(*testing.T, Factory)
	}{
		{"Merchant", testMerchant},
		{"Shop", testShop},
		{"App", testApp},
		{"Listings", testListings},
		{"LedgerListings", testLedgerListings},
		{"AppSecrets", testAppSecrets},
		{"RotateAppSecret", testRotateAppSecret},
		{"Order", testOrder},
		{"Ticket", testTicket},
		{"TicketLimits", testTicketLimits},
		{"TicketMerchant", testTicketMerchant},
		{"SetAvailable", testSetAvailable},
		{"SubOrderTickets", testSubOrderTickets},
		{"UseSiblings", testUseSiblings},
		{"Use", testUse},
		{"MarkReversedRefunded", testMarkReversedRefunded},
		{"LatestActiveUse", testLatestActiveUse},
		{"ActiveUnits", testActiveUnits},
		{"Fence", testFence},
		{"Idem", testIdem},
		{"EachTicket", testEachTicket},
		{"EachUse", testEachUse},
		{"EachIdem", testEachIdem},
		{"EachInUpdate", testEachInUpdate},
		{"Counts", testCounts},
		{"FreshCopies", testFreshCopies},
		{"ReadYourWrites", testReadYourWrites},
		{"UpdateErrorKeepsNothing", testUpdateErrorKeepsNothing},
		{"UpdateDuplicateKeepsNothing", testUpdateDuplicateKeepsNothing},
		{"CancelledContext", testCancelledContext},
		{"NewID", testNewID},
		{"NewIDs", testNewIDs},
		{"InsertOrders", testInsertOrders},
		{"InsertTickets", testInsertTickets},
		{"AppendRecords", testAppendRecords},
		{"BulkWritesKeepNothingOnFailure", testBulkKeepsNothing},
		{"NewIDAbortedNotReused", testNewIDAbortedNotReused},
		{"NewIDAcrossReopen", testNewIDAcrossReopen},
		{"Durable", testDurable},
		{"ConcurrentIncrements", testConcurrentIncrements},
		{"ConcurrentMixedOutcomes", testConcurrentMixedOutcomes},
		{"ViewSnapshot", testViewSnapshot},
		{"Ping", testPing},
		{"Closed", testClosed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, f) })
	}
}

// ---- helpers ----

var errBoom = errors.New("storetest: deliberate failure")

// cst is a non-UTC zone, so that stores are seen to keep instants, not
// wall-clock readings.
var cst = time.FixedZone("CST", 8*3600)

// at returns a time with microsecond precision (the precision every store
// keeps), distinct for each i.
func at(i int) time.Time {
	return time.Date(2025, 3, 14, 15, 9, 26, 0, cst).Add(time.Duration(i)*time.Hour + time.Duration(i*7919+1)*time.Microsecond)
}

func ctxT(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func update(t *testing.T, s daodian.Store, fn func(ctx context.Context, tx daodian.Tx) error) {
	t.Helper()
	ctx := ctxT(t)
	if err := s.Update(ctx, func(tx daodian.Tx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("Update: %v", err)
	}
}

func view(t *testing.T, s daodian.Store, fn func(ctx context.Context, tx daodian.ReadTx) error) {
	t.Helper()
	ctx := ctxT(t)
	if err := s.View(ctx, func(tx daodian.ReadTx) error { return fn(ctx, tx) }); err != nil {
		t.Fatalf("View: %v", err)
	}
}

// updateErr runs an Update and returns its error.
func updateErr(t *testing.T, s daodian.Store, fn func(ctx context.Context, tx daodian.Tx) error) error {
	t.Helper()
	ctx := ctxT(t)
	return s.Update(ctx, func(tx daodian.Tx) error { return fn(ctx, tx) })
}

func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: error %v, want %v", what, err, target)
	}
}

// same reports the differences between want and got: times compare as
// instants, nil and empty slices are equal.
func same(t *testing.T, what string, want, got any) {
	t.Helper()
	var d []string
	diff(&d, what, reflect.ValueOf(want), reflect.ValueOf(got))
	for _, s := range d {
		t.Error(s)
	}
}

var timeType = reflect.TypeFor[time.Time]()

func diff(d *[]string, path string, w, g reflect.Value) {
	if !w.IsValid() || !g.IsValid() {
		if w.IsValid() != g.IsValid() {
			*d = append(*d, fmt.Sprintf("%s: want %v, got %v", path, w, g))
		}
		return
	}
	if w.Type() != g.Type() {
		*d = append(*d, fmt.Sprintf("%s: want type %v, got %v", path, w.Type(), g.Type()))
		return
	}
	if w.Type() == timeType {
		wt, gt := w.Interface().(time.Time), g.Interface().(time.Time)
		if !wt.Equal(gt) || wt.IsZero() != gt.IsZero() {
			*d = append(*d, fmt.Sprintf("%s: want %v, got %v", path, wt, gt))
		}
		return
	}
	switch w.Kind() {
	case reflect.Pointer:
		if w.IsNil() || g.IsNil() {
			if w.IsNil() != g.IsNil() {
				*d = append(*d, fmt.Sprintf("%s: want %v, got %v", path, w, g))
			}
			return
		}
		diff(d, path, w.Elem(), g.Elem())
	case reflect.Struct:
		for i := range w.NumField() {
			name := w.Type().Field(i).Name
			if w.Type().Field(i).Anonymous {
				diff(d, path, w.Field(i), g.Field(i))
				continue
			}
			diff(d, path+"."+name, w.Field(i), g.Field(i))
		}
	case reflect.Slice:
		if w.Len() != g.Len() {
			*d = append(*d, fmt.Sprintf("%s: want %d elements %v, got %d %v", path, w.Len(), w, g.Len(), g))
			return
		}
		for i := range w.Len() {
			diff(d, fmt.Sprintf("%s[%d]", path, i), w.Index(i), g.Index(i))
		}
	default:
		if !reflect.DeepEqual(w.Interface(), g.Interface()) {
			*d = append(*d, fmt.Sprintf("%s: want %#v, got %#v", path, w.Interface(), g.Interface()))
		}
	}
}

// Ids in the 19-digit form the ledger uses; n orders them.
func tid(n int) string  { return fmt.Sprintf("21%017d", n) }
func code(n int) string { return fmt.Sprintf("%012d", 700000000000+n) }

func merchant(n int) *daodian.Merchant {
	return &daodian.Merchant{ID: fmt.Sprintf("M%03d", n), Name: fmt.Sprintf("商户 %d", n)}
}

func order(n int) *daodian.Order {
	return &daodian.Order{
		OrderNo:            fmt.Sprintf("O%06d", n),
		SubOrderNo:         fmt.Sprintf("S%06d", n),
		MerchantID:         "M001",
		BuyerID:            fmt.Sprintf("buyer-%d", n),
		UserPhone:          "*******4139",
		ItemID:             "item-1",
		OutItemID:          "out-item-1",
		ItemName:           "双人套餐",
		OriginalPriceCents: 19900,
		TotalAmountCents:   15900,
		RealAmountCents:    14900,
		CreatedAt:          at(n),
	}
}

func ticket(n int, subOrder string) *daodian.Ticket {
	return &daodian.Ticket{
		ID:                 tid(n),
		Code:               code(n),
		MerchantID:         "M001",
		OrderNo:            "O" + strings.TrimPrefix(subOrder, "S"),
		SubOrderNo:         subOrder,
		ItemID:             "item-1",
		OutItemID:          "out-item-1",
		ItemName:           "双人套餐 · 10 次卡",
		Quantity:           10,
		Available:          7,
		OriginalPriceCents: 19900,
		TotalAmountCents:   15900,
		RealAmountCents:    14900,
		ValidFrom:          at(1),
		ValidTo:            at(1000),
		Status:             daodian.TicketValid,
		CreatedAt:          at(n),
	}
}

func use(n int, ticketID, appKey string, units int) *daodian.Use {
	return &daodian.Use{
		TransID:      tid(500000 + n),
		GroupTransID: tid(400000 + n),
		TicketID:     ticketID,
		AppKey:       appKey,
		RequestID:    fmt.Sprintf("req-use-%d", n),
		ShopID:       "shop-1",
		Units:        units,
		GmtBiz:       at(n),
		CreatedAt:    at(n + 1),
	}
}

func idem(app string, op daodian.Operation, req string) *daodian.IdemRecord {
	return &daodian.IdemRecord{
		IdemKey:     daodian.IdemKey{AppKey: app, Op: op, RequestID: req},
		Fingerprint: "ticket_id=" + tid(1) + "&trans=" + req,
		TicketID:    tid(1),
		Answer:      []byte{'{', 0, 1, 2, 0xff, '}'},
		CreatedAt:   at(3),
	}
}

func insertTickets(t *testing.T, s daodian.Store, tks ...*daodian.Ticket) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, tk := range tks {
			if err := tx.InsertTicket(ctx, tk); err != nil {
				return err
			}
		}
		return nil
	})
}

func insertUses(t *testing.T, s daodian.Store, us ...*daodian.Use) {
	t.Helper()
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, u := range us {
			if err := tx.InsertUse(ctx, u); err != nil {
				return err
			}
		}
		return nil
	})
}

func readTicket(t *testing.T, s daodian.Store, id string) *daodian.Ticket {
	t.Helper()
	var tk *daodian.Ticket
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		tk, err = tx.Ticket(ctx, id)
		return err
	})
	return tk
}

func counts(t *testing.T, s daodian.Store) daodian.Counts {
	t.Helper()
	var c daodian.Counts
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		var err error
		c, err = tx.Counts(ctx)
		return err
	})
	return c
}

// ---- round trips ----

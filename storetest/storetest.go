// Package storetest is the one contract every daodian.Store passes, so that the
// embedded and the PostgreSQL stores behave identically:
//
//   - Run: the row-level behaviour of Store, ReadTx and Tx (round trips,
//     not-found and duplicate mapping, atomicity, isolation, identifiers,
//     secrets sealed at rest);
//   - RunLedger: the business rules of SPEC §4 as daodian.Ledger applies them on
//     the store (idempotency, refusals, reversals, fences, concurrency, the
//     invariants);
//   - RunFaults: the fault rules' storage and their counted consumption;
//   - RunAdminTokens: admin tokens (SPEC §10): stored by hash, scoped, revoked
//     once.
//
// A store's test calls each with a Factory:
//
//	func TestContract(t *testing.T) {
//		f := storetest.Factory{Open: ..., Reopen: ...}
//		storetest.Run(t, f)
//		storetest.RunLedger(t, f)
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
	"sync"
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

func testMerchant(t *testing.T, f Factory) {
	s := f.Open(t)
	m := merchant(1)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutMerchant(ctx, m) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Merchant(ctx, m.ID)
		if err != nil {
			return err
		}
		same(t, "Merchant", m, got)
		_, err = tx.Merchant(ctx, "M999")
		wantErr(t, "Merchant(missing)", err, daodian.ErrNotFound)
		return nil
	})
	// PutMerchant on an existing id updates its name.
	renamed := &daodian.Merchant{ID: m.ID, Name: "renamed"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutMerchant(ctx, renamed) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Merchant(ctx, m.ID)
		if err != nil {
			return err
		}
		same(t, "renamed Merchant", renamed, got)
		return nil
	})
	if c := counts(t, s); c.Merchants != 1 {
		t.Errorf("Counts.Merchants = %d, want 1", c.Merchants)
	}
}

func testShop(t *testing.T, f Factory) {
	s := f.Open(t)
	sh := &daodian.Shop{MerchantID: "M001", ID: "shop-1", Name: "西湖店"}
	other := &daodian.Shop{MerchantID: "M002", ID: "shop-1", Name: "same id, other merchant"}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertShop(ctx, sh); err != nil {
			return err
		}
		return tx.InsertShop(ctx, other)
	})
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: "shop-1", Name: "dup"})
	})
	wantErr(t, "InsertShop(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Shop(ctx, "M001", "shop-1")
		if err != nil {
			return err
		}
		same(t, "Shop", sh, got)
		got, err = tx.Shop(ctx, "M002", "shop-1")
		if err != nil {
			return err
		}
		same(t, "Shop(other merchant)", other, got)
		_, err = tx.Shop(ctx, "M001", "shop-2")
		wantErr(t, "Shop(missing)", err, daodian.ErrNotFound)
		_, err = tx.Shop(ctx, "M003", "shop-1")
		wantErr(t, "Shop(other merchant missing)", err, daodian.ErrNotFound)
		return nil
	})
}

func testApp(t *testing.T, f Factory) {
	s := f.Open(t)
	a := &daodian.App{
		Key:           "app-1",
		Secret:        "s3cr3t-0123456789abcdef",
		Name:          "POS 收银",
		Merchants:     []string{"M001", "M002"},
		Enabled:       true,
		Methods:       []string{"alibaba.alsc.daodian.ticket.reserve", "taobao.time.get"},
		RateLimitPerS: 250,
		CreatedAt:     at(2),
	}
	bare := &daodian.App{Key: "app-2", Secret: "x", Name: "bare"} // empty lists, disabled, zero time
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertApp(ctx, a); err != nil {
			return err
		}
		return tx.InsertApp(ctx, bare)
	})
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.InsertApp(ctx, &daodian.App{Key: "app-1", Secret: "other"})
	})
	wantErr(t, "InsertApp(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.App(ctx, "app-1")
		if err != nil {
			return err
		}
		same(t, "App", a, got)
		got, err = tx.App(ctx, "app-2")
		if err != nil {
			return err
		}
		same(t, "App(bare)", bare, got)
		if !got.CreatedAt.IsZero() {
			t.Errorf("zero CreatedAt read back as %v", got.CreatedAt)
		}
		_, err = tx.App(ctx, "app-9")
		wantErr(t, "App(missing)", err, daodian.ErrNotFound)
		return nil
	})

	// UpdateApp replaces the mutable fields and nothing else.
	changed := &daodian.App{
		Key:           "app-1",
		Secret:        "ignored",
		Name:          "renamed",
		Merchants:     []string{"M003"},
		Enabled:       false,
		Methods:       nil,
		RateLimitPerS: 0,
		CreatedAt:     at(99),
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.UpdateApp(ctx, changed) })
	want := *changed
	want.Secret, want.CreatedAt = a.Secret, a.CreatedAt
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.App(ctx, "app-1")
		if err != nil {
			return err
		}
		same(t, "updated App", &want, got)
		return nil
	})
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.UpdateApp(ctx, &daodian.App{Key: "app-9", Name: "nobody"})
	})
	wantErr(t, "UpdateApp(missing)", err, daodian.ErrNotFound)
}

func testOrder(t *testing.T, f Factory) {
	s := f.Open(t)
	o := order(1)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrder(ctx, o) })
	dup := order(2)
	dup.SubOrderNo = o.SubOrderNo
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertOrder(ctx, dup) })
	wantErr(t, "InsertOrder(duplicate sub-order)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Order(ctx, o.SubOrderNo)
		if err != nil {
			return err
		}
		same(t, "Order", o, got)
		_, err = tx.Order(ctx, "S999999")
		wantErr(t, "Order(missing)", err, daodian.ErrNotFound)
		return nil
	})
}

func testTicket(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	zero := ticket(2, "S000001")
	zero.ValidFrom, zero.ValidTo, zero.CreatedAt = time.Time{}, time.Time{}, time.Time{}
	zero.Status = daodian.TicketRefunded
	zero.Quantity, zero.Available = 1, 0
	insertTickets(t, s, tk, zero)

	dupID := ticket(3, "S000001")
	dupID.ID = tk.ID
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertTicket(ctx, dupID) })
	wantErr(t, "InsertTicket(duplicate id)", err, daodian.ErrDuplicate)
	dupCode := ticket(4, "S000001")
	dupCode.Code = tk.Code
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertTicket(ctx, dupCode) })
	wantErr(t, "InsertTicket(duplicate code)", err, daodian.ErrDuplicate)
	// Issuing relies on this: a taken code is reported, nothing is written, and
	// the transaction goes on to insert the ticket under another code.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, dupCode); !errors.Is(err, daodian.ErrDuplicate) {
			return fmt.Errorf("InsertTicket(duplicate code) in a transaction: %v, want ErrDuplicate", err)
		}
		dupCode.Code = "S000004-second-try"
		return tx.InsertTicket(ctx, dupCode)
	})
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.TicketByCode(ctx, dupCode.Code)
		if err != nil {
			return err
		}
		same(t, "Ticket inserted after a taken code", dupCode, got)
		return nil
	})

	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.Ticket{tk, zero} {
			got, err := tx.Ticket(ctx, want.ID)
			if err != nil {
				return err
			}
			same(t, "Ticket", want, got)
			got, err = tx.TicketByCode(ctx, want.Code)
			if err != nil {
				return err
			}
			same(t, "TicketByCode", want, got)
		}
		_, err := tx.Ticket(ctx, tid(99))
		wantErr(t, "Ticket(missing)", err, daodian.ErrNotFound)
		_, err = tx.TicketByCode(ctx, code(99))
		wantErr(t, "TicketByCode(missing)", err, daodian.ErrNotFound)
		return nil
	})
	got := readTicket(t, s, zero.ID)
	if !got.ValidFrom.IsZero() || !got.ValidTo.IsZero() || !got.CreatedAt.IsZero() {
		t.Errorf("zero times read back as %v, %v, %v", got.ValidFrom, got.ValidTo, got.CreatedAt)
	}
	if c := counts(t, s); c.Tickets != 3 {
		t.Errorf("Counts.Tickets = %d, want 3 (two, and the one inserted after a taken code)", c.Tickets)
	}
}

// testTicketMerchant: a ticket's merchant, read in a View and inside an Update
// that holds another ticket, including a ticket that Update itself inserted.
func testTicketMerchant(t *testing.T, f Factory) {
	s := f.Open(t)
	a, b := ticket(1, "S000001"), ticket(2, "S000002")
	b.MerchantID = "m\x00 商户"
	insertTickets(t, s, a, b)
	check := func(ctx context.Context, tx daodian.ReadTx, tk *daodian.Ticket) error {
		got, err := tx.TicketMerchant(ctx, tk.ID)
		if err != nil {
			return fmt.Errorf("TicketMerchant(%s): %w", tk.ID, err)
		}
		if got != tk.MerchantID {
			t.Errorf("TicketMerchant(%s) = %q, want %q", tk.ID, got, tk.MerchantID)
		}
		return nil
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		if err := check(ctx, tx, a); err != nil {
			return err
		}
		_, err := tx.TicketMerchant(ctx, tid(99))
		wantErr(t, "TicketMerchant(missing)", err, daodian.ErrNotFound)
		return check(ctx, tx, b)
	})
	c := ticket(3, "S000003")
	c.MerchantID = "M003"
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if _, err := tx.Ticket(ctx, a.ID); err != nil {
			return err
		}
		if err := check(ctx, tx, b); err != nil {
			return err
		}
		if _, err := tx.TicketMerchant(ctx, tid(99)); !errors.Is(err, daodian.ErrNotFound) {
			return fmt.Errorf("TicketMerchant(missing) in Update: %v, want ErrNotFound", err)
		}
		if err := tx.InsertTicket(ctx, c); err != nil {
			return err
		}
		return check(ctx, tx, c)
	})
}

// testTicketLimits round-trips the extremes of every field.
func testTicketLimits(t *testing.T, f Factory) {
	s := f.Open(t)
	long := strings.Repeat("长", daodian.MaxNameLen)
	tk := &daodian.Ticket{
		ID:                 "9223372036854775807",
		Code:               "000000000000",
		MerchantID:         strings.Repeat("m", daodian.MaxShopIDLen),
		OrderNo:            "O'; DROP TABLE tickets; --",
		SubOrderNo:         "S\twith\x1fcontrol\u2028chars", // no NUL: PostgreSQL text cannot hold it
		ItemID:             "",
		OutItemID:          "🎟️",
		ItemName:           long,
		Quantity:           daodian.MaxQuantity,
		Available:          daodian.MaxQuantity,
		OriginalPriceCents: 1<<63 - 1,
		TotalAmountCents:   -1 << 63,
		RealAmountCents:    0,
		ValidFrom:          time.Date(1999, 12, 31, 23, 59, 59, 999999000, time.UTC),
		ValidTo:            time.Date(2199, 1, 1, 0, 0, 0, 1000, cst),
		Status:             daodian.TicketCancelled,
		CreatedAt:          time.Date(1969, 7, 20, 20, 17, 40, 0, time.UTC), // before the epoch
	}
	insertTickets(t, s, tk)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		same(t, "Ticket", tk, got)
		list, err := tx.SubOrderTickets(ctx, tk.SubOrderNo)
		if err != nil {
			return err
		}
		if len(list) != 1 {
			t.Fatalf("SubOrderTickets = %d tickets, want 1", len(list))
		}
		same(t, "SubOrderTickets[0]", tk, &list[0])
		return nil
	})
}

func testSetAvailable(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, 3) })
	if got := readTicket(t, s, tk.ID); got.Available != 3 {
		t.Errorf("Available = %d, want 3", got.Available)
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, tk.Quantity) })
	if got := readTicket(t, s, tk.ID); got.Available != tk.Quantity {
		t.Errorf("Available = %d, want %d", got.Available, tk.Quantity)
	}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, 0) })
	if got := readTicket(t, s, tk.ID); got.Available != 0 {
		t.Errorf("Available = %d, want 0", got.Available)
	}
	// The store refuses what would break 0 ≤ available ≤ quantity.
	for _, bad := range []int{-1, tk.Quantity + 1} {
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tk.ID, bad) })
		if err == nil {
			t.Errorf("SetAvailable(%d) with quantity %d succeeded", bad, tk.Quantity)
		}
	}
	if got := readTicket(t, s, tk.ID); got.Available != 0 {
		t.Errorf("after refused SetAvailable: Available = %d, want 0", got.Available)
	}
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.SetAvailable(ctx, tid(99), 1) })
	wantErr(t, "SetAvailable(missing)", err, daodian.ErrNotFound)
}

func testSubOrderTickets(t *testing.T, f Factory) {
	s := f.Open(t)
	// Inserted out of id order, with another sub-order's tickets in between.
	var tks []*daodian.Ticket
	for _, n := range []int{30, 10, 50, 20, 40} {
		tks = append(tks, ticket(n, "S000001"))
		tks = append(tks, ticket(n+1, "S000002"))
	}
	insertTickets(t, s, tks...)
	var want []daodian.Ticket
	for _, n := range []int{10, 20, 30, 40, 50} {
		want = append(want, *ticket(n, "S000001"))
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.SubOrderTickets(ctx, "S000001")
		if err != nil {
			return err
		}
		same(t, "SubOrderTickets", want, got)
		got, err = tx.SubOrderTickets(ctx, "S999999")
		if err != nil {
			t.Errorf("SubOrderTickets(unknown) error: %v", err)
		}
		if len(got) != 0 {
			t.Errorf("SubOrderTickets(unknown) = %d tickets, want 0", len(got))
		}
		return nil
	})
	// A full sub-order.
	var full []*daodian.Ticket
	for i := range daodian.MaxTicketsPerOrder {
		full = append(full, ticket(1000+i, "S000003"))
	}
	insertTickets(t, s, full...)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.SubOrderTickets(ctx, "S000003")
		if err != nil {
			return err
		}
		if len(got) != daodian.MaxTicketsPerOrder {
			t.Errorf("SubOrderTickets(full) = %d tickets, want %d", len(got), daodian.MaxTicketsPerOrder)
		}
		return nil
	})
}

func testUse(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	u := use(1, tk.ID, "app-1", 2)
	// A use may be recorded with its reversal and refund fields already set (an
	// import): they round-trip too.
	full := use(2, tk.ID, "app-1", 1)
	full.Reversed, full.ReversedAt, full.ReversalAppKey, full.ReversalRequestID, full.ReversalBizDate =
		true, at(5), "app-2", "req-rev-2", at(6)
	full.Refunded, full.RefundedAt, full.RefundAppKey, full.RefundRequestID = true, at(7), "app-3", "req-ref-2"
	insertUses(t, s, u, full)

	dup := use(3, tk.ID, "app-1", 1)
	dup.TransID = u.TransID
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.InsertUse(ctx, dup) })
	wantErr(t, "InsertUse(duplicate trans id)", err, daodian.ErrDuplicate)

	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.Use{u, full} {
			got, err := tx.Use(ctx, want.TransID)
			if err != nil {
				return err
			}
			same(t, "Use", want, got)
			got, err = tx.GroupUse(ctx, want.GroupTransID, want.TicketID)
			if err != nil {
				return err
			}
			same(t, "GroupUse", want, got)
		}
		_, err := tx.Use(ctx, tid(999))
		wantErr(t, "Use(missing)", err, daodian.ErrNotFound)
		_, err = tx.GroupUse(ctx, u.GroupTransID, tid(999))
		wantErr(t, "GroupUse(other ticket)", err, daodian.ErrNotFound)
		_, err = tx.GroupUse(ctx, tid(999), u.TicketID)
		wantErr(t, "GroupUse(missing group)", err, daodian.ErrNotFound)
		return nil
	})

	// A group use: one row per ticket, sharing the group id.
	t2 := ticket(2, "S000001")
	insertTickets(t, s, t2)
	g1 := use(10, tk.ID, "app-1", 1)
	g2 := use(11, t2.ID, "app-1", 1)
	g2.GroupTransID = g1.GroupTransID
	insertUses(t, s, g1, g2)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.Use{g1, g2} {
			got, err := tx.GroupUse(ctx, g1.GroupTransID, want.TicketID)
			if err != nil {
				return err
			}
			same(t, "GroupUse(group)", want, got)
		}
		return nil
	})
}

func testMarkReversedRefunded(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	u := use(1, tk.ID, "app-1", 2)
	insertUses(t, s, u)

	rev := *u
	rev.Reversed, rev.ReversedAt, rev.ReversalAppKey, rev.ReversalRequestID, rev.ReversalBizDate =
		true, at(10), "app-2", "req-rev-1", at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, &rev) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Use(ctx, u.TransID)
		if err != nil {
			return err
		}
		same(t, "reversed Use", &rev, got)
		return nil
	})

	// MarkRefunded stores the refund fields and keeps the reversal ones.
	ref := rev
	ref.Refunded, ref.RefundedAt, ref.RefundAppKey, ref.RefundRequestID = true, at(11), "app-3", "req-ref-1"
	onlyRefund := *u // the refund fields on an otherwise stale copy
	onlyRefund.Refunded, onlyRefund.RefundedAt, onlyRefund.RefundAppKey, onlyRefund.RefundRequestID =
		ref.Refunded, ref.RefundedAt, ref.RefundAppKey, ref.RefundRequestID
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, &onlyRefund) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Use(ctx, u.TransID)
		if err != nil {
			return err
		}
		same(t, "refunded Use", &ref, got)
		return nil
	})

	missing := use(99, tk.ID, "app-1", 1)
	missing.Reversed, missing.Refunded = true, true
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, missing) })
	wantErr(t, "MarkReversed(missing)", err, daodian.ErrNotFound)
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, missing) })
	wantErr(t, "MarkRefunded(missing)", err, daodian.ErrNotFound)
}

func testLatestActiveUse(t *testing.T, f Factory) {
	s := f.Open(t)
	t1, t2 := ticket(1, "S000001"), ticket(2, "S000001")
	insertTickets(t, s, t1, t2)
	// Inserted out of id order: "latest" is the highest transaction id.
	u5 := use(5, t1.ID, "app-a", 1)
	u3 := use(3, t1.ID, "app-a", 1)
	u7 := use(7, t1.ID, "app-a", 1)
	u9 := use(9, t1.ID, "app-b", 1) // highest, other app
	u8 := use(8, t2.ID, "app-a", 1) // other ticket
	insertUses(t, s, u5, u9, u3, u7, u8)

	latest := func(ticketID, app string) (*daodian.Use, error) {
		var u *daodian.Use
		err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
			var err error
			u, err = tx.LatestActiveUse(context.Background(), ticketID, app)
			return err
		})
		return u, err
	}
	check := func(what, ticketID, app string, want *daodian.Use) {
		t.Helper()
		got, err := latest(ticketID, app)
		if want == nil {
			wantErr(t, what, err, daodian.ErrNotFound)
			return
		}
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		same(t, what, want, got)
	}
	check("latest(t1, a)", t1.ID, "app-a", u7)
	check("latest(t1, b)", t1.ID, "app-b", u9)
	check("latest(t2, a)", t2.ID, "app-a", u8)
	check("latest(t2, b)", t2.ID, "app-b", nil)
	check("latest(missing ticket)", tid(99), "app-a", nil)

	reverse := func(u *daodian.Use) {
		t.Helper()
		u.Reversed, u.ReversedAt, u.ReversalAppKey, u.ReversalRequestID = true, at(20), u.AppKey, "rev-"+u.TransID
		update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, u) })
	}
	reverse(u7)
	check("after reversing u7", t1.ID, "app-a", u5)
	// A refunded use is still active.
	u5.Refunded, u5.RefundedAt, u5.RefundAppKey, u5.RefundRequestID = true, at(21), "app-a", "ref-5"
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, u5) })
	check("after refunding u5", t1.ID, "app-a", u5)
	reverse(u3)
	check("after reversing u3", t1.ID, "app-a", u5)
	reverse(u5)
	check("after reversing all of app-a", t1.ID, "app-a", nil)
	check("app-b untouched", t1.ID, "app-b", u9)
}

func testActiveUnits(t *testing.T, f Factory) {
	s := f.Open(t)
	t1, t2 := ticket(1, "S000001"), ticket(2, "S000001")
	insertTickets(t, s, t1, t2)
	active := func(id string) int {
		t.Helper()
		var n int
		view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
			var err error
			n, err = tx.ActiveUnits(ctx, id)
			return err
		})
		return n
	}
	if n := active(t1.ID); n != 0 {
		t.Errorf("ActiveUnits(no uses) = %d, want 0", n)
	}
	if n := active(tid(99)); n != 0 {
		t.Errorf("ActiveUnits(missing ticket) = %d, want 0", n)
	}
	a, b, c := use(1, t1.ID, "app-a", 2), use(2, t1.ID, "app-b", 3), use(3, t1.ID, "app-a", 5)
	other := use(4, t2.ID, "app-a", 4)
	insertUses(t, s, a, b, c, other)
	if n := active(t1.ID); n != 10 {
		t.Errorf("ActiveUnits = %d, want 10", n)
	}
	b.Reversed, b.ReversedAt = true, at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkReversed(ctx, b) })
	if n := active(t1.ID); n != 7 {
		t.Errorf("ActiveUnits after a reversal = %d, want 7", n)
	}
	a.Refunded, a.RefundedAt = true, at(9)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.MarkRefunded(ctx, a) })
	if n := active(t1.ID); n != 7 {
		t.Errorf("ActiveUnits after a refund = %d, want 7 (refunded units stay consumed)", n)
	}
	if n := active(t2.ID); n != 4 {
		t.Errorf("ActiveUnits(other ticket) = %d, want 4", n)
	}
}

func testFence(t *testing.T, f Factory) {
	s := f.Open(t)
	fe := &daodian.Fence{TicketID: tid(1), AppKey: "app-a", At: at(4), RequestID: "rev-1", CreatedAt: at(5)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutFence(ctx, fe) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Fence(ctx, fe.TicketID, fe.AppKey)
		if err != nil {
			return err
		}
		same(t, "Fence", fe, got)
		_, err = tx.Fence(ctx, fe.TicketID, "app-b")
		wantErr(t, "Fence(other app)", err, daodian.ErrNotFound)
		_, err = tx.Fence(ctx, tid(2), fe.AppKey)
		wantErr(t, "Fence(other ticket)", err, daodian.ErrNotFound)
		return nil
	})
	// PutFence replaces.
	moved := &daodian.Fence{TicketID: tid(1), AppKey: "app-a", At: at(8), RequestID: "rev-2", CreatedAt: at(9)}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutFence(ctx, moved) })
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		got, err := tx.Fence(ctx, fe.TicketID, fe.AppKey)
		if err != nil {
			return err
		}
		same(t, "replaced Fence", moved, got)
		return nil
	})
	if c := counts(t, s); c.Fences != 1 {
		t.Errorf("Counts.Fences = %d, want 1", c.Fences)
	}
}

func testIdem(t *testing.T, f Factory) {
	s := f.Open(t)
	rec := idem("app-a", daodian.OpReverse, "req-1")
	empty := idem("app-a", daodian.OpUse, "req-1") // same request id, other operation
	empty.Answer, empty.TicketID, empty.Fingerprint = nil, "", ""
	otherApp := idem("app-b", daodian.OpReverse, "req-1")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for _, r := range []*daodian.IdemRecord{rec, empty, otherApp} {
			if err := tx.PutIdem(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	dup := idem("app-a", daodian.OpReverse, "req-1")
	dup.Answer, dup.Fingerprint = []byte("other"), "other"
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error { return tx.PutIdem(ctx, dup) })
	wantErr(t, "PutIdem(duplicate)", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for _, want := range []*daodian.IdemRecord{rec, empty, otherApp} {
			got, err := tx.Idem(ctx, want.IdemKey)
			if err != nil {
				return err
			}
			same(t, "Idem", want, got)
		}
		_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "app-a", Op: daodian.OpRefund, RequestID: "req-1"})
		wantErr(t, "Idem(missing)", err, daodian.ErrNotFound)
		return nil
	})
}

// ---- walks and counts ----

func testEachTicket(t *testing.T, f Factory) {
	s := f.Open(t)
	var want []string
	var tks []*daodian.Ticket
	for _, n := range []int{5, 3, 9, 1, 7} {
		tks = append(tks, ticket(n, fmt.Sprintf("S%06d", n%2)))
	}
	insertTickets(t, s, tks...)
	for _, n := range []int{1, 3, 5, 7, 9} {
		want = append(want, tid(n))
	}
	var got []string
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			got = append(got, tk.ID)
			if tk.ID == tid(3) {
				same(t, "EachTicket row", ticket(3, "S000001"), tk)
			}
			return nil
		})
	})
	same(t, "EachTicket order", want, got)

	// fn's error stops the walk and is returned.
	n := 0
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachTicket(context.Background(), func(*daodian.Ticket) error {
			n++
			if n == 2 {
				return errBoom
			}
			return nil
		})
	})
	wantErr(t, "EachTicket stopped", err, errBoom)
	if n != 2 {
		t.Errorf("EachTicket called fn %d times after it failed on the 2nd, want 2", n)
	}
	// An empty table.
	empty := f.Open(t)
	view(t, empty, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachTicket(ctx, func(*daodian.Ticket) error {
			t.Error("EachTicket on an empty store called fn")
			return nil
		})
	})
}

func testEachUse(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	var us []*daodian.Use
	for _, n := range []int{4, 2, 8, 6} {
		us = append(us, use(n, tk.ID, "app-a", 1))
	}
	us[1].Reversed, us[1].ReversedAt = true, at(30)
	insertUses(t, s, us...)
	var got []*daodian.Use
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachUse(ctx, func(u *daodian.Use) error {
			got = append(got, u)
			return nil
		})
	})
	want := []*daodian.Use{us[1], us[0], us[3], us[2]}
	same(t, "EachUse", want, got)
	n := 0
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachUse(context.Background(), func(*daodian.Use) error {
			n++
			return errBoom
		})
	})
	wantErr(t, "EachUse stopped", err, errBoom)
	if n != 1 {
		t.Errorf("EachUse called fn %d times after it failed on the 1st", n)
	}
}

func testEachIdem(t *testing.T, f Factory) {
	s := f.Open(t)
	want := map[daodian.IdemKey]*daodian.IdemRecord{}
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range 50 {
			ops := []daodian.Operation{daodian.OpUse, daodian.OpReverse, daodian.OpRefund}
			r := idem(fmt.Sprintf("app-%d", i%3), ops[i/3%3], fmt.Sprintf("req-%d", i))
			want[r.IdemKey] = r
			if err := tx.PutIdem(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
	seen := map[daodian.IdemKey]bool{}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		return tx.EachIdem(ctx, func(r *daodian.IdemRecord) error {
			w, ok := want[r.IdemKey]
			if !ok {
				t.Errorf("EachIdem: unexpected %v", r.IdemKey)
				return nil
			}
			if seen[r.IdemKey] {
				t.Errorf("EachIdem: %v twice", r.IdemKey)
			}
			seen[r.IdemKey] = true
			same(t, "EachIdem row", w, r)
			return nil
		})
	})
	if len(seen) != len(want) {
		t.Errorf("EachIdem visited %d records, want %d", len(seen), len(want))
	}
	err := s.View(ctxT(t), func(tx daodian.ReadTx) error {
		return tx.EachIdem(context.Background(), func(*daodian.IdemRecord) error { return errBoom })
	})
	wantErr(t, "EachIdem stopped", err, errBoom)
}

// testEachInUpdate walks inside an Update, which sees its own writes.
func testEachInUpdate(t *testing.T, f Factory) {
	s := f.Open(t)
	insertTickets(t, s, ticket(1, "S000001"))
	var ids []string
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, ticket(2, "S000001")); err != nil {
			return err
		}
		return tx.EachTicket(ctx, func(tk *daodian.Ticket) error {
			ids = append(ids, tk.ID)
			return nil
		})
	})
	same(t, "EachTicket in Update", []string{tid(1), tid(2)}, ids)
}

func testCounts(t *testing.T, f Factory) {
	s := f.Open(t)
	same(t, "Counts(empty)", daodian.Counts{}, counts(t, s))
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		for i := range 2 {
			if err := tx.InsertApp(ctx, &daodian.App{Key: fmt.Sprintf("app-%d", i)}); err != nil {
				return err
			}
		}
		for i := range 3 {
			if err := tx.PutMerchant(ctx, merchant(i)); err != nil {
				return err
			}
		}
		for i := range 4 {
			if err := tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: fmt.Sprintf("shop-%d", i)}); err != nil {
				return err
			}
		}
		for i := range 5 {
			if err := tx.InsertOrder(ctx, order(i)); err != nil {
				return err
			}
		}
		for i := range 6 {
			if err := tx.InsertTicket(ctx, ticket(i, "S000001")); err != nil {
				return err
			}
		}
		for i := range 7 {
			if err := tx.InsertUse(ctx, use(i, tid(0), "app-0", 1)); err != nil {
				return err
			}
		}
		for i := range 8 {
			if err := tx.PutFence(ctx, &daodian.Fence{TicketID: tid(i), AppKey: "app-0", At: at(i)}); err != nil {
				return err
			}
		}
		for i := range 9 {
			if err := tx.PutIdem(ctx, idem("app-0", daodian.OpUse, fmt.Sprint(i))); err != nil {
				return err
			}
		}
		return nil
	})
	same(t, "Counts", daodian.Counts{Apps: 2, Merchants: 3, Shops: 4, Orders: 5, Tickets: 6, Uses: 7, Fences: 8, Idem: 9}, counts(t, s))
}

// testFreshCopies checks that callers own what reads return.
func testFreshCopies(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	insertTickets(t, s, tk)
	a := &daodian.App{Key: "app-1", Merchants: []string{"M001"}, Methods: []string{"m"}}
	rec := idem("app-1", daodian.OpUse, "r")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertApp(ctx, a); err != nil {
			return err
		}
		return tx.PutIdem(ctx, rec)
	})
	// Mutating what was written must not reach the store either.
	a.Merchants[0], rec.Answer[0], tk.Available = "changed", 'X', 0
	for range 2 {
		view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
			gotT, err := tx.Ticket(ctx, tk.ID)
			if err != nil {
				return err
			}
			gotA, err := tx.App(ctx, "app-1")
			if err != nil {
				return err
			}
			gotR, err := tx.Idem(ctx, rec.IdemKey)
			if err != nil {
				return err
			}
			if gotT.Available != 7 || gotA.Merchants[0] != "M001" || gotR.Answer[0] != '{' {
				t.Errorf("store shares memory with its callers: available %d, merchant %q, answer %q",
					gotT.Available, gotA.Merchants[0], gotR.Answer)
			}
			gotT.Available, gotA.Merchants[0], gotA.Methods[0], gotR.Answer[0] = 99, "mutated", "mutated", 'Y'
			list, err := tx.SubOrderTickets(ctx, tk.SubOrderNo)
			if err != nil {
				return err
			}
			list[0].Available = 99
			return nil
		})
	}
}

func testReadYourWrites(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, tk); err != nil {
			return err
		}
		if err := tx.SetAvailable(ctx, tk.ID, 2); err != nil {
			return err
		}
		got, err := tx.Ticket(ctx, tk.ID)
		if err != nil {
			return err
		}
		if got.Available != 2 {
			t.Errorf("Ticket inside the Update that set it: available %d, want 2", got.Available)
		}
		u := use(1, tk.ID, "app-a", 5)
		if err := tx.InsertUse(ctx, u); err != nil {
			return err
		}
		n, err := tx.ActiveUnits(ctx, tk.ID)
		if err != nil {
			return err
		}
		if n != 5 {
			t.Errorf("ActiveUnits inside the Update: %d, want 5", n)
		}
		l, err := tx.LatestActiveUse(ctx, tk.ID, "app-a")
		if err != nil {
			return err
		}
		same(t, "LatestActiveUse inside the Update", u, l)
		return nil
	})
}

// ---- atomicity ----

// writeEverything writes one row of every kind.
func writeEverything(ctx context.Context, tx daodian.Tx, n int) error {
	tk := ticket(n, fmt.Sprintf("S%06d", n))
	for _, err := range []func() error{
		func() error { return tx.PutMerchant(ctx, merchant(n)) },
		func() error { return tx.InsertShop(ctx, &daodian.Shop{MerchantID: "M001", ID: fmt.Sprint("shop-", n)}) },
		func() error { return tx.InsertApp(ctx, &daodian.App{Key: fmt.Sprint("app-", n)}) },
		func() error { return tx.InsertOrder(ctx, order(n)) },
		func() error { return tx.InsertTicket(ctx, tk) },
		func() error { return tx.InsertUse(ctx, use(n, tk.ID, "app-a", 1)) },
		func() error { return tx.SetAvailable(ctx, tk.ID, 6) },
		func() error { return tx.PutFence(ctx, &daodian.Fence{TicketID: tk.ID, AppKey: "app-a", At: at(n)}) },
		func() error { return tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", n))) },
	} {
		if err := err(); err != nil {
			return err
		}
	}
	return nil
}

func testUpdateErrorKeepsNothing(t *testing.T, f Factory) {
	s := f.Open(t)
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := writeEverything(ctx, tx, 1); err != nil {
			return err
		}
		return fmt.Errorf("wrapped: %w", errBoom)
	})
	wantErr(t, "Update returning an error", err, errBoom)
	same(t, "Counts after a failed Update", daodian.Counts{}, counts(t, s))
	// fn's own sentinel errors come back as they are.
	err = updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		_, err := tx.Ticket(ctx, tid(1))
		return err
	})
	wantErr(t, "Update returning ErrNotFound", err, daodian.ErrNotFound)
	// The store is still usable, and a later Update keeps everything.
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return writeEverything(ctx, tx, 2) })
	same(t, "Counts after a good Update",
		daodian.Counts{Apps: 1, Merchants: 1, Shops: 1, Orders: 1, Tickets: 1, Uses: 1, Fences: 1, Idem: 1}, counts(t, s))
	if got := readTicket(t, s, tid(2)); got.Available != 6 {
		t.Errorf("Available = %d, want 6", got.Available)
	}
}

func testUpdateDuplicateKeepsNothing(t *testing.T, f Factory) {
	s := f.Open(t)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		return tx.PutIdem(ctx, idem("app-a", daodian.OpReverse, "req-1"))
	})
	// A reversal whose idempotency record collides: its other writes go too.
	tk := ticket(1, "S000001")
	err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
		if err := tx.InsertTicket(ctx, tk); err != nil {
			return err
		}
		return tx.PutIdem(ctx, idem("app-a", daodian.OpReverse, "req-1"))
	})
	wantErr(t, "Update with a duplicate idempotency key", err, daodian.ErrDuplicate)
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		_, err := tx.Ticket(ctx, tk.ID)
		wantErr(t, "ticket of the failed Update", err, daodian.ErrNotFound)
		return nil
	})
}

func testCancelledContext(t *testing.T, f Factory) {
	s := f.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := s.Update(ctx, func(tx daodian.Tx) error {
		return tx.PutMerchant(context.Background(), merchant(1))
	})
	if err == nil {
		t.Fatal("Update with a cancelled context succeeded")
	}
	wantErr(t, "Update with a cancelled context", err, daodian.ErrTransient)
	dctx, dcancel := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer dcancel()
	err = s.Update(dctx, func(tx daodian.Tx) error {
		return tx.PutMerchant(context.Background(), merchant(2))
	})
	wantErr(t, "Update past its deadline", err, daodian.ErrTransient)
	if c := counts(t, s); c.Merchants != 0 {
		t.Errorf("an Update with a dead context wrote %d merchants", c.Merchants)
	}
}

// ---- identifiers ----

func checkID(t *testing.T, id string) {
	t.Helper()
	if len(id) != 19 || id < "2100000000000000000" || strings.Trim(id, "0123456789") != "" {
		t.Fatalf("NewID = %q, want 19 decimal digits from 2100000000000000000", id)
	}
}

func newIDs(t *testing.T, s daodian.Store, n int) []string {
	t.Helper()
	var ids []string
	update(t, s, func(ctx context.Context, tx daodian.Tx) error {
		ids = ids[:0]
		for range n {
			id, err := tx.NewID(ctx)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	return ids
}

func testNewID(t *testing.T, f Factory) {
	s := f.Open(t)
	const goroutines, updates, perUpdate = 50, 20, 10 // 10 000 ids
	var (
		mu  sync.Mutex
		all = map[string]bool{}
		wg  sync.WaitGroup
	)
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range updates {
				var ids []string
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					ids = ids[:0]
					for range perUpdate {
						id, err := tx.NewID(context.Background())
						if err != nil {
							return err
						}
						ids = append(ids, id)
					}
					return nil
				})
				if err != nil {
					errs <- err
					return
				}
				// Within a transaction ids increase: the latest use of a ticket
				// is the one with the greatest id.
				for i, id := range ids {
					if i > 0 && id <= ids[i-1] {
						errs <- fmt.Errorf("ids not increasing within a transaction: %s after %s", id, ids[i-1])
						return
					}
				}
				mu.Lock()
				for _, id := range ids {
					if all[id] {
						errs <- fmt.Errorf("NewID returned %s twice", id)
					}
					all[id] = true
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(all) != goroutines*updates*perUpdate {
		t.Fatalf("%d distinct ids, want %d", len(all), goroutines*updates*perUpdate)
	}
	for id := range all {
		checkID(t, id)
	}
}

func testNewIDAbortedNotReused(t *testing.T, f Factory) {
	s := f.Open(t)
	seen := map[string]bool{}
	for i := range 20 {
		var ids []string
		err := updateErr(t, s, func(ctx context.Context, tx daodian.Tx) error {
			ids = ids[:0]
			for range 3 {
				id, err := tx.NewID(ctx)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			if i%2 == 0 {
				return errBoom
			}
			return nil
		})
		if err != nil && !errors.Is(err, errBoom) {
			t.Fatal(err)
		}
		for _, id := range ids {
			checkID(t, id)
			if seen[id] {
				t.Fatalf("id %s handed out again after the Update that got it failed", id)
			}
			seen[id] = true
		}
	}
}

func testNewIDAcrossReopen(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("no Reopen")
	}
	s := f.Open(t)
	seen := map[string]bool{}
	for round := range 3 {
		for _, id := range newIDs(t, s, 50) {
			checkID(t, id)
			if seen[id] {
				t.Fatalf("round %d: id %s handed out before a reopen and again after", round, id)
			}
			seen[id] = true
		}
		s = f.Reopen(t, s)
	}
}

func testDurable(t *testing.T, f Factory) {
	if f.Reopen == nil {
		t.Skip("no Reopen")
	}
	s := f.Open(t)
	update(t, s, func(ctx context.Context, tx daodian.Tx) error { return writeEverything(ctx, tx, 1) })
	s = f.Reopen(t, s)
	same(t, "Counts after reopen",
		daodian.Counts{Apps: 1, Merchants: 1, Shops: 1, Orders: 1, Tickets: 1, Uses: 1, Fences: 1, Idem: 1}, counts(t, s))
	want := ticket(1, "S000001")
	want.Available = 6
	got := readTicket(t, s, want.ID)
	same(t, "Ticket after reopen", want, got)
}

// ---- concurrency ----

// testConcurrentIncrements: read-modify-write of one ticket from 64 goroutines
// loses no update, because a Tx's reads of a ticket hold it until the end.
func testConcurrentIncrements(t *testing.T, f Factory) {
	s := f.Open(t)
	tk := ticket(1, "S000001")
	tk.Quantity, tk.Available = daodian.MaxQuantity, 0
	insertTickets(t, s, tk)
	const goroutines, each = 64, 10
	var wg sync.WaitGroup
	errs := make(chan error, goroutines)
	for range goroutines {
		wg.Go(func() {
			for range each {
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					cur, err := tx.Ticket(context.Background(), tk.ID)
					if err != nil {
						return err
					}
					return tx.SetAvailable(context.Background(), tk.ID, cur.Available+1)
				})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if got := readTicket(t, s, tk.ID); got.Available != goroutines*each {
		t.Fatalf("Available = %d after %d increments", got.Available, goroutines*each)
	}
}

// testConcurrentMixedOutcomes: of many concurrent Updates, exactly those that
// succeeded are kept.
func testConcurrentMixedOutcomes(t *testing.T, f Factory) {
	s := f.Open(t)
	const n = 300
	var wg sync.WaitGroup
	results := make([]error, n)
	for i := range n {
		wg.Go(func() {
			results[i] = s.Update(context.Background(), func(tx daodian.Tx) error {
				ctx := context.Background()
				if err := tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", i))); err != nil {
					return err
				}
				if err := tx.PutMerchant(ctx, merchant(i)); err != nil {
					return err
				}
				switch i % 3 {
				case 0:
					return errBoom
				case 1:
					// A duplicate key fails this Update alone.
					return tx.PutIdem(ctx, idem("app-a", daodian.OpUse, fmt.Sprint("req-", i)))
				}
				return nil
			})
		})
	}
	wg.Wait()
	ok := 0
	for i, err := range results {
		switch i % 3 {
		case 0:
			wantErr(t, fmt.Sprintf("Update %d", i), err, errBoom)
		case 1:
			wantErr(t, fmt.Sprintf("Update %d", i), err, daodian.ErrDuplicate)
		default:
			if err != nil {
				t.Errorf("Update %d: %v", i, err)
			}
			ok++
		}
	}
	c := counts(t, s)
	if c.Idem != ok || c.Merchants != ok {
		t.Fatalf("Counts: %d idem, %d merchants; want %d of each", c.Idem, c.Merchants, ok)
	}
	view(t, s, func(ctx context.Context, tx daodian.ReadTx) error {
		for i := range n {
			_, err := tx.Idem(ctx, daodian.IdemKey{AppKey: "app-a", Op: daodian.OpUse, RequestID: fmt.Sprint("req-", i)})
			if i%3 == 2 && err != nil {
				t.Errorf("record of successful Update %d: %v", i, err)
			}
			if i%3 != 2 && !errors.Is(err, daodian.ErrNotFound) {
				t.Errorf("record of failed Update %d: %v, want ErrNotFound", i, err)
			}
		}
		return nil
	})
}

// testViewSnapshot: a View sees one committed state, never half of an Update.
func testViewSnapshot(t *testing.T, f Factory) {
	s := f.Open(t)
	a, b := ticket(1, "S000001"), ticket(2, "S000001")
	a.Quantity, a.Available, b.Quantity, b.Available = 1000, 500, 1000, 500
	insertTickets(t, s, a, b)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	// Writers move units from a to b and back, keeping the sum.
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				from, to := a.ID, b.ID
				if (i+w)%2 == 1 {
					from, to = to, from
				}
				err := s.Update(context.Background(), func(tx daodian.Tx) error {
					ctx := context.Background()
					x, err := tx.Ticket(ctx, from)
					if err != nil {
						return err
					}
					if err := tx.SetAvailable(ctx, from, x.Available-1); err != nil {
						return err
					}
					y, err := tx.Ticket(ctx, to)
					if err != nil {
						return err
					}
					return tx.SetAvailable(ctx, to, y.Available+1)
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var readers sync.WaitGroup
	for range 4 {
		readers.Go(func() {
			for range 150 {
				err := s.View(context.Background(), func(tx daodian.ReadTx) error {
					ctx := context.Background()
					x, err := tx.Ticket(ctx, a.ID)
					if err != nil {
						return err
					}
					time.Sleep(50 * time.Microsecond) // let writers commit in between
					y, err := tx.Ticket(ctx, b.ID)
					if err != nil {
						return err
					}
					x2, err := tx.Ticket(ctx, a.ID)
					if err != nil {
						return err
					}
					if x.Available+y.Available != 1000 || x2.Available != x.Available {
						return fmt.Errorf("torn snapshot: a=%d b=%d a again=%d", x.Available, y.Available, x2.Available)
					}
					return nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	readers.Wait()
	close(stop)
	wg.Wait()
	x, y := readTicket(t, s, a.ID), readTicket(t, s, b.ID)
	if x.Available+y.Available != 1000 {
		t.Fatalf("final a=%d b=%d", x.Available, y.Available)
	}
}

// ---- lifecycle ----

func testPing(t *testing.T, f Factory) {
	s := f.Open(t)
	if err := s.Ping(ctxT(t)); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func testClosed(t *testing.T, f Factory) {
	s := f.Open(t)
	insertTickets(t, s, ticket(1, "S000001"))
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	ran := false
	err := s.Update(ctxT(t), func(tx daodian.Tx) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("Update after Close: error %v, fn ran %v", err, ran)
	}
	err = s.View(ctxT(t), func(tx daodian.ReadTx) error { ran = true; return nil })
	if err == nil || ran {
		t.Errorf("View after Close: error %v, fn ran %v", err, ran)
	}
	if err := s.Ping(ctxT(t)); err == nil {
		t.Error("Ping after Close succeeded")
	}
	_ = s.Close() // a second Close must not panic or hang
}

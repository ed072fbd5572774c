package daodian

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

func TestNewTicketCode(t *testing.T) {
	shape := regexp.MustCompile(`^[1-9][0-9]{11}$`)
	seen := make(map[string]bool)
	var firstDigits [10]int
	const n = 20000
	for range n {
		c, err := NewTicketCode()
		if err != nil {
			t.Fatal(err)
		}
		if !shape.MatchString(c) {
			t.Fatalf("code %q is not 12 digits with a first digit other than 0", c)
		}
		if seen[c] {
			t.Fatalf("code %q drawn twice in %d draws", c, n)
		}
		seen[c] = true
		firstDigits[c[0]-'0']++
	}
	// Each first digit 1–9 is equally likely: n/9 ≈ 2222 each, far from 0 or n.
	for d := 1; d <= 9; d++ {
		if got := firstDigits[d]; got < n/9/2 || got > n/9*2 {
			t.Errorf("first digit %d drawn %d times in %d, want about %d", d, got, n, n/9)
		}
	}
}

// takenCodes is a Tx whose InsertTicket refuses the first taken codes as
// duplicates, as a store's unique index on codes does.
type takenCodes struct {
	Tx
	taken    int
	tried    []string
	inserted *Ticket
}

func (x *takenCodes) InsertTicket(_ context.Context, t *Ticket) error {
	x.tried = append(x.tried, t.Code)
	if len(x.tried) <= x.taken {
		return ErrDuplicate
	}
	c := *t
	x.inserted = &c
	return nil
}

func TestInsertWithFreshCodeDrawsAgain(t *testing.T) {
	ctx := context.Background()
	tx := &takenCodes{taken: 3}
	tk := &Ticket{ID: "2100000000000000001"}
	if err := insertWithFreshCode(ctx, tx, tk, codeTries); err != nil {
		t.Fatal(err)
	}
	if len(tx.tried) != 4 || tx.inserted == nil || tx.inserted.Code != tx.tried[3] || tk.Code != tx.tried[3] {
		t.Fatalf("tried %v, inserted %+v, ticket code %q: want the fourth code inserted", tx.tried, tx.inserted, tk.Code)
	}
	for i := range tx.tried[:3] {
		if tx.tried[i] == tx.tried[3] {
			t.Fatalf("a refused code was tried again: %v", tx.tried)
		}
	}

	tx = &takenCodes{taken: codeTries}
	tk = &Ticket{ID: "2100000000000000002"}
	if err := insertWithFreshCode(ctx, tx, tk, codeTries); err == nil || errors.Is(err, ErrDuplicate) || tk.Code != "" {
		t.Fatalf("every code taken: got %v, code %q; want a plain error and no code", err, tk.Code)
	}
	if len(tx.tried) != codeTries {
		t.Fatalf("%d codes tried, want %d", len(tx.tried), codeTries)
	}
}

// bulkTx is a Tx whose bulk writes succeed but report chosen tickets' codes
// taken, as a store's unique index on codes does; it keeps what was written.
type bulkTx struct {
	Tx
	next     int
	takenAt  []int // indexes of the first InsertTickets call reported taken
	calls    int
	orders   []Order
	tickets  map[string]Ticket // by id
	inserted []string          // ticket ids in the order they were written
	records  []Record
}

func (x *bulkTx) NewIDs(_ context.Context, n int) ([]string, error) {
	ids := make([]string, n)
	for i := range ids {
		x.next++
		ids[i] = strconv.Itoa(2100000000000000000 + x.next)
	}
	return ids, nil
}

func (x *bulkTx) InsertOrders(_ context.Context, os []Order) error {
	x.orders = append(x.orders, os...)
	return nil
}

func (x *bulkTx) InsertTickets(_ context.Context, ts []Ticket) ([]int, error) {
	x.calls++
	var taken []int
	for i := range ts {
		if x.calls == 1 && slices.Contains(x.takenAt, i) {
			taken = append(taken, i)
			continue
		}
		x.tickets[ts[i].ID] = ts[i]
		x.inserted = append(x.inserted, ts[i].ID)
	}
	return taken, nil
}

func (x *bulkTx) InsertTicket(_ context.Context, t *Ticket) error {
	x.tickets[t.ID] = *t
	x.inserted = append(x.inserted, t.ID)
	return nil
}

func (x *bulkTx) AppendRecords(_ context.Context, rs []Record) error {
	x.records = append(x.records, rs...)
	return nil
}

// TestIssueOrdersRedrawsTakenCodes: the tickets a bulk insert reports taken
// are inserted again under new codes, the issued tickets carry the codes
// stored, and the issue records follow the tickets' order, not the order in
// which they were finally written.
func TestIssueOrdersRedrawsTakenCodes(t *testing.T) {
	ctx := context.Background()
	x := &bulkTx{takenAt: []int{1, 4}, tickets: make(map[string]Ticket)}
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	reqs := []IssueRequest{
		{MerchantID: "m1", Count: 3, Quantity: 2, ItemName: "a", Status: TicketValid, TotalAmountCents: 300, RealAmountCents: 200},
		{MerchantID: "m2", Count: 2, Quantity: 1, ItemName: "b", ItemID: "i-b", Status: TicketValid},
	}
	issued, err := issueOrders(ctx, x, reqs, now)
	if err != nil {
		t.Fatal(err)
	}
	var all []Ticket
	for _, o := range issued {
		all = append(all, o.Tickets...)
	}
	if len(all) != 5 || len(x.tickets) != 5 || len(x.orders) != 2 {
		t.Fatalf("%d tickets issued, %d stored, %d orders; want 5, 5, 2", len(all), len(x.tickets), len(x.orders))
	}
	// Taken codes are retried last.
	if want := []string{all[0].ID, all[2].ID, all[3].ID, all[1].ID, all[4].ID}; !slices.Equal(x.inserted, want) {
		t.Fatalf("written in order %v, want %v", x.inserted, want)
	}
	for i, tk := range all {
		if stored := x.tickets[tk.ID]; stored != tk {
			t.Fatalf("ticket %d issued as %+v, stored as %+v", i, tk, stored)
		}
		if len(x.records) != 5 || x.records[i].TicketID != tk.ID || x.records[i].Kind != RecordIssue || x.records[i].Units != tk.Quantity {
			t.Fatalf("record %d: %+v, want the issue of %s", i, x.records, tk.ID)
		}
	}
	// Ids in order: order no, sub-order no, item id (generated for the first
	// order only), then the tickets.
	o1, o2 := issued[0], issued[1]
	got := []string{o1.Order.OrderNo, o1.Order.SubOrderNo, o1.Order.ItemID, all[0].ID, all[1].ID, all[2].ID,
		o2.Order.OrderNo, o2.Order.SubOrderNo, all[3].ID, all[4].ID}
	for i, id := range got {
		if want := strconv.Itoa(2100000000000000001 + i); id != want {
			t.Fatalf("id %d is %s, want %s (ids %v)", i, id, want, got)
		}
	}
	if o2.Order.ItemID != "i-b" {
		t.Fatalf("item id %q, want the given one", o2.Order.ItemID)
	}
}

package daodian

import (
	"context"
	"errors"
	"regexp"
	"testing"
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
	if err := insertWithFreshCode(ctx, tx, tk); err != nil {
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
	if err := insertWithFreshCode(ctx, tx, tk); err == nil || errors.Is(err, ErrDuplicate) || tk.Code != "" {
		t.Fatalf("every code taken: got %v, code %q; want a plain error and no code", err, tk.Code)
	}
	if len(tx.tried) != codeTries {
		t.Fatalf("%d codes tried, want %d", len(tx.tried), codeTries)
	}
}

package gateway_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
)

// objEnv is a gateway with the standard app, shop s1 of m1 and one 10-unit
// ticket, for sending business objects as raw JSON.
type objEnv struct {
	*env
	tk daodian.Ticket
}

func newObjEnv(t *testing.T) *objEnv {
	e := stdEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.ledger.AddShop(ctx, daodian.Shop{MerchantID: "m1", ID: "s1"}); err != nil {
		t.Fatal(err)
	}
	iss, err := e.ledger.Issue(ctx, daodian.IssueRequest{MerchantID: "m1", Quantity: 10, ValidFrom: t0.Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return &objEnv{env: e, tk: iss.Tickets[0]}
}

// call sends method with one JSON-object parameter, given as raw text.
func (e *objEnv) call(method, param, raw string) answer {
	p := e.pubParams(method, testKey)
	p[param] = raw
	return e.postAll(signed(p, testSecret))
}

func (e *objEnv) available() int {
	e.t.Helper()
	var n int
	err := e.store.View(context.Background(), func(tx daodian.ReadTx) error {
		tk, err := tx.Ticket(context.Background(), e.tk.ID)
		if err == nil {
			n = tk.Available
		}
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestUseQuantity: SPEC §4.3 — an absent quantity is 1, and so is JSON null (what
// serializers write for a field left unset); a whole number is taken as a JSON
// number or, as the official SDKs send it, a digit string.
func TestUseQuantity(t *testing.T) {
	e := newObjEnv(t)
	for i, c := range []struct {
		quantity string // "" leaves the field out
		units    int
	}{
		{"", 1},
		{`null`, 1},
		{`2`, 2},
		{`"3"`, 3},
	} {
		field := ""
		if c.quantity != "" {
			field = `,"quantity":` + c.quantity
		}
		before := e.available()
		a := e.call(alsc.MethodUse, "use_request",
			fmt.Sprintf(`{"ticket_code":%q,"shop_id":"s1","ticket_request_id":"q%d"%s}`, e.tk.Code, i, field))
		e.expectOK(a)
		if got := before - e.available(); got != c.units {
			t.Fatalf("quantity %q consumed %d units, want %d", c.quantity, got, c.units)
		}
	}
}

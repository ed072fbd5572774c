package gateway_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/internal/testenv"
)

// objEnv is a gateway with the seed: the standard app, shop s1 of m1 and one
// 10-unit ticket, for sending business objects as raw JSON.
type objEnv struct {
	*env
	tk daodian.Ticket
}

func newObjEnv(t *testing.T) *objEnv {
	e := newEnv(t, envOpts{})
	seeded := testenv.Seed(t, e.ledger, daodian.IssueRequest{Quantity: 10, ValidFrom: t0.Add(-time.Hour)})
	return &objEnv{env: e, tk: seeded.Tickets[0]}
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

// TestObjectMemberNames: SPEC §4 — a business object that names a member twice
// is invalid (the sub_msg names the member when its name is a plain field name,
// and never echoes another), and names match exactly: a differently-cased name is
// an unknown member, ignored, even beside the exact one.
func TestObjectMemberNames(t *testing.T) {
	e := newObjEnv(t)
	for _, c := range []struct {
		method, param, raw, subMsg string
	}{
		{alsc.MethodUse, "use_request", `{"ticket_code":"$CODE","shop_id":"s1","shop_id":"s1","ticket_request_id":"d1"}`, "非法参数:use_request.shop_id 重复"},
		{alsc.MethodUse, "use_request", `{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"d2","quantity":1,"quantity":"1"}`, "非法参数:use_request.quantity 重复"},
		{alsc.MethodReserve, "ticket_reverse_top_request", `{"request_id":"d3","ticket_id":"$ID","ticket_id":"$ID"}`, "非法参数:ticket_reverse_top_request.ticket_id 重复"},
		{alsc.MethodConsult, "consult_request", `{"request_id":"d4","request_id":"d4","shop_id":"s1","ticket_code":"$CODE"}`, "非法参数:consult_request.request_id 重复"},
		{alsc.MethodConsult, "consult_request", `{"request_id":"d5","shop_id":"s1","ticket_code":"$CODE","<b>":1,"<b>":1}`, "非法参数:consult_request 重复"},
		{alsc.MethodConsult, "consult_request", `{"request_id":"d6","shop_id":"s1","ticket_code":"$CODE","x":{"Y":{},"Y":{}}}`, "非法参数:consult_request 重复"},
		{alsc.MethodUse, "use_request", `{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"d7","quantity":0}`, "非法参数:use_request.quantity " + alsc.ErrQuantity.Error()},
		{alsc.MethodUse, "use_request", `{"ticket_code":"$CODE","shop_id":"s1","ticket_request_id":"d8","gmt_biz":7}`, "非法参数:use_request.gmt_biz 类型错误"},
	} {
		raw := strings.NewReplacer("$CODE", e.tk.Code, "$ID", e.tk.ID).Replace(c.raw)
		before := e.counts()
		te := e.expectError(e.call(c.method, c.param, raw), want{code: 50, subCode: "isv.invalid-parameter"})
		if te.SubMsg != c.subMsg {
			t.Errorf("%s: sub_msg %q, want %q", raw, te.SubMsg, c.subMsg)
		}
		if after := e.counts(); after != before {
			t.Errorf("%s changed the ledger: %+v -> %+v", raw, before, after)
		}
	}
	// Differently-cased names are ignored: one unit is used at shop s1, and the
	// reversal names the ticket by ticket_id alone.
	a := e.call(alsc.MethodUse, "use_request", fmt.Sprintf(
		`{"ticket_code":%q,"shop_id":"s1","SHOP_ID":"nowhere","ticket_request_id":"c1","Quantity":5,"QUANTITY":"x"}`, e.tk.Code))
	e.expectOK(a)
	if got := e.available(); got != 9 {
		t.Fatalf("available %d after a use of 1, want 9", got)
	}
	a = e.call(alsc.MethodReserve, "ticket_reverse_top_request", fmt.Sprintf(
		`{"REQUEST_ID":"zz","request_id":"c2","Ticket_Id":"2100000000000999999","ticket_id":%q}`, e.tk.ID))
	e.expectOK(a)
	if got := e.available(); got != 10 {
		t.Fatalf("available %d after the reversal, want 10", got)
	}
}

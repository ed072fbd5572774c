// Package e2e tests the ledger through the real HTTP gateway and the Go SDK: what an
// integrator's POS sees.
package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
	"github.com/daodian/daodian/top"
)

type env struct {
	*storetest.World
	fs       *storetest.FailingStore
	url      string
	a, a2, b *client.Client
}

// newEnv is newEnvOn a fresh embedded store.
func newEnv(t *testing.T, format top.Format, simplify bool) *env {
	t.Helper()
	return newEnvOn(t, testenv.NewDB(t, testenv.Embedded).Open(t), format, simplify)
}

// newEnvOn serves a World on s (through a FailingStore) with the HTTP gateway;
// its apps are called with the SDK in format.
func newEnvOn(t *testing.T, s daodian.Store, format top.Format, simplify bool) *env {
	t.Helper()
	fs := &storetest.FailingStore{Store: s}
	w := storetest.NewWorld(t, fs)
	g := testenv.NewGateway(t, testenv.Options{Ledger: w.Ledger, Clock: w.Clock})
	mk := func(app *daodian.App) *client.Client {
		return client.New(g.Server.URL, app.Key, app.Secret, client.WithClock(w.Clock.Now), client.WithFormat(format, simplify))
	}
	e := &env{World: w, fs: fs, url: g.Server.URL, a: mk(w.A), a2: mk(w.A2), b: mk(w.B)}
	t.Cleanup(w.Audit)
	return e
}

func (e *env) use(c *client.Client, code string, q int, rid string) (*alsc.UseResponse, error) {
	return c.Use(e.Ctx, alsc.UseTopRequest{TicketCode: code, ShopID: storetest.S1, Quantity: alsc.Quantity(q), TicketRequestID: rid})
}

func (e *env) reserve(t *testing.T, c *client.Client, rid, ticketID, transID string) alsc.ReserveResult {
	t.Helper()
	r, err := c.Reserve(e.Ctx, alsc.TicketReverseTopRequest{RequestID: rid, TicketID: ticketID, TicketUseTransID: transID})
	if err != nil {
		t.Fatalf("reserve: %v", err)
	}
	if r.RequestID == "" {
		t.Fatal("answer without a trace request_id")
	}
	return r.Result
}

func wantPlatform(t *testing.T, err error, code int, sub string) {
	t.Helper()
	var pe *client.Error
	if !errors.As(err, &pe) || pe.Code != code || pe.SubCode != sub || pe.RequestID == "" {
		t.Fatalf("got %v, want platform error %d %s", err, code, sub)
	}
}

var formats = []struct {
	name     string
	f        top.Format
	simplify bool
}{{"xml", top.XML, false}, {"json", top.JSON, false}, {"json-simplify", top.JSON, true}}

// TestReversalErrorTable walks every row of the error table of SPEC §4.4 through
// the gateway, in every format, and checks each refusal changed nothing.
func TestReversalErrorTable(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			e := newEnv(t, f.f, f.simplify)
			tk := e.Issue(1, 2).Tickets[0]
			other := e.Issue(1, 1).Tickets[0]
			u, err := e.use(e.a, tk.Code, 1, "u1")
			if err != nil {
				t.Fatal(err)
			}
			uo, err := e.use(e.a, other.Code, 1, "u2")
			if err != nil {
				t.Fatal(err)
			}
			ref, err := e.use(e.a, tk.Code, 1, "u3")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := e.a.Refund(e.Ctx, alsc.RefundRequest{TransID: ref.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f1"}); err != nil {
				t.Fatal(err)
			}
			rows := []struct {
				name        string
				c           *client.Client
				rid, id, tr string
				code        string
				advance     time.Duration
				fail        bool
			}{
				{name: "SYSTEM_ERROR", c: e.a, rid: "e0", id: tk.ID, tr: u.TicketTransID, code: daodian.CodeSystemError, fail: true},
				{name: "TICKET_NOT_FOUND (no such ticket)", c: e.a, rid: "e1", id: "2100000000000999999", code: daodian.CodeTicketNotFound},
				{name: "TICKET_NOT_FOUND (other merchant)", c: e.b, rid: "e2", id: tk.ID, tr: u.TicketTransID, code: daodian.CodeTicketNotFound},
				{name: "TICKET_USE_TRANS_NOT_FOUND", c: e.a, rid: "e3", id: tk.ID, tr: "2100000000000999999", code: daodian.CodeUseTransNotFound},
				{name: "TICKET_USE_TRANS_MISMATCH", c: e.a, rid: "e4", id: tk.ID, tr: uo.TicketTransID, code: daodian.CodeUseTransMismatch},
				{name: "TICKET_STATUS_INVALID", c: e.a, rid: "e5", id: tk.ID, tr: ref.TicketTransID, code: daodian.CodeTicketStatusInvalid},
				{name: "REQUEST_ID_CONFLICT", c: e.a, rid: "e5", id: tk.ID, tr: u.TicketTransID, code: daodian.CodeRequestIDConflict},
				{name: "REVERSE_TIME_EXPIRED", c: e.a, rid: "e6", id: tk.ID, tr: u.TicketTransID, code: daodian.CodeReverseTimeExpired, advance: 24*time.Hour + time.Second},
			}
			for _, row := range rows {
				e.Clock.Advance(row.advance)
				before := e.Snap()
				if row.fail {
					e.fs.FailNext(1)
				}
				r := e.reserve(t, row.c, row.rid, row.id, row.tr)
				if r.Success || r.ErrorCode != row.code || r.ErrorMsg != daodian.Message(row.code) || r.Retry != daodian.Retryable(row.code) {
					t.Fatalf("%s: got %+v", row.name, r)
				}
				if d := before.Diff(e.Snap(), row.code == daodian.CodeSystemError || row.code == daodian.CodeRequestIDConflict); d != "" {
					t.Fatalf("%s changed the ledger: %s", row.name, d)
				}
			}
		})
	}
}

// TestUseRefusals walks every isv.* refusal of SPEC §4.3 through the gateway. A
// business refusal is recorded under its key and nothing else changes: sent again,
// the request gets the same sub_code and sub_msg. A conflict, an invalid
// parameter and a transient failure are not recorded.
func TestUseRefusals(t *testing.T) {
	e := newEnv(t, top.JSON, false)
	tk := e.Issue(1, 1).Tickets[0]
	cancelled, err := e.Ledger.Issue(e.Ctx, daodian.IssueRequest{MerchantID: storetest.M1, Status: daodian.TicketCancelled})
	if err != nil {
		t.Fatal(err)
	}
	future, err := e.Ledger.Issue(e.Ctx, daodian.IssueRequest{MerchantID: storetest.M1,
		ValidFrom: e.Clock.Now().Add(time.Hour), ValidTo: e.Clock.Now().Add(48 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	fenced := e.Issue(1, 1).Tickets[0]
	if r := e.reserve(t, e.a, "fence", fenced.ID, ""); !r.Success {
		t.Fatalf("empty reversal: %+v", r)
	}
	if _, err := e.use(e.a, tk.Code, 1, "taken"); err != nil {
		t.Fatal(err)
	}
	tk2 := e.Issue(1, 1).Tickets[0]
	past := top.FormatTime(e.Clock.Now().Add(-time.Minute))
	rows := []struct {
		name     string
		c        *client.Client
		req      alsc.UseTopRequest
		code     int
		sub      string
		recorded bool
	}{
		{"not found", e.a, alsc.UseTopRequest{TicketCode: "100000000000", ShopID: storetest.S1, TicketRequestID: "x1"}, 50, daodian.SubTicketNotFound, true},
		{"other merchant", e.b, alsc.UseTopRequest{TicketCode: tk2.Code, ShopID: storetest.S2, TicketRequestID: "x2"}, 50, daodian.SubTicketNotFound, true},
		{"shop", e.a, alsc.UseTopRequest{TicketCode: tk2.Code, ShopID: storetest.S2, TicketRequestID: "x3"}, 50, daodian.SubShopNotMatch, true},
		{"status", e.a, alsc.UseTopRequest{TicketCode: cancelled.Tickets[0].Code, ShopID: storetest.S1, TicketRequestID: "x4"}, 50, daodian.SubTicketStatusInvalid, true},
		{"not yet valid", e.a, alsc.UseTopRequest{TicketCode: future.Tickets[0].Code, ShopID: storetest.S1, TicketRequestID: "x10"}, 50, daodian.SubTicketNotYetValid, true},
		{"quantity", e.a, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: storetest.S1, TicketRequestID: "x5"}, 50, daodian.SubNotEnoughQuantity, true},
		{"conflict", e.a, alsc.UseTopRequest{TicketCode: tk2.Code, ShopID: storetest.S1, TicketRequestID: "taken"}, 50, daodian.SubRequestIDConflict, false},
		{"fenced", e.a, alsc.UseTopRequest{TicketCode: fenced.Code, ShopID: storetest.S1, TicketRequestID: "x6", GmtBiz: past}, 50, daodian.SubUseFencedByReversal, true},
		{"invalid parameter", e.a, alsc.UseTopRequest{TicketCode: "12ab", ShopID: storetest.S1, TicketRequestID: "x7"}, 50, daodian.SubInvalidParameter, false},
	}
	refused := func(name string, c *client.Client, req alsc.UseTopRequest, code int, sub string, recorded bool) {
		t.Helper()
		before := e.Snap()
		_, err := c.Use(e.Ctx, req)
		wantPlatform(t, err, code, sub)
		after := e.Snap()
		if d := before.Diff(after, false); d != "" {
			t.Fatalf("%s changed the ledger: %s", name, d)
		}
		want := 0
		if recorded {
			want = 1
		}
		if n := after.Counts.Idem - before.Counts.Idem; n != want {
			t.Fatalf("%s left %d idempotency records, want recorded=%t", name, n, recorded)
		}
		_, again := c.Use(e.Ctx, req)
		var first, second *client.Error
		errors.As(err, &first)
		if !errors.As(again, &second) || second.SubCode != first.SubCode || second.SubMsg != first.SubMsg {
			t.Fatalf("%s sent again: got %v, want %v", name, again, err)
		}
		if d := after.Diff(e.Snap(), true); d != "" {
			t.Fatalf("%s sent again changed the ledger: %s", name, d)
		}
	}
	for _, row := range rows {
		refused(row.name, row.c, row.req, row.code, row.sub, row.recorded)
	}
	e.Clock.Advance(31 * 24 * time.Hour)
	expired := alsc.UseTopRequest{TicketCode: tk2.Code, ShopID: storetest.S1, TicketRequestID: "x8", Quantity: 1}
	refused("expired", e.a, expired, 50, daodian.SubTicketExpired, true)
	e.Clock.Advance(-31 * 24 * time.Hour)
	before := e.Snap()
	e.fs.FailNext(1)
	_, err = e.use(e.a, tk2.Code, 1, "x9")
	wantPlatform(t, err, 15, "isp.service-busy")
	if d := before.Diff(e.Snap(), true); d != "" {
		t.Fatalf("a transient failure changed the ledger: %s", d)
	}
}

// TestScenarios covers the lifecycle an integrator relies on, through HTTP.
func TestScenarios(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			e := newEnv(t, f.f, f.simplify)
			o := e.Issue(2, 1)
			a, b := o.Tickets[0], o.Tickets[1]

			// Consult shows both vouchers of the group-buy sub-order.
			c, err := e.a.Consult(e.Ctx, alsc.ConsultTopRequest{RequestID: "c1", ShopID: storetest.S1, TicketCode: a.Code})
			if err != nil {
				t.Fatal(err)
			}
			v := c.Result.Value
			if !c.Result.Success || v == nil || v.AvailableQuantity != 2 || len(v.TicketInfoList) != 2 ||
				v.TicketInfoList[0].TicketCode != a.Code || v.TicketInfoList[1].TicketCode != "" ||
				v.TicketInfoList[0].TotalAmount != 9900 || v.UserPhone != "*******4139" || v.AlscSubOrderNo != o.Order.SubOrderNo {
				t.Fatalf("consult: %+v %+v", c.Result, v)
			}

			// A group-buy use of 2 spans both tickets.
			u, err := e.use(e.a, a.Code, 2, "g1")
			if err != nil {
				t.Fatal(err)
			}
			if len(u.TicketUseDetails) != 2 || u.BuyerPayAmount != "198.00" || u.ReceiptAmount != "176.00" ||
				u.DiscountAmount != "22.00" || u.OriginalPrice != "128.00" || u.BizCode != daodian.BizSuccess ||
				u.UseShopName != "一号店" || u.TicketRequestID != "g1" || u.TicketTransID != u.TicketUseDetails[0].TicketTransID {
				t.Fatalf("group use: %+v", u)
			}
			// Replay: the first answer, flagged as already used.
			u2, err := e.use(e.a, a.Code, 2, "g1")
			if err != nil {
				t.Fatal(err)
			}
			if u2.BizCode != daodian.BizTicketAlreadyUsed || u2.TicketTransID != u.TicketTransID || u2.UseDate != u.UseDate {
				t.Fatalf("use replay: %+v", u2)
			}
			// Reverse one ticket of the two.
			if r := e.reserve(t, e.a, "r1", b.ID, u.TicketUseDetails[1].TicketTransID); !r.Success {
				t.Fatalf("reverse: %+v", r)
			}
			if e.Available(a.ID) != 0 || e.Available(b.ID) != 1 {
				t.Fatal("wrong ticket restored")
			}
			before := e.Snap()
			// Replay and a new request id: success, no second effect.
			if r := e.reserve(t, e.a, "r1", b.ID, u.TicketUseDetails[1].TicketTransID); !r.Success {
				t.Fatalf("replay: %+v", r)
			}
			if r := e.reserve(t, e.a, "r2", b.ID, u.TicketUseDetails[1].TicketTransID); !r.Success {
				t.Fatalf("already reversed: %+v", r)
			}
			if d := before.Diff(e.Snap(), false); d != "" {
				t.Fatalf("second reversal changed the ledger: %s", d)
			}
			// Latest-use reversal of ticket a by app A.
			if r := e.reserve(t, e.a, "r3", a.ID, ""); !r.Success || e.Available(a.ID) != 1 {
				t.Fatalf("latest-use reversal: %+v", r)
			}
			// Another merchant's app cannot see it.
			if r := e.reserve(t, e.b, "r4", a.ID, ""); r.ErrorCode != daodian.CodeTicketNotFound {
				t.Fatalf("other merchant: %+v", r)
			}
		})
	}
}

// TestEmptyReversalThenLateUse is the anti-hanging case through HTTP: a POS timed
// out on a use, reversed it (nothing to reverse), and the original use arrives late.
func TestEmptyReversalThenLateUse(t *testing.T) {
	e := newEnv(t, top.JSON, true)
	tk := e.Issue(1, 1).Tickets[0]
	useTime := top.FormatTime(e.Clock.Now().Add(-30 * time.Second))
	if r := e.reserve(t, e.a, "r1", tk.ID, ""); !r.Success {
		t.Fatalf("empty reversal: %+v", r)
	}
	_, err := e.a.Use(e.Ctx, alsc.UseTopRequest{TicketCode: tk.Code, ShopID: storetest.S1, TicketRequestID: "late", GmtBiz: useTime})
	wantPlatform(t, err, 50, daodian.SubUseFencedByReversal)
	e.Clock.Advance(time.Second)
	if _, err := e.use(e.a, tk.Code, 1, "fresh"); err != nil {
		t.Fatalf("fresh use after the fence: %v", err)
	}
}

// TestReverseWindow checks the window boundary through HTTP.
func TestReverseWindow(t *testing.T) {
	e := newEnv(t, top.JSON, false)
	tk := e.Issue(1, 2).Tickets[0]
	u1, err := e.use(e.a, tk.Code, 1, "u1")
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(24 * time.Hour)
	if r := e.reserve(t, e.a, "r1", tk.ID, u1.TicketTransID); !r.Success {
		t.Fatalf("reversal at exactly the window: %+v", r)
	}
	u2, err := e.use(e.a, tk.Code, 1, "u2")
	if err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(24*time.Hour + time.Second)
	if r := e.reserve(t, e.a, "r2", tk.ID, u2.TicketTransID); r.ErrorCode != daodian.CodeReverseTimeExpired || r.Retry {
		t.Fatalf("reversal after the window: %+v", r)
	}
}

// TestRefundThroughGateway covers SPEC §4.5 through HTTP.
func TestRefundThroughGateway(t *testing.T) {
	e := newEnv(t, top.XML, false)
	tk := e.Issue(1, 2).Tickets[0]
	u, err := e.use(e.a, tk.Code, 1, "u1")
	if err != nil {
		t.Fatal(err)
	}
	avail := e.Available(tk.ID)
	r, err := e.a.Refund(e.Ctx, alsc.RefundRequest{TransID: u.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f1"})
	if err != nil || r.BizCode != daodian.BizSuccess || r.TicketRequestID != "f1" {
		t.Fatalf("refund: %+v %v", r, err)
	}
	if e.Available(tk.ID) != avail {
		t.Fatal("refund changed availability")
	}
	r2, err := e.a.Refund(e.Ctx, alsc.RefundRequest{TransID: u.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f1"})
	if err != nil || r2.BizCode != r.BizCode || r2.TicketRequestID != r.TicketRequestID {
		t.Fatalf("refund replay: %+v %v", r2, err)
	}
	before := e.Snap()
	if res := e.reserve(t, e.a, "r1", tk.ID, u.TicketTransID); res.ErrorCode != daodian.CodeTicketStatusInvalid || res.Retry {
		t.Fatalf("reversal of a refunded use: %+v", res)
	}
	if d := before.Diff(e.Snap(), false); d != "" {
		t.Fatalf("reversal of a refunded use changed the ledger: %s", d)
	}
	u2, err := e.use(e.a, tk.Code, 1, "u2")
	if err != nil {
		t.Fatal(err)
	}
	if res := e.reserve(t, e.a, "r2", tk.ID, u2.TicketTransID); !res.Success {
		t.Fatalf("reverse: %+v", res)
	}
	_, err = e.a.Refund(e.Ctx, alsc.RefundRequest{TransID: u2.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f2"})
	wantPlatform(t, err, 50, daodian.SubUseAlreadyReversed)
	_, err = e.b.Refund(e.Ctx, alsc.RefundRequest{TransID: u.TicketTransID, TicketCode: tk.Code, TicketRequestID: "f3"})
	wantPlatform(t, err, 50, daodian.SubTicketNotFound)
	_, err = e.a.Refund(e.Ctx, alsc.RefundRequest{TransID: u.TicketTransID, TicketCode: tk.Code})
	wantPlatform(t, err, 40, "isv.missing-parameter:ticket_request_id")
}

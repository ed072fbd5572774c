package console_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/admin"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/console"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// env is a ledger (storetest's World: merchants m1 and m2, their shops and
// apps), a gateway with its request log, the admin API and the console,
// served together as `daodian serve` serves them.
type env struct {
	t    testing.TB
	w    *storetest.World
	gw   *gateway.Gateway
	api  *admin.API
	con  *console.Console
	srv  *httptest.Server
	logs *testio.Buffer
	// Tokens: every merchant, m1 only.
	all, m1       string
	allTok, m1Tok *daodian.AdminToken
	// used is a ticket of m1 used once and reversed once through the gateway.
	used daodian.Ticket
}

// newEnv builds the env; cfg configures the console (its API and Clock are
// the env's).
func newEnv(t testing.TB, cfg console.Config) *env {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "console.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{t: t, w: storetest.NewWorld(t, s), logs: &testio.Buffer{}}
	logger := slog.New(slog.NewJSONHandler(e.logs, nil))
	e.gw = gateway.New(e.w.Ledger, gateway.Config{Clock: e.w.Clock.Now, Logger: logger})
	e.api = admin.New(e.w.Ledger, admin.Config{Clock: e.w.Clock.Now, Logger: logger, RequestLog: e.gw.RequestLog()})
	cfg.API, cfg.Logger = e.api, logger
	if cfg.Clock == nil {
		cfg.Clock = e.w.Clock.Now
	}
	e.con = console.New(cfg)
	mux := http.NewServeMux()
	mux.Handle("/", e.gw.Handler())
	mux.Handle(admin.Prefix, e.api)
	mux.Handle(console.Prefix, e.con)
	mux.Handle("/console", e.con)
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.allTok, e.all = e.w.AdminToken("ops", "")
	e.m1Tok, e.m1 = e.w.AdminToken("m1 front desk", storetest.M1)
	e.used = e.w.Issue(1, 3).Tickets[0]
	use := e.call(e.w.A, alsc.MethodUse, "use_request", fmt.Sprintf(`{"ticket_code":"%s","shop_id":"%s","ticket_request_id":"pos-u1"}`, e.used.Code, storetest.S1))
	if !strings.Contains(use, "ticket_trans_id") {
		t.Fatalf("use: %s", use)
	}
	e.call(e.w.A, alsc.MethodReserve, "ticket_reverse_top_request", fmt.Sprintf(`{"request_id":"pos-r1","ticket_id":"%s"}`, e.used.ID))
	return e
}

// call makes a signed call through the gateway as app and returns the answer.
func (e *env) call(app *daodian.App, method string, kv ...string) string {
	e.t.Helper()
	business := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		business[kv[i]] = kv[i+1]
	}
	c := client.New(e.srv.URL+"/router/rest", app.Key, app.Secret, client.WithClock(e.w.Clock.Now))
	b, err := c.Call(e.w.Ctx, method, business)
	if err != nil {
		e.t.Fatalf("%s: %v", method, err)
	}
	return string(b)
}

// busyHour fills the last hour with traffic and the day with records, for
// the pages to have something to show: uses in two shops, reversals, a
// refund, refusals, minute after minute; and more issued tickets than a page
// of records holds.
func (e *env) busyHour() {
	e.t.Helper()
	ctx := e.w.Ctx
	if err := e.w.Ledger.AddShop(ctx, daodian.Shop{MerchantID: storetest.M1, ID: "shop-3", Name: "三号店"}); err != nil {
		e.t.Fatal(err)
	}
	o, err := e.w.Ledger.Issue(ctx, daodian.IssueRequest{MerchantID: storetest.M1, Count: 1, Quantity: 10, ItemName: "洗剪吹10次卡",
		TotalAmountCents: 50000, RealAmountCents: 45000, OriginalPriceCents: 60000})
	if err != nil {
		e.t.Fatal(err)
	}
	card := o.Tickets[0]
	for i := range 24 {
		tickets := e.w.Issue(1, 1).Tickets
		shop := storetest.S1
		if i%3 == 0 {
			shop = "shop-3"
		}
		e.call(e.w.A, alsc.MethodConsult, "consult_request", fmt.Sprintf(`{"request_id":"c%d","shop_id":"%s","ticket_code":"%s"}`, i, shop, tickets[0].Code))
		e.call(e.w.A, alsc.MethodUse, "use_request", fmt.Sprintf(`{"ticket_code":"%s","shop_id":"%s","ticket_request_id":"u%d"}`, tickets[0].Code, shop, i))
		if i%5 == 0 {
			e.call(e.w.A, alsc.MethodReserve, "ticket_reverse_top_request", fmt.Sprintf(`{"request_id":"r%d","ticket_id":"%s"}`, i, tickets[0].ID))
		}
		if i%4 == 0 {
			e.call(e.w.A2, alsc.MethodConsult, "consult_request", fmt.Sprintf(`{"request_id":"x%d","shop_id":"%s","ticket_code":"100000000000"}`, i, shop))
		}
		if i%8 == 1 {
			use := e.call(e.w.A2, alsc.MethodUse, "use_request", fmt.Sprintf(`{"ticket_code":"%s","shop_id":"%s","ticket_request_id":"card%d","quantity":2}`, card.Code, storetest.S1, i))
			if i == 9 {
				trans := regexp.MustCompile(`"ticket_trans_id":"(\d+)"`).FindStringSubmatch(use)
				if trans == nil {
					e.t.Fatalf("use: %s", use)
				}
				e.call(e.w.A2, alsc.MethodRefund, "trans_id", trans[1], "ticket_code", card.Code, "ticket_request_id", "f1")
			}
		}
		if i < 23 {
			e.w.Clock.Advance(2 * time.Minute)
		}
	}
	for range 40 {
		e.w.Issue(1, 1)
	}
	if _, err := e.w.Ledger.AddFaultRule(ctx, daodian.FaultRule{AppKey: e.w.A2.Key, Kind: daodian.FaultError, Method: alsc.MethodReserve, Count: 3}); err != nil {
		e.t.Fatal(err)
	}
}

package client_test

import (
	"context"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/spectest"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
)

// t0 and t0Text are the instant every test starts at.
var t0 = testenv.T0

const t0Text = testenv.T0Text

// The standard app, merchant and shop: the seed's.
const (
	testKey    = testenv.AppKey
	testSecret = testenv.AppSecret
	merchant   = testenv.Merchant
	shop       = testenv.Shop
)

// env is a real gateway over a fresh embedded store, served over HTTP, with the
// seed (its app, merchant and shop), and a clock shared by the gateway, the
// ledger and the clients.
type env struct {
	t      *testing.T
	store  daodian.Store
	ledger *daodian.Ledger
	gw     *gateway.Gateway
	srv    *httptest.Server
	clock  func() time.Time
}

func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	g := testenv.NewGateway(t, testenv.Options{Config: cfg})
	testenv.Seed(t, g.Ledger)
	return &env{t: t, store: g.Store, ledger: g.Ledger, gw: g.GW, srv: g.Server, clock: g.Clock.Now}
}

// addApp stores an app (and its merchants) through the store.
func (e *env) addApp(app daodian.App) {
	e.t.Helper()
	if len(app.Merchants) == 0 {
		app.Merchants = []string{merchant}
	}
	if app.Name == "" {
		app.Name = "test app"
	}
	app.CreatedAt = t0
	storetest.InsertApp(e.t, e.store, app)
}

// client returns an SDK client of the standard app on the env's clock.
func (e *env) client(opts ...client.Option) *client.Client {
	return e.clientAs(testKey, testSecret, opts...)
}

func (e *env) clientAs(key, secret string, opts ...client.Option) *client.Client {
	opts = append([]client.Option{client.WithClock(e.clock), client.WithHTTPClient(e.srv.Client())}, opts...)
	return client.New(e.srv.URL+"/router/rest", key, secret, opts...)
}

// issue creates an order of n one-unit tickets of the merchant.
func (e *env) issue(n int) *daodian.Issued {
	e.t.Helper()
	is, err := e.ledger.Issue(context.Background(), daodian.IssueRequest{
		MerchantID: merchant, Count: n, Quantity: 1, ItemName: "洗剪吹", TotalAmountCents: 9900,
		RealAmountCents: 8800, OriginalPriceCents: 12800, UserPhone: "13800004139",
	})
	if err != nil {
		e.t.Fatalf("Issue: %v", err)
	}
	return is
}

// specSign is SPEC §3.3 written out independently of package top.
func specSign(params map[string]string, secret, method string) string {
	return spectest.Sign(params, secret, method)
}

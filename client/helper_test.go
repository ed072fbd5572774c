package client_test

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/spectest"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
)

// t0 is the instant every test starts at: 2024-05-01 12:00:00 GMT+8.
var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.FixedZone("GMT+8", 8*3600))

const t0Text = "2024-05-01 12:00:00"

const (
	testKey    = "app"
	testSecret = "secret"
	merchant   = "m1"
	shop       = "shop1"
)

// env is a real gateway over a fresh embedded store, served over HTTP, with one
// app, and a clock shared by the gateway, the ledger and the clients.
type env struct {
	t      *testing.T
	store  daodian.Store
	ledger *daodian.Ledger
	gw     *gateway.Gateway
	srv    *httptest.Server

	mu  sync.Mutex
	now time.Time
}

func newEnv(t *testing.T, cfg gateway.Config) *env {
	t.Helper()
	ctx := context.Background()
	s, err := sqlite.Open(ctx, t.TempDir()+"/daodian.db", sqlite.Options{})
	if err != nil {
		t.Fatalf("sqlite.Open: %v", err)
	}
	var store daodian.Store = s
	t.Cleanup(func() { _ = store.Close() })
	e := &env{t: t, store: store, now: t0}
	e.ledger = daodian.NewLedger(store, daodian.Config{Clock: e.clock})
	cfg.Clock = e.clock
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	e.gw = gateway.New(e.ledger, cfg)
	e.srv = httptest.NewServer(e.gw.Handler())
	t.Cleanup(e.srv.Close)
	e.addApp(daodian.App{Key: testKey, Secret: testSecret, Enabled: true})
	if err := e.ledger.AddShop(ctx, daodian.Shop{MerchantID: merchant, ID: shop, Name: "一号店"}); err != nil {
		t.Fatalf("AddShop: %v", err)
	}
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
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

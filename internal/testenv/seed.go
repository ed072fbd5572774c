package testenv

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/storetest"
)

// The names of the seed.
const (
	Merchant = "m1"
	Shop     = "s1"
	ShopName = "一号店"
	// AppKey and AppSecret are the seed's app, which tests sign as. The secret
	// is one no log line or message holds by chance, so that a test finding it
	// in one finds a leak.
	AppKey    = "app"
	AppSecret = "seed-app-secret-5c1f0e7a9b3d"
)

// App returns the seed's app as stored: enabled, bound to Merchant, granted
// every method without a rate limit, created at createdAt.
func App(createdAt time.Time) daodian.App {
	return daodian.App{Key: AppKey, Secret: AppSecret, Name: "pos", Merchants: []string{Merchant}, Enabled: true, CreatedAt: createdAt}
}

// Seeded is what Seed stored.
type Seeded struct {
	App    *daodian.App
	Orders []*daodian.Issued
	// Tickets are the tickets of Orders, in order.
	Tickets []daodian.Ticket
}

// Seed stores, through l, the seed every suite starts from: merchant Merchant
// with shop Shop, the app App (with its known secret), and an order of
// Merchant for each of orders (their MerchantID is set), issued on l's clock.
func Seed(t testing.TB, l *daodian.Ledger, orders ...daodian.IssueRequest) *Seeded {
	t.Helper()
	ctx := context.Background()
	if err := l.AddShop(ctx, daodian.Shop{MerchantID: Merchant, ID: Shop, Name: ShopName}); err != nil {
		t.Fatalf("seed: AddShop: %v", err)
	}
	app := App(l.Now())
	storetest.InsertApp(t, l.Store(), app)
	s := &Seeded{App: &app}
	for _, req := range orders {
		req.MerchantID = Merchant
		o, err := l.Issue(ctx, req)
		if err != nil {
			t.Fatalf("seed: Issue: %v", err)
		}
		s.Orders = append(s.Orders, o)
		s.Tickets = append(s.Tickets, o.Tickets...)
	}
	return s
}

// SeedDB seeds the database d (on the real clock) and closes its store, for a
// daodian process to open: an embedded database admits one process.
func SeedDB(t testing.TB, d DB, orders ...daodian.IssueRequest) *Seeded {
	t.Helper()
	s := d.Open(t)
	seeded := Seed(t, daodian.NewLedger(s, daodian.Config{}), orders...)
	if err := s.Close(); err != nil {
		t.Fatalf("seed: Close: %v", err)
	}
	return seeded
}

// SignedForm returns the urlencoded body of a signed call of method as app, the
// way an SDK sends it, for tests that write requests on a raw connection (a body
// sent in part, a slow sender).
func SignedForm(t testing.TB, gatewayURL string, app *daodian.App, method string, business map[string]string) string {
	t.Helper()
	p, err := client.New(gatewayURL, app.Key, app.Secret).Params(method, business)
	if err != nil {
		t.Fatal(err)
	}
	form := url.Values{}
	for k, v := range p {
		form.Set(k, v)
	}
	return form.Encode()
}

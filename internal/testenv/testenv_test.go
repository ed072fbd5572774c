package testenv_test

import (
	"context"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/pgtest"
	"github.com/daodian/daodian/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.Main(m)) }

// TestRunWithoutPostgres: without DAODIAN_TEST_POSTGRES, Run runs the test on
// the embedded store only (the PostgreSQL subtest skips).
func TestRunWithoutPostgres(t *testing.T) {
	t.Setenv(pgtest.Env, "")
	var ran []testenv.Kind
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) { ran = append(ran, kind) })
	if !reflect.DeepEqual(ran, []testenv.Kind{testenv.Embedded}) {
		t.Fatalf("ran on %v, want only embedded", ran)
	}
}

// TestSeedDB: on each store, the seed is in the database for the next store
// (or process) to open with the database's key file: the app signs with its
// known secret, the shop is the merchant's, the tickets are issued.
func TestSeedDB(t *testing.T) {
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) {
		d := testenv.NewDB(t, kind)
		if d.Kind() != kind {
			t.Fatalf("NewDB(%s) is a %s database", kind, d.Kind())
		}
		seeded := testenv.SeedDB(t, d, daodian.IssueRequest{Count: 2, Quantity: 3}, daodian.IssueRequest{})
		if len(seeded.Orders) != 2 || len(seeded.Tickets) != 3 {
			t.Fatalf("seeded %d orders, %d tickets; want 2, 3", len(seeded.Orders), len(seeded.Tickets))
		}
		if _, err := os.Stat(d.KeyFile); err != nil {
			t.Fatalf("the key file: %v", err)
		}
		ctx := context.Background()
		l := daodian.NewLedger(d.Open(t), daodian.Config{})
		app, err := l.App(ctx, testenv.AppKey)
		if err != nil || app.Secret != testenv.AppSecret || !app.Enabled || !app.CanSee(testenv.Merchant) {
			t.Fatalf("the seed's app: %+v, %v", app, err)
		}
		r, err := l.Consult(ctx, app, daodian.ConsultRequest{RequestID: "c", ShopID: testenv.Shop, TicketCode: seeded.Tickets[0].Code})
		if err != nil || !r.Success || r.Value.AvailableQuantity != 6 {
			t.Fatalf("consult of the seed's first order: %+v, %v", r, err)
		}
	})
}

// TestNewGateway: the gateway serves the ledger on the env's clock, which the
// test sets.
func TestNewGateway(t *testing.T) {
	g := testenv.NewGateway(t, testenv.Options{})
	testenv.Seed(t, g.Ledger)
	c := client.New(g.URL, testenv.AppKey, testenv.AppSecret, client.WithClock(g.Clock.Now))
	if got := testenv.T0.Format(time.DateTime); got != testenv.T0Text {
		t.Fatalf("T0 is %s, T0Text %s", got, testenv.T0Text)
	}
	for _, at := range []string{testenv.T0Text, "2024-05-02 08:30:00"} {
		now, err := time.ParseInLocation(time.DateTime, at, testenv.T0.Location())
		if err != nil {
			t.Fatal(err)
		}
		g.Clock.Set(now)
		r, err := c.TimeGet(context.Background())
		if err != nil || r.Time != at {
			t.Fatalf("time.get at %s: %+v, %v", at, r, err)
		}
	}
}

// TestStartServe: a real serve on a seeded database answers the seed's app,
// writes its log to Stderr and stops cleanly on SIGTERM; a command on the same
// database (with its key file) sees what it did.
func TestStartServe(t *testing.T) {
	d := testenv.NewDB(t, testenv.Embedded)
	seeded := testenv.SeedDB(t, d, daodian.IssueRequest{Quantity: 2})
	p := testenv.StartServe(t, d.Args()...)
	if !strings.HasSuffix(p.URL, "/router/rest") || p.Base+"/router/rest" != p.URL {
		t.Fatalf("URL %q, Base %q", p.URL, p.Base)
	}
	c := client.New(p.URL, testenv.AppKey, testenv.AppSecret)
	tk := seeded.Tickets[0]
	if _, err := c.Use(context.Background(), alsc.UseTopRequest{TicketCode: tk.Code, ShopID: testenv.Shop, TicketRequestID: "u1"}); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p.Wait(0); exited {
		t.Fatal("Wait(0) says a running server exited")
	}
	p.Stop(t)
	if exited, err := p.Wait(0); !exited || err != nil {
		t.Fatalf("after Stop: exited %v, %v", exited, err)
	}
	if !strings.Contains(p.Stderr(), "serving on "+p.Base) {
		t.Fatalf("stderr:\n%s", p.Stderr())
	}
	out, err := d.Command(t, "audit", "--json").CombinedOutput()
	if err != nil || !strings.Contains(string(out), `"uses": 1`) {
		t.Fatalf("audit after serve: %v\n%s", err, out)
	}
}

package testenv

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/storetest"
)

// Options configure NewGateway.
type Options struct {
	// Ledger is the ledger the gateway serves, on Clock, which must then be
	// given too. Nil: a new ledger over a new embedded store, on Clock or, if
	// nil, a new clock at T0.
	Ledger *daodian.Ledger
	Clock  *storetest.Clock
	// WrapStore, if set, wraps the new store the new ledger and the test use.
	WrapStore func(daodian.Store) daodian.Store
	// Config is the gateway's configuration. Its Clock is replaced by Clock's;
	// a nil Logger discards the logs.
	Config gateway.Config
	// Setup, if set, runs on the gateway before it serves (e.g. to register
	// methods).
	Setup func(*gateway.Gateway)
	// Wrap, if set, wraps the gateway's handler.
	Wrap func(http.Handler) http.Handler
}

// Gateway is a gateway served over HTTP in the test's process; its server is
// closed when the test ends.
type Gateway struct {
	Store  daodian.Store
	Ledger *daodian.Ledger
	Clock  *storetest.Clock
	GW     *gateway.Gateway
	Server *httptest.Server
	// URL is the gateway's /router/rest.
	URL string
}

// NewGateway starts a gateway as o says.
func NewGateway(t testing.TB, o Options) *Gateway {
	t.Helper()
	g := &Gateway{Ledger: o.Ledger, Clock: o.Clock}
	switch {
	case g.Ledger != nil && g.Clock == nil:
		t.Fatal("testenv: Options.Ledger without its Clock")
	case g.Ledger != nil:
		g.Store = g.Ledger.Store()
	default:
		if g.Clock == nil {
			g.Clock = NewClock()
		}
		g.Store = NewDB(t, Embedded).Open(t)
		if o.WrapStore != nil {
			g.Store = o.WrapStore(g.Store)
		}
		g.Ledger = daodian.NewLedger(g.Store, daodian.Config{Clock: g.Clock.Now})
	}
	cfg := o.Config
	cfg.Clock = g.Clock.Now
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	g.GW = gateway.New(g.Ledger, cfg)
	if o.Setup != nil {
		o.Setup(g.GW)
	}
	h := g.GW.Handler()
	if o.Wrap != nil {
		h = o.Wrap(h)
	}
	g.Server = httptest.NewServer(h)
	t.Cleanup(g.Server.Close)
	g.URL = g.Server.URL + "/router/rest"
	return g
}

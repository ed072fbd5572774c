package gateway_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/testenv"
)

// BenchmarkRequestPath measures the gateway's whole request path in process —
// parsing, the checks of SPEC §3.5, the signature, decoding, the method, the
// answer's encoding, the request log line, metrics and the request log — with
// its allocations, without a network: what a request costs the server beside
// net/http's connection handling.
//
//   - time.get: the protocol alone;
//   - reserve replay: a reversal answered from the answer cache, no store;
//   - use+reserve: a use and its reversal, each a durable batch on the embedded
//     store (per cycle, two requests); one caller at a time, so its time is
//     mostly the wait for fdatasync — its allocations are the figure.
//
// The log line goes to a discarding handler: its cost is the handler's
// formatting, not a terminal's.
func BenchmarkRequestPath(b *testing.B) {
	g := testenv.NewGateway(b, testenv.Options{})
	seed := testenv.Seed(b, g.Ledger, daodian.IssueRequest{Quantity: daodian.MaxQuantity}, daodian.IssueRequest{})
	// tk takes the uses; other the replayed reversal, whose empty reversal
	// leaves a fence that would refuse the uses (the clock stands still).
	tk, other := seed.Tickets[0], seed.Tickets[1]
	c := client.New(g.URL, seed.App.Key, seed.App.Secret, client.WithClock(g.Clock.Now))
	h := g.GW.Handler()
	body := func(b *testing.B, method string, params map[string]string) string {
		p, err := c.Params(method, params)
		if err != nil {
			b.Fatal(err)
		}
		form := url.Values{}
		for k, v := range p {
			form.Set(k, v)
		}
		return form.Encode()
	}
	serve := func(b *testing.B, form string) string {
		r := httptest.NewRequest(http.MethodPost, "/router/rest", strings.NewReader(form))
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != http.StatusOK || strings.Contains(w.Body.String(), "error_response") {
			b.Fatalf("%d %s", w.Code, w.Body.String())
		}
		return w.Body.String()
	}
	b.Run("time.get", func(b *testing.B) {
		form := body(b, alsc.MethodTimeGet, nil)
		b.ReportAllocs()
		for b.Loop() {
			serve(b, form)
		}
	})
	b.Run("reserve replay", func(b *testing.B) {
		form := body(b, alsc.MethodReserve, map[string]string{alsc.ParamReverseRequest: `{"request_id":"replayed","ticket_id":"` + other.ID + `"}`})
		serve(b, form) // recorded; every later one is a replay
		b.ReportAllocs()
		for b.Loop() {
			serve(b, form)
		}
	})
	b.Run("use+reserve", func(b *testing.B) {
		// The signed bodies are made first: signing is the client's work.
		uses, reversals := make([]string, b.N), make([]string, b.N)
		for i := range b.N {
			rid := strconv.Itoa(i)
			uses[i] = body(b, alsc.MethodUse, map[string]string{alsc.ParamUseRequest: `{"ticket_code":"` + tk.Code +
				`","shop_id":"` + testenv.Shop + `","ticket_request_id":"u` + rid + `"}`})
			reversals[i] = body(b, alsc.MethodReserve, map[string]string{alsc.ParamReverseRequest: `{"request_id":"r` + rid +
				`","ticket_id":"` + tk.ID + `"}`}) // the latest use: the one just made
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			serve(b, uses[i])
			serve(b, reversals[i])
		}
	})
}

package gateway_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/top"
)

// slowSender opens a TCP connection to the env's gateway and sends the headers
// of a POST declaring a body of declared bytes, then the first sent bytes of it,
// and nothing more. It returns the connection, closed when the test ends.
func (e *env) slowSender(t *testing.T, declared, sent int) net.Conn {
	t.Helper()
	host := strings.TrimPrefix(e.srv.URL, "http://")
	conn, err := net.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	q := values(e.timeGet()).Encode()
	_, err = fmt.Fprintf(conn, "POST /router/rest?%s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: %d\r\n\r\n%s",
		q, host, declared, strings.Repeat("a", sent))
	if err != nil {
		t.Fatal(err)
	}
	return conn
}

// waitGauge polls /metrics until the gauge has the value.
func (e *env) waitGauge(t *testing.T, name string, want float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v := gaugeValue(t, e.scrape(t), name)
		if v == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v, want %v", name, v, want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestSlowBodiesHoldNoSlot (SPEC §3.6): three times --max-concurrent
// connections that sent their headers and ten bytes of a declared body, and
// never the rest, hold no concurrency slot: while they wait, signed requests,
// reversals among them, are answered normally and promptly, never
// isp.server-busy.
func TestSlowBodiesHoldNoSlot(t *testing.T) {
	const maxConcurrent = 2
	e := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: maxConcurrent, BodyReadTimeout: time.Minute}})
	for range 3 * maxConcurrent {
		e.slowSender(t, 1000, 10)
	}
	// They are all inside the handler, reading their bodies, and none is
	// admitted.
	e.waitGauge(t, gateway.MetricInFlight, 3*maxConcurrent)
	if v := gaugeValue(t, e.scrape(t), gateway.MetricAdmitted); v != 0 {
		t.Fatalf("%s = %v while only slow senders are connected", gateway.MetricAdmitted, v)
	}
	before := e.counts()
	for i := range 10 {
		start := time.Now()
		p := e.pubParams(alsc.MethodReserve, testKey)
		p["ticket_reverse_top_request"] = `{"request_id":"r` + strconv.Itoa(i) + `","ticket_id":"2100000000000999999"}`
		a := e.post(nil, signed(p, testSecret))
		e.expectOK(a)
		if !strings.Contains(string(a.body), daodian.CodeTicketNotFound) {
			t.Fatalf("reversal %d: %s", i, a.body)
		}
		e.expectOK(e.get(e.timeGet()))
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("request %d took %v beside slow senders", i, d)
		}
	}
	if after := e.counts(); after.Idem != before.Idem+10 {
		t.Fatalf("the reversals were not recorded: %+v → %+v", before, after)
	}
}

// TestRefusedRequestsTakeNoSlot: with every slot taken, a request that fails a
// check before its method (app key, timestamp, signature, rate limit,
// permission) is answered for that fault, not isp.server-busy: it was refused
// before it could take a slot. Only a request that passed them all is shed.
func TestRefusedRequestsTakeNoSlot(t *testing.T) {
	b := newBlocker()
	e := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 1}, setup: b.register})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 1})
	e.addApp(daodian.App{Key: "narrow", Secret: "ns", Enabled: true, Methods: []string{alsc.MethodConsult}})
	e.expectOK(e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls"))) // its one call of this second
	wait := e.hold(t, b, 1)
	for _, c := range []struct {
		name   string
		params map[string]string
		code   int
	}{
		{"no app key", without(e.timeGet(), testSecret, "app_key"), 28},
		{"unknown app key", with(e.timeGet(), testSecret, "app_key", "nobody"), 29},
		{"stale timestamp", with(e.timeGet(), testSecret, "timestamp", "2020-01-01 00:00:00"), 31},
		{"no sign", without(e.timeGet(), testSecret, "sign"), 24},
		{"wrong secret", with(e.timeGet(), "not the secret"), 25},
		{"rate limited", signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls"), 7},
		{"not granted", signed(e.pubParams(alsc.MethodUse, "narrow"), "ns"), 11},
	} {
		p := c.params
		if c.code == 24 {
			delete(p, "sign")
		}
		e.expectError(e.get(p), want{code: c.code})
	}
	e.expectError(e.get(e.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
	b.releaseAll()
	wait()
	e.expectOK(e.get(e.timeGet()))
}

// TestBodyReadTimeout: a client that trickles its body is cut off
// BodyReadTimeout after its headers, with a 41 saying so, and its connection is
// closed; a body that arrives in time is served, and lifting the deadline once
// the body is read lets a method run longer than the timeout without its
// context being cancelled.
func TestBodyReadTimeout(t *testing.T) {
	const timeout = 300 * time.Millisecond
	var cancelled atomic.Bool
	e := stdEnv(t, envOpts{cfg: gateway.Config{BodyReadTimeout: timeout}, setup: func(g *gateway.Gateway) {
		g.Register(&gateway.Method{
			Spec: alsc.Spec{Name: "test.slow"},
			Handle: func(ctx context.Context, in *gateway.Input) (top.Body, *top.Error) {
				select {
				case <-time.After(3 * timeout):
				case <-ctx.Done():
					cancelled.Store(true)
				}
				return &alsc.TimeGetResponse{Time: top.FormatTime(in.Now)}, nil
			},
		})
	}})

	t.Run("trickled body is cut off", func(t *testing.T) {
		conn := e.slowSender(t, 1000, 10)
		start := time.Now()
		stop := make(chan struct{})
		defer close(stop)
		go func() { // one byte every 50 ms: never idle, never done
			for {
				select {
				case <-stop:
					return
				case <-time.After(50 * time.Millisecond):
					if _, err := conn.Write([]byte("a")); err != nil {
						return
					}
				}
			}
		}()
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		br := bufio.NewReader(conn)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("no answer to a trickled body: %v", err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if d < timeout || d > timeout+2*time.Second {
			t.Fatalf("answered after %v, want about %v", d, timeout)
		}
		e.expectError(answer{status: resp.StatusCode, header: resp.Header, body: body}, want{code: 41, subMsgHas: "did not arrive in time"})
		if !resp.Close {
			t.Fatal("the connection of a cut-off body is kept open")
		}
		if _, err := br.ReadByte(); err == nil {
			t.Fatal("the server kept reading the connection after cutting the body off")
		}
	})

	t.Run("a method may outlast the body timeout", func(t *testing.T) {
		p := e.pubParams("test.slow", testKey)
		p["pad"] = "x" // a body, so that the deadline is set
		e.expectOK(e.post(nil, signed(p, testSecret)))
		if cancelled.Load() {
			t.Fatal("the method's context was cancelled by the body deadline")
		}
		// The connection is reused: the next request gets fresh deadlines.
		e.expectOK(e.post(nil, signed(e.pubParams(alsc.MethodTimeGet, testKey), testSecret)))
	})
}

// appHookStore lets a test intercept the store's App reads.
type appHookStore struct {
	daodian.Store
	app func(ctx context.Context, tx daodian.ReadTx, key string) (*daodian.App, error)
}

func (s *appHookStore) View(ctx context.Context, fn func(tx daodian.ReadTx) error) error {
	return s.Store.View(ctx, func(tx daodian.ReadTx) error { return fn(hookTx{tx, s}) })
}

type hookTx struct {
	daodian.ReadTx
	s *appHookStore
}

func (t hookTx) App(ctx context.Context, key string) (*daodian.App, error) {
	return t.s.app(ctx, t.ReadTx, key)
}

// TestUnknownAppLookupsAreBounded: requests naming app keys the gateway has
// never seen (any client can invent them) read the store at most a few at a
// time; the rest wait a bounded time and are answered isp.server-busy, while an
// app the gateway knows is served without waiting.
func TestUnknownAppLookupsAreBounded(t *testing.T) {
	var inside, most atomic.Int32
	unblock := make(chan struct{})
	var once sync.Once
	release := func() { once.Do(func() { close(unblock) }) }
	e := stdEnv(t, envOpts{wrapStore: func(s daodian.Store) daodian.Store {
		return &appHookStore{Store: s, app: func(ctx context.Context, tx daodian.ReadTx, key string) (*daodian.App, error) {
			if strings.HasPrefix(key, "random-") {
				n := inside.Add(1)
				defer inside.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				<-unblock
			}
			return tx.App(ctx, key)
		}}
	}})
	t.Cleanup(release)
	e.expectOK(e.get(e.timeGet())) // the known app is in the cache
	// Past the cache's TTL: the known app is read again, but not behind the
	// bound on unknown keys.
	e.setClock(t0.Add(3 * time.Second))

	// n requests of unknown keys: lookups of them reach the store, the rest
	// wait for their turn until they give up.
	const n, lookups = 12, 2
	answers := make(chan answer, n)
	for i := range n {
		go func() {
			answers <- e.get(with(e.timeGet(), testSecret, "app_key", "random-"+strconv.Itoa(i)))
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for inside.Load() < lookups && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	// The known app does not wait behind them.
	known := make(chan answer, 1)
	go func() { known <- e.get(e.timeGet()) }()
	select {
	case a := <-known:
		e.expectOK(a)
	case <-time.After(2 * time.Second):
		t.Fatal("a known app waits behind lookups of unknown keys")
	}
	busy := 0
	for range n - lookups {
		var a answer
		select {
		case a = <-answers:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d unknown keys are read at once, and nobody waits", inside.Load())
		}
		te := e.errorResponse(a)
		if te == nil || te.Code != 15 || te.SubCode != gateway.SubCodeServerBusy {
			t.Fatalf("a lookup beyond the bound: %s", a.body)
		}
		busy++
	}
	release()
	for range lookups {
		e.expectError(<-answers, want{code: 29})
	}
	if m := most.Load(); m > lookups {
		t.Fatalf("%d unknown keys were read from the store at once", m)
	}
	if busy != n-lookups {
		t.Fatalf("%d answered busy", busy)
	}
}

// TestPreviousSecret: while a rotation's grace period lasts, a request signed
// with the secret it replaced is accepted (and logged as such); the current
// secret is accepted always, the previous one never after PreviousSecretUntil
// nor when there is none.
func TestPreviousSecret(t *testing.T) {
	var prev atomic.Pointer[daodian.App]
	prev.Store(&daodian.App{})
	var logs testio.Buffer
	e := newEnv(t, envOpts{wrapStore: func(s daodian.Store) daodian.Store {
		return &appHookStore{Store: s, app: func(ctx context.Context, tx daodian.ReadTx, key string) (*daodian.App, error) {
			a, err := tx.App(ctx, key)
			if err == nil {
				p := prev.Load()
				a.PreviousSecret, a.PreviousSecretUntil = p.PreviousSecret, p.PreviousSecretUntil
			}
			return a, err
		}}
	}, cfg: gateway.Config{AppCacheTTL: time.Millisecond, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}})
	e.addApp(daodian.App{Key: testKey, Secret: "new secret", Enabled: true})
	// at moves the clock past the app cache's TTL and sets the previous secret
	// the store returns from then on.
	at := func(d time.Duration, previous string, until time.Time) {
		e.setClock(t0.Add(d))
		prev.Store(&daodian.App{PreviousSecret: previous, PreviousSecretUntil: until})
	}
	call := func(secret string, signMethod ...string) answer {
		p := e.pubParams(alsc.MethodTimeGet, testKey)
		if len(signMethod) > 0 {
			p["sign_method"] = signMethod[0]
		}
		return e.get(signed(p, secret))
	}

	e.expectOK(call("new secret"))
	e.expectError(call("old secret"), want{code: 25}) // no previous secret

	at(time.Second, "old secret", t0.Add(time.Hour))
	e.expectOK(call("new secret"))
	if strings.Contains(logs.String(), "previous_secret") {
		t.Fatalf("a request signed with the current secret is logged as using the previous one:\n%s", logs.String())
	}
	for _, m := range []string{top.SignMD5, top.SignHMAC, top.SignHMACSHA256} {
		e.expectOK(call("old secret", m))
	}
	if n := strings.Count(logs.String(), `"previous_secret":true`); n != 3 {
		t.Fatalf("%d request log lines say previous_secret, want 3:\n%s", n, logs.String())
	}
	e.expectError(call("other secret"), want{code: 25})

	at(time.Hour, "old secret", t0.Add(time.Hour)) // the grace period is over
	e.expectError(call("old secret"), want{code: 25})
	e.expectOK(call("new secret"))

	at(time.Hour+time.Second, "", t0.Add(2*time.Hour)) // no previous secret, a date left over
	e.expectError(call(""), want{code: 25})
	e.expectOK(call("new secret"))
}

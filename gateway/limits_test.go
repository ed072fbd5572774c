package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/top"
)

// blocker is a test method whose calls wait until released, so that a test can
// hold a known number of requests in flight.
type blocker struct {
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

// releaseAll lets every held call, and every later one, return.
func (b *blocker) releaseAll() { b.once.Do(func() { close(b.release) }) }

func (b *blocker) register(g *gateway.Gateway) {
	g.Register(&gateway.Method{
		Spec: alsc.Spec{Name: "test.block"},
		Handle: func(ctx context.Context, in *gateway.Input) (top.Body, *top.Error) {
			b.entered <- struct{}{}
			select {
			case <-b.release:
			case <-ctx.Done():
			}
			return &alsc.TimeGetResponse{Time: top.FormatTime(in.Now)}, nil
		},
	})
}

// hold starts n blocking calls and returns once all n are inside the method; wait
// returns their HTTP statuses and bodies after release.
func (e *env) hold(t *testing.T, b *blocker, n int) (wait func() []string) {
	t.Helper()
	// A failing test must not leave the calls held: the server's Close would
	// wait for them forever.
	t.Cleanup(b.releaseAll)
	q := values(signed(e.pubParams("test.block", testKey), testSecret)).Encode()
	var wg sync.WaitGroup
	out := make([]string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := e.srv.Client().Get(e.url + "?" + q)
			if err != nil {
				out[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			out[i] = resp.Status + " " + string(body)
		}()
	}
	for range n {
		<-b.entered
	}
	return func() []string { wg.Wait(); return out }
}

// TestMaxConcurrent: beyond MaxConcurrent requests in their method, a signed
// request is answered at once (it does not wait for a slot) with code 15
// isp.server-busy in the caller's format, HTTP 200; the health endpoints still
// answer; once a slot frees, requests are served again.
func TestMaxConcurrent(t *testing.T) {
	b := newBlocker()
	e := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 2}, setup: b.register})
	wait := e.hold(t, b, 2)

	// JSON, format named in the query (as the official SDKs do).
	te := e.expectError(e.get(e.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
	if te.SubMsg == "" {
		t.Fatal("busy answer without sub_msg")
	}
	// XML by default, and a POST whose body is read (to check its signature)
	// before the request finds no slot.
	all := with(without(e.timeGet(), testSecret, "format"), testSecret, "pad", strings.Repeat("x", 10_000))
	q := without(all, testSecret, "pad")
	q["sign"] = all["sign"]
	a := e.post(q, map[string]string{"pad": all["pad"]})
	if a.isJSON() {
		t.Fatalf("busy answer to an XML caller is JSON: %s", a.body)
	}
	e.expectError(a, want{code: 15, subCode: gateway.SubCodeServerBusy})
	// A shed request changed nothing and counted nothing.
	if c := e.counts(); c.Uses != 0 || c.Idem != 0 {
		t.Fatalf("counts %+v", c)
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s while saturated: %d", path, resp.StatusCode)
		}
	}

	b.releaseAll()
	for i, s := range wait() {
		if !strings.HasPrefix(s, "200 ") || !strings.Contains(s, "time_get_response") && !strings.Contains(s, `"time"`) {
			t.Fatalf("held request %d: %s", i, s)
		}
	}
	// Slots are given back: a full set can be held again, and the next is shed.
	b2 := newBlocker()
	e2 := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 2}, setup: b2.register})
	for round := range 3 {
		wait := e2.hold(t, b2, 2)
		e2.expectError(e2.get(e2.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
		b2.release <- struct{}{}
		b2.release <- struct{}{}
		for i, s := range wait() {
			if !strings.HasPrefix(s, "200 ") {
				t.Fatalf("round %d, request %d: %s", round, i, s)
			}
		}
		e2.expectOK(e2.get(e2.timeGet()))
	}
}

// TestMaxConcurrentDefaultAndUnbounded: the default bound is generous enough not
// to shed a burst of ordinary size, and a negative bound means none.
func TestMaxConcurrentDefaultAndUnbounded(t *testing.T) {
	if gateway.DefaultMaxConcurrent < 256 {
		t.Fatalf("default bound %d is too small for 64 clients with replays", gateway.DefaultMaxConcurrent)
	}
	b := newBlocker()
	e := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: -1}, setup: b.register})
	wait := e.hold(t, b, 40)
	e.expectOK(e.get(e.timeGet()))
	b.releaseAll()
	for i, s := range wait() {
		if !strings.HasPrefix(s, "200 ") {
			t.Fatalf("request %d: %s", i, s)
		}
	}
}

// TestBusyIsObserved: a shed request is logged at WARN with its app and method,
// and reported to the Observer with outcome server_busy; a request that fails a
// check is answered for that fault even when every slot is taken.
func TestBusyIsObserved(t *testing.T) {
	var o recordingObserver
	var logs testio.Buffer
	b := newBlocker()
	e := newEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 1, Observer: &o,
		Logger: slog.New(slog.NewJSONHandler(&logs, nil))}, setup: b.register})
	e.addApp(daodian.App{Key: testKey, Secret: testSecret, Enabled: true})
	wait := e.hold(t, b, 1)
	te := e.expectError(e.get(e.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
	e.expectError(e.get(map[string]string{"method": "no.such", "format": "json"}), want{code: 22})
	e.expectError(e.get(with(e.timeGet(), "wrong secret")), want{code: 25})
	b.releaseAll()
	wait()
	o.mu.Lock()
	got := strings.Join(o.got, "|")
	o.mu.Unlock()
	for _, w := range []string{alsc.MethodTimeGet + " server_busy", "unknown code_22", alsc.MethodTimeGet + " code_25"} {
		if !strings.Contains(got, w) {
			t.Fatalf("observed %q, want %q among them", got, w)
		}
	}
	if strings.Count(got, "server_busy") != 1 {
		t.Fatalf("observed %q: one request was shed", got)
	}
	var line map[string]any
	for l := range strings.SplitSeq(logs.String(), "\n") {
		if strings.Contains(l, te.RequestID) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line["level"] != "WARN" || line["outcome"] != gateway.OutcomeServerBusy || line["app_key"] != testKey || line["method"] != alsc.MethodTimeGet {
		t.Fatalf("log line of the shed request: %v", line)
	}
}

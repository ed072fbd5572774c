package gateway_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/top"
)

// blocker is a test method whose calls wait until released, so that a test can
// hold a known number of requests in flight.
type blocker struct {
	entered chan struct{}
	release chan struct{}
}

func newBlocker() *blocker {
	return &blocker{entered: make(chan struct{}, 64), release: make(chan struct{})}
}

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

// TestMaxConcurrent: beyond MaxConcurrent requests in flight, a request is
// answered at once (it does not wait for a slot) with code 15 isp.server-busy in
// the caller's format, HTTP 200; the health endpoints still answer; once a slot
// frees, requests are served again.
func TestMaxConcurrent(t *testing.T) {
	b := newBlocker()
	e := stdEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 2}, setup: b.register})
	wait := e.hold(t, b, 2)

	// JSON, format named in the query (as the official SDKs do).
	te := e.expectError(e.get(e.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
	if te.SubMsg == "" {
		t.Fatal("busy answer without sub_msg")
	}
	// XML by default, and a POST whose body is never read.
	q := e.timeGet()
	delete(q, "format")
	a := e.post(q, map[string]string{"consult_request": strings.Repeat("x", 10_000)})
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

	close(b.release)
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
	close(b.release)
	for i, s := range wait() {
		if !strings.HasPrefix(s, "200 ") {
			t.Fatalf("request %d: %s", i, s)
		}
	}
}

// TestBusyIsObserved: a shed request is logged and reported to the Observer with
// outcome server_busy and its method when the query names a known one.
func TestBusyIsObserved(t *testing.T) {
	var o recordingObserver
	b := newBlocker()
	e := newEnv(t, envOpts{cfg: gateway.Config{MaxConcurrent: 1, Observer: &o}, setup: b.register})
	e.addApp(daodian.App{Key: testKey, Secret: testSecret, Enabled: true})
	wait := e.hold(t, b, 1)
	e.expectError(e.get(e.timeGet()), want{code: 15, subCode: gateway.SubCodeServerBusy})
	e.expectError(e.get(map[string]string{"method": "no.such", "format": "json"}), want{code: 15, subCode: gateway.SubCodeServerBusy})
	close(b.release)
	wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	got := strings.Join(o.got, "|")
	for _, w := range []string{alsc.MethodTimeGet + " server_busy", "unknown server_busy"} {
		if !strings.Contains(got, w) {
			t.Fatalf("observed %q, want %q among them", o.got, w)
		}
	}
}

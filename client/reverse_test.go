package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/top"
)

// fakeReserve is a gateway stand-in for the reversal: it records the request_id of
// every call and answers with the next scripted reply.
type fakeReserve struct {
	t       *testing.T
	mu      sync.Mutex
	script  []string // per call: "retry", "final", "ok", "hangup", "proxy", "proxyjson", "truncated", "15", "25"; the last repeats
	calls   int
	ids     []string
	methods []string
}

func (f *fakeReserve) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		f.t.Errorf("ParseForm: %v", err)
	}
	var req alsc.TicketReverseTopRequest
	if err := json.Unmarshal([]byte(r.Form.Get("ticket_reverse_top_request")), &req); err != nil {
		f.t.Errorf("ticket_reverse_top_request %q: %v", r.Form.Get("ticket_reverse_top_request"), err)
	}
	f.mu.Lock()
	f.calls++
	f.ids = append(f.ids, req.RequestID)
	f.methods = append(f.methods, r.Form.Get("method"))
	reply := f.script[min(f.calls, len(f.script))-1]
	n := f.calls
	f.mu.Unlock()

	// Answers are written by the gateway's own encoder, in the format asked for.
	format, _ := top.ParseFormat(r.Form.Get("format"))
	simplify := r.Form.Get("simplify") == "true"
	rid := fmt.Sprintf("trace-%d", n)
	w.Header().Set("Content-Type", format.ContentType())
	result := func(res alsc.ReserveResult) {
		_, _ = w.Write(top.AppendSuccess(nil, format, simplify, alsc.MethodReserve, &alsc.ReserveResponse{Result: res}, rid))
	}
	switch reply {
	case "retry":
		result(alsc.ReserveResult{ErrorCode: "SYSTEM_ERROR", Retry: true, ErrorMsg: "系统繁忙"})
	case "final":
		result(alsc.ReserveResult{ErrorCode: "REVERSE_TIME_EXPIRED", ErrorMsg: "已超过冲正时效"})
	case "ok":
		result(alsc.ReserveResult{Success: true})
	case "15":
		e := top.ErrRemoteService()
		e.SubCode = "isp.service-busy"
		_, _ = w.Write(top.AppendError(nil, format, e, rid))
	case "25":
		_, _ = w.Write(top.AppendError(nil, format, top.ErrInvalidSignature(), rid))
	case "proxy":
		// A proxy's error page, well-formed, with status 200.
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, `<html><head><title>Bad Gateway</title></head><body><result><success>false</success></result></body></html>`)
	case "proxyjson":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"success":false,"message":"Bad Gateway"}`)
	case "truncated":
		b := top.AppendSuccess(nil, format, simplify, alsc.MethodReserve, &alsc.ReserveResponse{Result: alsc.ReserveResult{Success: true}}, rid)
		_, _ = w.Write(b[:len(b)/2])
	case "hangup":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			f.t.Errorf("Hijack: %v", err)
			return
		}
		_ = conn.Close()
	default:
		f.t.Errorf("bad script entry %q", reply)
	}
}

func (f *fakeReserve) snapshot() (int, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls, append([]string(nil), f.ids...)
}

func startFake(t *testing.T, script ...string) (*fakeReserve, *client.Client) {
	t.Helper()
	return startFakeWith(t, nil, script...)
}

func startFakeWith(t *testing.T, opts []client.Option, script ...string) (*fakeReserve, *client.Client) {
	t.Helper()
	f := &fakeReserve{t: t, script: script}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	opts = append([]client.Option{client.WithHTTPClient(srv.Client())}, opts...)
	return f, client.New(srv.URL+"/router/rest", "app", "secret", opts...)
}

// fast is a policy whose waits are negligible.
func fast(max int, onRetry func(int, error)) client.RetryPolicy {
	return client.RetryPolicy{MaxAttempts: max, BaseDelay: time.Microsecond, MaxDelay: 10 * time.Microsecond, OnRetry: onRetry}
}

func allSame(t *testing.T, ids []string, want string) {
	t.Helper()
	for i, id := range ids {
		if id != want {
			t.Fatalf("call %d sent request_id %q, want %q (all: %v)", i+1, id, want, ids)
		}
	}
}

var reverseReq = alsc.TicketReverseTopRequest{TicketUseTransID: "2106027287988611313", TicketID: "2208191159703216457"}

func TestReverseRetriesUntilSuccess(t *testing.T) {
	for _, ff := range formats {
		for _, n := range []int{0, 1, 3, 6} {
			t.Run(fmt.Sprintf("%s/%d SYSTEM_ERROR then success", ff.name, n), func(t *testing.T) {
				testReverseRetriesUntilSuccess(t, n, client.WithFormat(ff.format, ff.simplify))
			})
		}
	}
}

func testReverseRetriesUntilSuccess(t *testing.T, n int, opt client.Option) {
	script := make([]string, 0, n+1)
	for range n {
		script = append(script, "retry")
	}
	f, c := startFakeWith(t, []client.Option{opt}, append(script, "ok", "final")...)
	var retries []int
	req := reverseReq
	req.RequestID = "rev-42"
	r, err := c.ReverseWithRetry(context.Background(), req, fast(8, func(a int, why error) {
		if why == nil {
			t.Error("OnRetry without a reason")
		}
		retries = append(retries, a)
	}))
	if err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	if !r.Result.Success || r.RequestID != fmt.Sprintf("trace-%d", n+1) {
		t.Fatalf("Reverse returned %+v, want the success of call %d", r, n+1)
	}
	calls, ids := f.snapshot()
	if calls != n+1 {
		t.Fatalf("%d calls, want %d", calls, n+1)
	}
	allSame(t, ids, "rev-42")
	if len(retries) != n {
		t.Fatalf("OnRetry called for attempts %v, want %d calls", retries, n)
	}
	for i, a := range retries {
		if a != i+1 {
			t.Fatalf("OnRetry attempts %v", retries)
		}
	}
}

func TestReverseGeneratesOneRequestID(t *testing.T) {
	f, c := startFake(t, "retry", "retry", "ok")
	if _, err := c.ReverseWithRetry(context.Background(), reverseReq, fast(8, nil)); err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	calls, ids := f.snapshot()
	if calls != 3 || ids[0] == "" {
		t.Fatalf("%d calls, ids %v", calls, ids)
	}
	allSame(t, ids, ids[0])

	// A second reversal is a new operation with a new id.
	if _, err := c.ReverseWithRetry(context.Background(), reverseReq, fast(8, nil)); err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	_, ids = f.snapshot()
	if ids[3] == ids[0] {
		t.Fatalf("two reversals share request_id %q", ids[0])
	}
}

func TestReverseStopsAtFinalFailure(t *testing.T) {
	f, c := startFake(t, "retry", "final", "ok")
	req := reverseReq
	req.RequestID = "rev-final"
	r, err := c.ReverseWithRetry(context.Background(), req, fast(8, nil))
	if err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	if r.Result.Success || r.Result.Retry || r.Result.ErrorCode != "REVERSE_TIME_EXPIRED" {
		t.Fatalf("Reverse returned %+v, want the retry=false answer", r.Result)
	}
	calls, ids := f.snapshot()
	if calls != 2 {
		t.Fatalf("%d calls, want 2: a retry=false answer is final", calls)
	}
	allSame(t, ids, "rev-final")

	f, c = startFake(t, "final", "ok")
	if r, err := c.ReverseWithRetry(context.Background(), req, fast(8, nil)); err != nil || r.Result.ErrorCode != "REVERSE_TIME_EXPIRED" {
		t.Fatalf("Reverse: %+v, %v", r, err)
	}
	if calls, _ := f.snapshot(); calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}

func TestReverseRetriesTransportError(t *testing.T) {
	f, c := startFake(t, "hangup", "retry", "hangup", "ok")
	var whys []error
	req := reverseReq
	req.RequestID = "rev-hangup"
	r, err := c.ReverseWithRetry(context.Background(), req, fast(8, func(_ int, why error) { whys = append(whys, why) }))
	if err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	if !r.Result.Success {
		t.Fatalf("Reverse returned %+v", r)
	}
	calls, ids := f.snapshot()
	if calls != 4 {
		t.Fatalf("%d calls, want 4", calls)
	}
	allSame(t, ids, "rev-hangup")
	var te *client.TransportError
	if len(whys) != 3 || !errors.As(whys[0], &te) || !errors.As(whys[2], &te) {
		t.Fatalf("retry reasons %v, want transport errors at 1 and 3", whys)
	}
}

func TestReversePlatformErrors(t *testing.T) {
	// 15 is transient: retried with the same id.
	f, c := startFake(t, "15", "15", "ok")
	req := reverseReq
	req.RequestID = "rev-15"
	if _, err := c.ReverseWithRetry(context.Background(), req, fast(8, nil)); err != nil {
		t.Fatalf("Reverse: %v", err)
	}
	calls, ids := f.snapshot()
	if calls != 3 {
		t.Fatalf("%d calls, want 3", calls)
	}
	allSame(t, ids, "rev-15")

	// 25 is final: returned at once as *client.Error.
	f, c = startFake(t, "25", "ok")
	_, err := c.ReverseWithRetry(context.Background(), req, fast(8, nil))
	var ce *client.Error
	if !errors.As(err, &ce) || ce.Code != 25 || ce.RequestID != "trace-1" {
		t.Fatalf("Reverse: %v, want *client.Error 25", err)
	}
	if errors.Is(err, client.ErrNotDefinitive) {
		t.Fatal("a final platform error reported as not definitive")
	}
	if calls, _ := f.snapshot(); calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}

func TestReverseGivesUp(t *testing.T) {
	for _, tail := range []string{"retry", "hangup", "15"} {
		t.Run(tail, func(t *testing.T) {
			f, c := startFake(t, tail)
			req := reverseReq
			req.RequestID = "rev-never"
			r, err := c.ReverseWithRetry(context.Background(), req, fast(4, nil))
			if !errors.Is(err, client.ErrNotDefinitive) {
				t.Fatalf("err %v, want ErrNotDefinitive", err)
			}
			calls, ids := f.snapshot()
			if calls != 4 {
				t.Fatalf("%d calls, want MaxAttempts=4", calls)
			}
			allSame(t, ids, "rev-never")
			if tail == "retry" && (r == nil || r.Result.Success || !r.Result.Retry) {
				t.Fatalf("gave up returning %+v, want the last retry=true answer", r)
			}
			if tail == "15" {
				var ce *client.Error
				if !errors.As(err, &ce) || ce.Code != 15 {
					t.Fatalf("err %v does not carry the last platform error", err)
				}
			}
		})
	}
}

func TestReverseContextCancelledWhileWaiting(t *testing.T) {
	f, c := startFake(t, "retry")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := client.RetryPolicy{MaxAttempts: 8, BaseDelay: time.Hour, MaxDelay: time.Hour, OnRetry: func(int, error) { cancel() }}
	done := make(chan error, 1)
	go func() {
		_, err := c.ReverseWithRetry(ctx, reverseReq, p)
		done <- err
	}()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Reverse kept waiting after its context was cancelled")
	}
	if calls, _ := f.snapshot(); calls != 1 {
		t.Fatalf("%d calls, want 1", calls)
	}
}

// TestReverseSendsReserveMethod: Reverse calls the reversal method.
func TestReverseSendsReserveMethod(t *testing.T) {
	f, c := startFake(t, "ok")
	if _, err := c.ReverseWithRetry(context.Background(), reverseReq, fast(1, nil)); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.methods) != 1 || f.methods[0] != alsc.MethodReserve {
		t.Fatalf("methods sent: %v", f.methods)
	}
}

// TestReverseRetriesUnreadableAnswers: an answer that is not a reversal answer (a
// proxy's page, a truncated body) leaves the outcome unknown: retried, never taken
// for a definitive failure.
func TestReverseRetriesUnreadableAnswers(t *testing.T) {
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			testReverseRetriesUnreadableAnswers(t, client.WithFormat(f.format, f.simplify))
		})
	}
}

func testReverseRetriesUnreadableAnswers(t *testing.T, opt client.Option) {
	f, c := startFakeWith(t, []client.Option{opt}, "proxy", "proxyjson", "truncated", "ok")
	var whys []error
	req := reverseReq
	req.RequestID = "rev-proxy"
	r, err := c.ReverseWithRetry(context.Background(), req, fast(8, func(_ int, why error) { whys = append(whys, why) }))
	if err != nil || !r.Result.Success {
		t.Fatalf("Reverse: %+v, %v", r, err)
	}
	calls, ids := f.snapshot()
	if calls != 4 {
		t.Fatalf("%d calls, want 4", calls)
	}
	allSame(t, ids, "rev-proxy")
	for _, why := range whys {
		var te *client.TransportError
		if !errors.As(why, &te) {
			t.Fatalf("retry reason %v (%T), want a transport error", why, why)
		}
	}
}

// TestReverseMaxDelayBoundsFirstWait: MaxDelay caps every wait, the first included.
func TestReverseMaxDelayBoundsFirstWait(t *testing.T) {
	f, c := startFake(t, "retry")
	// A guard, not a wait: if a wait of BaseDelay happened, this ends it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.ReverseWithRetry(ctx, reverseReq, client.RetryPolicy{MaxAttempts: 3, BaseDelay: time.Hour, MaxDelay: time.Microsecond})
	if !errors.Is(err, client.ErrNotDefinitive) {
		t.Fatalf("err %v, want ErrNotDefinitive after 3 quick attempts", err)
	}
	if calls, _ := f.snapshot(); calls != 3 {
		t.Fatalf("%d calls, want 3", calls)
	}
}

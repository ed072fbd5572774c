package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testio"
)

// requestIDOf returns the request_id of any answer.
func requestIDOf(t *testing.T, a answer) string {
	t.Helper()
	if a.isJSON() {
		var m map[string]json.RawMessage
		_ = json.Unmarshal(a.body, &m)
		if raw, ok := m["error_response"]; ok {
			var te topError
			_ = json.Unmarshal(raw, &te)
			return te.RequestID
		}
		return jsonRequestID(t, a.body)
	}
	s := string(a.body)
	i, j := strings.Index(s, "<request_id>"), strings.Index(s, "</request_id>")
	if i < 0 || j < i {
		t.Fatalf("no request_id in %s", a.body)
	}
	return s[i+len("<request_id>") : j]
}

// TestLogs: one line per request naming its request_id, app, method and outcome;
// the app secret never appears.
func TestLogs(t *testing.T) {
	var logs testio.Buffer
	e := stdEnv(t, envOpts{
		cfg:   gateway.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))},
		setup: registerPanic,
	})
	cases := []struct {
		a       answer
		method  string
		outcome string
	}{
		{e.get(e.timeGet()), alsc.MethodTimeGet, "success"},
		{e.get(with(e.timeGet(), "wrong-secret")), alsc.MethodTimeGet, "code_25"},
		{e.get(signed(e.pubParams("test.panic", testKey), testSecret)), "test.panic", "code_15"},
		{e.postAll(e.consult(validConsult)), alsc.MethodConsult, "TICKET_CODE_INVALID"},
		{e.postAll(e.consult("[]")), alsc.MethodConsult, "isv.invalid-parameter"},
	}
	type line struct {
		Msg       string  `json:"msg"`
		RequestID string  `json:"request_id"`
		AppKey    string  `json:"app_key"`
		Method    string  `json:"method"`
		Outcome   string  `json:"outcome"`
		Duration  float64 `json:"duration_ms"`
	}
	// A request's line is written just after its answer: wait for all of them.
	waitFor(t, func() bool { return strings.Count(logs.String(), "\n") >= len(cases) })
	byID := map[string][]line{}
	for _, s := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line not JSON: %q", s)
		}
		if l.RequestID == "" {
			t.Fatalf("log line without request_id: %s", s)
		}
		byID[l.RequestID] = append(byID[l.RequestID], l)
	}
	for _, c := range cases {
		rid := requestIDOf(t, c.a)
		var req []line
		for _, l := range byID[rid] {
			if l.Msg == "request" {
				req = append(req, l)
			}
		}
		if len(req) != 1 {
			t.Fatalf("request %s has %d request lines: %v", rid, len(req), byID[rid])
		}
		if l := req[0]; l.Method != c.method || l.Outcome != c.outcome || l.AppKey != testKey {
			t.Errorf("request %s logged as %+v, want method %s outcome %s app %s", rid, l, c.method, c.outcome, testKey)
		}
	}
	if strings.Contains(logs.String(), testSecret) {
		t.Fatalf("the app secret appears in the logs:\n%s", logs.String())
	}
}

// TestAppCache: a disabled app is refused once the cache has expired.
func TestAppCache(t *testing.T) {
	e := stdEnv(t, envOpts{cfg: gateway.Config{AppCacheTTL: 2 * time.Second}})
	e.expectOK(e.get(e.timeGet()))
	ctx := context.Background()
	err := e.store.Update(ctx, func(tx daodian.Tx) error {
		a, err := tx.App(ctx, testKey)
		if err != nil {
			return err
		}
		a.Enabled = false
		return tx.UpdateApp(ctx, a)
	})
	if err != nil {
		t.Fatal(err)
	}
	e.setClock(t0.Add(time.Second))
	e.expectOK(e.get(e.timeGet())) // still cached
	e.setClock(t0.Add(2*time.Second + time.Millisecond))
	e.expectError(e.get(e.timeGet()), want{code: 29})
}

// TestHealth: /healthz is the process, /readyz the store.
func TestHealth(t *testing.T) {
	e := stdEnv(t, envOpts{})
	get := func(path string) (int, string) {
		resp, err := e.srv.Client().Get(e.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/healthz"); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz: %d %q", code, body)
	}
	if code, _ := get("/readyz"); code != 200 {
		t.Fatalf("/readyz: %d", code)
	}
	if err := e.store.Close(); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the store closed: %d, want 503", code)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Fatalf("/healthz with the store closed: %d", code)
	}
}

type recordingObserver struct {
	mu  sync.Mutex
	got []string
}

func (o *recordingObserver) Observe(method, outcome string, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d < 0 {
		outcome += " (negative duration)"
	}
	o.got = append(o.got, method+" "+outcome)
}

// TestObserver: every answered request is reported with its method and outcome.
func TestObserver(t *testing.T) {
	var o recordingObserver
	e := stdEnv(t, envOpts{cfg: gateway.Config{Observer: &o}})
	e.get(e.timeGet())
	e.get(with(e.timeGet(), testSecret, "v", "3.0"))
	e.postAll(e.consult(validConsult))
	e.postAll(e.consult("x"))
	want := []string{
		alsc.MethodTimeGet + " success",
		alsc.MethodTimeGet + " code_34",
		alsc.MethodConsult + " TICKET_CODE_INVALID",
		alsc.MethodConsult + " isv.invalid-parameter",
	}
	// Observations are made just after each answer is written: wait for them.
	waitFor(t, func() bool { o.mu.Lock(); defer o.mu.Unlock(); return len(o.got) >= len(want) })
	o.mu.Lock()
	defer o.mu.Unlock()
	if fmt.Sprint(o.got) != fmt.Sprint(want) {
		t.Fatalf("observed %q, want %q", o.got, want)
	}
}

// TestConcurrentRequests: many clients at once, mixing formats, faults and methods;
// every answer is the right one for its request (no crossed buffers) and carries
// its own request_id.
func TestConcurrentRequests(t *testing.T) {
	e := stdEnv(t, envOpts{})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 5})
	const workers, perWorker = 8, 40
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	var rmu sync.Mutex
	rids := map[string]bool{}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				var p map[string]string
				var wantPrefix string
				switch (w + i) % 4 {
				case 0:
					p, wantPrefix = with(e.timeGet(), testSecret, "format", "xml"), xmlDecl+"<time_get_response><time>"+t0Text
				case 1:
					p, wantPrefix = e.timeGet(), `{"time_get_response":{"time":"`+t0Text
				case 2:
					p, wantPrefix = with(e.timeGet(), "bad"), `{"error_response":{"code":25,`
				case 3:
					p, wantPrefix = with(e.consult(`{"request_id":7}`), testSecret, "format", "xml"), xmlDecl+"<error_response><code>50</code>"
				}
				b, err := rawPost(e, p)
				if err != nil {
					errs <- err
					return
				}
				if !strings.HasPrefix(string(b), wantPrefix) {
					errs <- fmt.Errorf("answer %s, want it to start with %s", b, wantPrefix)
					return
				}
				rid := looseRequestID(b)
				if rid == "" {
					errs <- fmt.Errorf("no request_id in %s", b)
					return
				}
				rmu.Lock()
				dup := rids[rid]
				rids[rid] = true
				rmu.Unlock()
				if dup {
					errs <- fmt.Errorf("request_id %s answered twice", rid)
					return
				}
			}
		}()
	}
	// The limited app under contention: exactly its burst passes at a fixed clock.
	var passed, limited int
	var lmu sync.Mutex
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				b, err := rawPost(e, signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls"))
				if err != nil {
					errs <- err
					return
				}
				lmu.Lock()
				if bytes.Contains(b, []byte(`"code":7`)) {
					limited++
				} else if bytes.Contains(b, []byte("time_get_response")) {
					passed++
				}
				lmu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if passed != 5 || limited != 15 {
		t.Fatalf("limited app at 5/s: %d passed, %d limited; want 5 and 15", passed, limited)
	}
}

// rawPost posts p urlencoded, for goroutines that must not call t.Fatal.
func rawPost(e *env, p map[string]string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodPost, e.url, strings.NewReader(values(p).Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return io.ReadAll(resp.Body)
}

// looseRequestID finds the request_id of an answer in either format, or "".
func looseRequestID(b []byte) string {
	s := string(b)
	if i, j := strings.Index(s, "<request_id>"), strings.Index(s, "</request_id>"); i >= 0 && j > i {
		return s[i+len("<request_id>") : j]
	}
	const k = `"request_id":"`
	if i := strings.Index(s, k); i >= 0 {
		if j := strings.IndexByte(s[i+len(k):], '"'); j >= 0 {
			return s[i+len(k) : i+len(k)+j]
		}
	}
	return ""
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached within 10s")
		}
		time.Sleep(2 * time.Millisecond)
	}
}

package e2e

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/internal/testio"
	"github.com/daodian/daodian/sqlite"
	"github.com/daodian/daodian/storetest"
	"github.com/daodian/daodian/top"
)

// Fault injection through the real gateway and the SDK: what an integrator sees
// when a rule fires, and proof that the ledger stays consistent (audit clean at the
// end of every test) and that the SDK's reversal helper converges to one effect.

// faultReload is the rules' reload interval in these tests.
const faultReload = 20 * time.Millisecond

// logLines returns the decoded JSON log lines of logs whose msg starts with
// prefix.
func logLines(logs *testio.Buffer, prefix string) []map[string]any {
	var out []map[string]any
	for _, ln := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(ln), &m) == nil && strings.HasPrefix(m["msg"].(string), prefix) {
			out = append(out, m)
		}
	}
	return out
}

type faultEnv struct {
	*storetest.World
	path string
	gw   *gateway.Gateway
	logs *testio.Buffer
	url  string
	a    *client.Client
}

func newFaultEnv(t *testing.T, opts gateway.FaultOptions) *faultEnv {
	t.Helper()
	db := testenv.NewDB(t, testenv.Embedded)
	w := storetest.NewWorld(t, db.Open(t))
	logs := &testio.Buffer{}
	if opts.Reload == 0 {
		opts.Reload = faultReload
	}
	g := testenv.NewGateway(t, testenv.Options{Ledger: w.Ledger, Clock: w.Clock,
		Config: gateway.Config{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Faults: opts}})
	t.Cleanup(g.GW.ReleaseHeld)
	e := &faultEnv{World: w, path: db.URL, gw: g.GW, logs: logs, url: g.Server.URL, a: e2eClient(g.Server.URL, w.A, w.Clock.Now)}
	t.Cleanup(w.Audit)
	return e
}

func e2eClient(url string, app *daodian.App, clock func() time.Time, opts ...client.Option) *client.Client {
	return client.New(url, app.Key, app.Secret, append([]client.Option{client.WithClock(clock), client.WithFormat(top.JSON, false)}, opts...)...)
}

// arm adds a rule and waits until the gateway's copy of the rules is stale, so
// that the next request reads it.
func (e *faultEnv) arm(t *testing.T, r daodian.FaultRule) *daodian.FaultRule {
	t.Helper()
	if err := gateway.CheckFaultRule(&r); err != nil {
		t.Fatal(err)
	}
	added, err := e.Ledger.AddFaultRule(e.Ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2 * faultReload)
	return added
}

// injected returns daodian_faults_injected_total{kind}.
func (e *faultEnv) injected(t *testing.T, kind daodian.FaultKind) float64 {
	t.Helper()
	mfs, err := e.gw.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != gateway.MetricFaultsInjected {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "kind" && l.GetValue() == string(kind) {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no %s{kind=%q}", gateway.MetricFaultsInjected, kind)
	return 0
}

func (e *faultEnv) rules(t *testing.T) []daodian.FaultRule {
	t.Helper()
	rules, err := e.Ledger.FaultRules(e.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// fastRetry is a retry policy for tests: the same attempts, short waits.
func fastRetry(retries *[]error) client.RetryPolicy {
	return client.RetryPolicy{BaseDelay: time.Millisecond, MaxDelay: 5 * time.Millisecond,
		OnRetry: func(_ int, why error) { *retries = append(*retries, why) }}
}

func (e *faultEnv) useReq(code, rid string) alsc.UseTopRequest {
	return alsc.UseTopRequest{TicketCode: code, ShopID: storetest.S1, TicketRequestID: rid, Quantity: 1}
}

// TestFaultError: an error rule answers a retryable failure without running the
// method; the SDK helper retries with the same request id and converges.
func TestFaultError(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{})
	tk := e.Issue(1, 1).Tickets[0]
	if _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u1")); err != nil {
		t.Fatal(err)
	}
	// Scoped to the ticket by code: the reversal names it by id and still matches.
	rule := e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Method: alsc.MethodReserve, TicketCode: tk.Code, Count: 3})

	before := e.Snap()
	r, err := e.a.Reserve(e.Ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID})
	if err != nil || r.Result.Success || r.Result.ErrorCode != daodian.CodeSystemError || !r.Result.Retry || r.Result.ErrorMsg != "系统繁忙" {
		t.Fatalf("reversal under an error fault: %+v, %v", r, err)
	}
	if d := before.Diff(e.Snap(), true); d != "" {
		t.Fatalf("an error fault changed the ledger: %s", d)
	}

	var retries []error
	res, err := e.a.ReverseWithRetry(e.Ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID}, fastRetry(&retries))
	if err != nil || !res.Result.Success {
		t.Fatalf("SDK reversal helper: %+v, %v", res, err)
	}
	if len(retries) != 2 {
		t.Fatalf("%d retries, want 2 (the count of 3 was one short after the first call): %v", len(retries), retries)
	}
	if e.Available(tk.ID) != 1 || len(e.rules(t)) != 0 {
		t.Fatalf("available %d, rules %v: want the use reversed once and the rule spent", e.Available(tk.ID), e.rules(t))
	}
	if n := e.injected(t, daodian.FaultError); n != 3 {
		t.Fatalf("%v error faults counted, want 3", n)
	}
	warns := logLines(e.logs, "fault injected")
	if len(warns) != 3 || warns[0]["level"] != "WARN" || warns[0]["rule_id"] != rule.ID || warns[0]["app_key"] != e.A.Key ||
		warns[0]["fault"] != "error" || warns[0]["method"] != alsc.MethodReserve || warns[0]["request_id"] == "" {
		t.Fatalf("fault log lines: %v", warns)
	}
	reqs := logLines(e.logs, "request")
	if reqs[len(reqs)-2]["outcome"] != gateway.OutcomeFaultError {
		t.Fatalf("request log of an injected error: %v", reqs[len(reqs)-2])
	}

	t.Run("use and code", func(t *testing.T) {
		tk := e.Issue(1, 1).Tickets[0]
		other := e.Issue(1, 1).Tickets[0]
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Method: alsc.MethodUse, TicketID: tk.ID, Count: 1})
		// Another ticket is out of the rule's scope.
		if _, err := e.a.Use(e.Ctx, e.useReq(other.Code, "o1")); err != nil {
			t.Fatal(err)
		}
		before := e.Snap()
		_, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u2"))
		wantPlatform(t, err, 15, "isp.service-busy")
		if !client.RetryableError(err) {
			t.Fatal("the SDK does not retry an injected error")
		}
		if d := before.Diff(e.Snap(), true); d != "" {
			t.Fatalf("an error fault changed the ledger: %s", d)
		}
		if _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u2")); err != nil {
			t.Fatalf("retry after the fault: %v", err)
		}
		// A platform code of the rule's choosing.
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Code: 7, Count: 1})
		_, err = e.a.TimeGet(e.Ctx)
		var pe *client.Error
		if !errors.As(err, &pe) || pe.Code != 7 || !client.RetryableError(err) {
			t.Fatalf("code 7 fault: %v", err)
		}
		// Consult answers in its result, like the reversal.
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Method: alsc.MethodConsult, Count: 1})
		cr, err := e.a.Consult(e.Ctx, alsc.ConsultTopRequest{RequestID: "c1", ShopID: storetest.S1, TicketCode: tk.Code})
		if err != nil || cr.Result.Success || cr.Result.ErrorCode != daodian.CodeSystemError || !cr.Result.Retry {
			t.Fatalf("consult under an error fault: %+v, %v", cr, err)
		}
	})

	t.Run("other apps untouched", func(t *testing.T) {
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError})
		a2 := e2eClient(e.url, e.A2, e.Clock.Now)
		for range 3 {
			if _, err := a2.TimeGet(e.Ctx); err != nil {
				t.Fatalf("app A2 under app A's rule: %v", err)
			}
		}
		if _, err := e.a.TimeGet(e.Ctx); err == nil {
			t.Fatal("an unlimited rule stopped firing")
		}
		if _, err := e.Ledger.ClearFaultRules(e.Ctx, e.A.Key, ""); err != nil {
			t.Fatal(err)
		}
		time.Sleep(2 * faultReload)
		if _, err := e.a.TimeGet(e.Ctx); err != nil {
			t.Fatalf("after clear: %v", err)
		}
	})

	t.Run("probability", func(t *testing.T) {
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Method: alsc.MethodTimeGet, Probability: 0.5})
		failed := 0
		for range 200 {
			if _, err := e.a.TimeGet(e.Ctx); err != nil {
				failed++
			}
		}
		// Binomial(200, 0.5): outside [60, 140] has a probability below 1e-8.
		if failed < 60 || failed > 140 {
			t.Fatalf("%d of 200 calls failed under probability 0.5", failed)
		}
		if _, err := e.Ledger.ClearFaultRules(e.Ctx, "", ""); err != nil {
			t.Fatal(err)
		}
	})
}

// TestFaultLoseResponse: the reversal commits, its answer is lost; the SDK helper
// retries under the same request id and gets the recorded success: one effect.
func TestFaultLoseResponse(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{})
	tk := e.Issue(1, 3).Tickets[0]
	u, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u2")); err != nil {
		t.Fatal(err)
	}
	e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultLoseResponse, Method: alsc.MethodReserve, Count: 1})
	var retries []error
	res, err := e.a.ReverseWithRetry(e.Ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID, TicketUseTransID: u.TicketTransID}, fastRetry(&retries))
	if err != nil || !res.Result.Success {
		t.Fatalf("SDK reversal helper: %+v, %v", res, err)
	}
	var te *client.TransportError
	if len(retries) != 1 || !errors.As(retries[0], &te) {
		t.Fatalf("retries %v: want one, after a lost answer", retries)
	}
	// One effect: one unit back, the use reversed once by r1.
	if got := e.Available(tk.ID); got != 2 {
		t.Fatalf("available %d after one reversal of one unit, want 2", got)
	}
	var uses []daodian.Use
	if err := e.Store.View(e.Ctx, func(tx daodian.ReadTx) error {
		return tx.EachUse(e.Ctx, func(u *daodian.Use) error { uses = append(uses, *u); return nil })
	}); err != nil {
		t.Fatal(err)
	}
	reversed := 0
	for _, x := range uses {
		if x.Reversed {
			reversed++
			if x.TransID != u.TicketTransID || x.ReversalRequestID != "r1" {
				t.Fatalf("reversed the wrong use: %+v", x)
			}
		}
	}
	if reversed != 1 {
		t.Fatalf("%d uses reversed, want 1", reversed)
	}
	drop := logLines(e.logs, "fault injected: answer dropped")
	if len(drop) != 1 || drop[0]["applied_outcome"] != "success" || e.injected(t, daodian.FaultLoseResponse) != 1 {
		t.Fatalf("lost answer not reported: %v", drop)
	}

	t.Run("use", func(t *testing.T) {
		// The use happened but the POS never heard: it reverses the latest use,
		// which converges to "not redeemed".
		tk := e.Issue(1, 1).Tickets[0]
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultLoseResponse, Method: alsc.MethodUse, Count: 1})
		_, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "lost"))
		if !errors.As(err, &te) {
			t.Fatalf("use under lose_response: %v, want a transport error", err)
		}
		if e.Available(tk.ID) != 0 {
			t.Fatal("lose_response did not apply the use")
		}
		var retries []error
		res, err := e.a.ReverseWithRetry(e.Ctx, alsc.TicketReverseTopRequest{TicketID: tk.ID}, fastRetry(&retries))
		if err != nil || !res.Result.Success || e.Available(tk.ID) != 1 {
			t.Fatalf("reversal after a lost use answer: %+v, %v, available %d", res, err, e.Available(tk.ID))
		}
	})
}

// TestFaultDelay: the method runs at once, the answer comes late; a POS that
// times out reverses and converges.
func TestFaultDelay(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{})
	e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultDelay, Method: alsc.MethodTimeGet, Wait: 300 * time.Millisecond, Count: 1})
	start := time.Now()
	if _, err := e.a.TimeGet(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Fatalf("answered after %v under a 300ms delay", d)
	}

	tk := e.Issue(1, 1).Tickets[0]
	e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultDelay, Method: alsc.MethodUse, Wait: 2 * time.Second, Count: 1})
	impatient := e2eClient(e.url, e.A, e.Clock.Now, client.WithHTTPClient(&http.Client{Timeout: 200 * time.Millisecond}))
	_, err := impatient.Use(e.Ctx, e.useReq(tk.Code, "slow"))
	var te *client.TransportError
	if !errors.As(err, &te) {
		t.Fatalf("use answered later than the client waits: %v, want a transport error", err)
	}
	if e.Available(tk.ID) != 0 {
		t.Fatal("the delayed use did not run at once")
	}
	var retries []error
	res, err := e.a.ReverseWithRetry(e.Ctx, alsc.TicketReverseTopRequest{TicketID: tk.ID}, fastRetry(&retries))
	if err != nil || !res.Result.Success || e.Available(tk.ID) != 1 {
		t.Fatalf("reversal of the timed-out use: %+v, %v", res, err)
	}
	if e.injected(t, daodian.FaultDelay) != 2 {
		t.Fatal("delays not counted")
	}
}

// TestFaultHold reproduces a use that arrives after its reversal: the use is held,
// the POS times out and reverses (an empty reversal that leaves a fence), the
// reversal's answer releases the use, which then runs and is refused.
func TestFaultHold(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{})
	tk := e.Issue(1, 1).Tickets[0]
	e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultHold, Method: alsc.MethodUse, TicketCode: tk.Code, Count: 1})

	// The POS stamps its business time, as it should.
	req := e.useReq(tk.Code, "late")
	req.GmtBiz = top.FormatTime(e.Clock.Now())
	useErr := make(chan error, 1)
	go func() {
		_, err := e.a.Use(e.Ctx, req)
		useErr <- err
	}()
	waitHeld(t, e.gw, 1)
	e.Clock.Advance(time.Second) // the POS gave up on the use a moment later
	var retries []error
	res, err := e.a.ReverseWithRetry(e.Ctx, alsc.TicketReverseTopRequest{RequestID: "r1", TicketID: tk.ID}, fastRetry(&retries))
	if err != nil || !res.Result.Success {
		t.Fatalf("reversal: %+v, %v", res, err)
	}
	select {
	case err := <-useErr:
		wantPlatform(t, err, 50, daodian.SubUseFencedByReversal)
	case <-time.After(10 * time.Second):
		t.Fatal("the held use was not released by the reversal")
	}
	c := e.Snap().Counts
	if c.Uses != 0 || c.Fences != 1 || e.Available(tk.ID) != 1 || e.gw.HeldRequests() != 0 {
		t.Fatalf("counts %+v, available %d: want the late use refused after an empty reversal", c, e.Available(tk.ID))
	}
	rel := logLines(e.logs, "held use released")
	if len(rel) != 1 || rel[0]["released_by"] == "timeout" {
		t.Fatalf("release log: %v", rel)
	}

	t.Run("without gmt_biz the late use succeeds", func(t *testing.T) {
		// Why a POS must send gmt_biz: a use that arrives late without it is
		// stamped when it arrives, after the fence, and goes through.
		tk := e.Issue(1, 1).Tickets[0]
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultHold, TicketID: tk.ID, Count: 1})
		useErr := make(chan error, 1)
		go func() {
			_, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "late2"))
			useErr <- err
		}()
		waitHeld(t, e.gw, 1)
		if r := e.Reverse(e.A, "r2", tk.ID, ""); !r.Success { // not through the gateway: releases nothing
			t.Fatalf("reversal: %+v", r)
		}
		e.Clock.Advance(time.Second)
		if _, err := e.a.TimeGet(e.Ctx); err != nil { // any later request of the app releases it
			t.Fatal(err)
		}
		if err := <-useErr; err != nil {
			t.Fatalf("late use without gmt_biz: %v, want success", err)
		}
		if e.Available(tk.ID) != 0 {
			t.Fatal("the late use did not apply")
		}
		// Undo it, so that the test leaves no surprise for its reader.
		if r := e.Reverse(e.A, "r3", tk.ID, ""); !r.Success {
			t.Fatal(r)
		}
	})

	t.Run("max hold", func(t *testing.T) {
		tk := e.Issue(1, 1).Tickets[0]
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultHold, TicketID: tk.ID, Wait: 100 * time.Millisecond, Count: 1})
		start := time.Now()
		if _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u-timeout")); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 100*time.Millisecond {
			t.Fatalf("held %v, want the max hold of 100ms", d)
		}
		rel := logLines(e.logs, "held use released")
		if rel[len(rel)-1]["released_by"] != "timeout" {
			t.Fatalf("release log: %v", rel[len(rel)-1])
		}
	})

	t.Run("bounded", func(t *testing.T) {
		e2 := newFaultEnv(t, gateway.FaultOptions{MaxHeld: 1})
		o := e2.Issue(2, 1)
		e2.arm(t, daodian.FaultRule{AppKey: e2.A.Key, Kind: daodian.FaultHold})
		errs := make(chan error, 1)
		go func() { _, err := e2.a.Use(e2.Ctx, e2.useReq(o.Tickets[0].Code, "h1")); errs <- err }()
		waitHeld(t, e2.gw, 1)
		// Beyond MaxHeld the rule does not fire: this use runs at once (and, being
		// a later request of the app, releases the held one).
		if _, err := e2.a.Use(e2.Ctx, e2.useReq(o.Tickets[1].Code, "h2")); err != nil {
			t.Fatal(err)
		}
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
		if len(logLines(e2.logs, "hold fault skipped")) != 1 {
			t.Fatal("the skipped hold was not logged")
		}
	})

	t.Run("shutdown releases", func(t *testing.T) {
		tk := e.Issue(1, 1).Tickets[0]
		e.arm(t, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultHold, TicketID: tk.ID, Count: 1})
		errs := make(chan error, 1)
		go func() { _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u-shutdown")); errs <- err }()
		waitHeld(t, e.gw, 1)
		e.gw.ReleaseHeld()
		if err := <-errs; err != nil {
			t.Fatalf("use released by shutdown: %v", err)
		}
	})
}

func waitHeld(t *testing.T, gw *gateway.Gateway, n int) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); gw.HeldRequests() != n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests held, want %d", gw.HeldRequests(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestFaultsDisabled: with --no-faults the rules are never applied.
func TestFaultsDisabled(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{Disabled: true})
	tk := e.Issue(1, 1).Tickets[0]
	for _, k := range daodian.FaultKinds {
		r := daodian.FaultRule{AppKey: e.A.Key, Kind: k}
		if k == daodian.FaultDelay {
			r.Wait = time.Minute
		}
		e.arm(t, r)
	}
	if _, err := e.a.TimeGet(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := e.a.Use(e.Ctx, e.useReq(tk.Code, "u1")); err != nil || e.gw.HeldRequests() != 0 {
		t.Fatalf("use under disabled faults: %v", err)
	}
	if len(e.rules(t)) != 4 || len(logLines(e.logs, "fault")) != 0 {
		t.Fatal("a disabled gateway touched the rules")
	}
}

// TestFaultRulesFromAnotherProcess: a rule added through another store handle
// (as `daodian fault add` does while serve runs) takes effect within the reload
// interval, and so does its removal, without a restart.
func TestFaultRulesFromAnotherProcess(t *testing.T) {
	e := newFaultEnv(t, gateway.FaultOptions{Reload: 100 * time.Millisecond})
	admin, err := sqlite.Open(e.Ctx, e.path, sqlite.Options{Shared: true})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	l := daodian.NewLedger(admin, daodian.Config{})
	if _, err := e.a.TimeGet(e.Ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddFaultRule(e.Ctx, daodian.FaultRule{AppKey: e.A.Key, Kind: daodian.FaultError, Method: alsc.MethodTimeGet}); err != nil {
		t.Fatal(err)
	}
	added := time.Now()
	until := func(fail bool) time.Duration {
		t.Helper()
		for {
			_, err := e.a.TimeGet(e.Ctx)
			if (err != nil) == fail {
				return time.Since(added)
			}
			if time.Since(added) > 5*time.Second {
				t.Fatalf("the gateway did not see the change in 5s (last: %v)", err)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	if d := until(true); d > 300*time.Millisecond {
		t.Fatalf("rule applied after %v, want within the reload interval (100ms)", d)
	}
	if _, err := l.ClearFaultRules(e.Ctx, "", ""); err != nil {
		t.Fatal(err)
	}
	added = time.Now()
	if d := until(false); d > 300*time.Millisecond {
		t.Fatalf("cleared rule still applied after %v", d)
	}
}

package gateway_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
)

// TestRequestLog: a request is logged under its app with its trace id,
// method, outcome, parameters (without sign) and the answer it got, newest
// first; a request that names no known app is not logged under any app.
func TestRequestLog(t *testing.T) {
	e := newEnv(t, envOpts{})
	app := e.addApp(daodian.App{Key: "k1", Secret: "s3cr3t-value-k1", Enabled: true})
	call := func(method string, business map[string]string) answer {
		p := e.pubParams(method, app.Key)
		for k, v := range business {
			p[k] = v
		}
		return e.post(nil, signed(p, app.Secret))
	}
	first := call(alsc.MethodTimeGet, nil)
	second := call(alsc.MethodReserve, map[string]string{"ticket_reverse_top_request": `{"request_id":"r1","ticket_id":"2100000000000999999"}`})
	bad := e.pubParams(alsc.MethodTimeGet, "nobody")
	e.post(nil, signed(bad, "x"))

	log := e.gw.RequestLog()
	got := log.Requests(app.Key)
	if len(got) != 2 {
		t.Fatalf("%d requests logged, want 2: %+v", len(got), got)
	}
	newest, oldest := got[0], got[1]
	if newest.Method != alsc.MethodReserve || oldest.Method != alsc.MethodTimeGet {
		t.Errorf("order: %s then %s, want the reversal first (newest first)", newest.Method, oldest.Method)
	}
	if newest.TraceID != jsonRequestID(t, second.body) || oldest.TraceID != jsonRequestID(t, first.body) {
		t.Errorf("trace ids %s, %s are not the answers' request_id", newest.TraceID, oldest.TraceID)
	}
	if newest.Answer != string(second.body) || newest.AnswerTruncated {
		t.Errorf("answer logged %q, sent %q", newest.Answer, second.body)
	}
	if newest.Outcome != daodian.CodeTicketNotFound || oldest.Outcome != "success" || newest.AppKey != app.Key {
		t.Errorf("outcomes %q, %q, app %q", newest.Outcome, oldest.Outcome, newest.AppKey)
	}
	params := map[string]string{}
	for _, p := range newest.Params {
		params[p.Name] = p.Value
	}
	if _, ok := params["sign"]; ok {
		t.Error("sign is logged")
	}
	for _, name := range []string{"method", "app_key", "timestamp", "v", "format", "sign_method", "ticket_reverse_top_request"} {
		if params[name] == "" {
			t.Errorf("parameter %s not logged: %v", name, params)
		}
	}
	if params["ticket_reverse_top_request"] != `{"request_id":"r1","ticket_id":"2100000000000999999"}` {
		t.Errorf("business parameter logged as %q", params["ticket_reverse_top_request"])
	}
	for _, a := range log.Apps() {
		if a.Key == "nobody" {
			t.Error("a request of an unknown app key is logged under it")
		}
	}
	if apps := log.Apps(); len(apps) != 1 || apps[0].Key != app.Key || apps[0].Requests != 2 || apps[0].Merchants[0] != "m1" {
		t.Errorf("Apps() = %+v", apps)
	}
}

// TestRequestLogRemovesSecrets: nothing the log keeps holds the app's secret,
// its previous secret, a signature, or a parameter named like a credential —
// a request with a wrong signature included.
func TestRequestLogRemovesSecrets(t *testing.T) {
	e := newEnv(t, envOpts{})
	const secret, previous = "current-secret-0123456789", "previous-secret-9876543210"
	app := e.addApp(daodian.App{Key: "k1", Secret: secret, PreviousSecret: previous, PreviousSecretUntil: t0.Add(time.Hour), Enabled: true})
	cases := []map[string]string{
		{"app_secret": secret},
		{"session": "6100e23657fb0b2d0c78"},
		{"partner_id": "pid:" + previous},
		{"access_token": "tok-1"},
		{"db_password": "hunter2"},
		{"use_request": `{"ticket_code":"123456789012","shop_id":"s1","ticket_request_id":"u1","AppSecret":"xyz"}`},
	}
	var signs []string
	for i, extra := range cases {
		p := e.pubParams(alsc.MethodTimeGet, app.Key)
		for k, v := range extra {
			p[k] = v
		}
		key := secret
		if i%2 == 1 {
			key = "wrong" // refused (code 25), and still logged without its secrets
		}
		signs = append(signs, signed(p, key)["sign"])
		e.post(nil, p)
	}
	got := e.gw.RequestLog().Requests(app.Key)
	if len(got) != len(cases) {
		t.Fatalf("%d requests logged, want %d", len(got), len(cases))
	}
	removed := 0
	for _, r := range got {
		for _, p := range r.Params {
			for _, s := range append([]string{secret, previous, "hunter2", "tok-1", "6100e23657fb0b2d0c78", "xyz"}, signs...) {
				if strings.Contains(p.Value, s) || strings.Contains(r.Answer, s) {
					t.Errorf("logged %s=%q holds %q", p.Name, p.Value, s)
				}
			}
			if p.Value == gateway.Removed {
				removed++
			}
		}
	}
	if removed != len(cases) {
		t.Errorf("%d values removed, want %d", removed, len(cases))
	}
	if got[len(got)-2].Outcome != "code_25" {
		t.Errorf("a wrong signature is logged with outcome %q", got[len(got)-2].Outcome)
	}
}

// TestRequestLogBounds: an app keeps its last PerApp requests; beyond MaxApps
// apps the one written least recently gives way; a request's parameters are
// cut at MaxLoggedParamsBytes and its answer at MaxLoggedAnswerBytes.
func TestRequestLogBounds(t *testing.T) {
	e := newEnv(t, envOpts{cfg: gateway.Config{MaxBodyBytes: 1 << 20, RequestLog: gateway.RequestLogOptions{PerApp: 3, MaxApps: 2}}})
	var apps []*daodian.App
	for i := range 3 {
		apps = append(apps, e.addApp(daodian.App{Key: fmt.Sprintf("k%d", i), Secret: "secret-of-app", Enabled: true}))
	}
	call := func(a *daodian.App, extra map[string]string) {
		p := e.pubParams(alsc.MethodTimeGet, a.Key)
		for k, v := range extra {
			p[k] = v
		}
		e.post(nil, signed(p, a.Secret))
	}
	for i := range 5 {
		call(apps[0], map[string]string{"partner_id": fmt.Sprint(i)})
	}
	got := e.gw.RequestLog().Requests(apps[0].Key)
	if len(got) != 3 {
		t.Fatalf("%d requests kept, want 3", len(got))
	}
	for i, r := range got {
		if v := param(r, "partner_id"); v != fmt.Sprint(4-i) {
			t.Errorf("request %d is partner_id %s, want %d (the newest 3, newest first)", i, v, 4-i)
		}
	}
	e.clk.Advance(time.Second)
	call(apps[1], nil)
	e.clk.Advance(time.Second)
	call(apps[0], nil) // app 1 is now the one written least recently
	e.clk.Advance(time.Second)
	call(apps[2], nil)
	var keys []string
	for _, a := range e.gw.RequestLog().Apps() {
		keys = append(keys, a.Key)
	}
	if strings.Join(keys, ",") != "k0,k2" {
		t.Errorf("apps kept %v, want k0,k2 (k1 written least recently)", keys)
	}

	big := strings.Repeat("x", 3*gateway.MaxLoggedParamsBytes)
	call(apps[2], map[string]string{"partner_id": big, "target_app_key": big})
	r := e.gw.RequestLog().Requests(apps[2].Key)[0]
	total := 0
	for _, p := range r.Params {
		total += len(p.Value)
	}
	if !r.ParamsTruncated || total > gateway.MaxLoggedParamsBytes {
		t.Errorf("parameters of %d bytes kept as %d (truncated %v)", 6*gateway.MaxLoggedParamsBytes, total, r.ParamsTruncated)
	}
}

func param(r gateway.LoggedRequest, name string) string {
	for _, p := range r.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// TestTraffic: each minute of the last hour counts requests and errors (any
// outcome but success) and its p99 latency; minutes older than an hour drop
// out; requests of unknown apps count in no app.
func TestTraffic(t *testing.T) {
	e := newEnv(t, envOpts{})
	a := e.addApp(daodian.App{Key: "k1", Secret: "secret-of-app", Enabled: true, Merchants: []string{"m1"}})
	b := e.addApp(daodian.App{Key: "k2", Secret: "secret-of-app", Enabled: true, Merchants: []string{"m2"}})
	call := func(app *daodian.App, secret string) {
		e.post(nil, signed(e.pubParams(alsc.MethodTimeGet, app.Key), secret))
	}
	call(a, a.Secret)
	call(a, "wrong")
	call(b, b.Secret)
	e.post(nil, signed(e.pubParams(alsc.MethodTimeGet, "nobody"), "x"))
	log := e.gw.RequestLog()
	only := func(m string) func(string, []string) bool {
		return func(_ string, ms []string) bool { return len(ms) == 1 && ms[0] == m }
	}
	min := log.Traffic(only("m1"))
	if len(min) != 60 {
		t.Fatalf("%d minutes, want 60", len(min))
	}
	now := min[59]
	if now.Requests != 2 || now.Errors != 1 || now.P99 <= 0 || !now.Start.Equal(e.clock().Truncate(time.Minute)) {
		t.Errorf("this minute of m1: %+v", now)
	}
	all := log.Traffic(func(string, []string) bool { return true })[59]
	if all.Requests != 3 || all.Errors != 1 {
		t.Errorf("this minute of every app: %+v, want 3 requests and 1 error (the unknown app's in none)", all)
	}
	e.clk.Advance(10 * time.Minute)
	call(a, a.Secret)
	min = log.Traffic(only("m1"))
	if min[49].Requests != 2 || min[59].Requests != 1 || min[58].Requests != 0 || min[58].P99 != 0 {
		t.Errorf("ten minutes on: %+v … %+v", min[49], min[58:])
	}
	e.clk.Advance(55 * time.Minute)
	min = log.Traffic(only("m1"))
	var n uint64
	for _, m := range min {
		n += m.Requests
	}
	if n != 1 {
		t.Errorf("an hour and five minutes on, %d requests in the last hour, want 1", n)
	}
}

// TestRequestLogDisabled: a gateway without a request log keeps nothing.
func TestRequestLogDisabled(t *testing.T) {
	e := newEnv(t, envOpts{cfg: gateway.Config{RequestLog: gateway.RequestLogOptions{Disabled: true}}})
	if e.gw.RequestLog() != nil {
		t.Fatal("RequestLog() is not nil when disabled")
	}
	app := e.addApp(daodian.App{Key: "k1", Secret: "secret-of-app", Enabled: true})
	e.expectOK(e.post(nil, signed(e.pubParams(alsc.MethodTimeGet, app.Key), app.Secret)))
}

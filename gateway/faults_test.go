package gateway_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
)

const testReload = 10 * time.Millisecond

func (e *env) arm(r daodian.FaultRule) {
	e.t.Helper()
	if err := gateway.CheckFaultRule(&r); err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.ledger.AddFaultRule(context.Background(), r); err != nil {
		e.t.Fatal(err)
	}
	time.Sleep(2 * testReload)
}

func TestCheckFaultRule(t *testing.T) {
	for _, c := range []struct {
		r  daodian.FaultRule
		ok bool
	}{
		{daodian.FaultRule{Kind: daodian.FaultError}, true},
		{daodian.FaultRule{Kind: daodian.FaultError, Method: alsc.MethodReserve, Code: 7}, true},
		{daodian.FaultRule{Kind: daodian.FaultError, Method: "taobao.nothing"}, false},
		{daodian.FaultRule{Kind: daodian.FaultError, Code: 50}, false},
		{daodian.FaultRule{Kind: daodian.FaultError, Code: 40}, false},
		{daodian.FaultRule{Kind: daodian.FaultHold}, true},
		{daodian.FaultRule{Kind: daodian.FaultHold, Method: alsc.MethodUse}, true},
		{daodian.FaultRule{Kind: daodian.FaultHold, Method: alsc.MethodReserve}, false},
	} {
		if err := gateway.CheckFaultRule(&c.r); (err == nil) != c.ok {
			t.Errorf("CheckFaultRule(%+v) = %v", c.r, err)
		}
	}
	if codes := gateway.FaultCodes(); codes[0] != 7 || codes[2] != 15 {
		t.Fatalf("FaultCodes() = %v", codes)
	}
}

// TestFaultErrorCodes: every code an error rule may answer comes out as that
// error_response, in XML as in JSON; the default for the reversal is its
// SYSTEM_ERROR result.
func TestFaultErrorCodes(t *testing.T) {
	e := newEnv(t, envOpts{cfg: gateway.Config{Faults: gateway.FaultOptions{Reload: testReload}}})
	app := e.addApp(daodian.App{Key: "k1", Secret: "s1", Enabled: true})
	for _, code := range gateway.FaultCodes() {
		for _, format := range []string{"xml", "json"} {
			e.arm(daodian.FaultRule{AppKey: app.Key, Kind: daodian.FaultError, Method: alsc.MethodTimeGet, Code: code, Count: 1})
			p := e.pubParams(alsc.MethodTimeGet, app.Key)
			p["format"] = format
			te := e.errorResponse(e.get(signed(p, app.Secret)))
			if te == nil || te.Code != code {
				t.Fatalf("code %d in %s: got %+v", code, format, te)
			}
		}
	}
	e.arm(daodian.FaultRule{AppKey: app.Key, Kind: daodian.FaultError, Method: alsc.MethodReserve, Count: 1})
	p := e.pubParams(alsc.MethodReserve, app.Key)
	p["format"] = "xml"
	p["ticket_reverse_top_request"] = `{"request_id":"r1","ticket_id":"2100000000000000001"}`
	a := e.get(signed(p, app.Secret))
	for _, want := range []string{"<success>false</success>", "<error_code>SYSTEM_ERROR</error_code>", "<retry>true</retry>", "系统繁忙"} {
		if !strings.Contains(string(a.body), want) {
			t.Fatalf("reversal under an error fault lacks %s: %s", want, a.body)
		}
	}
}

// TestFaultAfterChecks: a fault applies only to requests that passed every
// protocol check; the others get their own answer and are not counted.
func TestFaultAfterChecks(t *testing.T) {
	e := newEnv(t, envOpts{cfg: gateway.Config{Faults: gateway.FaultOptions{Reload: testReload}}})
	app := e.addApp(daodian.App{Key: "k1", Secret: "s1", Enabled: true})
	e.arm(daodian.FaultRule{AppKey: app.Key, Kind: daodian.FaultError, Count: 1})
	te := e.errorResponse(e.get(signed(e.pubParams(alsc.MethodTimeGet, app.Key), "wrong secret")))
	if te == nil || te.Code != 25 {
		t.Fatalf("bad signature under a fault rule: %+v", te)
	}
	te = e.errorResponse(e.get(signed(e.pubParams(alsc.MethodTimeGet, app.Key), app.Secret)))
	if te == nil || te.Code != 15 {
		t.Fatalf("the rule's one injection was taken by a refused request: %+v", te)
	}
}

// TestFaultLoseResponseWithoutHijack: where the connection cannot be taken
// (HTTP/2, a recorder), the answer is an empty body, as undecodable as none.
func TestFaultLoseResponseWithoutHijack(t *testing.T) {
	e := newEnv(t, envOpts{cfg: gateway.Config{Faults: gateway.FaultOptions{Reload: testReload}}})
	app := e.addApp(daodian.App{Key: "k1", Secret: "s1", Enabled: true})
	e.arm(daodian.FaultRule{AppKey: app.Key, Kind: daodian.FaultLoseResponse, Count: 1})
	req := httptest.NewRequest(http.MethodGet, "/router/rest?"+values(signed(e.pubParams(alsc.MethodTimeGet, app.Key), app.Secret)).Encode(), nil)
	rec := httptest.NewRecorder()
	e.gw.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 {
		t.Fatalf("lose_response without a connection: %d %q", rec.Code, rec.Body.String())
	}
}

// TestFaultWaitsOutlastServerTimeouts: a delay or hold longer than the server's
// read and write timeouts still ends in the answer it only meant to make late.
func TestFaultWaitsOutlastServerTimeouts(t *testing.T) {
	var srv *httptest.Server
	e := newEnv(t, envOpts{
		cfg: gateway.Config{Faults: gateway.FaultOptions{Reload: testReload}},
		wrap: func(h http.Handler) http.Handler {
			srv = httptest.NewUnstartedServer(h)
			srv.Config.ReadTimeout, srv.Config.WriteTimeout = 150*time.Millisecond, 150*time.Millisecond
			srv.Start()
			t.Cleanup(srv.Close)
			return h
		},
	})
	e.url = srv.URL + "/router/rest"
	app := e.addApp(daodian.App{Key: "k1", Secret: "s1", Enabled: true})
	e.arm(daodian.FaultRule{AppKey: app.Key, Kind: daodian.FaultDelay, Wait: 400 * time.Millisecond, Count: 1})
	start := time.Now()
	req, err := http.NewRequest(http.MethodGet, e.url+"?"+values(signed(e.pubParams(alsc.MethodTimeGet, app.Key), app.Secret)).Encode(), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("delayed answer past the server's timeouts: %v", err)
	}
	body := make([]byte, 512)
	n, _ := resp.Body.Read(body)
	resp.Body.Close()
	if d := time.Since(start); d < 400*time.Millisecond || !strings.Contains(string(body[:n]), "time_get_response") {
		t.Fatalf("after %v: %q", d, body[:n])
	}
}

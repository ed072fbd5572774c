package gateway_test

import (
	"context"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/top"
)

// The standard app, the seed's.
const (
	testKey    = testenv.AppKey
	testSecret = testenv.AppSecret
)

// stdEnv is a gateway with one enabled, unlimited app granted every method.
func stdEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	e := newEnv(t, o)
	e.addApp(daodian.App{Key: testKey, Secret: testSecret, Enabled: true})
	return e
}

// timeGet is a valid, signed taobao.time.get of the standard app.
func (e *env) timeGet() map[string]string {
	return signed(e.pubParams(alsc.MethodTimeGet, testKey), testSecret)
}

// consult is a valid, signed consult of the standard app with body as consult_request.
func (e *env) consult(body string) map[string]string {
	p := e.pubParams(alsc.MethodConsult, testKey)
	p["consult_request"] = body
	return signed(p, testSecret)
}

const validConsult = `{"request_id":"r1","shop_id":"s1","ticket_code":"123456789012"}`

// without returns a copy of p without the named parameters, re-signed with secret.
func without(p map[string]string, secret string, names ...string) map[string]string {
	q := make(map[string]string, len(p))
	for k, v := range p {
		q[k] = v
	}
	for _, n := range names {
		delete(q, n)
	}
	return signed(q, secret)
}

// with returns a copy of p with the given parameters set, re-signed with secret.
func with(p map[string]string, secret string, kv ...string) map[string]string {
	q := make(map[string]string, len(p))
	for k, v := range p {
		q[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		q[kv[i]] = kv[i+1]
	}
	if q["sign_method"] == "md5" || q["sign_method"] == "hmac" || q["sign_method"] == "hmac-sha256" {
		return signed(q, secret)
	}
	q["sign"] = specSign(q, secret, "md5")
	return q
}

func tsText(t time.Time) string { return t.In(t0.Location()).Format("2006-01-02 15:04:05") }

func tsMillis(t time.Time) string { return strconv.FormatInt(t.UnixMilli(), 10) }

// TestPlatformErrors covers every code of SPEC §3.5, one fault per row.
func TestPlatformErrors(t *testing.T) {
	const bigLimit = 1024
	tests := []struct {
		name string
		opts envOpts
		apps []daodian.App
		send func(e *env) answer
		want want
	}{
		{
			name: "7 app over its rate limit",
			apps: []daodian.App{{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 1}},
			send: func(e *env) answer {
				p := signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls")
				e.expectOK(e.get(p))
				return e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls"))
			},
			want: want{code: 7, subCode: top.SubCodeAppCallLimited, subMsgHas: "second"},
		},
		{
			name: "11 app not granted the method",
			apps: []daodian.App{{Key: "narrow", Secret: "ns", Enabled: true, Methods: []string{alsc.MethodConsult}}},
			send: func(e *env) answer {
				return e.get(signed(e.pubParams(alsc.MethodUse, "narrow"), "ns"))
			},
			want: want{code: 11},
		},
		{
			name: "15 method panics",
			opts: envOpts{setup: registerPanic},
			send: func(e *env) answer { return e.get(signed(e.pubParams("test.panic", testKey), testSecret)) },
			want: want{code: 15},
		},
		{
			name: "21 no method",
			send: func(e *env) answer { return e.get(without(e.timeGet(), testSecret, "method")) },
			want: want{code: 21},
		},
		{
			name: "21 empty method",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "method", "")) },
			want: want{code: 21},
		},
		{
			name: "22 unknown method",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "method", "taobao.no.such")) },
			want: want{code: 22},
		},
		{
			name: "23 format yaml",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "format", "yaml")) },
			want: want{code: 23},
		},
		{
			name: "23 format JSON upper case",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "format", "JSON")) },
			want: want{code: 23},
		},
		{
			name: "24 no sign",
			send: func(e *env) answer {
				p := e.timeGet()
				delete(p, "sign")
				return e.get(p)
			},
			want: want{code: 24},
		},
		{
			name: "25 wrong sign",
			send: func(e *env) answer {
				p := e.timeGet()
				p["sign"] = specSign(p, "not the secret", "hmac-sha256")
				return e.get(p)
			},
			want: want{code: 25},
		},
		{
			name: "25 unknown sign_method",
			send: func(e *env) answer {
				p := e.pubParams(alsc.MethodTimeGet, testKey)
				p["sign_method"] = "sha1"
				p["sign"] = specSign(p, testSecret, "md5")
				return e.get(p)
			},
			want: want{code: 25},
		},
		{
			name: "28 no app_key",
			send: func(e *env) answer { return e.get(without(e.timeGet(), testSecret, "app_key")) },
			want: want{code: 28},
		},
		{
			name: "29 unknown app",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "app_key", "nobody")) },
			want: want{code: 29},
		},
		{
			name: "29 disabled app",
			apps: []daodian.App{{Key: "off", Secret: "os", Enabled: false}},
			send: func(e *env) answer { return e.get(signed(e.pubParams(alsc.MethodTimeGet, "off"), "os")) },
			want: want{code: 29},
		},
		{
			name: "30 no timestamp",
			send: func(e *env) answer { return e.get(without(e.timeGet(), testSecret, "timestamp")) },
			want: want{code: 30},
		},
		{
			name: "31 unparseable timestamp",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "timestamp", "2024/05/01 12:00:00")) },
			want: want{code: 31},
		},
		{
			name: "31 timestamp without seconds",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "timestamp", "2024-05-01 12:00")) },
			want: want{code: 31},
		},
		{
			name: "31 timestamp 11 minutes ahead",
			send: func(e *env) answer {
				return e.get(with(e.timeGet(), testSecret, "timestamp", tsText(t0.Add(11*time.Minute))))
			},
			want: want{code: 31},
		},
		{
			name: "31 timestamp 11 minutes behind",
			send: func(e *env) answer {
				return e.get(with(e.timeGet(), testSecret, "timestamp", tsText(t0.Add(-11*time.Minute))))
			},
			want: want{code: 31},
		},
		{
			name: "31 epoch ms 11 minutes ahead",
			send: func(e *env) answer {
				return e.get(with(e.timeGet(), testSecret, "timestamp", tsMillis(t0.Add(11*time.Minute))))
			},
			want: want{code: 31},
		},
		{
			name: "31 epoch ms 11 minutes behind",
			send: func(e *env) answer {
				return e.get(with(e.timeGet(), testSecret, "timestamp", tsMillis(t0.Add(-11*time.Minute))))
			},
			want: want{code: 31},
		},
		{
			name: "31 epoch seconds (not ms)",
			send: func(e *env) answer {
				return e.get(with(e.timeGet(), testSecret, "timestamp", strconv.FormatInt(t0.Unix(), 10)))
			},
			want: want{code: 31},
		},
		{
			name: "32 no v",
			send: func(e *env) answer { return e.get(without(e.timeGet(), testSecret, "v")) },
			want: want{code: 32},
		},
		{
			name: "32 empty v",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "v", "")) },
			want: want{code: 32},
		},
		{
			name: "33 v=abc",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "v", "abc")) },
			want: want{code: 33},
		},
		{
			name: "34 v=3.0",
			send: func(e *env) answer { return e.get(with(e.timeGet(), testSecret, "v", "3.0")) },
			want: want{code: 34},
		},
		{
			name: "40 consult_request missing",
			send: func(e *env) answer {
				return e.post(signed(e.pubParams(alsc.MethodConsult, testKey), testSecret), nil)
			},
			want: want{code: 40, subCode: "isv.missing-parameter:consult_request"},
		},
		{
			name: "40 consult_request empty",
			send: func(e *env) answer {
				p := e.pubParams(alsc.MethodConsult, testKey)
				p["consult_request"] = ""
				return e.post(signed(p, testSecret), nil)
			},
			want: want{code: 40, subCode: "isv.missing-parameter:consult_request"},
		},
		{
			name: "41 parameter repeated in the query",
			send: func(e *env) answer {
				return e.postRaw(values(e.timeGet()).Encode()+"&format=json", "")
			},
			want: want{code: 41},
		},
		{
			name: "41 parameter repeated in the body",
			send: func(e *env) answer {
				p := e.consult(validConsult)
				return e.postRaw("", values(p).Encode()+"&consult_request="+url.QueryEscape(validConsult))
			},
			want: want{code: 41, subMsgHas: "consult_request"},
		},
		{
			name: "41 parameter repeated across query and body",
			send: func(e *env) answer {
				p := e.timeGet()
				return e.postRaw(values(p).Encode(), "v=2.0")
			},
			want: want{code: 41, subMsgHas: `"v"`},
		},
		{
			name: "41 same value repeated",
			send: func(e *env) answer {
				p := e.timeGet()
				return e.postRaw(values(p).Encode(), "app_key="+testKey)
			},
			want: want{code: 41},
		},
		{
			name: "41 value not UTF-8 in the query",
			send: func(e *env) answer { return e.postRaw(values(e.timeGet()).Encode()+"&partner_id=%FF%FE", "") },
			want: want{code: 41},
		},
		{
			name: "41 value not UTF-8 in the body",
			send: func(e *env) answer {
				p := e.consult(validConsult)
				delete(p, "consult_request")
				return e.postRaw(values(p).Encode(), "consult_request=%C3%28")
			},
			want: want{code: 41},
		},
		{
			name: "41 name not UTF-8",
			send: func(e *env) answer { return e.postRaw(values(e.timeGet()).Encode()+"&%FF=1", "") },
			want: want{code: 41},
		},
		{
			name: "41 body over the limit",
			opts: envOpts{cfg: gateway.Config{MaxBodyBytes: bigLimit}},
			send: func(e *env) answer {
				p := e.timeGet()
				p["partner_id"] = strings.Repeat("x", 2*bigLimit)
				return e.post(nil, signed(p, testSecret))
			},
			want: want{code: 41},
		},
		{
			name: "41 more parameters than MaxParams",
			send: func(e *env) answer {
				var b strings.Builder
				for i := 0; i <= top.MaxParams; i++ {
					b.WriteString("&p" + strconv.Itoa(i) + "=1")
				}
				return e.postRaw(values(e.timeGet()).Encode(), b.String()[1:])
			},
			want: want{code: 41},
		},
		{
			name: "41 repeated name full of markup is echoed safely",
			send: func(e *env) answer {
				n := url.QueryEscape(`<a href="x">]]>&amp;</a>`)
				return e.postRaw(values(e.timeGet()).Encode()+"&"+n+"=1&"+n+"=2", "")
			},
			want: want{code: 41, subMsgHas: `<a href=`},
		},
		{
			name: "41 unescaped semicolon",
			send: func(e *env) answer { return e.postRaw(values(e.timeGet()).Encode()+"&a=1;b=2", "") },
			want: want{code: 41},
		},
		{
			name: "41 malformed percent-encoding",
			send: func(e *env) answer { return e.postRaw(values(e.timeGet()).Encode()+"&a=%zz", "") },
			want: want{code: 41},
		},
		{
			name: "50 consult_request not JSON",
			send: func(e *env) answer { return e.postAll(e.consult("not json")) },
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "consult_request"},
		},
		{
			name: "50 consult_request truncated JSON",
			send: func(e *env) answer { return e.postAll(e.consult(`{"request_id":"r1"`)) },
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "consult_request"},
		},
		{
			name: "50 consult_request a JSON array",
			send: func(e *env) answer { return e.postAll(e.consult(`[{"request_id":"r1"}]`)) },
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "consult_request"},
		},
		{
			name: "50 request_id a number",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":123,"shop_id":"s1","ticket_code":"123456789012"}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "request_id"},
		},
		{
			name: "50 shop_id an object",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":"r1","shop_id":{},"ticket_code":"123456789012"}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "shop_id"},
		},
		{
			name: "50 ticket_code a huge number",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":"r1","shop_id":"s1","ticket_code":1e400}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "ticket_code"},
		},
		{
			name: "50 ticket_code an injection string",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":"r1","shop_id":"s1","ticket_code":"1' OR '1'='1"}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "ticket_code"},
		},
		{
			name: "50 request_id empty (validated by the ledger)",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":"","shop_id":"s1","ticket_code":"123456789012"}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "request_id"},
		},
		{
			name: "50 ticket_code not digits (validated by the ledger)",
			send: func(e *env) answer {
				return e.postAll(e.consult(`{"request_id":"r1","shop_id":"s1","ticket_code":"abc"}`))
			},
			want: want{code: 50, subCode: "isv.invalid-parameter", subMsgPrefix: "非法参数", subMsgHas: "ticket_code"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := stdEnv(t, tt.opts)
			for _, a := range tt.apps {
				e.addApp(a)
			}
			before := e.counts()
			e.expectError(tt.send(e), tt.want)
			if after := e.counts(); after != before {
				t.Fatalf("a refused request changed the ledger: %+v → %+v", before, after)
			}
			// The server keeps serving.
			e.expectOK(e.get(e.timeGet()))
		})
	}
}

// postAll sends every parameter in an urlencoded body.
func (e *env) postAll(p map[string]string) answer { return e.post(nil, p) }

func registerPanic(g *gateway.Gateway) {
	g.Register(&gateway.Method{
		Spec: alsc.Spec{Name: "test.panic"},
		Handle: func(context.Context, *gateway.Input) (top.Body, *top.Error) {
			panic("boom")
		},
	})
}

// TestPanicKeepsServing: a panicking method is code 15 in the caller's format, and
// the next requests, on the same connection and on new ones, are served.
func TestPanicKeepsServing(t *testing.T) {
	e := stdEnv(t, envOpts{setup: registerPanic})
	for i := 0; i < 3; i++ {
		a := e.get(signed(e.pubParams("test.panic", testKey), testSecret))
		if !a.isJSON() {
			t.Fatalf("panic answer not in the requested JSON: %s", a.body)
		}
		e.expectError(a, want{code: 15})
		xp := e.pubParams("test.panic", testKey)
		xp["format"] = "xml"
		a = e.get(signed(xp, testSecret))
		if a.isJSON() {
			t.Fatalf("panic answer not in the requested XML: %s", a.body)
		}
		e.expectError(a, want{code: 15})
		e.expectOK(e.get(e.timeGet()))
	}
}

// TestRateLimit: the bucket refills with time, and requests refused before the
// limiter (bad signature) do not spend the app's calls.
func TestRateLimit(t *testing.T) {
	e := stdEnv(t, envOpts{})
	e.addApp(daodian.App{Key: "limited", Secret: "ls", Enabled: true, RateLimitPerS: 2})
	call := func() answer { return e.get(signed(e.pubParams(alsc.MethodTimeGet, "limited"), "ls")) }
	for i := 0; i < 5; i++ {
		bad := e.pubParams(alsc.MethodTimeGet, "limited")
		bad["sign"] = specSign(bad, "wrong", "hmac-sha256")
		e.expectError(e.get(bad), want{code: 25})
	}
	e.expectOK(call())
	e.expectOK(call())
	te := e.expectError(call(), want{code: 7, subCode: top.SubCodeAppCallLimited})
	if te.SubMsg == "" {
		t.Fatal("code 7 without a sub_msg saying when to retry")
	}
	// The refused call did not spend anything: after half a second one call is back.
	e.setClock(t0.Add(500 * time.Millisecond))
	e.expectOK(call())
	e.expectError(call(), want{code: 7})
	// Another app is not limited by this one.
	for i := 0; i < 5; i++ {
		e.expectOK(e.get(e.timeGet()))
	}
	e.setClock(t0.Add(2 * time.Second))
	e.expectOK(call())
	e.expectOK(call())
}

// TestTimestampWindow: the edges of the ±10 minute window, in both notations.
func TestTimestampWindow(t *testing.T) {
	e := stdEnv(t, envOpts{})
	ok := []string{
		tsText(t0), tsMillis(t0),
		tsText(t0.Add(9*time.Minute + 59*time.Second)), tsText(t0.Add(-9*time.Minute - 59*time.Second)),
		tsText(t0.Add(10 * time.Minute)), tsText(t0.Add(-10 * time.Minute)),
		tsMillis(t0.Add(10 * time.Minute)), tsMillis(t0.Add(-10 * time.Minute)),
		tsMillis(t0.Add(123 * time.Millisecond)),
	}
	for _, ts := range ok {
		e.expectOK(e.get(with(e.timeGet(), testSecret, "timestamp", ts)))
	}
	bad := []string{
		tsText(t0.Add(10*time.Minute + time.Second)), tsText(t0.Add(-10*time.Minute - time.Second)),
		tsMillis(t0.Add(10*time.Minute + time.Millisecond)), tsMillis(t0.Add(-10*time.Minute - time.Millisecond)),
		// UTC wall time: eight hours off.
		t0.UTC().Format("2006-01-02 15:04:05"),
		"2024-02-30 12:00:00", "-" + tsMillis(t0), tsMillis(t0) + ".0", " " + tsText(t0),
	}
	for _, ts := range bad {
		e.expectError(e.get(with(e.timeGet(), testSecret, "timestamp", ts)), want{code: 31})
	}
}

// TestPermissions: a restricted app may call exactly its methods, and always
// taobao.time.get, the protocol's smoke test.
func TestPermissions(t *testing.T) {
	e := stdEnv(t, envOpts{})
	e.addApp(daodian.App{Key: "narrow", Secret: "ns", Enabled: true, Methods: []string{alsc.MethodConsult}})
	for _, m := range []string{alsc.MethodUse, alsc.MethodReserve, alsc.MethodRefund} {
		e.expectError(e.get(signed(e.pubParams(m, "narrow"), "ns")), want{code: 11})
	}
	e.expectOK(e.get(signed(e.pubParams(alsc.MethodTimeGet, "narrow"), "ns")))
	p := e.pubParams(alsc.MethodConsult, "narrow")
	p["consult_request"] = validConsult
	e.expectOK(e.post(nil, signed(p, "ns")))
}

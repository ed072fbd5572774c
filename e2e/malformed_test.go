package e2e

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/internal/spectest"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
	"github.com/daodian/daodian/top"
)

// Injection strings put in every string field of every business object.
var injections = []string{
	`' OR 1=1 --`,
	`"; DROP TABLE tickets; --`,
	`</request_id><success>true</success>`,
	`<!ENTITY xxe SYSTEM "file:///etc/passwd">&xxe;`,
}

// mfWant is the answer a malformed request must get.
type mfWant struct {
	code   int    // error_response code; 0: a success answer
	sub    string // sub_code, when given
	subHas string // a part of sub_msg, when given
	result string // for a success: the error_code of `result` ("" for success=true), or "-" not to check
	// recorded: the request leaves an idempotency record (a final answer: a
	// reversal's, or a use's refusal); the rest of the ledger must still be
	// unchanged.
	recorded bool
}

// mfRow is one malformed request.
type mfRow struct {
	name string
	// send performs the request and returns the raw answer.
	send func() []byte
	want mfWant
	// before, if set, runs before the row (outside the ledger comparison).
	before func()
}

// mfEnv is the gateway of TestMalformedRequests and what the rows need.
type mfEnv struct {
	*env
	t               *testing.T
	code, id        string // a ticket that exists and is usable
	limited, narrow *daodian.App
	disabled        *daodian.App
	consultOnly     *daodian.App
	httpc           *http.Client
	rid             int
	maxBody         int64
}

func (m *mfEnv) params(app *daodian.App, method string, biz map[string]string, format string) map[string]string {
	p := map[string]string{
		"method": method, "app_key": app.Key, "timestamp": top.FormatTime(m.Clock.Now()),
		"v": "2.0", "sign_method": "hmac-sha256", "format": format,
	}
	for k, v := range biz {
		p[k] = v
	}
	return p
}

func sign(p map[string]string, secret string) map[string]string {
	delete(p, "sign")
	s, err := top.SignMap(p, secret, p["sign_method"])
	if err != nil {
		panic(err)
	}
	p["sign"] = s
	return p
}

func encode(p map[string]string) string {
	v := url.Values{}
	for k, x := range p {
		v.Set(k, x)
	}
	return v.Encode()
}

// post sends rawBody as a form to the gateway with rawQuery.
func (m *mfEnv) post(rawQuery, rawBody string) []byte {
	m.t.Helper()
	return m.postAs(http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, rawQuery, rawBody)
}

// postAs sends rawBody to the gateway with rawQuery and the given headers.
func (m *mfEnv) postAs(h http.Header, rawQuery, rawBody string) []byte {
	m.t.Helper()
	u := m.url + "/router/rest"
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(rawBody))
	if err != nil {
		m.t.Fatal(err)
	}
	req.Header = h
	resp, err := m.httpc.Do(req)
	if err != nil {
		m.t.Fatalf("no answer: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		m.t.Fatalf("HTTP %d, %v: %s", resp.StatusCode, err, b)
	}
	return b
}

// call sends a signed call of app with the business parameters in the body.
func (m *mfEnv) call(app *daodian.App, method string, biz map[string]string, format string) []byte {
	return m.post("", encode(sign(m.params(app, method, biz, format), app.Secret)))
}

// object sends a JSON object parameter, given as raw text.
func (m *mfEnv) object(method, name, raw, format string) []byte {
	return m.call(m.A, method, map[string]string{name: raw}, format)
}

// mfAnswer is a decoded answer.
type mfAnswer struct {
	err    *client.Error
	result string // error_code of a success's result ("" when success=true or absent)
}

// decodeAnswer parses an answer strictly, in the format its first byte says,
// and checks what every answer must satisfy: one well-formed document, one root
// (error_response or the method's wrapper), a trace request_id.
func decodeAnswer(t *testing.T, body []byte) mfAnswer {
	t.Helper()
	var a mfAnswer
	if len(body) > 0 && body[0] == '{' {
		var doc map[string]json.RawMessage
		if err := json.Unmarshal(body, &doc); err != nil {
			t.Fatalf("answer is not JSON: %v: %q", err, body)
		}
		if raw, ok := doc["error_response"]; ok {
			if len(doc) != 1 {
				t.Fatalf("error_response beside other members: %s", body)
			}
			a.err = new(client.Error)
			if err := json.Unmarshal(raw, a.err); err != nil || a.err.RequestID == "" {
				t.Fatalf("bad error_response: %v: %s", err, body)
			}
			return a
		}
		if len(doc) != 1 {
			t.Fatalf("success with %d members: %s", len(doc), body)
		}
		for _, raw := range doc {
			var inner struct {
				RequestID string `json:"request_id"`
				Result    *struct {
					Success   *bool  `json:"success"`
					ErrorCode string `json:"error_code"`
				} `json:"result"`
			}
			if err := json.Unmarshal(raw, &inner); err != nil || inner.RequestID == "" {
				t.Fatalf("bad success: %v: %s", err, body)
			}
			if inner.Result != nil {
				if inner.Result.Success == nil {
					t.Fatalf("result without success: %s", body)
				}
				a.result = inner.Result.ErrorCode
			}
		}
		return a
	}
	if !bytes.HasPrefix(body, []byte(`<?xml version="1.0" encoding="utf-8" ?>`)) {
		t.Fatalf("answer is neither JSON nor the platform's XML: %q", body)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	d.Strict = true
	depth, roots := 0, 0
	root := ""
	var path []string
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("answer is not well-formed XML: %v: %q", err, body)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			if depth == 0 {
				roots++
				root = v.Name.Local
			}
			depth++
			path = append(path, v.Name.Local)
		case xml.EndElement:
			depth--
			path = path[:len(path)-1]
		case xml.Directive:
			t.Fatalf("answer holds a directive %q: %s", v, body)
		case xml.CharData:
			if len(path) == 3 && path[1] == "result" && path[2] == "error_code" {
				a.result = string(v)
			}
		}
	}
	if roots != 1 {
		t.Fatalf("%d root elements: %s", roots, body)
	}
	if root == "error_response" {
		a.err = new(client.Error)
		if err := xml.Unmarshal(body, a.err); err != nil || a.err.RequestID == "" {
			t.Fatalf("bad error_response: %v: %s", err, body)
		}
	}
	return a
}

// TestMalformedRequests is SPEC §7's table of malformed requests, through the
// HTTP gateway: every platform code of §3.5, wrong JSON types for every field of
// the three business objects, huge numbers, ids with letters, empty and very long
// strings, NUL bytes and invalid UTF-8 in names and values, SQL and XML injection
// in every string field, and a body over the limit. Each row gets its specified
// answer, as one well-formed document that echoes no injected markup; after each
// row the server still answers taobao.time.get, the ledger is unchanged (but for
// the record of a final answer) and the audit finds nothing.
func TestMalformedRequests(t *testing.T) {
	testenv.Run(t, func(t *testing.T, kind testenv.Kind) {
		runMalformed(t, testenv.NewDB(t, kind).Open(t))
	})
}

func runMalformed(t *testing.T, s daodian.Store) {
	e := newEnvOn(t, s, top.JSON, false)
	var err error
	m := &mfEnv{env: e, t: t, httpc: &http.Client{Timeout: 30 * time.Second}, maxBody: top.DefaultMaxBodyBytes}
	tk := e.Issue(1, 2).Tickets[0]
	m.code, m.id = tk.Code, tk.ID
	m.limited, err = e.Ledger.CreateApp(e.Ctx, daodian.AppSpec{Name: "limited", MerchantID: storetest.M1, RateLimitPerS: 1})
	if err != nil {
		t.Fatal(err)
	}
	m.narrow, err = e.Ledger.CreateApp(e.Ctx, daodian.AppSpec{Name: "narrow", MerchantID: storetest.M1, Methods: []string{alsc.MethodTimeGet}})
	if err != nil {
		t.Fatal(err)
	}
	m.consultOnly, err = e.Ledger.CreateApp(e.Ctx, daodian.AppSpec{Name: "consult only", MerchantID: storetest.M1, Methods: []string{alsc.MethodConsult}})
	if err != nil {
		t.Fatal(err)
	}

	m.disabled, err = e.Ledger.CreateApp(e.Ctx, daodian.AppSpec{Name: "disabled", MerchantID: storetest.M1})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Store.Update(e.Ctx, func(tx daodian.Tx) error {
		a := *m.disabled
		a.Enabled = false
		return tx.UpdateApp(e.Ctx, &a)
	}); err != nil {
		t.Fatal(err)
	}

	rows := m.protocolRows()
	rows = append(rows, m.transportRows()...)
	rows = append(rows, m.typeRows()...)
	rows = append(rows, m.valueRows()...)
	rows = append(rows, m.injectionRows()...)
	rows = append(rows, m.nameRows()...)
	if len(rows) < 40 {
		t.Fatalf("only %d rows", len(rows))
	}
	for _, row := range rows {
		if row.before != nil {
			row.before()
		}
		before := e.Snap()
		body := row.send()
		a := decodeAnswer(t, body)
		for _, inj := range injections {
			if bytes.Contains(body, []byte(inj)) {
				t.Errorf("%s: the answer echoes %q unescaped: %s", row.name, inj, body)
			}
		}
		w := row.want
		switch {
		case w.code == 0 && a.err != nil:
			t.Errorf("%s: got %v, want a success", row.name, a.err)
		case w.code == 0 && w.result != "-" && a.result != w.result:
			t.Errorf("%s: result error_code %q, want %q: %s", row.name, a.result, w.result, body)
		case w.code != 0 && a.err == nil:
			t.Errorf("%s: got a success, want code %d: %s", row.name, w.code, body)
		case w.code != 0 && (a.err.Code != w.code || (w.sub != "" && a.err.SubCode != w.sub) || !strings.Contains(a.err.SubMsg, w.subHas)):
			t.Errorf("%s: got %v, want %d %s %q", row.name, a.err, w.code, w.sub, w.subHas)
		}
		if d := before.Diff(e.Snap(), !w.recorded); d != "" {
			t.Errorf("%s changed the ledger: %s", row.name, d)
		}
		e.Audit()
		// Still serving.
		if _, err := e.a.TimeGet(e.Ctx); err != nil {
			t.Fatalf("after %s: taobao.time.get: %v", row.name, err)
		}
	}
	t.Logf("%d malformed requests", len(rows))
}

func (m *mfEnv) nextRID() string { m.rid++; return fmt.Sprintf("mf%d", m.rid) }

// protocolRows: every platform error code of §3.5.
func (m *mfEnv) protocolRows() []mfRow {
	timeGet := func(mut func(p map[string]string), resign bool) func() []byte {
		return func() []byte {
			p := sign(m.params(m.A, alsc.MethodTimeGet, nil, "json"), m.A.Secret)
			mut(p)
			if resign {
				sign(p, m.A.Secret)
			}
			return m.post("", encode(p))
		}
	}
	useReq := func(app *daodian.App) func() []byte {
		return func() []byte {
			return m.call(app, alsc.MethodUse, map[string]string{
				"use_request": fmt.Sprintf(`{"ticket_code":%q,"shop_id":%q,"ticket_request_id":%q}`, m.code, storetest.S1, m.nextRID()),
			}, "json")
		}
	}
	del := func(k string) func(map[string]string) { return func(p map[string]string) { delete(p, k) } }
	set := func(k, v string) func(map[string]string) { return func(p map[string]string) { p[k] = v } }
	return []mfRow{
		{name: "7 app over its rate", before: func() {
			m.call(m.limited, alsc.MethodTimeGet, nil, "json")
		}, send: func() []byte { return m.call(m.limited, alsc.MethodTimeGet, nil, "json") },
			want: mfWant{code: 7, sub: top.SubCodeAppCallLimited}},
		{name: "11 method not granted", send: useReq(m.narrow), want: mfWant{code: 11}},
		{name: "15 transient store failure", before: func() { m.fs.FailNext(1) }, send: useReq(m.A), want: mfWant{code: 15, sub: "isp.service-busy"}},
		{name: "21 missing method", send: timeGet(del("method"), true), want: mfWant{code: 21}},
		{name: "22 invalid method", send: timeGet(set("method", "taobao.no.such"), true), want: mfWant{code: 22}},
		{name: "22 method with NUL", send: timeGet(set("method", "taobao.time.get\x00"), true), want: mfWant{code: 22}},
		{name: "23 invalid format", send: timeGet(set("format", "yaml"), true), want: mfWant{code: 23}},
		{name: "24 missing sign", send: timeGet(del("sign"), false), want: mfWant{code: 24}},
		{name: "25 wrong sign", send: timeGet(set("sign", strings.Repeat("A", 64)), false), want: mfWant{code: 25}},
		{name: "25 sign of other content", send: timeGet(set("session", "x"), false), want: mfWant{code: 25}},
		{name: "25 unknown sign_method", send: timeGet(set("sign_method", "sha1"), false), want: mfWant{code: 25}},
		{name: "28 missing app_key", send: timeGet(del("app_key"), true), want: mfWant{code: 28}},
		{name: "29 unknown app_key", send: timeGet(set("app_key", "' OR 1=1 --"), true), want: mfWant{code: 29}},
		{name: "29 app_key with NUL", send: timeGet(set("app_key", "app\x00key"), true), want: mfWant{code: 29}},
		{name: "29 app_key of 10 KB", send: timeGet(set("app_key", strings.Repeat("k", 10<<10)), true), want: mfWant{code: 29}},
		{name: "29 disabled app", send: func() []byte { return m.call(m.disabled, alsc.MethodTimeGet, nil, "json") }, want: mfWant{code: 29}},
		{name: "30 missing timestamp", send: timeGet(del("timestamp"), true), want: mfWant{code: 30}},
		{name: "31 unparseable timestamp", send: timeGet(set("timestamp", "2024-13-45 25:61:61"), true), want: mfWant{code: 31}},
		{name: "31 timestamp outside the window", send: timeGet(set("timestamp", top.FormatTime(m.Clock.Now().Add(-time.Hour))), true), want: mfWant{code: 31}},
		{name: "31 huge epoch timestamp", send: timeGet(set("timestamp", "99999999999999999999"), true), want: mfWant{code: 31}},
		{name: "32 missing v", send: timeGet(del("v"), true), want: mfWant{code: 32}},
		{name: "33 malformed v", send: timeGet(set("v", "two"), true), want: mfWant{code: 33}},
		{name: "34 unsupported v", send: timeGet(set("v", "3.0"), true), want: mfWant{code: 34}},
		{name: "40 missing use_request", send: func() []byte { return m.call(m.A, alsc.MethodUse, nil, "json") },
			want: mfWant{code: 40, sub: "isv.missing-parameter:use_request"}},
		{name: "40 missing consult_request", send: func() []byte {
			return m.call(m.A, alsc.MethodConsult, map[string]string{"consult_request": ""}, "json")
		},
			want: mfWant{code: 40, sub: "isv.missing-parameter:consult_request"}},
		{name: "41 repeated parameter", send: func() []byte {
			return m.post("", encode(sign(m.params(m.A, alsc.MethodTimeGet, nil, "json"), m.A.Secret))+"&v=2.0")
		}, want: mfWant{code: 41}},
		{name: "41 value not UTF-8", send: func() []byte {
			return m.post("", encode(sign(m.params(m.A, alsc.MethodTimeGet, map[string]string{"x": "\xff\xfe"}, "json"), m.A.Secret)))
		}, want: mfWant{code: 41}},
		{name: "41 name not UTF-8", send: func() []byte {
			return m.post("", encode(sign(m.params(m.A, alsc.MethodTimeGet, map[string]string{"n\xc3\x28": "v"}, "json"), m.A.Secret)))
		}, want: mfWant{code: 41}},
		{name: "41 body over the limit", send: func() []byte {
			p := sign(m.params(m.A, alsc.MethodTimeGet, nil, "json"), m.A.Secret)
			return m.post(encode(p), "pad="+strings.Repeat("a", int(m.maxBody)+1))
		}, want: mfWant{code: 41}},
		{name: "NUL byte in a parameter name (an unknown, signed parameter: ignored)", send: func() []byte {
			return m.call(m.A, alsc.MethodTimeGet, map[string]string{"a\x00b": "v"}, "json")
		}, want: mfWant{result: "-"}},
		{name: "50 use_request not JSON", send: func() []byte { return m.object(alsc.MethodUse, "use_request", "{not json", "xml") },
			want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "use_request"}},
		{name: "50 use_request a JSON array", send: func() []byte { return m.object(alsc.MethodUse, "use_request", `[1,2]`, "json") },
			want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "use_request"}},
	}
}

// transportRows: bodies the gateway cannot read as parameters, and requests an
// official SDK sends that must keep working.
func (m *mfEnv) transportRows() []mfRow {
	form := func() string { return encode(sign(m.params(m.A, alsc.MethodTimeGet, nil, "json"), m.A.Secret)) }
	jsonBody := func() string {
		b, err := json.Marshal(sign(m.params(m.A, alsc.MethodTimeGet, nil, "json"), m.A.Secret))
		if err != nil {
			m.t.Fatal(err)
		}
		return string(b)
	}
	as := func(ctype, encoding string) http.Header {
		h := http.Header{}
		if ctype != "" {
			h.Set("Content-Type", ctype)
		}
		if encoding != "" {
			h.Set("Content-Encoding", encoding)
		}
		return h
	}
	gz := func(s string) string {
		var b bytes.Buffer
		w := gzip.NewWriter(&b)
		_, _ = io.WriteString(w, s)
		_ = w.Close()
		return b.String()
	}
	// The query holds the format, so that even a refused body is answered in
	// JSON.
	jsonQuery := "format=json"
	return []mfRow{
		{name: "41 JSON body", send: func() []byte { return m.postAs(as("application/json", ""), jsonQuery, jsonBody()) },
			want: mfWant{code: 41, subHas: `Content-Type "application/json" is not supported`}},
		{name: "41 text/plain body", send: func() []byte { return m.postAs(as("text/plain;charset=UTF-8", ""), jsonQuery, form()) },
			want: mfWant{code: 41, subHas: `"text/plain"`}},
		{name: "41 body without Content-Type", send: func() []byte { return m.postAs(as("", ""), jsonQuery, form()) },
			want: mfWant{code: 41, subHas: "application/x-www-form-urlencoded or multipart/form-data"}},
		{name: "41 gzip body", send: func() []byte {
			return m.postAs(as("application/x-www-form-urlencoded;charset=utf-8", "gzip"), jsonQuery, gz(form()))
		}, want: mfWant{code: 41, subHas: `Content-Encoding "gzip" is not supported`}},
		{name: "POST without a body, JSON Content-Type, everything in the query", send: func() []byte {
			return m.postAs(as("application/json", ""), form(), "")
		}, want: mfWant{result: "-"}},
		{name: "POST as the official SDKs send it", send: func() []byte {
			return m.postAs(as("application/x-www-form-urlencoded;charset=utf-8", ""), form(), "")
		}, want: mfWant{result: "-"}},
		{name: "empty partner_id signed with empty values kept (Node and Python SDKs)", send: func() []byte {
			p := m.params(m.A, alsc.MethodTimeGet, map[string]string{"partner_id": "", "session": ""}, "json")
			p["sign"] = spectest.SignEmptiesKept(p, m.A.Secret, p["sign_method"])
			return m.post("", encode(p))
		}, want: mfWant{result: "-"}},
		{name: "taobao.time.get by an app granted only consult", send: func() []byte {
			return m.call(m.consultOnly, alsc.MethodTimeGet, nil, "json")
		}, want: mfWant{result: "-"}},
	}
}

// objectFields are the fields of each business object, with a valid value.
var objectFields = []struct {
	method, param string
	fields        [][2]string // name, valid JSON value
}{
	{alsc.MethodConsult, "consult_request", [][2]string{{"request_id", `"c1"`}, {"shop_id", `"shop-1"`}, {"ticket_code", `"$CODE"`}}},
	{alsc.MethodUse, "use_request", [][2]string{{"ticket_code", `"100000000000"`}, {"ticket_id", ``}, {"shop_id", `"shop-1"`}, {"shop_type", `"INTERNAL_SHOP"`},
		{"quantity", `1`}, {"ticket_request_id", `"$RID"`}, {"gmt_biz", ``}}},
	{alsc.MethodReserve, "ticket_reverse_top_request", [][2]string{{"request_id", `"$RID"`}, {"ticket_id", `"2100000000000999999"`}, {"ticket_use_trans_id", ``}, {"biz_date", ``}}},
}

// object builds a JSON object from the fields, with field name set to raw
// (omitted when raw is "").
func (m *mfEnv) buildObject(fields [][2]string, name, raw string) string {
	var parts []string
	for _, f := range fields {
		v := f[1]
		if f[0] == name {
			v = raw
		}
		if v == "" {
			continue
		}
		v = strings.NewReplacer(`"$CODE"`, fmt.Sprintf("%q", m.code), `"$RID"`, fmt.Sprintf("%q", m.nextRID())).Replace(v)
		parts = append(parts, fmt.Sprintf("%q:%s", f[0], v))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// typeRows: a value of the wrong JSON type for every field of every object.
func (m *mfEnv) typeRows() []mfRow {
	var rows []mfRow
	for _, o := range objectFields {
		for _, f := range o.fields {
			bad := `"12"` // a string where a number is expected
			if f[0] != "quantity" {
				bad = `12`
			}
			for _, b := range []string{bad, `{"x":1}`, `[true]`} {
				o, f, b := o, f, b
				rows = append(rows, mfRow{
					name: fmt.Sprintf("wrong type %s.%s=%s", o.param, f[0], b),
					send: func() []byte { return m.object(o.method, o.param, m.buildObject(o.fields, f[0], b), "json") },
					want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: f[0]},
				})
			}
		}
	}
	// "12" is a valid quantity (the official SDKs send strings): drop that row.
	out := rows[:0]
	for _, r := range rows {
		if !strings.HasSuffix(r.name, `quantity="12"`) {
			out = append(out, r)
		}
	}
	return out
}

// valueRows: well-typed values that are out of range or malformed.
func (m *mfEnv) valueRows() []mfRow {
	invalid := mfWant{code: 50, sub: top.SubCodeInvalidParameter}
	use := func(name, raw string) func() []byte {
		o := objectFields[1]
		return func() []byte { return m.object(o.method, o.param, m.buildObject(o.fields, name, raw), "json") }
	}
	rev := func(name, raw string) func() []byte {
		o := objectFields[2]
		return func() []byte { return m.object(o.method, o.param, m.buildObject(o.fields, name, raw), "xml") }
	}
	consult := func(name, raw string) func() []byte {
		o := objectFields[0]
		return func() []byte { return m.object(o.method, o.param, m.buildObject(o.fields, name, raw), "json") }
	}
	long := func(n int) string { return `"` + strings.Repeat("a", n) + `"` }
	// useReal names the usable ticket, so that a request wrongly accepted
	// consumes a unit and shows in the ledger.
	useReal := func(name, raw string) func() []byte {
		o := objectFields[1]
		fields := append([][2]string(nil), o.fields...)
		fields[0][1] = `"$CODE"`
		return func() []byte { return m.object(o.method, o.param, m.buildObject(fields, name, raw), "json") }
	}
	var rows []mfRow
	// SPEC §4.3: a quantity given is a whole number from 1 to 10 000; anything
	// else is refused and consumes nothing, never read as the default of 1.
	for _, q := range []string{`0`, `"0"`, `-0`, `"-0"`, `0.0`, `"null"`, `""`, `1e2`, `"1e2"`, `1.0`, `"1.0"`, `"01"`, `" 1"`,
		`"1 "`, `"+1"`, `10001`, `"10001"`, `false`} {
		rows = append(rows, mfRow{name: "quantity " + q, send: useReal("quantity", q), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}})
	}
	return append(rows, []mfRow{
		{name: "quantity 1e30", send: use("quantity", `1e30`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: "quantity 99999999999999999999", send: use("quantity", `99999999999999999999`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: `quantity "99999999999999999999"`, send: use("quantity", `"99999999999999999999"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: "quantity -1", send: use("quantity", `-1`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: "quantity 1.5", send: use("quantity", `1.5`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: "quantity 999999999 (over the bound)", send: use("quantity", `999999999`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "quantity"}},
		{name: "reverse ticket_id with letters", send: rev("ticket_id", `"22081911597032164a7"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_id"}},
		{name: "reverse trans id with letters", send: rev("ticket_use_trans_id", `"2208191159703216x47"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_use_trans_id"}},
		{name: "use ticket_id with letters", send: use("ticket_id", `"22081911597032164a7"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_id"}},
		{name: "reverse ticket_id of 100 digits", send: rev("ticket_id", `"`+strings.Repeat("9", 100)+`"`), want: invalid},
		{name: "reverse empty request_id", send: rev("request_id", `""`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "request_id"}},
		{name: "reverse empty ticket_id", send: rev("ticket_id", `""`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_id"}},
		{name: "reverse without request_id", send: rev("request_id", ``), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "request_id"}},
		{name: "use empty shop_id", send: use("shop_id", `""`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_id"}},
		{name: "use empty ticket_request_id", send: use("ticket_request_id", `""`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_request_id"}},
		{name: "consult empty ticket_code", send: consult("ticket_code", `""`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_code"}},
		{name: "consult 10 KB request_id", send: consult("request_id", long(10<<10)), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "request_id"}},
		{name: "use 100 KB shop_id", send: use("shop_id", long(100<<10)), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_id"}},
		{name: "reverse 10 KB request_id", send: rev("request_id", long(10<<10)), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "request_id"}},
		{name: "NUL in request_id", send: rev("request_id", `"r\u0000"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "request_id"}},
		{name: "NUL in shop_id", send: use("shop_id", `"shop-1\u0000"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_id"}},
		{name: "NUL in a JSON name (an unknown field: ignored)", send: consult("request_id", `"c1","request_id\u0000":"x"`), want: mfWant{result: ""}},
		{name: "lone surrogate (invalid UTF-8) in shop_id", send: consult("shop_id", `"\udc00"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_id"}},
		{name: "lone surrogate in request_id", send: use("ticket_request_id", `"\ud800x"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_request_id"}},
		{name: "biz_date not a time", send: rev("biz_date", `"yesterday"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "biz_date"}},
		{name: "biz_date far in the future", send: rev("biz_date", `"2999-01-01 00:00:00"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "biz_date"}},
		{name: "gmt_biz 30 February", send: use("gmt_biz", `"2026-02-30 10:00:00"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "gmt_biz"}},
		{name: "shop_type unknown", send: use("shop_type", `"MOON_SHOP"`), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_type"}},
		{name: "deeply nested unknown field", send: consult("request_id", `"c"`+`,"x":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)), want: mfWant{result: ""}},
	}...)
}

// nameRows: SPEC §4 member names. A name given twice is invalid, never resolved
// (encoding/json kept the last); names match exactly, so a differently-cased
// name is an unknown member, ignored (encoding/json matched it). Each row would
// reverse or use the real ticket if the name were resolved the lenient way.
func (m *mfEnv) nameRows() []mfRow {
	const missing = `"2100000000000999999"`
	id, code := fmt.Sprintf("%q", m.id), fmt.Sprintf("%q", m.code)
	rev := func(members string) func() []byte {
		return func() []byte {
			return m.object(alsc.MethodReserve, "ticket_reverse_top_request", fmt.Sprintf(`{"request_id":%q,%s}`, m.nextRID(), members), "json")
		}
	}
	use := func(members string) func() []byte {
		return func() []byte {
			return m.object(alsc.MethodUse, "use_request", fmt.Sprintf(`{"shop_id":"shop-1","ticket_request_id":%q,%s}`, m.nextRID(), members), "xml")
		}
	}
	consult := func(raw string) func() []byte {
		return func() []byte { return m.object(alsc.MethodConsult, "consult_request", raw, "json") }
	}
	dup := func(field string) mfWant {
		return mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: field + " 重复"}
	}
	return []mfRow{
		{name: "ticket_id twice", send: rev(`"ticket_id":` + missing + `,"ticket_id":` + id), want: dup("ticket_reverse_top_request.ticket_id")},
		{name: "ticket_id twice, once escaped", send: rev(`"ticket_id":` + missing + `,"ticket_id":` + id), want: dup("ticket_reverse_top_request.ticket_id")},
		{name: "request_id twice", send: rev(`"ticket_id":` + id + `,"request_id":"again"`), want: dup("ticket_reverse_top_request.request_id")},
		{name: "a name twice inside an unknown member", send: rev(`"ticket_id":` + id + `,"x":[{"a":1,"a":1}]`), want: dup("ticket_reverse_top_request.x.0.a")},
		{name: "use ticket_code twice", send: use(`"ticket_code":"100000000000","ticket_code":` + code), want: dup("use_request.ticket_code")},
		{name: "use quantity twice", send: use(`"ticket_code":` + code + `,"quantity":1,"quantity":2`), want: dup("use_request.quantity")},
		{name: "consult ticket_code twice", send: consult(`{"request_id":"c1","shop_id":"shop-1","ticket_code":"100000000000","ticket_code":` + code + `}`),
			want: dup("consult_request.ticket_code")},
		{name: "TICKET_ID is not ticket_id", send: rev(`"TICKET_ID":` + id), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_id must not be empty"}},
		{name: "Ticket_Id beside ticket_id is ignored", send: rev(`"ticket_id":` + missing + `,"Ticket_Id":` + id),
			want: mfWant{result: daodian.CodeTicketNotFound, recorded: true}},
		{name: "TICKET_CODE is not ticket_code", send: use(`"TICKET_CODE":` + code), want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "ticket_code"}},
		{name: "SHOP_ID is not shop_id", send: consult(`{"request_id":"c1","SHOP_ID":"shop-1","ticket_code":` + code + `}`),
			want: mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: "shop_id must not be empty"}},
	}
}

// injectionRows: SQL and XML injection strings in every string field of every
// object, in both formats. The expected answer follows from the field's rule.
func (m *mfEnv) injectionRows() []mfRow {
	var rows []mfRow
	for _, o := range objectFields {
		for _, f := range o.fields {
			if f[0] == "quantity" {
				continue
			}
			for i, inj := range injections {
				o, f, inj := o, f, inj
				format := []string{"json", "xml"}[i%2]
				raw, _ := json.Marshal(inj)
				w := mfWant{code: 50, sub: top.SubCodeInvalidParameter, subHas: f[0]}
				okRequestID := !strings.ContainsAny(inj, " ") && len(inj) <= daodian.MaxRequestIDLen
				switch {
				case f[0] == "shop_id" || (strings.HasSuffix(f[0], "request_id") && okRequestID):
					// A valid value: the request takes its ordinary course.
					switch o.param {
					case "consult_request":
						w = mfWant{result: ""}
						if f[0] == "shop_id" {
							w = mfWant{result: daodian.CodeShopNotMatch}
						}
					case "use_request":
						w = mfWant{code: 50, sub: daodian.SubTicketNotFound, recorded: true}
					default:
						w = mfWant{result: daodian.CodeTicketNotFound, recorded: true}
					}
				}
				rows = append(rows, mfRow{
					name: fmt.Sprintf("injection %s.%s=%s (%s)", o.param, f[0], inj, format),
					send: func() []byte { return m.object(o.method, o.param, m.buildObject(o.fields, f[0], string(raw)), format) },
					want: w,
				})
			}
		}
	}
	return rows
}

// TestServerLimits runs a real `daodian serve` and checks the limits of its
// http.Server: a client that sends its headers byte by byte is cut off after
// --read-header-timeout (slowloris) while other clients are served, headers over
// MaxHeaderBytes are refused, and a body over --max-body gets code 41.
func TestServerLimits(t *testing.T) {
	db := testenv.NewDB(t, testenv.Embedded)
	app := testenv.SeedDB(t, db).App
	const headerTimeout = 400 * time.Millisecond
	p := testenv.StartServe(t, append(db.Args(), "--read-header-timeout", headerTimeout.String(), "--max-body", "4096")...)
	c := client.New(p.URL, app.Key, app.Secret)
	host := strings.TrimPrefix(p.Base, "http://")

	t.Run("slowloris", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		start := time.Now()
		// The request line and headers, one byte every 50 ms, never finished.
		closed := make(chan time.Duration, 1)
		go func() {
			msg := "POST /router/rest HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 10_000)
			for i := 0; i < len(msg); i++ {
				if _, err := conn.Write([]byte{msg[i]}); err != nil {
					break
				}
				time.Sleep(50 * time.Millisecond) // the client's pace, not synchronisation
			}
		}()
		go func() {
			_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
			_, _ = io.Copy(io.Discard, conn) // returns when the server closes
			closed <- time.Since(start)
		}()
		// Others are served meanwhile.
		if _, err := c.TimeGet(context.Background()); err != nil {
			t.Fatalf("time.get while a slow client holds a connection: %v", err)
		}
		d := <-closed
		// The server's clock starts at its accept, which may come a moment
		// before start: a little under the timeout is the timeout.
		if d < headerTimeout*3/4 || d > headerTimeout+5*time.Second {
			t.Fatalf("slow client cut off after %v, want about %v", d, headerTimeout)
		}
	})

	t.Run("header over MaxHeaderBytes", func(t *testing.T) {
		conn, err := net.Dial("tcp", host)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		go func() {
			_, _ = fmt.Fprintf(conn, "GET /router/rest HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", strings.Repeat("b", 2<<20))
		}()
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("no answer to an oversized header: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Fatalf("oversized header: HTTP %d, want 431", resp.StatusCode)
		}
	})

	t.Run("body over --max-body", func(t *testing.T) {
		body, err := c.Call(context.Background(), alsc.MethodTimeGet, map[string]string{"pad": strings.Repeat("z", 8192)})
		if err != nil {
			t.Fatalf("no answer: %v", err)
		}
		a := decodeAnswer(t, body)
		if a.err == nil || a.err.Code != 41 {
			t.Fatalf("body over the limit: %s", body)
		}
	})

	if _, err := c.TimeGet(context.Background()); err != nil {
		t.Fatalf("server stopped serving: %v", err)
	}
	p.Stop(t)
}

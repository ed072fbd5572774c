package gateway_test

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/spectest"
	"github.com/daodian/daodian/internal/testenv"
	"github.com/daodian/daodian/storetest"
)

// t0 and t0Text are the instant every test starts at.
var t0 = testenv.T0

const t0Text = testenv.T0Text

// env is one gateway over a fresh embedded store, served over HTTP, with a clock the
// test moves by hand.
type env struct {
	t      *testing.T
	store  daodian.Store
	ledger *daodian.Ledger
	gw     *gateway.Gateway
	srv    *httptest.Server
	url    string // .../router/rest
	clk    *storetest.Clock

	mu   sync.Mutex
	rids map[string]bool // every request_id seen, to prove they differ
}

// envOpts configures newEnv.
type envOpts struct {
	// cfg is the gateway's configuration; its Clock is replaced by the env's.
	cfg gateway.Config
	// setup, if set, runs on the gateway before it serves (e.g. to Register methods).
	setup func(*gateway.Gateway)
	// wrap, if set, wraps the gateway's handler.
	wrap func(http.Handler) http.Handler
	// wrapStore, if set, wraps the store the ledger and the gateway use.
	wrapStore func(daodian.Store) daodian.Store
}

// newEnv starts a gateway over a fresh store in t.TempDir().
func newEnv(t *testing.T, o envOpts) *env {
	t.Helper()
	g := testenv.NewGateway(t, testenv.Options{WrapStore: o.wrapStore, Config: o.cfg, Setup: o.setup, Wrap: o.wrap})
	return &env{t: t, store: g.Store, ledger: g.Ledger, gw: g.GW, srv: g.Server, url: g.URL, clk: g.Clock, rids: map[string]bool{}}
}

func (e *env) clock() time.Time { return e.clk.Now() }

func (e *env) setClock(t time.Time) { e.clk.Set(t) }

// addApp stores an app (and its merchant) directly through the store.
func (e *env) addApp(app daodian.App) *daodian.App {
	e.t.Helper()
	if len(app.Merchants) == 0 {
		app.Merchants = []string{"m1"}
	}
	if app.Name == "" {
		app.Name = "test app"
	}
	if app.CreatedAt.IsZero() {
		app.CreatedAt = t0
	}
	storetest.InsertApp(e.t, e.store, app)
	return &app
}

// --- signing, written here from SPEC §3.3 rather than taken from package top, so
// that the gateway is checked against the specification and not against itself.

func specSign(params map[string]string, secret, method string) string {
	return spectest.Sign(params, secret, method)
}

// pubParams returns the public parameters of a valid call of method by key at the
// env's current time, unsigned, in JSON.
func (e *env) pubParams(method, key string) map[string]string {
	return map[string]string{
		"method":      method,
		"app_key":     key,
		"timestamp":   e.clock().In(t0.Location()).Format("2006-01-02 15:04:05"),
		"v":           "2.0",
		"format":      "json",
		"sign_method": "hmac-sha256",
	}
}

// signed sets params["sign"] with the sign_method the params name and returns params.
func signed(params map[string]string, secret string) map[string]string {
	params["sign"] = specSign(params, secret, params["sign_method"])
	return params
}

func values(m map[string]string) url.Values {
	v := url.Values{}
	for k, x := range m {
		v.Set(k, x)
	}
	return v
}

// --- requests and answers

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (e *env) do(req *http.Request) answer {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading answer: %v", err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// get sends every parameter in the query string.
func (e *env) get(params map[string]string) answer {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+"?"+values(params).Encode(), nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return e.do(req)
}

// post sends query in the URL and body as an urlencoded body.
func (e *env) post(query, body map[string]string) answer {
	e.t.Helper()
	return e.postRaw(values(query).Encode(), values(body).Encode())
}

func (e *env) postRaw(rawQuery, rawBody string) answer {
	e.t.Helper()
	u := e.url
	if rawQuery != "" {
		u += "?" + rawQuery
	}
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(rawBody))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	return e.do(req)
}

// topError is an error_response, decoded strictly: code must be a number.
type topError struct {
	XMLName   xml.Name `json:"-" xml:"error_response"`
	Code      int      `json:"code" xml:"code"`
	Msg       string   `json:"msg" xml:"msg"`
	SubCode   string   `json:"sub_code" xml:"sub_code"`
	SubMsg    string   `json:"sub_msg" xml:"sub_msg"`
	RequestID string   `json:"request_id" xml:"request_id"`
}

func (a answer) isJSON() bool { return len(a.body) > 0 && a.body[0] == '{' }

// errorResponse decodes the answer as an error_response (JSON or XML, by its first
// byte) and returns nil if the answer is a success. It checks what every answer
// must satisfy: HTTP 200 and a fresh, non-empty request_id.
func (e *env) errorResponse(a answer) *topError {
	e.t.Helper()
	if a.status != http.StatusOK {
		e.t.Fatalf("HTTP status %d, want 200; body %s", a.status, a.body)
	}
	var te topError
	var rid string
	if a.isJSON() {
		var top1 map[string]json.RawMessage
		if err := json.Unmarshal(a.body, &top1); err != nil {
			e.t.Fatalf("answer is not JSON: %v: %s", err, a.body)
		}
		raw, ok := top1["error_response"]
		if ok {
			if len(top1) != 1 {
				e.t.Fatalf("error answer has members besides error_response: %s", a.body)
			}
			if err := json.Unmarshal(raw, &te); err != nil {
				e.t.Fatalf("bad error_response: %v: %s", err, a.body)
			}
			rid = te.RequestID
		} else {
			rid = jsonRequestID(e.t, a.body)
		}
		e.seeRequestID(rid, a)
		if !ok {
			return nil
		}
		return &te
	}
	if !bytes.HasPrefix(a.body, []byte(`<?xml version="1.0" encoding="utf-8" ?>`)) {
		e.t.Fatalf("answer is neither JSON nor the platform's XML: %q", a.body)
	}
	root := xmlRoot(e.t, a.body)
	if root == "error_response" {
		if err := xml.Unmarshal(a.body, &te); err != nil {
			e.t.Fatalf("bad XML error_response: %v: %s", err, a.body)
		}
		e.seeRequestID(te.RequestID, a)
		return &te
	}
	var doc struct {
		RequestID string `xml:"request_id"`
	}
	if err := xml.Unmarshal(a.body, &doc); err != nil {
		e.t.Fatalf("bad XML: %v: %s", err, a.body)
	}
	e.seeRequestID(doc.RequestID, a)
	return nil
}

func (e *env) seeRequestID(rid string, a answer) {
	e.t.Helper()
	if rid == "" {
		e.t.Fatalf("answer has no request_id: %s", a.body)
	}
	e.mu.Lock()
	dup := e.rids[rid]
	e.rids[rid] = true
	e.mu.Unlock()
	if dup {
		e.t.Fatalf("request_id %q answered twice: %s", rid, a.body)
	}
}

// jsonRequestID finds request_id in a JSON success: in the wrapper, or at the top
// level when simplified.
func jsonRequestID(t *testing.T, body []byte) string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("answer is not a JSON object: %v: %s", err, body)
	}
	if raw, ok := m["request_id"]; ok {
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			t.Fatalf("request_id is not a string: %s", body)
		}
		return s
	}
	if len(m) != 1 {
		t.Fatalf("JSON success has neither request_id nor a single wrapper: %s", body)
	}
	for _, raw := range m {
		var inner struct {
			RequestID string `json:"request_id"`
		}
		if err := json.Unmarshal(raw, &inner); err != nil {
			t.Fatalf("wrapper is not an object: %s", body)
		}
		return inner.RequestID
	}
	return ""
}

func xmlRoot(t *testing.T, body []byte) string {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err != nil {
			t.Fatalf("XML without a root element: %v: %s", err, body)
		}
		if se, ok := tok.(xml.StartElement); ok {
			return se.Name.Local
		}
	}
}

// want describes an expected error_response; sub_code and sub_msg are checked
// only where given.
type want struct {
	code    int
	msg     string
	subCode string
	// subMsgPrefix and subMsgHas are checked when not empty.
	subMsgPrefix string
	subMsgHas    string
}

var msgs = map[int]string{
	7: "App Call Limited", 11: "Insufficient ISV Permissions", 15: "Remote service error",
	21: "Missing Method", 22: "Invalid Method", 23: "Invalid Format", 24: "Missing Signature",
	25: "Invalid Signature", 28: "Missing App Key", 29: "Invalid App Key", 30: "Missing Timestamp",
	31: "Invalid Timestamp", 32: "Missing Version", 33: "Invalid Version", 34: "Unsupported Version",
	40: "Missing Required Arguments", 41: "Invalid Arguments", 50: "Remote service error",
}

// expectError asserts the answer is the error_response w (msg defaults to the §3.5
// message of the code).
func (e *env) expectError(a answer, w want) *topError {
	e.t.Helper()
	te := e.errorResponse(a)
	if te == nil {
		e.t.Fatalf("got a success, want code %d: %s", w.code, a.body)
	}
	if w.msg == "" {
		w.msg = msgs[w.code]
	}
	if te.Code != w.code || te.Msg != w.msg {
		e.t.Fatalf("got code %d msg %q, want %d %q: %s", te.Code, te.Msg, w.code, w.msg, a.body)
	}
	if w.subCode != "" && te.SubCode != w.subCode {
		e.t.Fatalf("got sub_code %q, want %q: %s", te.SubCode, w.subCode, a.body)
	}
	if w.subMsgPrefix != "" && !strings.HasPrefix(te.SubMsg, w.subMsgPrefix) {
		e.t.Fatalf("got sub_msg %q, want it to start with %q", te.SubMsg, w.subMsgPrefix)
	}
	if w.subMsgHas != "" && !strings.Contains(te.SubMsg, w.subMsgHas) {
		e.t.Fatalf("got sub_msg %q, want it to contain %q", te.SubMsg, w.subMsgHas)
	}
	return te
}

// expectOK asserts the answer is not an error_response.
func (e *env) expectOK(a answer) {
	e.t.Helper()
	if te := e.errorResponse(a); te != nil {
		e.t.Fatalf("got error %d %s (%s: %s), want success: %s", te.Code, te.Msg, te.SubCode, te.SubMsg, a.body)
	}
}

// counts returns the row counts of the ledger.
func (e *env) counts() daodian.Counts {
	e.t.Helper()
	var c daodian.Counts
	err := e.store.View(context.Background(), func(tx daodian.ReadTx) error {
		var err error
		c, err = tx.Counts(context.Background())
		return err
	})
	if err != nil {
		e.t.Fatalf("Counts: %v", err)
	}
	return c
}

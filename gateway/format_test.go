package gateway_test

import (
	"encoding/json"
	"mime"
	"regexp"
	"strings"
	"testing"

	"github.com/daodian/daodian/alsc"
)

const xmlDecl = `<?xml version="1.0" encoding="utf-8" ?>`

func checkContentType(t *testing.T, a answer, wantType string) {
	t.Helper()
	ct := a.header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != wantType || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type %q, want %s with charset utf-8", ct, wantType)
	}
}

// objectKeys returns the member names of a JSON object, failing on anything else.
func objectKeys(t *testing.T, raw []byte) map[string]json.RawMessage {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("not a JSON object: %v: %s", err, raw)
	}
	return m
}

func sameKeys(t *testing.T, m map[string]json.RawMessage, keys ...string) {
	t.Helper()
	if len(m) != len(keys) {
		t.Fatalf("object has %d members, want exactly %v: %v", len(m), keys, m)
	}
	for _, k := range keys {
		if _, ok := m[k]; !ok {
			t.Fatalf("object lacks %q: %v", k, m)
		}
	}
}

func jsonString(t *testing.T, raw json.RawMessage) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		t.Fatalf("not a JSON string: %s", raw)
	}
	return s
}

// TestTimeGetFormats: the exact shape of a taobao.time.get answer in each format.
func TestTimeGetFormats(t *testing.T) {
	e := stdEnv(t, envOpts{})

	t.Run("xml", func(t *testing.T) {
		e.t = t
		for _, format := range []string{"xml", ""} { // xml is the default
			p := e.pubParams(alsc.MethodTimeGet, testKey)
			if format == "" {
				delete(p, "format")
			} else {
				p["format"] = format
			}
			a := e.get(signed(p, testSecret))
			e.expectOK(a)
			re := regexp.MustCompile(`^` + regexp.QuoteMeta(xmlDecl+`<time_get_response><time>`+t0Text+`</time><request_id>`) +
				`[0-9A-Za-z_-]+` + regexp.QuoteMeta(`</request_id></time_get_response>`) + `$`)
			if !re.Match(a.body) {
				t.Fatalf("format %q: XML answer\n%s\ndoes not match %s", format, a.body, re)
			}
			checkContentType(t, a, "text/xml")
		}
	})

	t.Run("xml ignores simplify", func(t *testing.T) {
		e.t = t
		a := e.get(with(e.timeGet(), testSecret, "format", "xml", "simplify", "true"))
		e.expectOK(a)
		if !strings.HasPrefix(string(a.body), xmlDecl+`<time_get_response><time>`+t0Text+`</time>`) {
			t.Fatalf("XML with simplify=true: %s", a.body)
		}
	})

	t.Run("json", func(t *testing.T) {
		e.t = t
		a := e.get(e.timeGet())
		e.expectOK(a)
		checkContentType(t, a, "application/json")
		outer := objectKeys(t, a.body)
		sameKeys(t, outer, "time_get_response")
		inner := objectKeys(t, outer["time_get_response"])
		sameKeys(t, inner, "time", "request_id")
		if got := jsonString(t, inner["time"]); got != t0Text {
			t.Fatalf("time %q, want %q", got, t0Text)
		}
		if jsonString(t, inner["request_id"]) == "" {
			t.Fatal("empty request_id")
		}
	})

	t.Run("json simplify", func(t *testing.T) {
		e.t = t
		a := e.get(with(e.timeGet(), testSecret, "simplify", "true"))
		e.expectOK(a)
		checkContentType(t, a, "application/json")
		m := objectKeys(t, a.body)
		sameKeys(t, m, "time", "request_id")
		if got := jsonString(t, m["time"]); got != t0Text {
			t.Fatalf("time %q, want %q", got, t0Text)
		}
	})

	t.Run("json simplify=false keeps the wrapper", func(t *testing.T) {
		e.t = t
		a := e.get(with(e.timeGet(), testSecret, "simplify", "false"))
		e.expectOK(a)
		sameKeys(t, objectKeys(t, a.body), "time_get_response")
	})
}

// TestErrorFormats: error_response in each format, byte for byte apart from the
// request_id.
func TestErrorFormats(t *testing.T) {
	e := stdEnv(t, envOpts{})
	badSign := func(format string, extra ...string) map[string]string {
		p := with(e.timeGet(), testSecret, append([]string{"format", format}, extra...)...)
		p["sign"] = specSign(p, "wrong", p["sign_method"])
		return p
	}
	rid := `([0-9A-Za-z_-]+)`
	tests := []struct {
		name   string
		params map[string]string
		ctype  string
		re     string
	}{
		{"json", badSign("json"), "application/json",
			`^\{"error_response":\{"code":25,"msg":"Invalid Signature","request_id":"` + rid + `"\}\}$`},
		{"json simplify", badSign("json", "simplify", "true"), "application/json",
			`^\{"error_response":\{"code":25,"msg":"Invalid Signature","request_id":"` + rid + `"\}\}$`},
		{"xml", badSign("xml"), "text/xml",
			`^` + regexp.QuoteMeta(xmlDecl+`<error_response><code>25</code><msg>Invalid Signature</msg><request_id>`) + rid +
				regexp.QuoteMeta(`</request_id></error_response>`) + `$`},
		{"json with sub_code", with(e.timeGet(), testSecret, "method", alsc.MethodConsult), "application/json",
			`^\{"error_response":\{"code":40,"msg":"Missing Required Arguments","sub_code":"isv.missing-parameter:consult_request","request_id":"` + rid + `"\}\}$`},
		{"xml with sub_code and sub_msg", with(e.consult("1"), testSecret, "format", "xml"), "text/xml",
			`^` + regexp.QuoteMeta(xmlDecl+`<error_response><code>50</code><msg>Remote service error</msg><sub_code>isv.invalid-parameter</sub_code><sub_msg>非法参数`) +
				`[^<]*consult_request[^<]*` + regexp.QuoteMeta(`</sub_msg><request_id>`) + rid + regexp.QuoteMeta(`</request_id></error_response>`) + `$`},
		// An invalid format cannot be answered in it: the default, XML, answers.
		{"invalid format answers xml", with(e.timeGet(), testSecret, "format", "yaml"), "text/xml",
			`^` + regexp.QuoteMeta(xmlDecl+`<error_response><code>23</code><msg>Invalid Format</msg><request_id>`) + rid +
				regexp.QuoteMeta(`</request_id></error_response>`) + `$`},
		// A request that cannot be parsed is answered in the format its query names.
		{"41 in the query's format", with(e.timeGet(), testSecret, "format", "json", "simplify", "true", "x", "1"), "application/json",
			`^\{"error_response":\{"code":41,"msg":"Invalid Arguments","sub_msg":"parameter \\"x\\" is given more than once","request_id":"` + rid + `"\}\}$`},
		// A fault found before the signature is still answered in the requested format.
		{"missing method answers json", without(e.timeGet(), testSecret, "method"), "application/json",
			`^\{"error_response":\{"code":21,"msg":"Missing Method","request_id":"` + rid + `"\}\}$`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			var a answer
			if _, ok := tt.params["x"]; ok {
				// Public parameters in the query, x repeated in the body.
				a = e.postRaw(values(tt.params).Encode(), "x=2")
			} else {
				a = e.postAll(tt.params)
			}
			e.errorResponse(a) // status 200, fresh request_id
			if !regexp.MustCompile(tt.re).Match(a.body) {
				t.Fatalf("answer\n%s\ndoes not match\n%s", a.body, tt.re)
			}
			checkContentType(t, a, tt.ctype)
		})
	}
}

// TestRequestIDsDiffer: every answer, success or error, carries its own request_id.
func TestRequestIDsDiffer(t *testing.T) {
	e := stdEnv(t, envOpts{})
	for i := 0; i < 20; i++ {
		e.expectOK(e.get(e.timeGet()))
		e.expectError(e.get(without(e.timeGet(), testSecret, "method")), want{code: 21})
		e.expectError(e.get(with(e.timeGet(), testSecret, "format", "xml", "v", "9.0")), want{code: 34})
	}
	e.mu.Lock()
	n := len(e.rids)
	e.mu.Unlock()
	if n != 60 {
		t.Fatalf("%d distinct request ids for 60 requests", n)
	}
}

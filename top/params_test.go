package top

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

const reverseBody = "ticket_reverse_top_request=%7B%22ticket_use_trans_id%22%3A%222106027287988611313%22%2C%22biz_date%22%3A%222022-08-11+11%3A11%3A11%22%2C%22request_id%22%3A%2220190729111040030200660600011777%22%2C%22ticket_id%22%3A%222208191159703216457%22%7D"

const reverseQuery = "app_key=12345678&format=json&method=alibaba.alsc.daodian.ticket.reserve&sign=C1EEEAB3FA7F77958FC8ADA5964C0A65&sign_method=md5&timestamp=2022-08-11+11%3A11%3A11&v=2.0"

func formPost(query, body string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/router/rest?"+query, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded;charset=utf-8")
	return r
}

func paramsMap(p *Params) map[string]string {
	m := map[string]string{}
	p.Each(func(k, v string) { m[k] = v })
	return m
}

func mustParse(t *testing.T, r *http.Request, max int64) *Params {
	t.Helper()
	p, err := ParseRequest(r, max)
	if err != nil {
		t.Fatalf("ParseRequest: %v", err)
	}
	return p
}

func want41(t *testing.T, r *http.Request, max int64, mention string) {
	t.Helper()
	p, err := ParseRequest(r, max)
	if err == nil {
		t.Fatalf("ParseRequest succeeded with %v; want code 41", paramsMap(p))
	}
	if err.Code != 41 || err.Msg != "Invalid Arguments" {
		t.Fatalf("ParseRequest error %+v; want code 41", *err)
	}
	if !strings.Contains(err.SubMsg, mention) {
		t.Fatalf("sub_msg %q does not mention %q", err.SubMsg, mention)
	}
}

func TestParseRequestGET(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/router/rest?method=taobao.time.get&app_key=k&session=&partner_id=a+b&x=%E4%B8%AD%2B", nil)
	p := mustParse(t, r, 0)
	want := map[string]string{"method": "taobao.time.get", "app_key": "k", "session": "", "partner_id": "a b", "x": "中+"}
	if got := paramsMap(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("params = %v; want %v", got, want)
	}
	if p.Len() != 5 || !p.Has("session") || p.Get("session") != "" || p.Has("sign") || p.Get("sign") != "" {
		t.Fatal("Len/Has/Get disagree with the query")
	}
	var names []string
	p.Each(func(k, _ string) { names = append(names, k) })
	if !reflect.DeepEqual(names, []string{"app_key", "method", "partner_id", "session", "x"}) {
		t.Fatalf("Each order = %v; want byte order", names)
	}
}

func TestParseRequestURLEncodedPOST(t *testing.T) {
	p := mustParse(t, formPost("", reverseQuery+"&"+reverseBody), 0)
	if p.Len() != 8 || p.Get("timestamp") != "2022-08-11 11:11:11" ||
		!strings.Contains(p.Get("ticket_reverse_top_request"), `"biz_date":"2022-08-11 11:11:11"`) {
		t.Fatalf("params = %v", paramsMap(p))
	}
	// The signature in the query is that of the reserve-md5 vector.
	if !VerifySign(p, "helloworld", p.Get("sign_method"), p.Get("sign")) {
		t.Fatal("the parsed reversal does not verify")
	}
}

func TestParseRequestMerge(t *testing.T) {
	p := mustParse(t, formPost(reverseQuery, reverseBody), 0)
	if p.Len() != 8 || p.Get("method") != "alibaba.alsc.daodian.ticket.reserve" || p.Get("ticket_reverse_top_request") == "" {
		t.Fatalf("params = %v", paramsMap(p))
	}
	if !VerifySign(p, "helloworld", SignMD5, p.Get("sign")) {
		t.Fatal("the merged reversal does not verify")
	}
}

func TestParseRequestBodyOnlyForForms(t *testing.T) {
	// A GET body is not parameters and not read.
	r := httptest.NewRequest(http.MethodGet, "/?a=1", strings.NewReader("b=2"))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Body = failingBody{t}
	if got := paramsMap(mustParse(t, r, 0)); !reflect.DeepEqual(got, map[string]string{"a": "1"}) {
		t.Fatalf("GET params = %v", got)
	}
	// A POST without a body takes its parameters from the query, whatever its
	// Content-Type, or without one.
	for _, ct := range []string{"", "application/json", "text/plain", "application/x-www-form-urlencoded;charset=utf-8"} {
		r := httptest.NewRequest(http.MethodPost, "/?a=1", nil)
		r.Header.Set("Content-Type", ct)
		r.Header.Set("Content-Encoding", "gzip")
		r.Body = failingBody{t}
		if got := paramsMap(mustParse(t, r, 0)); !reflect.DeepEqual(got, map[string]string{"a": "1"}) {
			t.Fatalf("POST %q without a body: params = %v", ct, got)
		}
	}
	r = httptest.NewRequest(http.MethodPost, "/?a=1", strings.NewReader("b=2"))
	r.Header.Set("Content-Type", " Application/X-WWW-Form-URLEncoded ; charset=UTF-8")
	r.Header.Set("Content-Encoding", "Identity")
	if got := paramsMap(mustParse(t, r, 0)); !reflect.DeepEqual(got, map[string]string{"a": "1", "b": "2"}) {
		t.Fatalf("mixed-case content type params = %v", got)
	}
}

// TestParseRequestUnsupportedBody: a POST body that is not a form, or that is
// encoded, is refused unread with a 41 that says what is not supported and what
// is, instead of being ignored (a JSON body was answered "Missing Method", a gzip
// one "unescaped ';'").
func TestParseRequestUnsupportedBody(t *testing.T) {
	forms := "application/x-www-form-urlencoded or multipart/form-data"
	for _, c := range []struct {
		ctype, encoding string
		length          int64
		want            []string
	}{
		{"application/json", "", 10, []string{`Content-Type "application/json" is not supported`, forms}},
		{"text/plain; charset=utf-8", "", 10, []string{`Content-Type "text/plain" is not supported`, forms}},
		{"application/x-www-form-urlencodedx", "", 10, []string{`"application/x-www-form-urlencodedx"`, forms}},
		{"", "", 10, []string{"needs a Content-Type", forms}},
		{"", "", -1, []string{"needs a Content-Type", forms}},
		{"application/json", "", 10 << 20, []string{`"application/json"`}},
		{"application/" + strings.Repeat("x", 200), "", 10, []string{`"application/xxx`, `…`}},
		{"application/x-www-form-urlencoded;charset=utf-8", "gzip", 10, []string{`Content-Encoding "gzip" is not supported`, "identity"}},
		{"multipart/form-data; boundary=b", "br", -1, []string{`Content-Encoding "br" is not supported`}},
		{"application/x-www-form-urlencoded", "identity, deflate", 10, []string{`Content-Encoding "deflate"`}},
		{"application/json", "gzip", 10, []string{`Content-Encoding "gzip"`}},
	} {
		r := httptest.NewRequest(http.MethodPost, "/?method=taobao.time.get", nil)
		r.Header.Set("Content-Type", c.ctype)
		if c.encoding != "" {
			r.Header.Set("Content-Encoding", c.encoding)
		}
		r.Body = failingBody{t}
		r.ContentLength = c.length
		p, err := ParseRequest(r, 0)
		if err == nil || err.Code != 41 {
			t.Errorf("%q %q: got %v, %v; want a 41", c.ctype, c.encoding, p, err)
			continue
		}
		for _, w := range c.want {
			if !strings.Contains(err.SubMsg, w) {
				t.Errorf("%q %q: sub_msg %q does not say %q", c.ctype, c.encoding, err.SubMsg, w)
			}
		}
		if len(err.SubMsg) > 200 {
			t.Errorf("sub_msg of %d bytes echoes too much of the header", len(err.SubMsg))
		}
	}
}

// TestReadBodyGrowsAsBytesArrive: a declared Content-Length does not size the
// buffer; only the bytes received do. A client that declares a megabyte and
// sends ten bytes costs the pooled buffer, not a megabyte.
func TestReadBodyGrowsAsBytesArrive(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/", nil)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Body = io.NopCloser(io.MultiReader(strings.NewReader("a=0123456"), errReader{}))
	r.ContentLength = 1 << 20
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := ParseRequest(r, 2<<20)
	runtime.ReadMemStats(&after)
	if err == nil || err.Code != 41 {
		t.Fatalf("a body that fails mid-read: %v", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("reading 10 bytes of a body declared as 1 MiB allocated %d bytes", grew)
	}
}

func TestParseRequestEdgeSyntax(t *testing.T) {
	p := mustParse(t, formPost("&a=1&&b&c=x=y&", "d=&&e=%20+"), 0)
	want := map[string]string{"a": "1", "b": "", "c": "x=y", "d": "", "e": "  "}
	if got := paramsMap(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("params = %v; want %v", got, want)
	}
}

type multipartField struct {
	name, filename, value string
}

func multipartPost(t testing.TB, query string, fields []multipartField) *http.Request {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		h := textproto.MIMEHeader{}
		cd := `form-data; name="` + f.name + `"`
		if f.filename != "-" {
			cd += `; filename="` + f.filename + `"`
			h.Set("Content-Type", "application/octet-stream")
		} else {
			h.Set("Content-Type", "text/plain; charset=UTF-8")
		}
		h.Set("Content-Disposition", cd)
		pw, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(pw, f.value)
	}
	w.Close()
	r := httptest.NewRequest(http.MethodPost, "/router/rest?"+query, &b)
	r.Header.Set("Content-Type", w.FormDataContentType())
	return r
}

func TestParseRequestMultipart(t *testing.T) {
	r := multipartPost(t, "method=m&app_key=k", []multipartField{
		{"note", "-", "洗剪吹 & =?\r\n"},
		{"image", "photo.jpg", "\xff\xd8\xff binary, not UTF-8"},
		{"empty_file", "", ""},
		{"empty", "-", ""},
	})
	p := mustParse(t, r, 0)
	want := map[string]string{"method": "m", "app_key": "k", "note": "洗剪吹 & =?\r\n", "empty": ""}
	if got := paramsMap(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("params = %v; want %v", got, want)
	}
	// File parts are not signed: the signature equals that of the fields alone.
	s1, _ := Sign(p, "k", SignHMACSHA256)
	s2, _ := SignMap(want, "k", SignHMACSHA256)
	if s1 != s2 {
		t.Fatal("file parts changed the signature")
	}
}

func TestParseRequestMultipartFaults(t *testing.T) {
	want41(t, multipartPost(t, "a=1", []multipartField{{"a", "-", "2"}}), 0, `"a"`)
	want41(t, multipartPost(t, "", []multipartField{{"a", "-", "1"}, {"a", "-", "2"}}), 0, `"a"`)
	want41(t, multipartPost(t, "", []multipartField{{"a", "-", "\xff"}}), 0, "UTF-8")
	want41(t, multipartPost(t, "", []multipartField{{"", "-", "x"}}), 0, "no name")
	want41(t, multipartPost(t, "", []multipartField{{"\xfe", "-", "x"}}), 0, "UTF-8")

	r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("--b\r\n\r\nx\r\n--b--\r\n"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	want41(t, r, 0, "Content-Disposition")

	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	r.Header.Set("Content-Type", "multipart/form-data")
	want41(t, r, 0, "boundary")

	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("x"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=")
	want41(t, r, 0, "")

	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	want41(t, r, 0, "multipart")

	r = httptest.NewRequest(http.MethodPost, "/", strings.NewReader("garbage"))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	want41(t, r, 0, "multipart")

	// An empty body, or one with only the close delimiter, has no fields.
	for _, body := range []string{"", "--b--\r\n"} {
		r = httptest.NewRequest(http.MethodPost, "/?a=1", strings.NewReader(body))
		r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		if got := paramsMap(mustParse(t, r, 0)); !reflect.DeepEqual(got, map[string]string{"a": "1"}) {
			t.Fatalf("multipart %q: %v", body, got)
		}
	}
	r = httptest.NewRequest(http.MethodPost, "/", io.NopCloser(errReader{}))
	r.Header.Set("Content-Type", "multipart/form-data; boundary=b")
	want41(t, r, 0, "multipart")
}

func TestParseRequestRepeated(t *testing.T) {
	want41(t, httptest.NewRequest(http.MethodGet, "/?v=2.0&method=a&v=2.0", nil), 0, `"v"`)
	want41(t, formPost("", "sign=A&sign=B"), 0, `"sign"`)
	want41(t, formPost("method=a", "method=a"), 0, `"method"`)
	// Names are compared after decoding.
	want41(t, formPost("a%62=1", "ab=2"), 0, `"ab"`)
	want41(t, formPost("a=1&a", ""), 0, `"a"`)
}

func TestParseRequestOversized(t *testing.T) {
	const max = 64
	body := "a=" + strings.Repeat("x", max-2)

	if p := mustParse(t, formPost("", body), max); len(p.Get("a")) != max-2 {
		t.Fatal("a body of exactly the limit was not accepted")
	}

	// Declared too long: refused before reading anything.
	r := formPost("", body+"x")
	r.Body = failingBody{t}
	want41(t, r, max, "larger than 64 bytes")

	// Undeclared length: refused after reading at most max+1 bytes.
	cr := &countingReader{r: strings.NewReader(body + strings.Repeat("y", 1<<20))}
	r = formPost("", "")
	r.Body, r.ContentLength = io.NopCloser(cr), -1
	want41(t, r, max, "larger than 64 bytes")
	if cr.n > max+1 {
		t.Fatalf("read %d bytes of an oversized body; the limit is %d", cr.n, max)
	}

	// Same for multipart, with and without Content-Length, including when the excess
	// is inside a file part.
	mp := multipartPost(t, "", []multipartField{{"a", "-", "1"}, {"f", "big.bin", strings.Repeat("z", 4096)}})
	want41(t, mp, 1024, "larger than 1024 bytes")
	mp = multipartPost(t, "", []multipartField{{"a", "-", "1"}, {"f", "big.bin", strings.Repeat("z", 4096)}})
	cr = &countingReader{r: mp.Body}
	mp.Body, mp.ContentLength = io.NopCloser(cr), -1
	want41(t, mp, 1024, "larger than 1024 bytes")
	if cr.n > 1025 {
		t.Fatalf("read %d bytes of an oversized multipart body", cr.n)
	}

	// A multipart body of exactly the limit is accepted, one byte less is not.
	exact := multipartPost(t, "", []multipartField{{"a", "-", "1"}, {"f", "x.bin", "zz"}})
	size := exact.ContentLength
	if p := mustParse(t, exact, size); p.Get("a") != "1" || p.Len() != 1 {
		t.Fatalf("multipart at the limit: %v", paramsMap(p))
	}
	short := multipartPost(t, "", []multipartField{{"a", "-", "1"}, {"f", "x.bin", "zz"}})
	short.ContentLength = -1
	want41(t, short, size-1, "larger than")

	// The gateway may already have wrapped the body in http.MaxBytesReader.
	r = formPost("", strings.Repeat("a", 100))
	r.ContentLength = -1
	r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 10)
	want41(t, r, max, "larger than 10 bytes")

	// The default limit applies when none is given.
	r = formPost("", "")
	r.Body, r.ContentLength = failingBody{t}, DefaultMaxBodyBytes+1
	want41(t, r, 0, "larger than 1048576 bytes")
}

func TestParseRequestNotUTF8(t *testing.T) {
	want41(t, httptest.NewRequest(http.MethodGet, "/?a=%FF", nil), 0, `"a"`)
	want41(t, httptest.NewRequest(http.MethodGet, "/?%C3%28=1", nil), 0, "UTF-8")
	want41(t, formPost("", "a=\xff"), 0, "UTF-8")
	want41(t, formPost("", "\xed\xa0\x80=1"), 0, "UTF-8") // a UTF-16 surrogate
	want41(t, formPost("", "a=%ED%A0%80"), 0, "UTF-8")
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.URL.RawQuery = "a=\xc3"
	want41(t, r, 0, "UTF-8")
}

func TestParseRequestBadEscapes(t *testing.T) {
	for _, q := range []string{"a=%zz", "a=%4", "a=%", "a%=1", "%g1=1", "a=1%2"} {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.URL.RawQuery = q
		want41(t, r, 0, "percent-encoding")
		want41(t, formPost("", q), 0, "percent-encoding")
	}
}

func TestParseRequestOtherFaults(t *testing.T) {
	want41(t, formPost("a=1;b=2", ""), 0, "';'")
	want41(t, formPost("", "=1"), 0, "empty name")
	want41(t, formPost("%3D=1", "=2"), 0, "empty name")
	want41(t, formPost("", strings.Repeat("a&", MaxParams)+"b"), 0, "more than 1000")
	var q strings.Builder
	for i := range MaxParams + 1 {
		q.WriteString("p" + strconv.Itoa(i) + "=1&")
	}
	want41(t, httptest.NewRequest(http.MethodGet, "/?"+q.String(), nil), 0, "more than 1000")

	if _, err := ParseRequest(nil, 0); err == nil || err.Code != 41 {
		t.Fatalf("nil request: %v", err)
	}
	r := formPost("", "a=1")
	r.Body = io.NopCloser(errReader{})
	want41(t, r, 0, "could not be read")

	// A request without URL or Body (not something net/http produces) is empty.
	if p, err := ParseRequest(&http.Request{Method: http.MethodPost}, 0); err != nil || p.Len() != 0 {
		t.Fatalf("bare request: %v %v", p, err)
	}
}

func TestParamsNilAndNew(t *testing.T) {
	var p *Params
	if p.Len() != 0 || p.Has("a") || p.Get("a") != "" {
		t.Fatal("nil Params is not empty")
	}
	p.Each(func(string, string) { t.Fatal("nil Params has members") })
	(&Params{}).Each(nil)

	m := map[string]string{"b": "2", "a": "", "c": "3"}
	q := NewParams(m)
	m["d"] = "4"
	if q.Len() != 3 || !q.Has("a") || q.Has("d") || q.Get("c") != "3" || q.Get("zz") != "" || q.Has("") {
		t.Fatalf("NewParams = %v", paramsMap(q))
	}
}

func TestQuoteName(t *testing.T) {
	long := strings.Repeat("中", 40)
	got := quoteName(long)
	if !strings.HasSuffix(got, "…") || len(got) > maxNameInMessage+8 {
		t.Fatalf("quoteName(long) = %q", got)
	}
	if got := quoteName("a\x00b"); got != `"a\x00b"` {
		t.Fatalf("quoteName = %q", got)
	}
}

type failingBody struct{ t *testing.T }

func (f failingBody) Read([]byte) (int, error) {
	f.t.Error("the body was read")
	return 0, errors.New("must not be read")
}

func (failingBody) Close() error { return nil }

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// The differential check used by the fuzzer, on fixed inputs, so that it also runs in
// an ordinary test.
func TestParseRequestAgreesWithParseQuery(t *testing.T) {
	for _, q := range []string{"a=1&b=2", "a=%20+&b", "x=%E4%B8%AD", "&&a=b=c&", reverseQuery} {
		checkParsed(t, q, nil, "", DefaultMaxBodyBytes)
		checkParsed(t, "", []byte(q), "application/x-www-form-urlencoded", DefaultMaxBodyBytes)
	}
}

// checkParsed runs ParseRequest on a POST built from the parts and checks its
// contract: no duplicate or non-UTF-8 names, and, for urlencoded input, agreement with
// url.ParseQuery wherever that accepts the input without repeats.
func checkParsed(t *testing.T, query string, body []byte, ctype string, max int64) {
	t.Helper()
	r := &http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Path: "/router/rest", RawQuery: query},
		Header:        http.Header{"Content-Type": {ctype}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)),
	}
	p, err := ParseRequest(r, max)
	if err != nil {
		if err.Code != 41 || err.Msg != "Invalid Arguments" || err.SubMsg == "" {
			t.Fatalf("error %+v is not a 41", *err)
		}
		return
	}
	seen := map[string]bool{}
	prev := ""
	p.Each(func(k, v string) {
		if seen[k] {
			t.Fatalf("name %q twice", k)
		}
		if len(seen) > 0 && k <= prev {
			t.Fatalf("Each out of order: %q after %q", k, prev)
		}
		seen[k], prev = true, k
		if k == "" || !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Fatalf("bad parameter %q=%q", k, v)
		}
		if !p.Has(k) || p.Get(k) != v {
			t.Fatalf("Get(%q) disagrees with Each", k)
		}
	})
	if p.Len() > MaxParams || p.Len() != len(seen) {
		t.Fatalf("Len = %d with %d names", p.Len(), len(seen))
	}

	sources := []string{query}
	if classifyBody(ctype) == bodyURLEncoded {
		sources = append(sources, string(body))
	} else if classifyBody(ctype) == bodyMultipart {
		return
	}
	want := map[string]string{}
	for _, s := range sources {
		vals, qerr := url.ParseQuery(s)
		if qerr != nil {
			t.Fatalf("accepted %q, which url.ParseQuery refuses: %v", s, qerr)
		}
		for k, vs := range vals {
			if len(vs) != 1 {
				t.Fatalf("accepted %q, where %q repeats", s, k)
			}
			if _, dup := want[k]; dup {
				t.Fatalf("accepted %q in both query and body", k)
			}
			want[k] = vs[0]
		}
	}
	if got := paramsMap(p); !reflect.DeepEqual(got, want) {
		t.Fatalf("params %v; url.ParseQuery gives %v", got, want)
	}
}

// deadlineReader sends some bytes, then fails as a connection does when its read
// deadline passes.
type deadlineReader struct{ r io.Reader }

func (d *deadlineReader) Read(p []byte) (int, error) {
	if n, err := d.r.Read(p); err != io.EOF {
		return n, err
	}
	return 0, &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
}

// TestParseRequestBodyDeadline: a body cut short by the read deadline is a 41
// that says the body did not arrive in time, for both kinds of form.
func TestParseRequestBodyDeadline(t *testing.T) {
	for _, ctype := range []string{"application/x-www-form-urlencoded", "multipart/form-data; boundary=b"} {
		r := httptest.NewRequest(http.MethodPost, "/", nil)
		r.Header.Set("Content-Type", ctype)
		r.Body = io.NopCloser(&deadlineReader{strings.NewReader("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv")})
		r.ContentLength = 1000
		_, err := ParseRequest(r, 0)
		if err == nil || err.Code != 41 || !strings.Contains(err.SubMsg, "did not arrive in time") {
			t.Errorf("%s: %v; want a 41 saying the body did not arrive in time", ctype, err)
		}
	}
}

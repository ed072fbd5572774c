package gateway_test

import (
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/daodian/daodian"
	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/gateway"
	"github.com/daodian/daodian/internal/spectest"
)

// consultOutcome decodes the result of a successful JSON consult answer.
func consultOutcome(t *testing.T, a answer) alsc.ConsultResult {
	t.Helper()
	var r struct {
		Resp alsc.ConsultResponse `json:"alibaba_alsc_daodian_ticket_consult_response"`
	}
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("consult answer: %v: %s", err, a.body)
	}
	return r.Resp.Result
}

// multipartBody encodes fields and files (name → content, sent as a file part) as
// multipart/form-data.
func multipartBody(t *testing.T, fields, files map[string]string) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for k, v := range fields {
		if err := w.WriteField(k, v); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range files {
		fw, err := w.CreateFormFile(k, k+".bin")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = fw.Write([]byte(v))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.FormDataContentType(), &b
}

func (e *env) postMultipart(query map[string]string, ctype string, body io.Reader) answer {
	e.t.Helper()
	u := e.url
	if len(query) > 0 {
		u += "?" + values(query).Encode()
	}
	req, err := http.NewRequest(http.MethodPost, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ctype)
	return e.do(req)
}

// split returns the public parameters (with sign) and the business ones of p.
func split(p map[string]string) (pub, biz map[string]string) {
	pub, biz = map[string]string{}, map[string]string{}
	for k, v := range p {
		switch k {
		case "method", "app_key", "timestamp", "v", "format", "sign_method", "sign", "simplify", "session", "partner_id", "target_app_key":
			pub[k] = v
		default:
			biz[k] = v
		}
	}
	return pub, biz
}

// TestTransports: the same call over every transport of SPEC §3.1 reaches the method.
func TestTransports(t *testing.T) {
	e := stdEnv(t, envOpts{})
	p := e.consult(validConsult)
	pub, biz := split(p)
	file := "\xff\xfe\x00binary, not UTF-8, not signed"

	tests := []struct {
		name string
		send func() answer
	}{
		{"GET, all in the query", func() answer { return e.get(p) }},
		{"POST urlencoded, all in the body", func() answer { return e.post(nil, p) }},
		{"POST urlencoded, public in the query, business in the body", func() answer { return e.post(pub, biz) }},
		{"POST urlencoded, all in the query, empty body", func() answer { return e.post(p, nil) }},
		{"POST multipart, all in parts, with a file", func() answer {
			ct, b := multipartBody(t, p, map[string]string{"image": file})
			return e.postMultipart(nil, ct, b)
		}},
		{"POST multipart, public in the query, business in parts, with files", func() answer {
			ct, b := multipartBody(t, biz, map[string]string{"image": file, "other": "x"})
			return e.postMultipart(pub, ct, b)
		}},
		{"POST multipart, file part named like a parameter", func() answer {
			// A file part is not a parameter: it neither collides with nor replaces one.
			ct, b := multipartBody(t, biz, map[string]string{"consult_request": "{}", "sign": "0"})
			return e.postMultipart(pub, ct, b)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.t = t
			a := tt.send()
			e.expectOK(a)
			r := consultOutcome(t, a)
			// Reaching the ledger proves consult_request arrived intact: the code is
			// unknown, which is a business answer, not a platform error.
			if r.Success || r.ErrorCode != "TICKET_CODE_INVALID" {
				t.Fatalf("consult result %+v, want TICKET_CODE_INVALID: %s", r, a.body)
			}
		})
	}

	t.Run("multipart file part is not signed", func(t *testing.T) {
		e.t = t
		// Signed as if the file were a parameter: the gateway must not agree.
		q := e.pubParams(alsc.MethodConsult, testKey)
		q["consult_request"] = validConsult
		q["image"] = "plain"
		signed(q, testSecret)
		pub, biz := split(q)
		delete(biz, "image")
		ct, b := multipartBody(t, biz, map[string]string{"image": "plain"})
		e.expectError(e.postMultipart(pub, ct, b), want{code: 25})
	})

	t.Run("multipart field not UTF-8", func(t *testing.T) {
		e.t = t
		ct, b := multipartBody(t, map[string]string{"consult_request": "\xc3\x28"}, nil)
		e.expectError(e.postMultipart(pub, ct, b), want{code: 41})
	})

	t.Run("multipart field repeated", func(t *testing.T) {
		e.t = t
		var buf bytes.Buffer
		w := multipart.NewWriter(&buf)
		_ = w.WriteField("consult_request", validConsult)
		_ = w.WriteField("consult_request", validConsult)
		_ = w.Close()
		e.expectError(e.postMultipart(pub, w.FormDataContentType(), &buf), want{code: 41})
	})

	t.Run("multipart field repeating a query parameter", func(t *testing.T) {
		e.t = t
		ct, b := multipartBody(t, map[string]string{"consult_request": validConsult, "v": "2.0"}, nil)
		e.expectError(e.postMultipart(pub, ct, b), want{code: 41})
	})
}

// TestSignMethods: per sign method, one wrong character is refused and the
// lower-case form of the right sign is accepted.
func TestSignMethods(t *testing.T) {
	e := stdEnv(t, envOpts{})
	for _, sm := range []string{"md5", "hmac", "hmac-sha256"} {
		t.Run(sm, func(t *testing.T) {
			e.t = t
			p := with(e.consult(validConsult), testSecret, "sign_method", sm)
			good := p["sign"]
			if n := map[string]int{"md5": 32, "hmac": 32, "hmac-sha256": 64}[sm]; len(good) != n {
				t.Fatalf("test signer produced %d hex digits", len(good))
			}
			e.expectOK(e.post(nil, p))
			e.expectOK(e.post(nil, with(p, testSecret, "sign", strings.ToLower(good))))
			mixed := []byte(strings.ToLower(good))
			for i := 0; i < len(mixed); i += 2 {
				mixed[i] = strings.ToUpper(string(mixed[i]))[0]
			}
			e.expectOK(e.post(nil, with(p, testSecret, "sign", string(mixed))))

			for _, i := range []int{0, len(good) / 2, len(good) - 1} {
				b := []byte(good)
				if b[i] == '0' {
					b[i] = '1'
				} else {
					b[i] = '0'
				}
				q := with(p, testSecret)
				q["sign"] = string(b)
				e.expectError(e.post(nil, q), want{code: 25})
			}
			for _, bad := range []string{good[:len(good)-1], good + "0", " " + good, "", "zz" + good[2:]} {
				q := with(p, testSecret)
				q["sign"] = bad
				if bad == "" {
					e.expectError(e.post(nil, q), want{code: 24})
					continue
				}
				e.expectError(e.post(nil, q), want{code: 25})
			}
			// The same params signed by another method.
			for _, other := range []string{"md5", "hmac", "hmac-sha256"} {
				if other == sm {
					continue
				}
				q := with(p, testSecret)
				q["sign"] = specSign(p, testSecret, other)
				e.expectError(e.post(nil, q), want{code: 25})
			}
			// A business parameter changed after signing.
			q := with(p, testSecret)
			q["consult_request"] = strings.Replace(validConsult, "r1", "r2", 1)
			e.expectError(e.post(nil, q), want{code: 25})
		})
	}
}

// vectorTime parses a vector's timestamp by SPEC §3.2: GMT+8 text or epoch ms.
func vectorTime(t *testing.T, ts string) time.Time {
	t.Helper()
	if ms, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.UnixMilli(ms)
	}
	tm, err := time.ParseInLocation("2006-01-02 15:04:05", ts, t0.Location())
	if err != nil {
		t.Fatalf("vector timestamp %q: %v", ts, err)
	}
	return tm
}

// TestSignVectors: the gateway accepts every worked case of vectors/sign.json, sent
// both in the query and in a POST body, and refuses it with one character changed.
func TestSignVectors(t *testing.T) {
	for _, v := range spectest.SignVectors(t) {
		t.Run(v.Name, func(t *testing.T) {
			t.Parallel()
			if got := specSign(v.Params, v.Secret, v.SignMethod); got != v.Sign {
				t.Fatalf("the test's own signer gives %s, vector says %s", got, v.Sign)
			}
			e := newEnv(t, envOpts{})
			e.addApp(appFor(v))
			e.setClock(vectorTime(t, v.Params["timestamp"]))
			p := with(v.Params, v.Secret)
			p["sign"] = v.Sign
			for _, a := range []answer{e.get(p), e.post(nil, p), e.post(split(p))} {
				if te := e.errorResponse(a); te != nil {
					if te.Code == 25 || te.Code == 29 || te.Code == 31 {
						t.Fatalf("vector refused: %d %s: %s", te.Code, te.Msg, a.body)
					}
					t.Fatalf("vector answered %d %s (%s): %s", te.Code, te.Msg, te.SubMsg, a.body)
				}
			}
			p["sign"] = strings.ToLower(v.Sign)
			e.expectOK(e.post(nil, p))
			b := []byte(v.Sign)
			b[len(b)/2] ^= 0x01 // '0'↔'1', 'A'↔'@', …: always another byte
			p["sign"] = string(b)
			e.expectError(e.post(nil, p), want{code: 25})
		})
	}
}

// TestBodyLimit: a body over MaxBodyBytes is refused with 41 after reading at most
// one byte past the limit, whether or not it declares its length.
func TestBodyLimit(t *testing.T) {
	const limit = 1024
	var read atomic.Int64 // body bytes the gateway consumed in the last request
	e := stdEnv(t, envOpts{
		cfg: gateway.Config{MaxBodyBytes: limit},
		wrap: func(h http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				read.Store(0)
				r.Body = countingBody{r.Body, &read}
				h.ServeHTTP(w, r)
			})
		},
	})
	p := e.timeGet()
	pub, _ := split(p)
	withPad := func(n int) map[string]string {
		q := e.pubParams(alsc.MethodTimeGet, testKey)
		q["pad"] = strings.Repeat("x", n)
		return signed(q, testSecret)
	}

	t.Run("exactly the limit is accepted", func(t *testing.T) {
		e.t = t
		q := withPad(limit - len("pad="))
		pub, biz := split(q)
		body := values(biz).Encode()
		if len(body) != limit {
			t.Fatalf("body of %d bytes", len(body))
		}
		e.expectOK(e.postRaw(values(pub).Encode(), body))
	})

	t.Run("one byte over with Content-Length is refused unread", func(t *testing.T) {
		e.t = t
		q := withPad(limit - len("pad=") + 1)
		pub, biz := split(q)
		e.expectError(e.postRaw(values(pub).Encode(), values(biz).Encode()), want{code: 41})
		if n := read.Load(); n != 0 {
			t.Fatalf("gateway read %d bytes of a body whose Content-Length is over the limit", n)
		}
	})

	bodies := []struct {
		name, ctype string
		body        func() []byte
	}{
		{"urlencoded", "application/x-www-form-urlencoded", func() []byte {
			return []byte("pad=" + strings.Repeat("x", 10*limit))
		}},
		{"multipart", "", nil},
	}
	for _, bt := range bodies {
		t.Run("chunked "+bt.name+" of 10x the limit", func(t *testing.T) {
			e.t = t
			ctype, body := bt.ctype, []byte(nil)
			if bt.body != nil {
				body = bt.body()
			} else {
				ct, b := multipartBody(t, map[string]string{"pad": strings.Repeat("x", 10*limit)}, nil)
				ctype, body = ct, b.Bytes()
			}
			req, err := http.NewRequest(http.MethodPost, e.url+"?"+values(pub).Encode(), io.MultiReader(bytes.NewReader(body)))
			if err != nil {
				t.Fatal(err)
			}
			req.ContentLength = -1 // chunked: the gateway cannot know the size up front
			req.Header.Set("Content-Type", ctype)
			a := e.do(req)
			e.expectError(a, want{code: 41, subMsgHas: strconv.Itoa(limit)})
			if !a.isJSON() {
				t.Fatalf("format=json is in the query, the answer is not JSON: %s", a.body)
			}
			if n := read.Load(); n > limit+1 {
				t.Fatalf("gateway read %d bytes of a %d-byte body, limit %d", n, len(body), limit)
			}
		})
	}

	t.Run("default limit is 1 MiB", func(t *testing.T) {
		e := stdEnv(t, envOpts{})
		q := withPadFor(e, 1<<20-len("pad="))
		pub, biz := split(q)
		e.expectOK(e.postRaw(values(pub).Encode(), values(biz).Encode()))
		q = withPadFor(e, 1<<20-len("pad=")+1)
		pub, biz = split(q)
		e.expectError(e.postRaw(values(pub).Encode(), values(biz).Encode()), want{code: 41})
	})
}

func withPadFor(e *env, n int) map[string]string {
	q := e.pubParams(alsc.MethodTimeGet, testKey)
	q["pad"] = strings.Repeat("x", n)
	return signed(q, testSecret)
}

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (c countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n.Add(int64(n))
	return n, err
}

// appFor is the app a vector was signed for.
func appFor(v spectest.SignVector) daodian.App {
	return daodian.App{Key: v.Params["app_key"], Secret: v.Secret, Enabled: true}
}

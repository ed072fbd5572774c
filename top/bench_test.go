package top

import (
	"bytes"
	"net/http"
	"net/url"
	"testing"

	"github.com/daodian/daodian/internal/spectest"
)

func reserveParams(tb testing.TB) *Params {
	for _, c := range spectest.SignVectors(tb) {
		if c.Name == "reserve-md5" {
			return NewParams(c.Params)
		}
	}
	tb.Fatal("no reserve-md5 vector")
	return nil
}

func BenchmarkSign(b *testing.B) {
	p := reserveParams(b)
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		b.Run(m, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Sign(p, "helloworld", m); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkVerifySign(b *testing.B) {
	p := reserveParams(b)
	for _, m := range []string{SignMD5, SignHMAC, SignHMACSHA256} {
		sign, _ := Sign(p, "helloworld", m)
		b.Run(m, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !VerifySign(p, "helloworld", m, sign) {
					b.Fatal("rejected")
				}
			}
		})
		b.Run(m+"/key", func(b *testing.B) {
			k := NewKey("helloworld")
			b.ReportAllocs()
			for b.Loop() {
				if !k.Verify(p, m, sign) {
					b.Fatal("rejected")
				}
			}
		})
	}
}

// BenchmarkVerifySignEmptiesKept verifies a request with an empty-valued
// parameter signed as the Node and Python SDKs do (empty values kept): the one
// case that computes a second digest.
func BenchmarkVerifySignEmptiesKept(b *testing.B) {
	for _, c := range emptiesKeptVectors[:3] {
		p := NewParams(vectorParams(c.signMethod, c.rid, c.empty...))
		b.Run(c.signMethod, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if !VerifySign(p, "helloworld", c.signMethod, c.kept) {
					b.Fatal("rejected")
				}
			}
		})
	}
}

// rewindBody replays the same body on every iteration without allocating.
type rewindBody struct{ bytes.Reader }

func (*rewindBody) Close() error { return nil }

// BenchmarkParseRequest parses a reversal as the official SDKs send it: public
// parameters in the query, the business object in an urlencoded body.
func BenchmarkParseRequest(b *testing.B) {
	body := []byte(reverseBody)
	rb := &rewindBody{}
	r := &http.Request{
		Method:        http.MethodPost,
		URL:           &url.URL{Path: "/router/rest", RawQuery: reverseQuery},
		Header:        http.Header{"Content-Type": {"application/x-www-form-urlencoded;charset=utf-8"}},
		Body:          rb,
		ContentLength: int64(len(body)),
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(reverseQuery) + len(body)))
	for b.Loop() {
		rb.Reset(body)
		p, err := ParseRequest(r, DefaultMaxBodyBytes)
		if err != nil || p.Len() != 8 {
			b.Fatal(err)
		}
	}
}

// reverseResult is the body of a reversal answer.
type reverseResult struct {
	success bool
	code    string
	msg     string
	retry   bool
}

func (r *reverseResult) EncodeTOP(e *Encoder) {
	e.Object("result", func(e *Encoder) {
		e.Bool("success", r.success)
		if !r.success {
			e.String("error_code", r.code)
			e.String("error_msg", r.msg)
			e.Bool("retry", r.retry)
		}
	})
}

func benchmarkAppendSuccess(b *testing.B, f Format) {
	bodies := map[string]Body{
		"reverse": &reverseResult{success: false, code: "SYSTEM_ERROR", msg: "系统繁忙", retry: true},
		"consult": testConsult(),
	}
	for name, body := range bodies {
		b.Run(name, func(b *testing.B) {
			buf := make([]byte, 0, 4096)
			b.ReportAllocs()
			for b.Loop() {
				buf = AppendSuccess(buf[:0], f, false, "alibaba.alsc.daodian.ticket.reserve", body, "0bb5f7a717196363066715541e0d4a")
			}
			b.SetBytes(int64(len(buf)))
		})
	}
}

func BenchmarkAppendSuccessJSON(b *testing.B) { benchmarkAppendSuccess(b, JSON) }

func BenchmarkAppendSuccessXML(b *testing.B) { benchmarkAppendSuccess(b, XML) }

func BenchmarkAppendError(b *testing.B) {
	err := ErrInvalidParameter("request_id 不能为空")
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendError(buf[:0], JSON, err, "0bb5f7a717196363066715541e0d4a")
	}
}

func TestAllocations(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	p := reserveParams(t)
	sign, _ := Sign(p, "helloworld", SignMD5)
	hmacSign, _ := Sign(p, "helloworld", SignHMAC)
	sha256Sign, _ := Sign(p, "helloworld", SignHMACSHA256)
	key := NewKey("helloworld")
	buf := make([]byte, 0, 8192)
	body := testConsult()
	checks := []struct {
		name string
		max  float64
		fn   func()
	}{
		{"VerifySign md5", 0, func() { VerifySign(p, "helloworld", SignMD5, sign) }},
		// After the first, which keys the state it then keeps.
		{"Key.Verify hmac", 0, func() { key.Verify(p, SignHMAC, hmacSign) }},
		{"Key.Verify hmac-sha256", 0, func() { key.Verify(p, SignHMACSHA256, sha256Sign) }},
		{"AppendSuccess JSON", 0, func() { buf = AppendSuccess(buf[:0], JSON, false, "a.b", body, "r") }},
		{"AppendSuccess XML", 0, func() { buf = AppendSuccess(buf[:0], XML, false, "a.b", body, "r") }},
		{"AppendError", 0, func() { buf = AppendError(buf[:0], JSON, ErrMissingMethod(), "r") }},
		{"ParseTimestamp", 0, func() { ParseTimestamp("2022-08-11 11:11:11") }},
	}
	for _, c := range checks {
		if got := testing.AllocsPerRun(100, c.fn); got > c.max {
			t.Errorf("%s: %v allocations; want at most %v", c.name, got, c.max)
		}
	}
}

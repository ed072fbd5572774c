package top

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/daodian/daodian/internal/spectest"
)

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// FuzzParseRequest: any query, body and content type must yield either a code 41 or
// parameters with unique, non-empty, UTF-8 names that agree with url.ParseQuery.
func FuzzParseRequest(f *testing.F) {
	f.Add(reverseQuery, []byte(reverseBody), "application/x-www-form-urlencoded")
	f.Add("", []byte(reverseQuery+"&"+reverseBody), "application/x-www-form-urlencoded; charset=utf-8")
	f.Add("a=1&a=2", []byte("b=%zz"), "application/x-www-form-urlencoded")
	f.Add("a=%FF;b", []byte("a=1"), "application/x-www-form-urlencoded")
	f.Add("x=1", []byte("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b\r\nContent-Disposition: form-data; name=\"f\"; filename=\"f.bin\"\r\n\r\n\xff\r\n--b--\r\n"), "multipart/form-data; boundary=b")
	f.Add("", []byte("--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nv\r\n--b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nw\r\n--b--\r\n"), "multipart/form-data; boundary=b")
	f.Add("", []byte("--b\r\nContent-Disposition: form-data; name*=utf-8''%E4%B8%AD\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n=E4=B8=AD\r\n--b--"), "multipart/form-data; boundary=\"b\"")
	f.Add("a=1", []byte("{\"a\":1}"), "application/json")
	f.Add("=&&=%", []byte(strings.Repeat("a", 300)), "application/x-www-form-urlencoded")
	f.Fuzz(func(t *testing.T, query string, body []byte, ctype string) {
		// A small limit so that the fuzzer reaches the oversized paths too.
		checkParsed(t, query, body, ctype, 256)
	})
}

// FuzzVerifySign: verification never panics, agrees exactly with a case-insensitive
// comparison against the reference signer's two forms (empty values dropped or
// kept), and accepts what Sign produces.
func FuzzVerifySign(f *testing.F) {
	f.Add("helloworld", uint8(0), "method", "taobao.time.get", "v", "2.0", "sign", "C1EEEAB3FA7F77958FC8ADA5964C0A65")
	f.Add("k", uint8(1), "Zeta", "1", "alpha", "", "", "a159edfaae8bcb437de17f63373b162d")
	f.Add("", uint8(2), "中", "\xff", "sign", "x", "0123", "")
	f.Add("s", uint8(3), "a", "b", "a", "c", "zz", "ZZ")
	f.Fuzz(func(t *testing.T, secret string, m uint8, k1, v1, k2, v2, k3, sign string) {
		method := [...]string{SignMD5, SignHMAC, SignHMACSHA256, "hmac-sha1"}[m%4]
		params := map[string]string{k1: v1, k2: v2, k3: v3(k3)}
		p := NewParams(params)
		ref := referenceSign(params, secret, method)
		kept := spectest.SignEmptiesKept(params, secret, method)

		if got := VerifySign(p, secret, method, sign); got != (ref != "" && (strings.EqualFold(sign, ref) || strings.EqualFold(sign, kept)) && isASCII(sign)) {
			t.Fatalf("VerifySign(%q) = %v; reference signs %q, %q (empties kept)", sign, got, ref, kept)
		}
		if kept != "" && !VerifySign(p, secret, method, kept) {
			t.Fatalf("VerifySign rejects the empties-kept sign %q", kept)
		}
		s, err := Sign(p, secret, method)
		if ref == "" {
			if err == nil {
				t.Fatalf("Sign with %q succeeded", method)
			}
			return
		}
		if err != nil || s != ref {
			t.Fatalf("Sign = %q, %v; reference %q", s, err, ref)
		}
		if !VerifySign(p, secret, method, s) || !VerifySign(p, secret, method, strings.ToLower(s)) {
			t.Fatal("VerifySign rejects Sign's own output")
		}
		if ms, _ := SignMap(params, secret, method); ms != s {
			t.Fatalf("SignMap = %q; Sign = %q", ms, s)
		}
	})
}

// v3 gives the third parameter a value derived from its name, so that the fuzzer's
// strings are spent on names, values and the sign rather than on a fourth value.
func v3(k string) string { return strings.ToUpper(k) }

// isASCII guards the oracle: strings.EqualFold folds non-ASCII letters such as the
// Kelvin sign onto 'k', which VerifySign rightly does not.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// fuzzBody uses s as every name and value, so that one fuzz string reaches the
// escaping of names, values, wrappers and list elements at once.
func fuzzBody(s string) Body {
	return bodyFunc(func(e *Encoder) {
		e.String(s, s)
		e.Object("o", func(e *Encoder) { e.String("v", s) })
		e.List(s, s, 2, func(_ int, e *Encoder) { e.String("x", s) })
	})
}

// FuzzJSONString: the JSON string appender matches encoding/json byte for byte,
// always yields valid JSON and decodes back to its input (invalid UTF-8 as U+FFFD);
// and the string used as every name and value keeps whole responses valid JSON.
func FuzzJSONString(f *testing.F) {
	for _, s := range escapeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkJSONString(t, s)
		for _, simplify := range []bool{false, true} {
			if out := AppendSuccess(nil, JSON, simplify, s, fuzzBody(s), s); !json.Valid(out) {
				t.Fatalf("invalid JSON: %s", out)
			}
		}
		if out := AppendError(nil, JSON, ErrBusiness(s, s), s); !json.Valid(out) {
			t.Fatalf("invalid JSON error: %s", out)
		}
	})
}

// FuzzXMLText: the XML text appender matches xml.EscapeText byte for byte and its
// output parses back; the string used as every name and value keeps whole responses
// well-formed XML.
func FuzzXMLText(f *testing.F) {
	for _, s := range escapeCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		checkXMLText(t, s)
		wellFormed(t, AppendSuccess(nil, XML, false, s, fuzzBody(s), s))
		wellFormed(t, AppendError(nil, XML, ErrBusiness(s, s), s))
	})
}

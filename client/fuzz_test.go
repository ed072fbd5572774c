package client_test

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/daodian/daodian/alsc"
	"github.com/daodian/daodian/client"
	"github.com/daodian/daodian/top"
)

// validUTF8 replaces each byte that is not part of valid UTF-8 by U+FFFD, as
// both encoders do.
func validUTF8(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		b.WriteRune(r) // RuneError for an invalid byte
		i += n
	}
	return b.String()
}

// cleaner returns what survives a wire format unchanged: in JSON any valid UTF-8;
// in XML only XML characters (the encoder replaces the others by U+FFFD).
func cleaner(f top.Format) func(string) string {
	if f == top.JSON {
		return validUTF8
	}
	return func(s string) string {
		return strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' || (r >= 0x20 && r <= 0xD7FF) || (r >= 0xE000 && r <= 0xFFFD) || (r >= 0x10000 && r <= 0x10FFFF) {
				return r
			}
			return utf8.RuneError
		}, validUTF8(s))
	}
}

// FuzzDecodeRoundTrip: what the gateway's encoder writes, the SDK's decoder reads
// back unchanged, in both formats, for any text in any field (injection strings,
// markup, control characters, invalid UTF-8): an error_response as *client.Error
// with the same code and messages, a reversal answer with the same result.
func FuzzDecodeRoundTrip(f *testing.F) {
	f.Add(50, "Remote service error", "isv.invalid-parameter", "非法参数:request_id", "SYSTEM_ERROR", "系统繁忙", false, true)
	f.Add(15, "</msg><code>0</code>", "<![CDATA[x]]>", `<!ENTITY xxe SYSTEM "file:///etc/passwd">&xxe;`, "' OR 1=1 --", "\"; DROP TABLE tickets; --", true, false)
	f.Add(-1, "\x00\x01\xff", "\r\n\t", "\ufffe\U0010ffff", "</request_id><success>true</success>", "\\u0000", false, false)
	f.Fuzz(func(t *testing.T, code int, msg, sub, subMsg, errCode, errMsg string, retry, xmlFormat bool) {
		format := top.JSON
		if xmlFormat {
			format = top.XML
		}
		clean := cleaner(format)
		body := top.AppendError(nil, format, &top.Error{Code: code, Msg: msg, SubCode: sub, SubMsg: subMsg}, "rid1")
		var resp alsc.ReserveResponse
		err := client.Decode(body, format, false, alsc.MethodReserve, &resp)
		var pe *client.Error
		if !errors.As(err, &pe) {
			t.Fatalf("error_response %q decoded as %v", body, err)
		}
		if pe.Code != code || pe.Msg != clean(msg) || pe.SubCode != clean(sub) || pe.SubMsg != clean(subMsg) || pe.RequestID != "rid1" {
			t.Fatalf("error_response %q decoded as %+v", body, pe)
		}

		in := &alsc.ReserveResponse{Result: alsc.ReserveResult{ErrorCode: errCode, ErrorMsg: errMsg, Retry: retry}}
		for _, simplify := range []bool{false, true} {
			body = top.AppendSuccess(nil, format, simplify, alsc.MethodReserve, in, "rid2")
			var out alsc.ReserveResponse
			if err := client.Decode(body, format, simplify, alsc.MethodReserve, &out); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			want := alsc.ReserveResult{ErrorCode: clean(errCode), ErrorMsg: clean(errMsg), Retry: retry}
			if out.Result != want || out.RequestID != "rid2" {
				t.Fatalf("answer %q decoded as %+v, want %+v", body, out, want)
			}
		}
	})
}

// FuzzDecode: any body decodes to nil, a *client.Error or a *client.TransportError
// (outcome unknown), never another error and never a panic.
func FuzzDecode(f *testing.F) {
	f.Add([]byte(`{"error_response":{"code":50,"msg":"m","sub_code":"s","request_id":"r"}}`), false, false)
	f.Add([]byte(`{"alibaba_alsc_daodian_ticket_reserve_response":{"result":{"success":true},"request_id":"r"}}`), false, false)
	f.Add([]byte(`{"result":{"success":false,"error_code":"SYSTEM_ERROR","retry":true},"request_id":"r"}`), false, true)
	f.Add([]byte(`<?xml version="1.0" encoding="utf-8" ?><error_response><code>7</code></error_response>`), true, false)
	f.Add([]byte(`<html><body>502 Bad Gateway</body></html>`), true, false)
	f.Add([]byte(`{"error_response":{"code":"fifty"}}`), false, false)
	f.Add([]byte(`<!DOCTYPE x [<!ENTITY a "b">]><alibaba_alsc_daodian_ticket_reserve_response>&a;</alibaba_alsc_daodian_ticket_reserve_response>`), true, false)
	f.Fuzz(func(t *testing.T, body []byte, xmlFormat, simplify bool) {
		format := top.JSON
		if xmlFormat {
			format = top.XML
		}
		var resp alsc.ReserveResponse
		err := client.Decode(body, format, simplify, alsc.MethodReserve, &resp)
		var pe *client.Error
		var te *client.TransportError
		if err != nil && !errors.As(err, &pe) && !errors.As(err, &te) {
			t.Fatalf("Decode(%q) = %T %v", body, err, err)
		}
	})
}

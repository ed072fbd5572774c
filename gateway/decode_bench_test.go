package gateway

import (
	"strings"
	"testing"

	"github.com/daodian/daodian/alsc"
)

// BenchmarkDecodeUseRequest measures the decoding of a typical use_request, the
// business object of the hottest method, with the SDKs' string quantity.
func BenchmarkDecodeUseRequest(b *testing.B) {
	const v = `{"ticket_code":"452949976644","shop_id":"demo-shop","quantity":"2","ticket_request_id":"pos-20261127-000123","gmt_biz":"2026-11-27 14:28:41"}`
	b.ReportAllocs()
	for b.Loop() {
		var r alsc.UseTopRequest
		if terr := decodeObject("use_request", v, &r); terr != nil {
			b.Fatal(terr)
		}
	}
}

// TestDecodeObjectKeepsNoBuffer: an object is decoded from a pooled buffer
// that the next decoding overwrites; what the first decoded must not change
// (every string is copied out of the buffer), whether the next one decodes,
// fails, or is too large for its buffer to be pooled again.
func TestDecodeObjectKeepsNoBuffer(t *testing.T) {
	const first = `  {"ticket_code":"452949976644","shop_id":"demo-shop","quantity":"2","ticket_request_id":"pos-1","gmt_biz":"2026-11-27 14:28:41"}`
	var r alsc.UseTopRequest
	if terr := decodeObject("use_request", first, &r); terr != nil {
		t.Fatal(terr)
	}
	want := r
	for _, next := range []string{
		`{"ticket_code":"XXXXXXXXXXXX","shop_id":"YYYYYYYYY","quantity":"9","ticket_request_id":"ZZZZZ","gmt_biz":"2000-01-01 00:00:00"}`,
		`{"ticket_code":"XXXXXXXXXXXX","shop_id":"YYYYYYYYY","shop_id":"YYYYYYYYY"}`, // an error
		`{"ticket_code":"` + strings.Repeat("W", maxPooledObjectBuf) + `"}`,
	} {
		var other alsc.UseTopRequest
		_ = decodeObject("use_request", next, &other)
		if r != want {
			t.Fatalf("after decoding %.40q, the first object reads %+v; it was %+v", next, r, want)
		}
	}
	if r.TicketCode != "452949976644" || r.ShopID != "demo-shop" || r.Quantity != 2 || r.TicketRequestID != "pos-1" {
		t.Fatalf("decoded %+v", r)
	}
	if terr := decodeObject("use_request", "  [1]", &r); terr == nil || !strings.Contains(terr.SubMsg, "必须是JSON对象") {
		t.Fatalf("an array: %v", terr)
	}
}
